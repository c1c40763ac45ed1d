"""Reads and writes of the feature pipeline: cleaned documents, chunks and their embeddings.

Every write for one author is one transaction; only what changed is read and rewritten.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import polars as pl
import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from llm_twin_assets.records import Chunk
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
CHUNK_COLUMNS = (
    "id",
    "document_id",
    "author",
    "kind",
    "ordinal",
    "content",
    "content_hash",
    "n_tokens",
    "char_start",
    "char_end",
    "heading_path",
    "context",
    "token_ids",
    "tokenizer",
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


@dataclass(frozen=True)
class ToChunk:
    """A cleaned document whose chunks are missing or stale, with what the chunker needs."""

    id: str
    kind: str
    content: str
    key: str
    title: str
    headings: list[tuple[int, int, int]]
    """(start, end, level) of each heading line in ``content``."""


def documents_needing_chunks(
    conn: psycopg.Connection, author: str, key_of: Callable[[str, str, str], str]
) -> list[ToChunk]:
    """The documents whose chunks are missing or stale.

    ``key_of(content_hash, kind, outline)`` names what the chunks are made from (with the chunking
    settings); ``outline`` is the title and the headings, which chunks carry."""
    current = conn.execute(
        "SELECT id, content_hash, kind, coalesce(title, '') || coalesce(metadata->>'headings', ''), chunks_key"
        " FROM cleaned_documents WHERE author = %s",
        (author,),
    ).fetchall()
    stale = {
        doc_id: key_of(content_hash, kind, outline)
        for doc_id, content_hash, kind, outline, key in current
        if key != key_of(content_hash, kind, outline)
    }
    if not stale:
        return []
    rows = conn.execute(
        "SELECT id, kind, content, coalesce(title, ''), coalesce(metadata->'headings', '[]'::jsonb)"
        " FROM cleaned_documents WHERE id = ANY(%s) ORDER BY id",
        (list(stale),),
    ).fetchall()
    return [
        ToChunk(doc_id, kind, content, stale[doc_id], title, [(h[0], h[1], h[2]) for h in headings])
        for doc_id, kind, content, title, headings in rows
    ]


def replace_chunks(
    conn: psycopg.Connection,
    author: str,
    documents: Sequence[tuple[str, str, str]],
    chunks: Sequence[Chunk],
    tokenizer: str | None = None,
) -> tuple[UpsertResult, int]:
    """Make ``chunks`` the chunks of ``documents`` (id, kind, key), in one transaction; their token ids
    (when they have them) are stored as made by ``tokenizer`` (its digest).

    Chunks a document no longer has are deleted first (a new chunk may take an old one's ordinal);
    unchanged chunks keep their rows and their embeddings (a kind change rewrites the row, not the vector).
    """
    kinds = {doc_id: kind for doc_id, kind, _ in documents}
    with conn.transaction():
        removed = conn.execute(
            "DELETE FROM chunks WHERE document_id = ANY(%s) AND NOT (id = ANY(%s))",
            ([d for d, _, _ in documents], [c.id for c in chunks]),
        ).rowcount
        rows = (
            (
                c.id,
                c.document_id,
                author,
                kinds[c.document_id],
                c.ordinal,
                c.text,
                c.content_hash,
                c.n_tokens,
                c.start,
                c.end,
                list(c.heading_path),
                c.context,
                pack_ids(c.token_ids) if c.token_ids is not None and tokenizer else None,
                tokenizer if c.token_ids is not None else None,
            )
            for c in chunks
        )
        result = bulk_upsert(
            conn,
            "chunks",
            CHUNK_COLUMNS,
            rows,
            compare=("content_hash", "kind", "char_start", "char_end", "heading_path", "context"),
            on_update={
                "updated_at": "now()",
                # what is embedded is the context and the text: a new context needs a new vector
                "embedding": "CASE WHEN chunks.context IS DISTINCT FROM EXCLUDED.context THEN NULL"
                " ELSE chunks.embedding END",
            },
        )
        with conn.cursor() as cur:
            cur.executemany(
                "UPDATE cleaned_documents SET chunks_key = %s WHERE id = %s AND chunks_key IS DISTINCT FROM %s",
                [(key, doc_id, key) for doc_id, _, key in documents],
            )
    return result, removed


def refresh_statistics(conn: psycopg.Connection) -> None:
    """ANALYZE the chunks: the planner's row estimates (the vector search picks its path from them) and
    the term frequencies full-text search weighs terms by."""
    conn.execute("ANALYZE chunks")


class ChunkToEmbed(NamedTuple):
    id: str
    kind: str
    text: str
    """What is embedded: the chunk's context (its document's title and heading path) above its text."""
    token_ids: np.ndarray | None
    """``text`` as the chunker's tokenizer reads it (special tokens included), when it was stored by the
    tokenizer asked for; None otherwise."""


def chunks_needing_embeddings(
    conn: psycopg.Connection, author: str, model: str, tokenizer: str | None = None
) -> list[ChunkToEmbed]:
    """The chunks with no embedding, or one from another model; their stored token ids when they were
    made by ``tokenizer`` (a digest)."""
    rows = conn.execute(
        "SELECT id, kind, CASE WHEN context = '' THEN content ELSE context || chr(10) || content END,"
        " CASE WHEN tokenizer = %s THEN token_ids END"
        " FROM chunks WHERE author = %s"
        " AND (embedding IS NULL OR embedding_model IS DISTINCT FROM %s) ORDER BY id",
        (tokenizer, author, model),
    ).fetchall()
    return [ChunkToEmbed(i, k, t, unpack_ids(ids) if ids is not None else None) for i, k, t, ids in rows]


def pack_ids(ids: Sequence[int]) -> bytes:
    return np.asarray(ids, dtype="<i4").tobytes()


def unpack_ids(data: bytes) -> np.ndarray:
    return np.frombuffer(data, dtype="<i4").astype(np.int64)


def write_embeddings(
    conn: psycopg.Connection,
    ids: Sequence[str],
    vectors: np.ndarray,
    model: str,
    dim: int,
    table: str = "chunks",
) -> int:
    """Set the embeddings of ``ids`` in ``table`` (``chunks`` or ``chunk_units``; bulk: COPY into a
    staging table, one UPDATE)."""
    if vectors.shape != (len(ids), dim):
        raise ValueError(
            f"expected {len(ids)} vectors of {dim} dimensions, got an array of shape {vectors.shape}"
        )
    with conn.transaction():
        conn.execute(
            f"CREATE TEMP TABLE IF NOT EXISTS _stage_embeddings (id text, embedding vector({dim})) ON COMMIT DROP"
        )
        conn.execute("TRUNCATE _stage_embeddings")
        with conn.cursor().copy(
            "COPY _stage_embeddings (id, embedding) FROM STDIN WITH (FORMAT BINARY)"
        ) as copy:
            copy.set_types(["text", "vector"])
            for chunk_id, vector in zip(ids, vectors, strict=True):
                copy.write_row((chunk_id, vector))
        return conn.execute(
            sql.SQL(
                "UPDATE {} c SET embedding = s.embedding, embedding_model = %s, updated_at = now()"
                " FROM _stage_embeddings s"
                " WHERE c.id = s.id"
            ).format(sql.Identifier(table)),
            (model,),
        ).rowcount
