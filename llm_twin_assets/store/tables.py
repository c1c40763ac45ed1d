"""The store's tables as a whole, for backup and restore: their order by foreign keys, their stored
(non-generated) columns, ``COPY`` of a table to and from a CSV file, serial sequences after a load."""

from __future__ import annotations

import os
from pathlib import Path

import psycopg
from psycopg import sql

from llm_twin_assets.errors import TwinError


class CircularForeignKeys(TwinError):
    pass


SCHEMA_TABLES = ("schema_migrations", "document_kinds")
"""Tables the migrations write (what was applied; the registered document kinds): part of the schema,
which an import checks is the same, not of the data an export carries."""


def tables_in_order(conn: psycopg.Connection) -> list[str]:
    """The store's data tables (not :data:`SCHEMA_TABLES`), each after the tables its foreign keys
    point at."""
    names = [
        r[0]
        for r in conn.execute(
            "SELECT c.relname FROM pg_class c WHERE c.relnamespace = current_schema()::regnamespace"
            " AND c.relkind IN ('r', 'p') AND NOT c.relispartition AND c.relname <> ALL(%s)"
            " ORDER BY c.relname",
            (list(SCHEMA_TABLES),),
        ).fetchall()
    ]
    edges = conn.execute(
        "SELECT c.conrelid::regclass::text, c.confrelid::regclass::text FROM pg_constraint c"
        " WHERE c.contype = 'f' AND c.conrelid <> c.confrelid"
    ).fetchall()
    needs = {name: {parent for child, parent in edges if child == name and parent in names} for name in names}
    ordered: list[str] = []
    while needs:
        ready = sorted(n for n, parents in needs.items() if parents <= set(ordered))
        if not ready:
            raise CircularForeignKeys(f"circular foreign keys between {', '.join(sorted(needs))}")
        ordered += ready
        for name in ready:
            del needs[name]
    return ordered


def stored_columns(conn: psycopg.Connection, table: str) -> list[str]:
    rows = conn.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_schema = current_schema()"
        " AND table_name = %s AND is_generated = 'NEVER' ORDER BY ordinal_position",
        (table,),
    ).fetchall()
    return [r[0] for r in rows]


def _columns(columns: list[str]) -> sql.Composed:
    return sql.SQL(", ").join(sql.Identifier(c) for c in columns)


def copy_out(conn: psycopg.Connection, table: str, columns: list[str], path: Path) -> int:
    statement = sql.SQL("COPY {} ({}) TO STDOUT (FORMAT csv, HEADER)").format(
        sql.Identifier(table), _columns(columns)
    )
    with conn.cursor() as cur, cur.copy(statement) as copy, path.open("wb") as out:
        for data in copy:
            out.write(data)
    return row_count(conn, table)


def reset_sequences(conn: psycopg.Connection) -> None:
    """Serial columns continue after the imported rows."""
    rows = conn.execute(
        "SELECT table_name, column_name, pg_get_serial_sequence(table_name, column_name)"
        " FROM information_schema.columns WHERE table_schema = current_schema()"
        " AND pg_get_serial_sequence(table_name, column_name) IS NOT NULL"
    ).fetchall()
    for table, column, sequence in rows:
        conn.execute(
            sql.SQL("SELECT setval(%s, coalesce((SELECT max({}) FROM {}), 0) + 1, false)").format(
                sql.Identifier(column), sql.Identifier(table)
            ),
            (sequence,),
        )


def copy_in(conn: psycopg.Connection, table: str, columns: list[str], path: Path) -> int:
    """Load the CSV file (never through a symbolic link) into the table; the number of rows loaded.
    Raises ``OSError`` (the file) or ``psycopg.Error`` (its rows)."""
    statement = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT csv, HEADER)").format(
        sql.Identifier(table), _columns(columns)
    )
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    with conn.cursor() as cur, open(fd, "rb") as source:
        with cur.copy(statement) as copy:
            while data := source.read(1 << 20):
                copy.write(data)
        return cur.rowcount


def refusal(exc: psycopg.Error) -> str:
    """Why PostgreSQL refused a load, in one line: the error and the first line of where it happened
    (the row of the file)."""
    where = exc.diag.context.splitlines()[0][:160] if exc.diag.context else ""
    return str(exc).splitlines()[0] + (f"; {where}" if where else "")


def row_count(conn: psycopg.Connection, table: str) -> int:
    row = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table))).fetchone()
    return int(row[0]) if row else 0


def applied_migrations(conn: psycopg.Connection) -> dict[str, str]:
    """Version -> checksum of every schema migration applied to this store."""
    rows = conn.execute("SELECT version, checksum FROM schema_migrations ORDER BY version").fetchall()
    return {str(v): str(c) for v, c in rows}


def read_one_snapshot(conn: psycopg.Connection) -> None:
    """Make the transaction ``conn`` is in read-only and see one snapshot of every table (an export)."""
    conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
