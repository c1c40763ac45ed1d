"""The queries behind the data checks, per author: each returns the offending rows (their first column an
id, a URL or a hash to show), empty when all is well. The checks themselves (``defs/*/checks.py``) turn
them into Dagster check results."""

from __future__ import annotations

import psycopg
from psycopg import sql

Rows = list[tuple[object, ...]]


def blank_raw_documents(conn: psycopg.Connection, author: str) -> Rows:
    return conn.execute(
        "SELECT url FROM raw_documents WHERE author = %s AND btrim(content) = '' ORDER BY url", (author,)
    ).fetchall()


def raw_documents_sharing_content(conn: psycopg.Connection, author: str) -> Rows:
    """(content hash, the URLs holding it) for each content stored under more than one URL."""
    return conn.execute(
        "SELECT content_hash, array_agg(url ORDER BY url) FROM raw_documents WHERE author = %s "
        "GROUP BY content_hash HAVING count(*) > 1",
        (author,),
    ).fetchall()


def blank_chunks(conn: psycopg.Connection, author: str) -> Rows:
    return conn.execute(
        "SELECT id FROM chunks WHERE author = %s AND btrim(content) = ''", (author,)
    ).fetchall()


def chunks_over(conn: psycopg.Connection, author: str, limit: int) -> Rows:
    return conn.execute(
        "SELECT id, n_tokens FROM chunks WHERE author = %s AND n_tokens > %s", (author, limit)
    ).fetchall()


def chunks_badly_embedded(conn: psycopg.Connection, author: str, dim: int) -> Rows:
    """Chunks without an embedding, or with one of another dimension or not of unit norm."""
    return conn.execute(
        "SELECT id FROM chunks WHERE author = %s AND (embedding IS NULL OR vector_dims(embedding) <> %s"
        " OR abs(vector_norm(embedding) - 1) > 1e-3)",
        (author, dim),
    ).fetchall()


def chunks_without_documents(conn: psycopg.Connection, author: str) -> Rows:
    return conn.execute(
        "SELECT c.id FROM chunks c LEFT JOIN cleaned_documents d ON d.id = c.document_id"
        " LEFT JOIN raw_documents r ON r.id = c.document_id WHERE c.author = %s AND (d.id IS NULL OR r.id IS NULL)",
        (author,),
    ).fetchall()


def embedding_models_used(conn: psycopg.Connection, author: str) -> dict[str, int]:
    """How many of the author's chunks each embedding model made ('(none)': not embedded)."""
    return dict(
        conn.execute(
            "SELECT coalesce(embedding_model, '(none)'), count(*) FROM chunks WHERE author = %s GROUP BY 1",
            (author,),
        ).fetchall()
    )


def units_missing_or_bad(
    conn: psycopg.Connection, author: str, key: sql.Composable, dim: int, model: str
) -> Rows:
    """'chunk <id>' for a chunk whose units are not current (its ``units_key`` is not ``key``), 'unit <id>'
    for a unit not embedded with ``model``, ``dim`` and unit norm."""
    return conn.execute(
        sql.SQL(
            "SELECT 'chunk ' || c.id FROM chunks c WHERE c.author = %s AND c.units_key IS DISTINCT FROM {key}"
            " UNION ALL SELECT 'unit ' || id FROM chunk_units WHERE author = %s AND (embedding IS NULL"
            " OR vector_dims(embedding) <> %s OR abs(vector_norm(embedding) - 1) > 1e-3"
            " OR embedding_model IS DISTINCT FROM %s)"
        ).format(key=key),
        (author, author, dim, model),
    ).fetchall()


def units_outside_their_chunk(conn: psycopg.Connection, author: str) -> Rows:
    """Units that are not a span of their chunk: offsets outside it, or other text at those offsets."""
    return conn.execute(
        "SELECT u.id FROM chunk_units u JOIN chunks c ON c.id = u.chunk_id WHERE u.author = %s"
        " AND (u.char_start < c.char_start OR u.char_end > c.char_end OR u.document_id <> c.document_id"
        "  OR substr(c.content, u.char_start - c.char_start + 1, u.char_end - u.char_start) <> u.content)",
        (author,),
    ).fetchall()
