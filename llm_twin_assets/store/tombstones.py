"""Tombstones: removed documents kept, with their cleaned rows, chunks and embeddings, for a while.

A document the removal policy takes (:mod:`llm_twin_assets.store.raw_documents`) is *moved*, in the
transaction that removes it, from ``raw_documents`` / ``cleaned_documents`` / ``chunks`` / ``chunk_units`` into
``removed_raw_documents`` / ``removed_cleaned_documents`` / ``removed_chunks`` / ``removed_chunk_units``
(``sql/008``, ``sql/011``). Nothing
else reads those tables, so every reader (features, retrieval, datasets, data versions, ``db status``'s
row counts) sees only live documents.

A tombstone comes back (:func:`restore`) with ``llm-twin author restore``, or when a crawl finds its
document again (its link put back in the links file): the rows move back as they were, chunk vectors
included, so a document whose content is unchanged is not cleaned, chunked or embedded again (a changed
one is cleaned again and only its changed chunks are embedded). Tombstones older than
``LLM_TWIN_TOMBSTONE_DAYS`` are purged (:func:`purge`) by each ingest run of their author and by the
command.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from datetime import datetime

import psycopg
from psycopg import sql

# live table -> its tombstone table, parents first
TABLES = (
    ("raw_documents", "removed_raw_documents"),
    ("cleaned_documents", "removed_cleaned_documents"),
    ("chunks", "removed_chunks"),
    ("chunk_units", "removed_chunk_units"),  # the chunks' retrieval units (sql/011), vectors included
)
_TOMBSTONE = dict(TABLES)


def _columns(conn: psycopg.Connection, live: str) -> list[str]:
    """The stored (not generated) columns a live table and its tombstone table share: a column a later
    schema file adds to both travels with no change here."""
    rows = conn.execute(
        "SELECT a.column_name FROM information_schema.columns a JOIN information_schema.columns b"
        " ON b.table_schema = a.table_schema AND b.table_name = %s AND b.column_name = a.column_name"
        " WHERE a.table_schema = current_schema() AND a.table_name = %s AND a.is_generated = 'NEVER'"
        " ORDER BY a.ordinal_position",
        (_TOMBSTONE[live], live),
    ).fetchall()
    return [r[0] for r in rows]


def _names(columns: Sequence[str]) -> sql.Composed:
    return sql.SQL(", ").join(sql.Identifier(c) for c in columns)


def bury(conn: psycopg.Connection, author: str, ids: Collection[str], reason: str) -> dict[str, str]:
    """Move the author's documents ``ids`` (raw, cleaned, chunks) into the tombstone tables; return id ->
    kind of those moved. Run inside the caller's transaction (the removal's)."""
    ids = sorted(ids)
    if not ids:
        return {}
    conn.execute("DELETE FROM removed_raw_documents WHERE id = ANY(%s)", (ids,))  # an older tombstone
    raw = _columns(conn, "raw_documents")
    conn.execute(
        sql.SQL(
            "INSERT INTO removed_raw_documents ({cols}, removed_at, removal_reason)"
            " SELECT {cols}, now(), %s FROM raw_documents WHERE author = %s AND id = ANY(%s)"
        ).format(cols=_names(raw)),
        (reason, author, ids),
    )
    for live, where in (
        ("cleaned_documents", "id"),
        ("chunks", "document_id"),
        ("chunk_units", "document_id"),
    ):
        cols = _names(_columns(conn, live))
        conn.execute(
            sql.SQL("INSERT INTO {dead} ({cols}) SELECT {cols} FROM {live} WHERE {key} = ANY(%s)").format(
                dead=sql.Identifier(_TOMBSTONE[live]),
                cols=cols,
                live=sql.Identifier(live),
                key=sql.Identifier(where),
            ),
            (ids,),
        )
    # cleaned rows, chunks and cleaning verdicts go with their raw row (ON DELETE CASCADE)
    removed = conn.execute(
        "DELETE FROM raw_documents WHERE author = %s AND id = ANY(%s) RETURNING id, kind", (author, ids)
    ).fetchall()
    return {r[0]: r[1] for r in removed}


@dataclass
class Restored:
    documents: dict[str, str] = field(default_factory=dict)
    """id -> url of the documents moved back."""
    chunks: int = 0
    vectors: int = 0
    """Chunks that came back with their embedding (not embedded again)."""
    units: int = 0
    unit_vectors: int = 0
    """Retrieval units that came back with their embedding (not embedded again)."""
    stale: list[str] = field(default_factory=list)
    """Tombstones dropped because the store holds their document again (found by a crawl meanwhile)."""


def restore(conn: psycopg.Connection, author: str, ids: Collection[str] | None = None) -> Restored:
    """Move the author's tombstones ``ids`` (all of them when None) back into the live tables, in the
    caller's transaction. A restored document starts with a clean gone count. A cleaned row whose text a
    live document of the author already holds stays out (cleaning judges the document again: a
    duplicate); a vector of another dimension than the store's is left behind (embedded again)."""
    found = conn.execute(
        "SELECT id, url FROM removed_raw_documents WHERE author = %s AND (%s::text[] IS NULL OR id = ANY(%s))"
        " ORDER BY id FOR UPDATE",
        (author, None if ids is None else list(ids), None if ids is None else list(ids)),
    ).fetchall()
    result = Restored()
    if not found:
        return result
    wanted = [r[0] for r in found]
    result.stale = [
        r[0] for r in conn.execute("SELECT id FROM raw_documents WHERE id = ANY(%s)", (wanted,)).fetchall()
    ]
    back = [i for i in wanted if i not in set(result.stale)]
    raw = [c for c in _columns(conn, "raw_documents") if c not in ("gone_crawls", "gone_since")]
    conn.execute(
        sql.SQL(
            "INSERT INTO raw_documents ({cols}, gone_crawls, gone_since)"
            " SELECT {cols}, 0, NULL FROM removed_raw_documents WHERE id = ANY(%s)"
        ).format(cols=_names(raw)),
        (back,),
    )
    cleaned = _names(_columns(conn, "cleaned_documents"))
    kept = conn.execute(
        sql.SQL(
            "INSERT INTO cleaned_documents ({cols}) SELECT {cols} FROM removed_cleaned_documents d"
            " WHERE d.id = ANY(%s) AND NOT EXISTS (SELECT 1 FROM cleaned_documents c"
            "  WHERE c.author = d.author AND c.content_hash = d.content_hash)"
            " RETURNING id"
        ).format(cols=cleaned),
        (back,),
    ).fetchall()
    dim, documents = _store_dimension(conn), [r[0] for r in kept]
    result.chunks, result.vectors = _restore_embedded(conn, "chunks", documents, dim)
    # The chunks' retrieval units come back with them, vectors included (of the store's dimension); a
    # chunk that comes back without its units, or whose units_key is not current, gets them made again
    # by the next chunk_embeddings run (only the units are embedded, not the chunk).
    result.units, result.unit_vectors = _restore_embedded(
        conn,
        "chunk_units",
        documents,
        dim,
        sql.SQL(" AND EXISTS (SELECT 1 FROM chunks c WHERE c.id = r.chunk_id)"),
    )
    conn.execute("DELETE FROM removed_raw_documents WHERE id = ANY(%s)", (wanted,))
    urls: dict[str, str] = dict(found)
    result.documents = {i: urls[i] for i in back}
    return result


def _store_dimension(conn: psycopg.Connection) -> int | None:
    """The dimension the store's chunk vectors are declared with (None: not declared)."""
    row = conn.execute(
        "SELECT atttypmod FROM pg_attribute WHERE attrelid = 'chunks'::regclass AND attname = 'embedding'"
    ).fetchone()
    return int(row[0]) if row and row[0] and row[0] > 0 else None


_NO_CONDITION = sql.SQL("")


def _restore_embedded(
    conn: psycopg.Connection,
    table: str,
    documents: list[str],
    dim: int | None,
    condition: sql.SQL = _NO_CONDITION,
) -> tuple[int, int]:
    """Move the rows of ``documents`` from ``removed_<table>`` (as ``r``, also meeting ``condition``)
    back into ``table``, each vector (and its model) only when of the store's dimension; the rows moved
    and those with a vector."""
    columns = _columns(conn, table)
    select = sql.SQL(", ").join(
        sql.SQL("CASE WHEN %(dim)s::int IS NULL OR vector_dims(r.embedding) = %(dim)s THEN r.{} END").format(
            sql.Identifier(c)
        )
        if c in ("embedding", "embedding_model")
        else sql.SQL("r.{}").format(sql.Identifier(c))
        for c in columns
    )
    rows = conn.execute(
        sql.SQL(
            "INSERT INTO {table} ({cols}) SELECT {select} FROM {removed} r"
            " WHERE r.document_id = ANY(%(ids)s){condition} RETURNING embedding IS NOT NULL"
        ).format(
            condition=condition,
            table=sql.Identifier(table),
            cols=_names(columns),
            select=select,
            removed=sql.Identifier(f"removed_{table}"),
        ),
        {"dim": dim, "ids": documents},
    ).fetchall()
    return len(rows), sum(1 for (has,) in rows if has)


def purge(conn: psycopg.Connection, days: float, author: str | None = None) -> int:
    """Delete tombstones removed more than ``days`` days ago (of one author, or of all); their count."""
    return conn.execute(
        "DELETE FROM removed_raw_documents WHERE removed_at < now() - make_interval(secs => %s)"
        " AND (%s::text IS NULL OR author = %s)",
        (days * 86400.0, author, author),
    ).rowcount


@dataclass(frozen=True)
class Tombstone:
    id: str
    url: str
    kind: str
    title: str | None
    source_link: str | None
    removed_at: datetime
    reason: str
    chunks: int


def tombstones(conn: psycopg.Connection, author: str) -> list[Tombstone]:
    """The author's tombstones, newest removal first."""
    rows = conn.execute(
        "SELECT r.id, r.url, r.kind, r.title, r.source_link, r.removed_at, r.removal_reason,"
        " (SELECT count(*) FROM removed_chunks c WHERE c.document_id = r.id)"
        " FROM removed_raw_documents r WHERE r.author = %s ORDER BY r.removed_at DESC, r.url",
        (author,),
    ).fetchall()
    return [Tombstone(*r) for r in rows]


def buried(conn: psycopg.Connection, author: str, ids: Collection[str]) -> list[str]:
    """Those of ``ids`` the author has a tombstone for."""
    if not ids:
        return []
    return [
        r[0]
        for r in conn.execute(
            "SELECT id FROM removed_raw_documents WHERE author = %s AND id = ANY(%s)", (author, list(ids))
        ).fetchall()
    ]


def counts(conn: psycopg.Connection) -> tuple[int, int]:
    """(documents, chunks) held as tombstones, every author."""
    row = conn.execute(
        "SELECT (SELECT count(*) FROM removed_raw_documents), (SELECT count(*) FROM removed_chunks)"
    ).fetchone()
    return (int(row[0]), int(row[1])) if row else (0, 0)
