"""Nearest-neighbour search over ``chunks.embedding`` (cosine), with author and kind filters.

pgvector 0.8 iterative index scans keep an HNSW scan going until k rows pass the filter, so a
selective filter still returns k rows; for a rare author the planner may prefer the B-tree on
``author`` and an exact sort, which is both exact and fast. Either way the result is re-sorted by
distance (``relaxed_order`` can return neighbours slightly out of order).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import psycopg
from psycopg import sql

from llm_twin_assets.errors import TwinError

DEFAULT_EF_SEARCH = 64
RERANK_FACTOR = 2
"""The index orders candidates by half-precision distance; k * RERANK_FACTOR of them are re-ranked
with the full-precision vectors, which recovers the neighbours half precision puts just out of reach."""


@dataclass(frozen=True)
class Neighbour:
    chunk_id: str
    document_id: str
    author: str
    kind: str
    content: str
    distance: float

    @property
    def score(self) -> float:
        """Cosine similarity (1 - cosine distance)."""
        return 1.0 - self.distance


def _as_vector(embedding: Sequence[float] | np.ndarray, dim: int | None) -> np.ndarray:
    vector = np.asarray(embedding, dtype=np.float32)
    if vector.ndim != 1:
        raise TwinError(f"query embedding must be one vector, got shape {vector.shape}")
    if dim is not None and vector.shape[0] != dim:
        raise TwinError(f"query embedding has {vector.shape[0]} dimensions; the store holds {dim}")
    if not np.isfinite(vector).all():
        raise TwinError("query embedding contains NaN or infinite values")
    return vector


def search_filters(author: str | None, kinds: Sequence[str] | None) -> tuple[sql.Composable, list[object]]:
    """The WHERE clause (without the keyword) and its parameters for the optional filters."""
    clauses: list[sql.Composable] = [sql.SQL("embedding IS NOT NULL")]
    params: list[object] = []
    if author is not None:
        clauses.append(sql.SQL("author = %s"))
        params.append(author)
    if kinds:
        clauses.append(sql.SQL("kind = ANY(%s)"))
        params.append(list(kinds))
    return sql.SQL(" AND ").join(clauses), params


EXACT_BELOW_ROWS = 2_000
"""A filter expected to keep fewer rows than this is answered exactly (B-tree, then sort): on 2 cores
that is a few milliseconds and always right, where a filtered HNSW walk can miss neighbours."""


def estimated_rows(conn: psycopg.Connection, table: str, where: sql.Composable, params: list[object]) -> int:
    """The planner's row estimate for the filter (statistics only: no rows are read)."""
    plan = conn.execute(
        sql.SQL("EXPLAIN (FORMAT JSON) SELECT 1 FROM {} WHERE {}").format(sql.Identifier(table), where),
        params,
    ).fetchone()
    return int(plan[0][0]["Plan"]["Plan Rows"])  # type: ignore[index]


def nearest_sql(
    conn: psycopg.Connection,
    embedding: Sequence[float] | np.ndarray,
    *,
    k: int,
    author: str | None = None,
    kinds: Sequence[str] | None = None,
    ef_search: int = DEFAULT_EF_SEARCH,
    exact: bool = False,
    table: str = "chunks",
    columns: str = "id, document_id, author, kind, content",
    dim: int | None = None,
) -> tuple[list[sql.Composed | sql.SQL], list[object]]:
    """The statements of one search, in order (settings first, the query last), and its parameters.

    Strategy: unfiltered, or a filter that keeps many rows -> HNSW with pgvector 0.8 iterative scans
    (keeps scanning until k rows pass the filter). A filter that keeps few rows -> exact search.
    """
    vector = _as_vector(embedding, dim)
    where, params = search_filters(author, kinds)
    if not exact and (author is not None or kinds):
        exact = estimated_rows(conn, table, where, params) < EXACT_BELOW_ROWS
    if exact:
        # Off: index scans (HNSW and B-tree alike); bitmap scans on the B-tree stay, so a filtered
        # exact search still reads only the matching rows.
        settings: sql.Composed | sql.SQL = sql.SQL("SET LOCAL enable_indexscan = off")
        query = sql.SQL(
            "SELECT {columns}, embedding <=> %s AS distance FROM {table} WHERE {where}"
            " ORDER BY distance, id LIMIT %s"
        ).format(columns=sql.SQL(columns), table=sql.Identifier(table), where=where)
        return [settings, query], [vector, *params, k]
    candidates = k * RERANK_FACTOR
    # One statement for both settings: one round trip.
    settings = sql.SQL("SET LOCAL hnsw.ef_search = {}; SET LOCAL hnsw.iterative_scan = relaxed_order").format(
        sql.Literal(max(ef_search, candidates))
    )
    query = sql.SQL(
        "WITH candidates AS MATERIALIZED ("
        " SELECT {columns}, embedding FROM {table} WHERE {where}"
        " ORDER BY embedding::halfvec({dim}) <=> %s::halfvec({dim}) LIMIT %s)"
        " SELECT {columns}, embedding <=> %s AS distance FROM candidates ORDER BY distance, id LIMIT %s"
    ).format(columns=sql.SQL(columns), table=sql.Identifier(table), where=where, dim=sql.Literal(len(vector)))
    return [settings, query], [*params, vector, candidates, vector, k]


def nearest(
    conn: psycopg.Connection,
    embedding: Sequence[float] | np.ndarray,
    *,
    k: int = 10,
    author: str | None = None,
    kinds: Sequence[str] | None = None,
    ef_search: int = DEFAULT_EF_SEARCH,
    dim: int | None = 384,
    exact: bool = False,
) -> list[Neighbour]:
    """The ``k`` chunks closest to ``embedding``; ``exact=True`` bypasses the index (ground truth)."""
    if k < 1:
        raise TwinError(f"k must be at least 1, got {k}")
    statements, params = nearest_sql(
        conn, embedding, k=k, author=author, kinds=kinds, ef_search=ef_search, exact=exact, dim=dim
    )
    # One transaction: SET LOCAL stays scoped to this search, pooled connections are not altered.
    with conn.transaction():
        for statement in statements[:-1]:
            conn.execute(statement)
        rows = conn.execute(statements[-1], params).fetchall()
    return [Neighbour(row[0], row[1], row[2], row[3], row[4], float(row[5])) for row in rows]
