"""Backup and restore of the whole warehouse: every table of the store (authors, documents, chunks with
their embeddings, teacher replies, evaluations, releases, traces …) and every artifact (datasets,
adapters), with a manifest of checksums.

An export is a folder: ``tables/<table>.csv`` (``COPY … CSV HEADER`` of one consistent snapshot, generated
columns left out), ``artifacts/<key>``, and ``manifest.json`` — written last, so a folder without one is
an export that did not finish. An import checks every checksum and the schema before it writes anything,
writes into an empty store only, loads every table in one transaction, and removes the artifacts it wrote
if that transaction fails: nothing is ever half-imported.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from llm_twin_assets.artifacts import ArtifactStore
from llm_twin_assets.errors import TwinError
from llm_twin_assets.store.database import Database, stored_dimension

FORMAT = "llm-twin-export"
VERSION = 1
MANIFEST = "manifest.json"
Progress = Callable[[str], None]


class BackupError(TwinError):
    """An export or import refused; the message names the file or table and what is wrong."""


@dataclass(frozen=True)
class Summary:
    tables: dict[str, int]
    artifacts: int
    bytes: int


def export_store(
    database: Database, store: ArtifactStore, target: Path, progress: Progress = lambda _: None
) -> Summary:
    if target.exists() and any(target.iterdir()):
        raise BackupError(f"{target} is not empty: export into a new folder")
    (target / "tables").mkdir(parents=True, exist_ok=True)
    tables: dict[str, dict[str, Any]] = {}
    with database.connect() as conn:
        conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")  # one snapshot
        schema = dict(
            conn.execute("SELECT version, checksum FROM schema_migrations ORDER BY version").fetchall()
        )
        dimension = stored_dimension(conn)
        for table in tables_in_order(conn):
            columns = stored_columns(conn, table)
            path = target / "tables" / f"{table}.csv"
            rows = _copy_out(conn, table, columns, path)
            tables[table] = {
                "file": f"tables/{table}.csv",
                "columns": columns,
                "rows": rows,
                "sha256": _sha256(path),
            }
            progress(f"table {table}: {rows:,} rows")
    artifacts: dict[str, str] = {}
    for key in store.list_keys():
        data = store.get(key)
        path = target / "artifacts" / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        artifacts[key] = hashlib.sha256(data).hexdigest()
    progress(f"artifacts: {len(artifacts):,} files")
    manifest = {
        "format": FORMAT,
        "version": VERSION,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "schema": schema,
        "embedding_dim": dimension,
        "tables": tables,
        "artifacts": artifacts,
    }
    (target / MANIFEST).write_text(json.dumps(manifest, indent=1, sort_keys=True))
    size = sum(p.stat().st_size for p in target.rglob("*") if p.is_file())
    return Summary({t: v["rows"] for t, v in tables.items()}, len(artifacts), size)


def import_store(
    database: Database, store: ArtifactStore, source: Path, progress: Progress = lambda _: None
) -> Summary:
    manifest = read_manifest(source)
    verify(source, manifest)
    progress(f"checked {len(manifest['tables'])} tables and {len(manifest['artifacts'])} artifacts")
    with database.connect() as conn:
        _check_target(conn, manifest)
    clashes = [k for k in manifest["artifacts"] if store.exists(k)]
    if clashes:
        raise BackupError(
            f"the artifact store already holds {len(clashes)} of the exported artifacts (e.g. {clashes[0]}): "
            "import into an empty store"
        )
    written: list[str] = []
    try:
        for key in manifest["artifacts"]:
            store.put(key, (source / "artifacts" / key).read_bytes())
            written.append(key)
        progress(f"artifacts: {len(written):,} files")
        with database.connect() as conn, conn.transaction():
            for table in tables_in_order(conn):
                entry = manifest["tables"].get(table)
                if entry is not None:
                    _copy_in(conn, table, entry["columns"], source / entry["file"])
                    progress(f"table {table}: {entry['rows']:,} rows")
            _reset_sequences(conn)
    except BaseException:
        for key in written:  # the store was empty of these keys: leave it as it was
            store.delete(key)
        raise
    _rebuild_author_indexes(database, progress)
    size = sum(p.stat().st_size for p in source.rglob("*") if p.is_file())
    return Summary({t: v["rows"] for t, v in manifest["tables"].items()}, len(written), size)


def read_manifest(source: Path) -> dict[str, Any]:
    path = source / MANIFEST
    if not path.is_file():
        raise BackupError(
            f"{source} has no {MANIFEST}: not an export, or one that did not finish (the manifest is written last)"
        )
    try:
        manifest = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BackupError(f"{path} is not readable JSON ({exc}): the export is damaged") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise BackupError(f"{path} is not an llm-twin export manifest")
    if manifest.get("version") != VERSION:
        raise BackupError(f"{path} is export format {manifest.get('version')}; this version reads {VERSION}")
    return manifest


def verify(source: Path, manifest: dict[str, Any]) -> None:
    """Every file the manifest names is there with its checksum; no table file is unaccounted for."""
    for table, entry in manifest["tables"].items():
        _check_file(source / entry["file"], entry["sha256"], f"table {table}")
    for key, digest in manifest["artifacts"].items():
        _check_file(source / "artifacts" / key, digest, f"artifact {key}")


def _check_file(path: Path, digest: str, what: str) -> None:
    if not path.is_file():
        raise BackupError(f"{what}: {path} is missing: the export is partial; nothing was imported")
    if _sha256(path) != digest:
        raise BackupError(
            f"{what}: {path} does not match its checksum: the export is damaged; nothing was imported"
        )


def _check_target(conn: psycopg.Connection, manifest: dict[str, Any]) -> None:
    here: dict[str, str] = dict(conn.execute("SELECT version, checksum FROM schema_migrations").fetchall())
    newer = sorted(set(manifest["schema"]) - set(here))
    if newer:
        raise BackupError(
            f"the export has schema migrations this version lacks ({', '.join(newer)}): upgrade first"
        )
    changed = sorted(v for v, c in manifest["schema"].items() if here.get(v) != c)
    if changed:
        raise BackupError(
            f"schema migrations {', '.join(changed)} differ from this version's: cannot import safely"
        )
    dim = stored_dimension(conn)
    if manifest["embedding_dim"] is not None and dim != manifest["embedding_dim"]:
        raise BackupError(
            f"the export's embeddings have {manifest['embedding_dim']} dimensions, this store's {dim}: set "
            f"LLM_TWIN_EMBEDDING_DIM={manifest['embedding_dim']} for the new store"
        )
    for table in tables_in_order(conn):
        row = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table))).fetchone()
        if row and row[0]:
            raise BackupError(
                f"import needs an empty store, but {table} has {row[0]:,} rows: use a new database"
            )
    unknown = sorted(set(manifest["tables"]) - set(tables_in_order(conn)))
    if unknown:
        raise BackupError(f"the export has tables this version does not know: {', '.join(unknown)}")


def tables_in_order(conn: psycopg.Connection) -> list[str]:
    """The store's tables, each after the tables its foreign keys point at."""
    names = [
        r[0]
        for r in conn.execute(
            "SELECT c.relname FROM pg_class c WHERE c.relnamespace = current_schema()::regnamespace"
            " AND c.relkind IN ('r', 'p') AND NOT c.relispartition AND c.relname <> 'schema_migrations'"
            " ORDER BY c.relname"
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
            raise BackupError(f"circular foreign keys between {', '.join(sorted(needs))}")
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


def _copy_out(conn: psycopg.Connection, table: str, columns: list[str], path: Path) -> int:
    statement = sql.SQL("COPY {} ({}) TO STDOUT (FORMAT csv, HEADER)").format(
        sql.Identifier(table), _columns(columns)
    )
    with conn.cursor() as cur, cur.copy(statement) as copy, path.open("wb") as out:
        for data in copy:
            out.write(data)
    row = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table))).fetchone()
    return int(row[0]) if row else 0


def _copy_in(conn: psycopg.Connection, table: str, columns: list[str], path: Path) -> None:
    statement = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT csv, HEADER)").format(
        sql.Identifier(table), _columns(columns)
    )
    try:
        with conn.cursor() as cur, cur.copy(statement) as copy, path.open("rb") as source:
            while data := source.read(1 << 20):
                copy.write(data)
    except psycopg.Error as exc:
        where = exc.diag.context.splitlines()[0][:160] if exc.diag.context else ""
        reason = str(exc).splitlines()[0] + (f"; {where}" if where else "")
        raise BackupError(
            f"table {table}: {path} could not be loaded ({reason}); nothing was imported"
        ) from exc


def _reset_sequences(conn: psycopg.Connection) -> None:
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


def _rebuild_author_indexes(database: Database, progress: Progress) -> None:
    from llm_twin_assets.store.vectors import ensure_author_indexes

    with database.connect(autocommit=True) as conn:
        built = [name for name in ensure_author_indexes(conn).values() if name]
    if built:
        progress(f"per-author vector indexes: {len(built)}")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()
