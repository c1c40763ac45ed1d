"""Reads and writes of chunking and embedding: the documents that need (re)chunking, their chunks replaced
in one go, the chunks that need embeddings and the embeddings written (cleaning: ``store.cleaned``).

Every write for one author is one transaction; only what changed is read and rewritten.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import psycopg
from psycopg import sql

from llm_twin_assets.records import Chunk
from llm_twin_assets.store.upsert import UpsertResult, bulk_upsert

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


@dataclass(frozen=True)
class EmbeddingTotals:
    chunks: int
    chunks_embedded: int
    units: int
    chunks_with_units: int


def embedding_totals(conn: psycopg.Connection, author: str) -> EmbeddingTotals:
    """The author's chunks (embedded or not) and retrieval units, as the embeddings asset reports them."""
    chunks = conn.execute(
        "SELECT count(*) FILTER (WHERE embedding IS NOT NULL), count(*) FROM chunks WHERE author = %s",
        (author,),
    ).fetchone()
    units = conn.execute(
        "SELECT count(*), count(DISTINCT chunk_id) FROM chunk_units WHERE author = %s", (author,)
    ).fetchone()
    embedded, total = (int(chunks[0]), int(chunks[1])) if chunks else (0, 0)
    unit_count, with_units = (int(units[0]), int(units[1])) if units else (0, 0)
    return EmbeddingTotals(total, embedded, unit_count, with_units)


def chunk_sizes(conn: psycopg.Connection, author: str) -> list[tuple[str, int]]:
    """(kind, tokens) of each of the author's chunks."""
    return [
        (str(k), int(n))
        for k, n in conn.execute("SELECT kind, n_tokens FROM chunks WHERE author = %s", (author,))
    ]
