"""Reads and writes of cleaning: the raw documents that need (re)cleaning, and the verdicts on them —
kept documents upserted into ``cleaned_documents``, rejected ones recorded with why. One transaction per
author; unchanged verdicts write nothing."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

import polars as pl
import psycopg
from psycopg.types.json import Jsonb

from llm_twin_assets.store.upsert import UpsertResult, bulk_upsert

RAW_SCHEMA = {
    "id": pl.String,
    "author": pl.String,
    "url": pl.String,
    "kind": pl.String,
    "title": pl.String,
    "content": pl.String,
    "content_hash": pl.String,
}
CLEANED_COLUMNS = (
    "id",
    "author",
    "url",
    "kind",
    "title",
    "content",
    "content_hash",
    "raw_content_hash",
    "language",
    "n_chars",
    "metadata",
    "cleaner_version",
)
REJECTED_SCHEMA = {
    "id": pl.String,
    "url": pl.String,
    "kind": pl.String,
    "raw_content_hash": pl.String,
    "reason": pl.String,  # duplicate | empty | damaged | unknown_kind
    "detail": pl.String,
    "duplicate_of": pl.String,  # the kept document a duplicate repeats
    "clean_hash": pl.String,
}
REJECTION_COLUMNS = ("author", *REJECTED_SCHEMA, "cleaner_version")
# A cleaned row is rewritten only when what it was made from, or what it says, changed; cleaned_at
# then says when its content last changed.
_CLEANED_COMPARED = ("raw_content_hash", "kind", "title", "content_hash", "cleaner_version")
_CLEANED_ON_UPDATE = {
    "updated_at": "now()",
    "cleaned_at": "CASE WHEN cleaned_documents.content_hash IS DISTINCT FROM EXCLUDED.content_hash"
    " THEN now() ELSE cleaned_documents.cleaned_at END",
}


def raw_needing_cleaning(conn: psycopg.Connection, author: str, cleaner_version: int) -> pl.DataFrame:
    """Raw documents not judged yet, judged by another cleaner version, or whose content, kind or title
    changed since they were.

    A rejected document is judged again only when its raw content or kind changed, or, for a duplicate,
    when the document it repeats changed or is being judged again now (so both are judged together, in
    this run): a re-run cleans nothing."""
    rows = conn.execute(
        "SELECT r.id, r.author, r.url, r.kind, r.title, r.content, r.content_hash FROM raw_documents r"
        " LEFT JOIN cleaned_documents c ON c.id = r.id"
        " LEFT JOIN cleaning_rejections j ON j.id = r.id"
        " LEFT JOIN cleaned_documents o ON o.id = j.duplicate_of"
        " LEFT JOIN raw_documents ro ON ro.id = j.duplicate_of"
        " WHERE r.author = %(author)s AND CASE"
        "  WHEN c.id IS NOT NULL THEN c.raw_content_hash <> r.content_hash OR c.kind <> r.kind"
        "   OR c.title IS DISTINCT FROM r.title OR c.cleaner_version <> %(version)s"
        "  WHEN j.id IS NOT NULL THEN j.raw_content_hash <> r.content_hash OR j.kind <> r.kind"
        "   OR j.cleaner_version <> %(version)s"
        "   OR (j.reason = 'duplicate' AND (o.content_hash IS DISTINCT FROM j.clean_hash"
        "    OR o.raw_content_hash IS DISTINCT FROM ro.content_hash OR o.kind IS DISTINCT FROM ro.kind))"
        "  ELSE true END"
        " ORDER BY r.id",
        {"author": author, "version": cleaner_version},
    ).fetchall()
    return pl.DataFrame(rows, schema=RAW_SCHEMA, orient="row")


@dataclass
class CleanedWrite:
    result: UpsertResult
    removed: int
    """Cleaned rows (and so their chunks) of documents rejected now."""
    rejected: pl.DataFrame
    """This run's rejections (REJECTED_SCHEMA), duplicates of stored documents included."""


def _duplicates_of_stored(
    conn: psycopg.Connection,
    author: str,
    judged: Sequence[str],
    cleaned: pl.DataFrame,
    rejected: pl.DataFrame,
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """``cleaned`` without the documents an already stored document of the author repeats, and
    ``rejected`` with them (and the duplicates judged now of those) as duplicates of the stored one."""
    stored: dict[str, str] = dict(
        conn.execute(
            "SELECT content_hash, id FROM cleaned_documents WHERE author = %s"
            " AND content_hash = ANY(%s) AND NOT (id = ANY(%s)) ORDER BY url DESC",
            (author, cleaned["content_hash"].to_list(), list(judged)),
        ).fetchall()
    )
    if stored:
        urls: dict[str, str] = dict(
            conn.execute(
                "SELECT id, url FROM cleaned_documents WHERE id = ANY(%s)", (list(stored.values()),)
            ).fetchall()
        )
        details = {h: f"duplicate of {urls[i]}" for h, i in stored.items()}
        repeats = cleaned.filter(pl.col("content_hash").is_in(list(stored)))
        # A duplicate, judged now, of a document that turns out to repeat a stored one: it repeats that.
        restated = pl.col("clean_hash").is_in(list(stored))
        rejected = rejected.with_columns(
            pl.when(restated)
            .then(pl.col("clean_hash").replace(details))
            .otherwise(pl.col("detail"))
            .alias("detail"),
            pl.when(restated)
            .then(pl.col("clean_hash").replace(stored))
            .otherwise(pl.col("duplicate_of"))
            .alias("duplicate_of"),
        )
        rejected = pl.concat(
            [
                rejected,
                repeats.select(
                    "id",
                    "url",
                    "kind",
                    "raw_content_hash",
                    pl.lit("duplicate").alias("reason"),
                    pl.col("content_hash").replace_strict(details).alias("detail"),
                    pl.col("content_hash").replace_strict(stored).alias("duplicate_of"),
                    pl.col("content_hash").alias("clean_hash"),
                ),
            ],
            how="vertical_relaxed",
        )
        cleaned = cleaned.filter(~pl.col("content_hash").is_in(list(stored)))
    return cleaned, rejected


def write_cleaned(
    conn: psycopg.Connection,
    author: str,
    judged: Sequence[str],
    cleaned: pl.DataFrame,
    rejected: pl.DataFrame,
    cleaner_version: int,
) -> CleanedWrite:
    """Store the verdicts on the ``judged`` raw documents, in one transaction.

    A kept document whose cleaned text an already stored document of the author holds is a duplicate
    of that one (the stored document wins; documents judged now are compared among themselves by the
    cleaner). Kept rows are upserted and lose any old rejection; rejected ones lose their cleaned row
    and record why. Unchanged verdicts write nothing."""
    with conn.transaction():
        cleaned, rejected = _duplicates_of_stored(conn, author, judged, cleaned, rejected)
        rows = (
            (
                r["id"],
                r["author"],
                r["url"],
                r["kind"],
                r["title"],
                r["content"],
                r["content_hash"],
                r["raw_content_hash"],
                r["language"],
                r["n_chars"],
                Jsonb({"truncated": r["truncated"], "headings": json.loads(r["headings"] or "[]")}),
                cleaner_version,
            )
            for r in cleaned.iter_rows(named=True)
        )
        result = bulk_upsert(
            conn,
            "cleaned_documents",
            CLEANED_COLUMNS,
            rows,
            compare=_CLEANED_COMPARED,
            on_update=_CLEANED_ON_UPDATE,
        )
        conn.execute("DELETE FROM cleaning_rejections WHERE id = ANY(%s)", (cleaned["id"].to_list(),))
        removed = conn.execute(
            "DELETE FROM cleaned_documents WHERE id = ANY(%s)", (rejected["id"].to_list(),)
        ).rowcount
        bulk_upsert(
            conn,
            "cleaning_rejections",
            REJECTION_COLUMNS,
            (
                (author, *(r[c] for c in REJECTED_SCHEMA), cleaner_version)
                for r in rejected.iter_rows(named=True)
            ),
            compare=None,
            update=[c for c in REJECTION_COLUMNS if c != "id"],
            on_update={"rejected_at": "now()"},
        )
    return CleanedWrite(result, removed, rejected)


def rejections_of(conn: psycopg.Connection, author: str) -> dict[str, int]:
    """How many of the author's raw documents cleaning rejected, by reason."""
    return dict(
        conn.execute(
            "SELECT reason, count(*) FROM cleaning_rejections WHERE author = %s GROUP BY reason ORDER BY reason",
            (author,),
        ).fetchall()
    )


def cleaned_count(conn: psycopg.Connection, author: str) -> int:
    row = conn.execute("SELECT count(*) FROM cleaned_documents WHERE author = %s", (author,)).fetchone()
    return int(row[0]) if row else 0
