"""Writing an author's crawl into ``raw_documents``: one transaction per author (partition).

Rows are keyed by (author, canonical URL); an unchanged page writes nothing, a changed one replaces
exactly its row. Rows whose link left the links file are removed, and so are rows a link no longer
yields (a file gone from a drafts folder); rows of links that failed this time are kept as they are.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import psycopg
from psycopg.types.json import Jsonb

from llm_twin_assets.records import CrawlOutcome, content_hash, document_id
from llm_twin_assets.store.upsert import bulk_upsert

COLUMNS = ("id", "author", "url", "kind", "title", "content", "content_hash", "metadata")


@dataclass
class IngestSummary:
    new: Counter[str] = field(default_factory=Counter)
    changed: Counter[str] = field(default_factory=Counter)
    unchanged: Counter[str] = field(default_factory=Counter)
    removed: Counter[str] = field(default_factory=Counter)
    failed: Counter[str] = field(default_factory=Counter)

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


def store_crawl(
    conn: psycopg.Connection, slug: str, name: str, links_sha256: str, links: list[str], outcome: CrawlOutcome
) -> IngestSummary:
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
            row_id = document_id(slug, doc.url)
            kinds[row_id] = doc.kind
            metadata = {**doc.metadata, "source_link": doc.source_link, "published_at": doc.published_at}
            rows.append(
                (
                    row_id,
                    slug,
                    doc.url,
                    doc.kind,
                    doc.title,
                    doc.content,
                    content_hash(doc.content),
                    Jsonb(metadata),
                )
            )
        result = bulk_upsert(conn, "raw_documents", COLUMNS, rows)
        for row_id in result.inserted:
            summary.new[kinds[row_id]] += 1
        for row_id in result.updated:
            summary.changed[kinds[row_id]] += 1
        written = set(result.inserted) | set(result.updated)
        for row_id, kind in kinds.items():
            if row_id not in written:
                summary.unchanged[kind] += 1
        # Prune: links gone from the file, and what a link that answered no longer yields.
        removed = conn.execute(
            "DELETE FROM raw_documents WHERE author = %s AND NOT (id = ANY(%s)) AND ("
            " NOT (metadata->>'source_link' = ANY(%s)) OR metadata->>'source_link' = ANY(%s))"
            " RETURNING kind",
            (slug, list(kinds), links, sorted(outcome.crawled_links)),
        ).fetchall()
        for (kind,) in removed:
            summary.removed[kind] += 1
    return summary
