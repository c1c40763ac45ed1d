"""Nearest-neighbour search over ``chunks.embedding`` (cosine), with author and kind filters.

Three paths, chosen per search from the planner's estimate of the rows the filter keeps
(:func:`estimated_rows`, statistics only):

* **exact** when the filter keeps fewer than :data:`EXACT_BELOW_ROWS` rows: the B-tree on
  ``(author, kind)`` finds them and they are sorted by distance. Always right, and below that size
  faster than any index walk.
* **the author's own HNSW index** when the search names an author who has one: a partial index over
  that author's rows only (:func:`ensure_author_index`), so the walk never has to cross other
  authors' regions of the space. Without it, a question about a subject the author does not write
  about starts among other authors' chunks, and the filtered walk of the shared index scans
  thousands of tuples to reach the author's: slower and with lower recall than exact search (the
  figures: ``bench/README.md``, "Vector search").
* **the shared HNSW index** otherwise (no filter, a kind filter, an author without an index yet), with
  pgvector 0.8 iterative scans: the walk goes on until enough rows pass the filter.

The HNSW paths order candidates by half-precision distance and re-rank ``k * RERANK_FACTOR`` of them
with the full-precision vectors, so the result is exactly ordered (``relaxed_order`` can return
neighbours slightly out of order).
"""

from __future__ import annotations

import hashlib
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import psycopg
from psycopg import sql

from llm_twin_assets.errors import TwinError

log = logging.getLogger(__name__)

DEFAULT_EF_SEARCH = 100
"""HNSW candidate list (``hnsw.ef_search``): 100 rather than pgvector's 64, for recall off the author's
subjects at a tenth of a millisecond (``bench/README.md``)."""
RERANK_FACTOR = 2
"""The index orders candidates by half-precision distance; k * RERANK_FACTOR of them are re-ranked
with the full-precision vectors, which recovers the neighbours half precision puts just out of reach
(more bought nothing a larger ef_search does not buy for less: ``bench/README.md``)."""
ITERATIVE_SCAN = "relaxed_order"
"""``strict_order`` drops tuples that arrive out of order: on filtered walks it lost most of the true
neighbours (``bench/README.md``); the re-rank restores the order ``relaxed_order`` loses."""

EXACT_BELOW_ROWS = 2_000
"""A filter expected to keep fewer rows than this is answered exactly, even for an author with their own
index: exact search and the author's index cross at about 2,000 rows (``bench/vector_search.py``; the
figures in ``bench/README.md``); below, exact is faster and always right."""
SHARED_EXACT_BELOW_ROWS = 5_000
SHARED_EXACT_REFERENCE_ROWS = 100_000
"""A filter the shared index must walk (a kind filter, an author without an index yet) is answered
exactly below SHARED_EXACT_BELOW_ROWS * sqrt(table rows / SHARED_EXACT_REFERENCE_ROWS) rows: 5% of
100k chunks, where the filtered walk and exact search cross (``bench/README.md``). Exact grows with the
rows kept (s * N), the walk, which reads about ef_search / s tuples, with 1 / s; so the crossover moves
as 1 / sqrt(N) with the table's size N."""


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


def search_filters(
    author: str | None, kinds: Sequence[str] | None, *, inline_author: bool = False
) -> tuple[sql.Composable, list[object]]:
    """The WHERE clause (without the keyword) and its parameters for the optional filters.

    ``inline_author=True`` writes the author as a quoted literal instead of a parameter: the planner
    can then prove the author's partial index applies, even under a generic (prepared) plan."""
    clauses: list[sql.Composable] = [sql.SQL("embedding IS NOT NULL")]
    params: list[object] = []
    if author is not None:
        if inline_author:
            clauses.append(sql.SQL("author = {}").format(sql.Literal(author)))
        else:
            clauses.append(sql.SQL("author = %s"))
            params.append(author)
    if kinds:
        clauses.append(sql.SQL("kind = ANY(%s)"))
        params.append(list(kinds))
    return sql.SQL(" AND ").join(clauses), params


def estimated_rows(conn: psycopg.Connection, table: str, where: sql.Composable, params: list[object]) -> int:
    """The planner's row estimate for the filter (statistics only: no rows are read)."""
    plan = conn.execute(
        sql.SQL("EXPLAIN (FORMAT JSON) SELECT 1 FROM {} WHERE {}").format(sql.Identifier(table), where),
        params,
        prepare=False,  # planned with these values each time, never from a generic prepared plan
    ).fetchone()
    return int(plan[0][0]["Plan"]["Plan Rows"])  # type: ignore[index]


EXACT, AUTHOR_INDEX, SHARED_INDEX = "exact", "author index", "shared index"


AUTHOR_INDEX_INFIX = "_hnsw_author_"


def author_index_name(author: str, table: str = "chunks") -> str:
    """The name of ``author``'s partial HNSW index on ``table``: ``<table>_hnsw_author_<slug>``. Index
    names share one namespace per schema, hence the table in it. PostgreSQL names are at most 63 bytes:
    a longer one is cut and a digest of the whole added, so two authors never share a name."""
    name = f"{table}{AUTHOR_INDEX_INFIX}{author}"
    if len(name.encode()) <= 63:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:12]
    return f"{name.encode()[: 63 - 13].decode(errors='ignore')}_{digest}"


def search_path(
    conn: psycopg.Connection,
    *,
    author: str | None = None,
    kinds: Sequence[str] | None = None,
    table: str = "chunks",
) -> str:
    """Which path a search with these filters takes: ``EXACT``, ``AUTHOR_INDEX`` or ``SHARED_INDEX``.

    From the planner's estimate of the rows the filter keeps (one EXPLAIN) and, when that is not
    small, whether the author has a usable index and how large the table is (one catalog read)."""
    if author is None and not kinds:
        return SHARED_INDEX
    where, params = search_filters(author, kinds)
    rows = estimated_rows(conn, table, where, params)
    if rows < EXACT_BELOW_ROWS:
        return EXACT
    found = conn.execute(
        "SELECT c.reltuples, EXISTS (SELECT 1 FROM pg_index i JOIN pg_class x ON x.oid = i.indexrelid"
        "  WHERE i.indrelid = c.oid AND x.relname = %s AND i.indisvalid)"
        " FROM pg_class c WHERE c.oid = to_regclass(%s)",
        (author_index_name(author, table) if author is not None else None, table),
    ).fetchone()
    if found is None:
        return SHARED_INDEX  # not a table: let the query name the error
    table_rows, has_author_index = float(found[0]), bool(found[1])
    if has_author_index:
        return AUTHOR_INDEX
    # reltuples is -1 before the first ANALYZE: the filter's own estimate is then the floor.
    scale = math.sqrt(max(table_rows, rows, 1) / SHARED_EXACT_REFERENCE_ROWS)
    return EXACT if rows < SHARED_EXACT_BELOW_ROWS * scale else SHARED_INDEX


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

    The exact path has no settings (the list is just the query). The query reads as a subquery too:
    ``SELECT ... FROM (<query>) v``. Path choice: see the module docstring.
    """
    vector = _as_vector(embedding, dim)
    if exact or search_path(conn, author=author, kinds=kinds, table=table) == EXACT:
        # Exact by construction: it orders by the full-precision distance, which no index here serves
        # (the HNSW indexes are on the half-precision cast), so the filter's B-tree (or a sequential scan
        # when unfiltered) reads the rows and a top-k sort orders them.
        where, params = search_filters(author, kinds)
        query = sql.SQL(
            "SELECT {columns}, embedding <=> %s AS distance FROM {table} WHERE {where}"
            " ORDER BY distance, id LIMIT %s"
        ).format(columns=sql.SQL(columns), table=sql.Identifier(table), where=where)
        return [query], [vector, *params, k]
    # The author as a literal: the planner then uses the author's own index when there is one.
    where, params = search_filters(author, kinds, inline_author=True)
    candidates = k * RERANK_FACTOR
    # One statement for both settings: one round trip.
    settings = sql.SQL("SET LOCAL hnsw.ef_search = {}; SET LOCAL hnsw.iterative_scan = {}").format(
        sql.Literal(max(ef_search, candidates)), sql.SQL(ITERATIVE_SCAN)
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
    table: str = "chunks",
) -> list[Neighbour]:
    """The ``k`` chunks closest to ``embedding``; ``exact=True`` bypasses the index (ground truth)."""
    if k < 1:
        raise TwinError(f"k must be at least 1, got {k}")
    statements, params = nearest_sql(
        conn,
        embedding,
        k=k,
        author=author,
        kinds=kinds,
        ef_search=ef_search,
        exact=exact,
        dim=dim,
        table=table,
    )
    if len(statements) == 1:
        rows = conn.execute(statements[0], params).fetchall()
    else:
        # One transaction: SET LOCAL stays scoped to this search, pooled connections are not altered.
        with conn.transaction():
            for statement in statements[:-1]:
                conn.execute(statement)
            rows = conn.execute(statements[-1], params).fetchall()
    return [Neighbour(row[0], row[1], row[2], row[3], row[4], float(row[5])) for row in rows]
