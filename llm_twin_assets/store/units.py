"""Reads and writes of retrieval units (sql/011): the list items, table rows and sentence groups of each
chunk, embedded beside it, rebuilt only for chunks whose units key changed.

Every write for one author is one transaction; only what changed is read and rewritten.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import psycopg
from psycopg import sql

from llm_twin_assets.store.upsert import UpsertResult, bulk_upsert

UNIT_COLUMNS = (
    "id",
    "chunk_id",
    "document_id",
    "author",
    "kind",
    "ordinal",
    "char_start",
    "char_end",
    "content",
    "embedded_hash",
)


def units_key_sql(version: int) -> sql.Composed:
    """What a chunk's units are made from, as SQL over a chunk row ``c``: the units version, the chunk's
    kind, span, content and context (embedded above each unit)."""
    return sql.SQL(
        "md5(concat_ws(':', {version}, c.kind, c.char_start, c.char_end, c.content_hash, c.context))"
    ).format(version=sql.Literal(str(version)))


class ChunkForUnits(NamedTuple):
    id: str
    document_id: str
    kind: str
    content: str
    char_start: int | None
    context: str
    headings: list[tuple[int, int, int]]
    """The document's heading lines that lie in the chunk, offsets into the chunk's text."""
    key: str


def chunks_needing_units(conn: psycopg.Connection, author: str, version: int) -> list[ChunkForUnits]:
    """The author's chunks whose units are missing or were made from something else (``units_key``)."""
    rows = conn.execute(
        sql.SQL(
            "SELECT c.id, c.document_id, c.kind, c.content, c.char_start, c.char_end, c.context,"
            " coalesce(d.metadata->'headings', '[]'::jsonb), {key}"
            " FROM chunks c JOIN cleaned_documents d ON d.id = c.document_id"
            " WHERE c.author = %s AND c.units_key IS DISTINCT FROM {key} ORDER BY c.id"
        ).format(key=units_key_sql(version)),
        (author,),
    ).fetchall()
    found = []
    for chunk_id, document_id, kind, content, start, end, context, headings, key in rows:
        inside = [
            (h[0] - start, h[1] - start, h[2])
            for h in headings
            if start is not None and end is not None and start <= h[0] and h[1] <= end
        ]
        found.append(ChunkForUnits(chunk_id, document_id, kind, content, start, context, inside, key))
    return found


def embedded_text(context: str, text: str) -> str:
    """What is embedded for a chunk or a unit: the chunk's context (title, heading path) above the text."""
    return f"{context}\n{text}" if context else text


def replace_units(
    conn: psycopg.Connection,
    author: str,
    chunks: Sequence[ChunkForUnits],
    spans: Sequence[Sequence[tuple[int, int]]],
) -> tuple[UpsertResult, int]:
    """Make ``spans[i]`` (offsets into the chunk's text) the units of ``chunks[i]``, in one transaction,
    and record each chunk's ``units_key``. A unit kept (same chunk, same span) keeps its vector unless
    what is embedded for it changed (the chunk's context)."""
    from llm_twin_assets.records import content_hash, unit_id

    rows = []
    for chunk, found in zip(chunks, spans, strict=True):
        if chunk.char_start is None:
            continue  # a chunk from before offsets were stored: it is its own unit
        for ordinal, (a, b) in enumerate(found):
            start, end = chunk.char_start + a, chunk.char_start + b
            text = chunk.content[a:b]
            rows.append(
                (
                    unit_id(chunk.id, start, end),
                    chunk.id,
                    chunk.document_id,
                    author,
                    chunk.kind,
                    ordinal,
                    start,
                    end,
                    text,
                    content_hash(embedded_text(chunk.context, text)),
                )
            )
    with conn.transaction():
        removed = conn.execute(
            "DELETE FROM chunk_units WHERE chunk_id = ANY(%s) AND NOT (id = ANY(%s))",
            ([c.id for c in chunks], [r[0] for r in rows]),
        ).rowcount
        result = bulk_upsert(
            conn,
            "chunk_units",
            UNIT_COLUMNS,
            rows,
            compare=("kind", "ordinal", "char_start", "char_end", "embedded_hash"),
            on_update={
                "updated_at": "now()",
                "embedding": "CASE WHEN chunk_units.embedded_hash IS DISTINCT FROM EXCLUDED.embedded_hash"
                " THEN NULL ELSE chunk_units.embedding END",
            },
        )
        with conn.cursor() as cur:
            cur.executemany("UPDATE chunks SET units_key = %s WHERE id = %s", [(c.key, c.id) for c in chunks])
    return result, removed


def units_needing_embeddings(conn: psycopg.Connection, author: str, model: str) -> list[tuple[str, str]]:
    """(id, text to embed) of the author's units with no embedding, or one from another model."""
    rows = conn.execute(
        "SELECT u.id, CASE WHEN c.context = '' THEN u.content ELSE c.context || chr(10) || u.content END"
        " FROM chunk_units u JOIN chunks c ON c.id = u.chunk_id WHERE u.author = %s"
        " AND (u.embedding IS NULL OR u.embedding_model IS DISTINCT FROM %s) ORDER BY u.id",
        (author, model),
    ).fetchall()
    return [(r[0], r[1]) for r in rows]


def ensure_units_dimension(conn: psycopg.Connection) -> None:
    """Declare ``chunk_units.embedding`` (and its HNSW index) with the dimension of ``chunks.embedding``
    when they differ (the store's dimension is set on ``chunks`` when it opens, only while no chunk is
    embedded: :func:`llm_twin_assets.store.database.ensure_dimension`); unit vectors of the old
    dimension are dropped (embedded again)."""
    dims = conn.execute(
        "SELECT (SELECT atttypmod FROM pg_attribute WHERE attrelid = 'chunks'::regclass AND attname = 'embedding'),"
        " (SELECT atttypmod FROM pg_attribute WHERE attrelid = 'chunk_units'::regclass AND attname = 'embedding')"
    ).fetchone()
    if not dims or dims[0] is None or dims[0] < 1 or dims[0] == dims[1]:
        return
    dim = int(dims[0])
    with conn.transaction():
        conn.execute("LOCK TABLE chunk_units IN ACCESS EXCLUSIVE MODE")
        conn.execute(
            "UPDATE chunk_units SET embedding = NULL, embedding_model = NULL WHERE embedding IS NOT NULL"
        )
        from llm_twin_assets.store.author_indexes import drop_author_indexes

        drop_author_indexes(conn, table="chunk_units")
        conn.execute("DROP INDEX IF EXISTS chunk_units_embedding_hnsw")
        conn.execute(
            sql.SQL("ALTER TABLE chunk_units ALTER COLUMN embedding TYPE vector({})").format(sql.Literal(dim))
        )
        conn.execute(
            sql.SQL(
                "CREATE INDEX chunk_units_embedding_hnsw ON chunk_units USING hnsw ((embedding::halfvec({}))"
                " halfvec_cosine_ops) WITH (m = 16, ef_construction = 128)"
            ).format(sql.Literal(dim))
        )


def refresh_unit_statistics(conn: psycopg.Connection) -> None:
    """ANALYZE the units (the planner's row estimates: the vector search's path)."""
    conn.execute("ANALYZE chunk_units")
