"""Data versions of an author's rows, for Dagster: a digest of exactly what downstream steps read.

An asset reports it with its materialization (``dg.DataVersion``); the steps that follow through
declarative automation run only when it changed, so a re-crawl that found nothing new costs nothing
downstream.
"""

from __future__ import annotations

import psycopg
from psycopg import sql

# Per asset: the table and what of each row downstream steps depend on.
_SIGNATURES: dict[str, tuple[str, str, str]] = {
    "raw_documents": ("raw_documents", "concat_ws(':', id, content_hash, kind, title, source_link)", "true"),
    "cleaned_documents": ("cleaned_documents", "concat_ws(':', id, content_hash, kind, title)", "true"),
    "chunks": ("chunks", "concat_ws(':', id, kind, char_start, char_end)", "true"),
    "chunk_embeddings": ("chunks", "concat_ws(':', id, embedding_model)", "embedding IS NOT NULL"),
    # the retrieval units search ranks (sql/011): made and embedded by the chunk_embeddings asset
    "chunk_units": (
        "chunk_units",
        "concat_ws(':', id, chunk_id, char_start, char_end, embedding_model)",
        "embedding IS NOT NULL",
    ),
}


def data_version(conn: psycopg.Connection, asset: str, author: str) -> str:
    """A 32-hex digest of the author's rows as ``asset`` sees them ('empty' when there are none)."""
    table, signature, where = _SIGNATURES[asset]
    row = conn.execute(
        sql.SQL(
            "SELECT coalesce(md5(string_agg({sig}, ',' ORDER BY id)), 'empty') FROM {table}"
            " WHERE author = %s AND {where}"
        ).format(sig=sql.SQL(signature), table=sql.Identifier(table), where=sql.SQL(where)),
        (author,),
    ).fetchone()
    return str(row[0]) if row else "empty"
