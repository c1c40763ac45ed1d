"""The authors' own partial HNSW indexes (``<table>_hnsw_author_<slug>``): built concurrently for an author
with enough embedded rows, the largest authors first and at most :data:`MAX_AUTHOR_INDEXES` per table,
found by name when a search picks its path (``store.vectors.search_path``), dropped with the author."""

from __future__ import annotations

import contextlib
import logging

import psycopg
from psycopg import sql

from llm_twin_assets.errors import StoreError, TwinError
from llm_twin_assets.store.vectors import AUTHOR_INDEX_INFIX, EXACT_BELOW_ROWS, author_index_name

log = logging.getLogger(__name__)

AUTHOR_INDEX_MIN_ROWS = EXACT_BELOW_ROWS
"""Authors with at least this many embedded chunks get their own HNSW index; smaller ones are answered
exactly, which is as fast for them."""
MAX_AUTHOR_INDEXES = 100
"""At most this many authors' indexes per table. Each partial index costs every search's planning (the
planner tests each predicate) and every write (each row is tested against each predicate), whatever its
size: at 1,000 indexes planning takes 100x and bulk inserts a 30th of what they do at none
(``bench/author_indexes.py``; figures in ``bench/README.md``). Past the cap an author is searched exactly or on the shared index, as before their index existed; the largest
authors get one first (:func:`ensure_author_indexes`)."""
HNSW_OPTIONS = "m = 16, ef_construction = 128"
"""The shared index's build options (sql/001_core.sql), used for the authors' indexes too."""


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
        _build(conn, name, table, author, dim)
        log.info("built HNSW index %s for author %s (%d chunks)", name, author, count[0])
        return name
    finally:
        restore = previous_timeout[0] if previous_timeout else "0"
        conn.execute(sql.SQL("SET lock_timeout = {}").format(sql.Literal(restore)))
        conn.execute("SELECT pg_advisory_unlock(hashtextextended(%s, 0))", (name,))


def _build(conn: psycopg.Connection, name: str, table: str, author: str, dim: int) -> None:
    """Build ``author``'s index concurrently (on failure: drop what was left, raise StoreError), then
    refresh the filter columns' statistics."""
    drop = sql.SQL("DROP INDEX CONCURRENTLY IF EXISTS {}").format(sql.Identifier(name))
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
    # The path is chosen from the planner's statistics: until they count this author's rows, a
    # new author's searches would stay on the exact path. Only the filter columns: fast.
    try:
        conn.execute(sql.SQL("ANALYZE {} (author, kind)").format(sql.Identifier(table)))
    except psycopg.Error as exc:  # autovacuum will; the index is built either way
        log.warning("could not refresh the statistics of %s: %s", table, exc)


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
