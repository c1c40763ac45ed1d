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
  thousands of tuples to reach the author's: at 100k chunks recall@10 0.79-0.94 at 15-25 ms for an
  author with 30% of the rows, 0.44-0.50 at 70-80 ms for one with 4% (exact: 1.8 ms); see
  ``bench/vector_search.py``.
* **the shared HNSW index** otherwise (no filter, a kind filter, an author without an index yet), with
  pgvector 0.8 iterative scans: the walk goes on until enough rows pass the filter.

The HNSW paths order candidates by half-precision distance and re-rank ``k * RERANK_FACTOR`` of them
with the full-precision vectors, so the result is exactly ordered (``relaxed_order`` can return
neighbours slightly out of order).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import psycopg
from psycopg import sql

from llm_twin_assets.errors import StoreError, TwinError

log = logging.getLogger(__name__)

DEFAULT_EF_SEARCH = 100
"""HNSW candidate list (``hnsw.ef_search``). 100 rather than 64: at 100k chunks, 64 left an author's
index at recall@10 0.976 for questions off the author's subjects; 100 reaches 0.99 for +0.1 ms."""
RERANK_FACTOR = 2
"""The index orders candidates by half-precision distance; k * RERANK_FACTOR of them are re-ranked
with the full-precision vectors, which recovers the neighbours half precision puts just out of reach.
More candidates (4x, 10x) bought no recall that a larger ef_search did not buy for less."""
ITERATIVE_SCAN = "relaxed_order"
"""``strict_order`` drops tuples that arrive out of order: on filtered walks it lost most of the true
neighbours (recall@10 0.12-0.30 off-topic); the re-rank restores the order ``relaxed_order`` loses."""

EXACT_BELOW_ROWS = 2_000
"""A filter expected to keep fewer rows than this is answered exactly, even for an author with their own
index. Measured on 2 cores at 100k chunks (``bench/vector_search.py``, the crossover rows: authors of
250-8,000 chunks with their own index, on- and off-topic questions, p50 of nearest()): exact 0.17-0.18
ms at 250 rows, 0.25 at 500, 0.37 at 1,000, 0.65-0.85 at 2,000, 1.3-1.4 at 4,000, 3.3-3.7 at 8,000;
the author's index 0.60-0.91 ms up to 2,000 rows, 0.76-0.78 at 4,000, 0.81-0.83 at 8,000. They cross
at ~2,000 rows (the exploration before the bench: 0.72-0.76 against 0.75-0.78 there); below, exact is
faster and always right."""
SHARED_EXACT_BELOW_ROWS = 5_000
SHARED_EXACT_REFERENCE_ROWS = 100_000
"""A filter the shared index must walk (a kind filter, an author without an index yet) is answered
exactly below SHARED_EXACT_BELOW_ROWS * sqrt(table rows / SHARED_EXACT_REFERENCE_ROWS) rows: 5% of
100k chunks. Measured at 100k chunks (kind filters keeping 1%, 2%, 5%, 10% of the rows, p50 of
nearest()): the filtered walk 15.3, 8.4, 4.5, 2.9 ms; exact 0.5, 1.0, 5.2, 11.2 ms: they cross at ~5%.
Exact grows with the rows kept (s * N), the walk, which reads about ef_search / s tuples, with 1 / s;
so the crossover moves as 1 / sqrt(N) with the table's size N."""
AUTHOR_INDEX_MIN_ROWS = EXACT_BELOW_ROWS
"""Authors with at least this many embedded chunks get their own HNSW index; smaller ones are answered
exactly, which is as fast for them."""
MAX_AUTHOR_INDEXES = 100
"""At most this many authors' indexes per table. Each partial index costs every search's planning (the
planner tests each predicate) and every write (each row is tested against each predicate), whatever its
size. Measured (``bench/author_indexes.py``, 1,000 authors x 60 rows, 2 cores): planning of an
author-filtered search 0.05 / 0.08 / 0.31 / 5.7 ms and bulk inserts 55,000 / 49,800 / 15,900 / 1,680
rows/s with 0 / 10 / 100 / 1,000 indexes (beside the shared HNSW index's own ~600 vectors/s). Past the
cap an author is searched exactly or on the shared index, as before their index existed; the largest
authors get one first (:func:`ensure_author_indexes`)."""
AUTHOR_INDEX_INFIX = "_hnsw_author_"
HNSW_OPTIONS = "m = 16, ef_construction = 128"
"""The shared index's build options (sql/001_core.sql), used for the authors' indexes too."""


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


# --- the authors' own indexes -------------------------------------------------------------------


def author_index_name(author: str, table: str = "chunks") -> str:
    """The name of ``author``'s partial HNSW index on ``table``: ``<table>_hnsw_author_<slug>``. Index
    names share one namespace per schema, hence the table in it. PostgreSQL names are at most 63 bytes:
    a longer one is cut and a digest of the whole added, so two authors never share a name."""
    name = f"{table}{AUTHOR_INDEX_INFIX}{author}"
    if len(name.encode()) <= 63:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:12]
    return f"{name.encode()[: 63 - 13].decode(errors='ignore')}_{digest}"


def _index_state(conn: psycopg.Connection, name: str, table: str) -> str | None:
    """None (no relation of that name next to ``table``), "valid", "invalid" (a failed or running
    concurrent build) or "other" (the name is taken by something else)."""
    row = conn.execute(
        "SELECT i.indrelid = t.oid AND i.indisvalid, i.indrelid = t.oid"
        " FROM pg_class t JOIN pg_class c ON c.relnamespace = t.relnamespace AND c.relname = %s"
        " LEFT JOIN pg_index i ON i.indexrelid = c.oid WHERE t.oid = to_regclass(%s)",
        (name, table),
    ).fetchone()
    if row is None:
        return None
    return "valid" if row[0] else ("invalid" if row[1] else "other")


def author_index(conn: psycopg.Connection, author: str, table: str = "chunks") -> str | None:
    """The name of ``author``'s partial HNSW index on ``table`` when it exists and is valid (usable by
    the planner), else None."""
    name = author_index_name(author, table)
    return name if _index_state(conn, name, table) == "valid" else None


def _column_dimension(conn: psycopg.Connection, table: str) -> int:
    row = conn.execute(
        "SELECT atttypmod FROM pg_attribute WHERE attrelid = to_regclass(%s) AND attname = 'embedding'",
        (table,),
    ).fetchone()
    if not row or not row[0] or row[0] < 1:
        raise StoreError(f"{table}.embedding has no declared dimension: no HNSW index can be built on it")
    return int(row[0])


def ensure_author_index(
    conn: psycopg.Connection,
    author: str,
    *,
    table: str = "chunks",
    min_rows: int | None = None,
    lock_timeout_s: float = 60.0,
    max_indexes: int | None = None,
) -> str | None:
    """Give ``author`` their own HNSW index (partial: ``WHERE author = '<author>'``) once they have
    ``min_rows`` (default AUTHOR_INDEX_MIN_ROWS) embedded chunks; return its name, or None when there is
    none (too few chunks, the table already has ``max_indexes`` (default MAX_AUTHOR_INDEXES) authors'
    indexes, or another process is building it right now).

    Idempotent and safe to call from concurrent runs: it returns at once when the index exists; a build
    takes a non-blocking advisory lock per index (a second caller does not wait: it returns None) and
    uses ``CREATE INDEX CONCURRENTLY``, so searches and writes go on meanwhile; then the filter columns'
    statistics are refreshed, so searches take the new index at once. An index left invalid by
    a build that failed is dropped and built again. ``conn`` must be in autocommit mode (concurrent
    builds cannot run in a transaction), and the caller must hold no other transaction open on the
    table (say, on a second connection): the build waits for older writers and snapshots, at most
    ``lock_timeout_s`` each; then it fails, drops what it built, and raises StoreError.
    """
    if not conn.autocommit:
        raise TwinError("ensure_author_index needs an autocommit connection (CREATE INDEX CONCURRENTLY)")
    name = author_index_name(author, table)
    if _index_state(conn, name, table) == "valid":
        return name
    count = conn.execute(
        sql.SQL("SELECT count(*) FROM {} WHERE author = %s AND embedding IS NOT NULL").format(
            sql.Identifier(table)
        ),
        (author,),
    ).fetchone()
    if not count or count[0] < (AUTHOR_INDEX_MIN_ROWS if min_rows is None else min_rows):
        return None
    cap = MAX_AUTHOR_INDEXES if max_indexes is None else max_indexes
    if len([other for other in author_indexes(conn, table) if other != name]) >= cap:
        log.info(
            "no HNSW index for author %s: %s already has %d authors' indexes (the cap)", author, table, cap
        )
        return None
    dim = _column_dimension(conn, table)
    locked = conn.execute("SELECT pg_try_advisory_lock(hashtextextended(%s, 0))", (name,)).fetchone()
    if not locked or not locked[0]:
        return None  # another process is building it
    previous_timeout = conn.execute("SHOW lock_timeout").fetchone()
    drop = sql.SQL("DROP INDEX CONCURRENTLY IF EXISTS {}").format(sql.Identifier(name))
    try:
        conn.execute(sql.SQL("SET lock_timeout = {}").format(sql.Literal(f"{int(lock_timeout_s * 1000)}ms")))
        state = _index_state(conn, name, table)  # again, now that builds of this index are serialised
        if state == "valid":
            return name
        if state == "other":
            raise StoreError(f"cannot index author {author!r}: the name {name} is taken by another relation")
        if state == "invalid":  # left by a build that failed; IF NOT EXISTS would keep it forever
            conn.execute(drop)
        try:
            conn.execute(
                sql.SQL(
                    "CREATE INDEX CONCURRENTLY {name} ON {table}"
                    " USING hnsw ((embedding::halfvec({dim})) halfvec_cosine_ops) WITH ({options})"
                    " WHERE author = {author}"
                ).format(
                    name=sql.Identifier(name),
                    table=sql.Identifier(table),
                    dim=sql.Literal(dim),
                    options=sql.SQL(HNSW_OPTIONS),
                    author=sql.Literal(author),
                )
            )
        except psycopg.Error as exc:
            log.warning("building the HNSW index of author %s failed: %s", author, exc)
            if _index_state(conn, name, table) == "invalid":
                with contextlib.suppress(psycopg.Error):  # else the next call drops it
                    conn.execute(drop)
            raise StoreError(f"could not build the HNSW index of author {author!r}: {exc}") from exc
        log.info("built HNSW index %s for author %s (%d chunks)", name, author, count[0])
        # The path is chosen from the planner's statistics: until they count this author's rows, a
        # new author's searches would stay on the exact path. Only the filter columns: fast.
        try:
            conn.execute(sql.SQL("ANALYZE {} (author, kind)").format(sql.Identifier(table)))
        except psycopg.Error as exc:  # autovacuum will; the index is built either way
            log.warning("could not refresh the statistics of %s: %s", table, exc)
        return name
    finally:
        restore = previous_timeout[0] if previous_timeout else "0"
        conn.execute(sql.SQL("SET lock_timeout = {}").format(sql.Literal(restore)))
        conn.execute("SELECT pg_advisory_unlock(hashtextextended(%s, 0))", (name,))


def ensure_author_indexes(
    conn: psycopg.Connection, *, table: str = "chunks", min_rows: int | None = None
) -> dict[str, str | None]:
    """:func:`ensure_author_index` for every author in ``table`` with at least ``min_rows`` embedded
    chunks (default AUTHOR_INDEX_MIN_ROWS); author -> index name (None: being built elsewhere)."""
    min_rows = AUTHOR_INDEX_MIN_ROWS if min_rows is None else min_rows
    authors = conn.execute(  # the largest first: under the cap they are the ones that need it most
        sql.SQL(
            "SELECT author FROM {} WHERE embedding IS NOT NULL GROUP BY author HAVING count(*) >= %s"
            " ORDER BY count(*) DESC, author"
        ).format(sql.Identifier(table)),
        (min_rows,),
    ).fetchall()
    return {a: ensure_author_index(conn, a, table=table, min_rows=min_rows) for (a,) in authors}


def author_indexes(conn: psycopg.Connection, table: str = "chunks") -> list[str]:
    """The names of the authors' indexes on ``table``, valid or not."""
    return [
        r[0]
        for r in conn.execute(
            "SELECT c.relname FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid"
            " WHERE i.indrelid = to_regclass(%s) AND starts_with(c.relname, %s) ORDER BY 1",
            (table, f"{table}{AUTHOR_INDEX_INFIX}"[:50]),
        ).fetchall()
    ]


def drop_author_indexes(conn: psycopg.Connection, *, table: str = "chunks") -> list[str]:
    """Drop every author's index on ``table`` (before re-declaring the embedding column's dimension: the
    indexes cast to the old one); returns the names dropped. Searches fall back to the shared index."""
    names = author_indexes(conn, table)
    for name in names:
        conn.execute(sql.SQL("DROP INDEX IF EXISTS {}").format(sql.Identifier(name)))
    return names
