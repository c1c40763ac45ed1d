"""Reads and writes of the feature pipeline: cleaned documents, chunks and their embeddings.

Every write for one author is one transaction; only what changed is read and rewritten.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import polars as pl
import psycopg
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
)
CHUNK_COLUMNS = ("id", "document_id", "author", "kind", "ordinal", "content", "content_hash", "n_tokens")


def raw_needing_cleaning(conn: psycopg.Connection, author: str) -> pl.DataFrame:
    """Raw documents with no cleaned row, or whose raw content changed since they were cleaned."""
    rows = conn.execute(
        "SELECT r.id, r.author, r.url, r.kind, r.title, r.content, r.content_hash FROM raw_documents r"
        " LEFT JOIN cleaned_documents c ON c.id = r.id"
        " WHERE r.author = %s AND (c.id IS NULL OR c.raw_content_hash <> r.content_hash) ORDER BY r.id",
        (author,),
    ).fetchall()
    return pl.DataFrame(rows, schema=RAW_SCHEMA, orient="row")


def write_cleaned(
    conn: psycopg.Connection, cleaned: pl.DataFrame, rejected_ids: Sequence[str]
) -> tuple[UpsertResult, int]:
    """Upsert cleaned rows; remove cleaned rows (and so their chunks) of documents rejected now."""
    with conn.transaction():
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
                Jsonb({"truncated": r["truncated"]}),
            )
            for r in cleaned.iter_rows(named=True)
        )
        result = bulk_upsert(conn, "cleaned_documents", CLEANED_COLUMNS, rows, compare="raw_content_hash")
        removed = conn.execute(
            "DELETE FROM cleaned_documents WHERE id = ANY(%s)", (list(rejected_ids),)
        ).rowcount
    return result, removed


def documents_needing_chunks(
    conn: psycopg.Connection, author: str, key_of: Callable[[str], str]
) -> list[tuple[str, str, str, str]]:
    """(id, kind, content, chunks_key) of documents whose chunks are missing or stale."""
    current = conn.execute(
        "SELECT id, content_hash, chunks_key FROM cleaned_documents WHERE author = %s", (author,)
    ).fetchall()
    stale = {
        doc_id: key_of(content_hash) for doc_id, content_hash, key in current if key != key_of(content_hash)
    }
    if not stale:
        return []
    rows = conn.execute(
        "SELECT id, kind, content FROM cleaned_documents WHERE id = ANY(%s) ORDER BY id", (list(stale),)
    ).fetchall()
    return [(doc_id, kind, content, stale[doc_id]) for doc_id, kind, content in rows]


def replace_chunks(
    conn: psycopg.Connection, author: str, documents: Sequence[tuple[str, str, str]], chunks: Sequence[Chunk]
) -> tuple[UpsertResult, int]:
    """Make ``chunks`` the chunks of ``documents`` (id, kind, key), in one transaction.

    Chunks a document no longer has are deleted first (a new chunk may take an old one's ordinal);
    unchanged chunks keep their rows and their embeddings.
    """
    kinds = {doc_id: kind for doc_id, kind, _ in documents}
    with conn.transaction():
        removed = conn.execute(
            "DELETE FROM chunks WHERE document_id = ANY(%s) AND NOT (id = ANY(%s))",
            ([d for d, _, _ in documents], [c.id for c in chunks]),
        ).rowcount
        rows = (
            (c.id, c.document_id, author, kinds[c.document_id], c.ordinal, c.text, c.content_hash, c.n_tokens)
            for c in chunks
        )
        result = bulk_upsert(conn, "chunks", CHUNK_COLUMNS, rows)
        with conn.cursor() as cur:
            cur.executemany(
                "UPDATE cleaned_documents SET chunks_key = %s WHERE id = %s",
                [(key, doc_id) for doc_id, _, key in documents],
            )
    return result, removed


def chunks_needing_embeddings(
    conn: psycopg.Connection, author: str, model: str
) -> list[tuple[str, str, str]]:
    """(id, kind, content) of chunks with no embedding, or one from another model."""
    return conn.execute(
        "SELECT id, kind, content FROM chunks WHERE author = %s"
        " AND (embedding IS NULL OR embedding_model IS DISTINCT FROM %s) ORDER BY id",
        (author, model),
    ).fetchall()


def write_embeddings(
    conn: psycopg.Connection, ids: Sequence[str], vectors: np.ndarray, model: str, dim: int
) -> int:
    """Set the embeddings of ``ids`` (bulk: COPY into a staging table, one UPDATE)."""
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
            "UPDATE chunks c SET embedding = s.embedding, embedding_model = %s FROM _stage_embeddings s"
            " WHERE c.id = s.id",
            (model,),
        ).rowcount
