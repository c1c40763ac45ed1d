"""Writing an author's crawl into ``raw_documents``: one transaction per author (partition).

Rows are keyed by (author, canonical URL); an unchanged page writes nothing, a changed one replaces
exactly its row (content, kind, title or source link). The removal policy, the one users can trust:

- a document leaves the store when its links file no longer names the link it came from;
- or when its source says it is gone on ``remove_after_gone`` consecutive crawls: the link answered
  HTTP 404/410 (or a local file is deleted), or a link whose answer lists everything it holds (a drafts
  folder, a LinkedIn export, an article page, a repository) no longer lists it;
- a feed that no longer lists an old post never removes it (a feed shows only its newest entries), and a
  link that failed for any other reason (timeouts, 5xx) keeps its rows as they are.

Any crawl that finds a document again clears its gone count.

Nothing is removed by a crawl that could not see the author (:func:`removals_withheld`): when more
than half of the links in the file failed (a link fails when it gave no answer: a timeout, a refused
address, an HTTP error, a 404/410, a missing or refused local path; a drafts folder found empty is an
answer), the crawl stores what it found but removes nothing: no link-left-the-file removals and no
gone counts (the ones it has stay as they are). A links file copied somewhere its relative links do
not resolve, a site down, a network that refuses the crawler: each says nothing about the author.

A removed document is not deleted: it is moved, with its cleaned row and its chunks (vectors
included), into the tombstone tables (:mod:`llm_twin_assets.store.tombstones`), kept
``LLM_TWIN_TOMBSTONE_DAYS`` days. A crawl that finds a tombstoned document again (its link put back)
restores it first, so an unchanged document comes back with its chunks and vectors as they were.

While the crawl runs, :func:`store_new` stores each link's documents the store does not hold yet, as the
link is crawled: a crawl cut short (a killed run) keeps what it found, and the next one finds it stored.
Changes to stored rows and removals wait for the whole crawl (one transaction, :func:`store_crawl`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field

import psycopg
from psycopg.types.json import Jsonb

from llm_twin_assets.records import CrawledDocument, CrawlOutcome, content_hash, document_id
from llm_twin_assets.store.tombstones import buried, bury, purge, restore
from llm_twin_assets.store.upsert import UpsertResult, bulk_upsert

COLUMNS = ("id", "author", "url", "kind", "title", "content", "content_hash", "source_link", "metadata")
# What makes a stored row out of date. Crawl details in metadata (attempts, redirects) change on every
# crawl and do not count: a re-crawl of unchanged pages writes nothing.
COMPARED = ("content_hash", "kind", "title", "source_link")
ON_UPDATE = {
    "updated_at": "now()",
    "fetched_at": "CASE WHEN raw_documents.content_hash IS DISTINCT FROM EXCLUDED.content_hash"
    " THEN now() ELSE raw_documents.fetched_at END",
    "gone_crawls": "0",
    "gone_since": "NULL",
}
# Feed entries a feed link listed (not an article that fell back to its site's feed): a feed's silence
# about them says nothing, and a feed link that is gone does not make its posts gone.
_LISTED_BY_FEED = "(metadata->>'via' = 'feed' AND metadata->>'fallback_reason' IS NULL)"


@dataclass
class IngestSummary:
    new: Counter[str] = field(default_factory=Counter)
    changed: Counter[str] = field(default_factory=Counter)
    unchanged: Counter[str] = field(default_factory=Counter)
    removed: Counter[str] = field(default_factory=Counter)
    failed: Counter[str] = field(default_factory=Counter)
    removal_reasons: Counter[str] = field(default_factory=Counter)
    """'unlisted' (the links file no longer names its link) and 'gone' (its source said so, again)."""
    gone_pending: int = 0
    """Documents the source said are gone this crawl, kept until the gone count reaches the limit."""
    restored: Counter[str] = field(default_factory=Counter)
    """Tombstoned documents this crawl found again, moved back with their chunks and vectors."""
    removals_withheld: str | None = None
    """Why this crawl removed nothing (most links failed); None when the removal policy ran."""
    links_failed: int = 0
    links_total: int = 0
    purged: int = 0
    """Tombstones of the author past the retention time, deleted by this crawl."""

    @property
    def written(self) -> int:
        return (
            sum(self.new.values())
            + sum(self.changed.values())
            + sum(self.removed.values())
            + sum(self.restored.values())
        )

    def by_kind(self) -> dict[str, dict[str, int]]:
        kinds = sorted(
            set(self.new) | set(self.changed) | set(self.unchanged) | set(self.removed) | set(self.failed)
        )
        return {
            k: {
                "new": self.new[k],
                "changed": self.changed[k],
                "unchanged": self.unchanged[k],
                "removed": self.removed[k],
                "failed": self.failed[k],
            }
            for k in kinds
        }


def _row(slug: str, doc: CrawledDocument) -> tuple[object, ...]:
    metadata = {**doc.metadata, "source_link": doc.source_link, "published_at": doc.published_at}
    return (
        document_id(slug, doc.url),
        slug,
        doc.url,
        doc.kind,
        doc.title,
        doc.content,
        content_hash(doc.content),
        doc.source_link,
        Jsonb(metadata),
    )


@dataclass
class StoredNew:
    inserted: list[str] = field(default_factory=list)
    """Documents new to the store, inserted."""
    restored: list[str] = field(default_factory=list)
    """Tombstoned documents found again, moved back as they were (their rows are then compared)."""


def store_new(
    conn: psycopg.Connection, slug: str, name: str, documents: Sequence[CrawledDocument]
) -> StoredNew:
    """Insert those of ``documents`` the store does not hold yet (a row it holds is left as it is; one
    it holds as a tombstone is restored first), in one transaction. The author is added when new (its
    links hash is set by :func:`store_crawl`, once the whole crawl is stored)."""
    stored = StoredNew()
    if not documents:
        return stored
    with conn.transaction():
        conn.execute("INSERT INTO authors (slug, name) VALUES (%s, %s) ON CONFLICT DO NOTHING", (slug, name))
        rows = {}
        for doc in documents:
            rows[document_id(slug, doc.url)] = _row(slug, doc)
        stored.restored = list(restore(conn, slug, buried(conn, slug, list(rows))).documents)
        inserted = conn.execute(
            "INSERT INTO raw_documents AS r (id, author, url, kind, title, content, content_hash, source_link,"
            " metadata) SELECT * FROM unnest(%s::text[], %s::text[], %s::text[], %s::text[], %s::text[],"
            " %s::text[], %s::text[], %s::text[], %s::jsonb[]) ON CONFLICT DO NOTHING RETURNING r.id",
            [list(column) for column in zip(*rows.values(), strict=True)],
        ).fetchall()
    stored.inserted = [r[0] for r in inserted]
    return stored


def removals_withheld(links: Collection[str], outcome: CrawlOutcome) -> tuple[str | None, int, int]:
    """(why this crawl may remove nothing, or None; links failed; links in the file).

    A link failed when it gave no answer: any failure (timeouts, refused addresses, HTTP errors, 404/410,
    a missing or refused local path) except a drafts folder found empty, which answered with nothing.
    When more than half of the links failed (``2 * failed > links``), the crawl could not see the
    author: it removes nothing."""
    failed = {f.link for f in outcome.failures if f.link not in outcome.complete_links}
    total = max(len(set(links)), len(failed))
    if not failed or 2 * len(failed) <= total:
        return None, len(failed), total
    why = (
        f"{len(failed)} of {total} links failed (more than half): this crawl could not see the author, "
        "so it removed nothing and counted nothing as gone; fix the links file or wait for the sources, "
        "then crawl again"
    )
    return why, len(failed), total


def _count_stored(
    summary: IngestSummary, kinds: dict[str, str], result: UpsertResult, earlier: set[str], restored: set[str]
) -> None:
    """Each found document counted once in the summary: new (``earlier``: stored by this crawl before
    this upsert), restored, changed or unchanged."""
    for row_id in [*earlier, *result.inserted]:
        summary.new[kinds[row_id]] += 1
    for row_id in restored:
        summary.restored[kinds[row_id]] += 1
    for row_id in result.updated:
        if row_id not in earlier:  # a fuller version of a document this crawl stored is still new
            summary.changed[kinds[row_id]] += 1
    written = set(result.inserted) | set(result.updated) | earlier | restored
    for row_id, kind in kinds.items():
        if row_id not in written:
            summary.unchanged[kind] += 1


def _remove_gone(
    conn: psycopg.Connection,
    slug: str,
    found: list[str],
    links: list[str],
    outcome: CrawlOutcome,
    summary: IngestSummary,
    remove_after_gone: int,
) -> None:
    """The removal policy: documents no link lists any more become tombstones at once; those whose
    source said gone (or a complete listing left out) become tombstones after ``remove_after_gone``
    crawls in a row."""
    unlisted = conn.execute(
        "SELECT id FROM raw_documents WHERE author = %s AND NOT (id = ANY(%s))"
        " AND (source_link IS NULL OR NOT (source_link = ANY(%s)))",
        (slug, found, links),
    ).fetchall()
    for gone_kind in bury(conn, slug, [r[0] for r in unlisted], "unlisted").values():
        summary.removed[gone_kind] += 1
        summary.removal_reasons["unlisted"] += 1
    gone_links = sorted({f.link for f in outcome.failures if f.gone})
    struck = conn.execute(
        "UPDATE raw_documents SET gone_crawls = gone_crawls + 1, gone_since = coalesce(gone_since, now())"
        f" WHERE author = %s AND NOT (id = ANY(%s)) AND NOT {_LISTED_BY_FEED}"
        " AND (source_link = ANY(%s) OR source_link = ANY(%s)) RETURNING id, gone_crawls",
        (slug, found, gone_links, sorted(outcome.complete_links)),
    ).fetchall()
    removed = bury(conn, slug, [i for i, n in struck if n >= remove_after_gone], "gone")
    for gone_kind in removed.values():
        summary.removed[gone_kind] += 1
        summary.removal_reasons["gone"] += 1
    summary.gone_pending = len(struck) - len(removed)


def store_crawl(
    conn: psycopg.Connection,
    slug: str,
    name: str,
    links_sha256: str,
    links: list[str],
    outcome: CrawlOutcome,
    *,
    remove_after_gone: int = 2,
    stored_earlier: Collection[str] = (),
    restored_earlier: Collection[str] = (),
    tombstone_days: float | None = None,
) -> IngestSummary:
    """Upsert the crawl's documents and apply the removal policy, in one transaction. ``stored_earlier``
    are the ids this crawl's :func:`store_new` inserted: they count as new; ``restored_earlier`` those it
    restored from tombstones. ``links`` are the link identities of the links file
    (:func:`~llm_twin_assets.crawling.documents.link_identity`). Removed documents become tombstones;
    with ``tombstone_days``, the author's tombstones older than that are purged (not by a crawl that
    withholds removals)."""
    summary = IngestSummary()
    for failure in outcome.failures:
        summary.failed[failure.kind or "unknown"] += 1
    summary.removals_withheld, summary.links_failed, summary.links_total = removals_withheld(links, outcome)
    with conn.transaction():
        conn.execute(
            "INSERT INTO authors (slug, name, links_hash) VALUES (%s, %s, %s) ON CONFLICT (slug) DO UPDATE "
            "SET name = EXCLUDED.name, links_hash = EXCLUDED.links_hash, updated_at = now() "
            "WHERE (authors.name, authors.links_hash) IS DISTINCT FROM (EXCLUDED.name, EXCLUDED.links_hash)",
            (slug, name, links_sha256),
        )
        kinds = {}
        rows = []
        for doc in outcome.documents:
            row = _row(slug, doc)
            kinds[str(row[0])] = doc.kind
            rows.append(row)
        # Found again after a removal: back from the tombstone first, then compared like any stored row.
        restored = set(restore(conn, slug, buried(conn, slug, list(kinds))).documents)
        restored |= set(restored_earlier) & set(kinds)
        result = bulk_upsert(conn, "raw_documents", COLUMNS, rows, compare=COMPARED, on_update=ON_UPDATE)
        _count_stored(summary, kinds, result, set(stored_earlier) & set(kinds), restored)
        found = list(kinds)
        conn.execute(  # found again: whatever the source said before no longer holds
            "UPDATE raw_documents SET gone_crawls = 0, gone_since = NULL"
            " WHERE author = %s AND id = ANY(%s) AND gone_crawls > 0",
            (slug, found),
        )
        if summary.removals_withheld is not None:
            return summary
        _remove_gone(conn, slug, found, links, outcome, summary, remove_after_gone)
        if tombstone_days is not None:
            summary.purged = purge(conn, tombstone_days, slug)
    return summary
