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
from llm_twin_assets.store.upsert import bulk_upsert

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

    @property
    def written(self) -> int:
        return sum(self.new.values()) + sum(self.changed.values()) + sum(self.removed.values())

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


def store_new(
    conn: psycopg.Connection, slug: str, name: str, documents: Sequence[CrawledDocument]
) -> list[str]:
    """Insert those of ``documents`` the store does not hold yet (a row it holds is left as it is), in
    one transaction; return the ids inserted. The author is added when new (its links hash is set by
    :func:`store_crawl`, once the whole crawl is stored)."""
    if not documents:
        return []
    with conn.transaction():
        conn.execute("INSERT INTO authors (slug, name) VALUES (%s, %s) ON CONFLICT DO NOTHING", (slug, name))
        rows = {}
        for doc in documents:
            rows[document_id(slug, doc.url)] = _row(slug, doc)
        inserted = conn.execute(
            "INSERT INTO raw_documents AS r (id, author, url, kind, title, content, content_hash, source_link,"
            " metadata) SELECT * FROM unnest(%s::text[], %s::text[], %s::text[], %s::text[], %s::text[],"
            " %s::text[], %s::text[], %s::text[], %s::jsonb[]) ON CONFLICT DO NOTHING RETURNING r.id",
            [list(column) for column in zip(*rows.values(), strict=True)],
        ).fetchall()
    return [r[0] for r in inserted]


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
) -> IngestSummary:
    """Upsert the crawl's documents and apply the removal policy, in one transaction. ``stored_earlier``
    are the ids this crawl's :func:`store_new` inserted: they count as new."""
    summary = IngestSummary()
    for failure in outcome.failures:
        summary.failed[failure.kind or "unknown"] += 1
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
        result = bulk_upsert(conn, "raw_documents", COLUMNS, rows, compare=COMPARED, on_update=ON_UPDATE)
        earlier = set(stored_earlier) & set(kinds)
        for row_id in earlier:
            summary.new[kinds[row_id]] += 1
        for row_id in result.inserted:
            summary.new[kinds[row_id]] += 1
        for row_id in result.updated:
            if row_id not in earlier:  # a fuller version of a document this crawl stored is still new
                summary.changed[kinds[row_id]] += 1
        written = set(result.inserted) | set(result.updated) | earlier
        for row_id, kind in kinds.items():
            if row_id not in written:
                summary.unchanged[kind] += 1
        found = list(kinds)
        conn.execute(  # found again: whatever the source said before no longer holds
            "UPDATE raw_documents SET gone_crawls = 0, gone_since = NULL"
            " WHERE author = %s AND id = ANY(%s) AND gone_crawls > 0",
            (slug, found),
        )
        for (kind,) in conn.execute(
            "DELETE FROM raw_documents WHERE author = %s AND NOT (id = ANY(%s))"
            " AND (source_link IS NULL OR NOT (source_link = ANY(%s))) RETURNING kind",
            (slug, found, links),
        ).fetchall():
            summary.removed[kind] += 1
            summary.removal_reasons["unlisted"] += 1
        gone_links = sorted({f.link for f in outcome.failures if f.gone})
        struck = conn.execute(
            "UPDATE raw_documents SET gone_crawls = gone_crawls + 1, gone_since = coalesce(gone_since, now())"
            f" WHERE author = %s AND NOT (id = ANY(%s)) AND NOT {_LISTED_BY_FEED}"
            " AND (source_link = ANY(%s) OR source_link = ANY(%s)) RETURNING id",
            (slug, found, gone_links, sorted(outcome.complete_links)),
        ).fetchall()
        removed = conn.execute(
            "DELETE FROM raw_documents WHERE author = %s AND id = ANY(%s) AND gone_crawls >= %s RETURNING kind",
            (slug, [r[0] for r in struck], remove_after_gone),
        ).fetchall()
        for (kind,) in removed:
            summary.removed[kind] += 1
            summary.removal_reasons["gone"] += 1
        summary.gone_pending = len(struck) - len(removed)
    return summary
