"""Backup and restore of the whole warehouse: every table of the store (authors, documents, chunks with
their embeddings, teacher replies, evaluations, releases, traces …) and every artifact (datasets,
adapters), with a manifest of checksums.

An export is a folder: ``tables/<table>.csv`` (``COPY … CSV HEADER`` of one consistent snapshot, generated
columns left out), ``artifacts/<key>``, and ``manifest.json`` — written last, so a folder without one is
an export that did not finish. An import checks, before it writes anything, that the folder holds only
plain files and folders (no symbolic link anywhere), that every path the manifest names stays inside it,
every checksum, every table file's header and row count, and the schema; it writes into an empty store
only, loads every table in one transaction (each table's loaded row count checked again), and removes the
artifacts it wrote if that transaction fails: nothing is ever half-imported, and a refused import writes
nothing at all.
"""

from __future__ import annotations

import csv
import errno
import hashlib
import json
import os
import shutil
import stat
import sys
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
    """Export into ``target``: a new folder, or an empty one. An existing file, a folder with anything in
    it, or a place that cannot be written is refused with one line; an export that fails half-way removes
    what it wrote (and the folder, when it made it)."""
    check_export_target(target)
    made = not target.exists()
    try:
        return _export(database, store, target, progress)
    except OSError as exc:
        _remove_partial(target, made)
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise  # the CLI names the full disk and its free space
        raise BackupError(
            f"cannot write the export to {target}: {_os_reason(exc)}; nothing was exported"
        ) from None
    except BaseException:
        _remove_partial(target, made)
        raise


def check_export_target(target: Path) -> None:
    if target.is_symlink() and not target.exists():
        raise BackupError(f"{target} is a dangling symbolic link: export into a new folder")
    if target.exists() and not target.is_dir():
        raise BackupError(f"{target} already exists and is not a folder: export into a new folder")
    try:
        if target.is_dir() and any(target.iterdir()):
            raise BackupError(f"{target} is not empty: export into a new folder")
    except PermissionError:
        raise BackupError(f"cannot read {target} (permission denied): export into a new folder") from None
    parent = next((p for p in (target, *target.parents) if p.exists()), None)
    if parent is None or not parent.is_dir():
        raise BackupError(f"cannot write the export to {target}: {parent} is not a folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise BackupError(f"cannot write the export to {target}: {parent} is not writable")


def _remove_partial(target: Path, made: bool) -> None:
    """What a failed export wrote: its own sub-folders (and the target, when the export made it)."""
    if made:
        shutil.rmtree(target, ignore_errors=True)
        return
    for name in ("tables", "artifacts", MANIFEST):
        path = target / name
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)


def _os_reason(exc: OSError) -> str:
    reason = (exc.strerror or type(exc).__name__).lower()
    return f"{exc.filename}: {reason}" if exc.filename else reason


def _export(database: Database, store: ArtifactStore, target: Path, progress: Progress) -> Summary:
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
    """Import the export in ``source`` into an empty store; see the module's docstring for what is
    checked first. The summary's row counts are the rows loaded."""
    source = source.absolute()
    refuse_links(source)
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
    loaded: dict[str, int] = {}
    try:
        for key, digest in manifest["artifacts"].items():
            path = _inside(source, f"artifacts/{key}", f"artifact {key}")
            data = _read_plain(path)
            if hashlib.sha256(data).hexdigest() != digest:  # changed since it was checked
                raise BackupError(
                    f"artifact {key}: {path} does not match its checksum: the export is damaged; nothing was imported"
                )
            store.put(key, data)
            written.append(key)
        progress(f"artifacts: {len(written):,} files")
        with database.connect() as conn, conn.transaction():
            for table in tables_in_order(conn):
                entry = manifest["tables"].get(table)
                if entry is not None:
                    path = _inside(source, entry["file"], f"table {table}")
                    loaded[table] = _copy_in(conn, table, entry["columns"], path)
                    if loaded[table] != entry["rows"]:
                        raise BackupError(
                            f"table {table}: {path} loaded {loaded[table]:,} rows but the manifest says "
                            f"{entry['rows']:,}: the export is damaged; nothing was imported"
                        )
                    progress(f"table {table}: {loaded[table]:,} rows")
            _reset_sequences(conn)
    except BaseException:
        for key in written:  # the store was empty of these keys: leave it as it was
            store.delete(key)
        raise
    _rebuild_author_indexes(database, progress)
    size = sum(p.stat().st_size for p in source.rglob("*") if p.is_file())
    return Summary(loaded, len(written), size)


def refuse_links(source: Path) -> None:
    """Refuse a folder holding anything but plain files and folders: a symbolic link (to a file or a
    folder, anywhere, the manifest included) would load content from outside the export. The folder
    itself may be reached through a link (the path given is the user's own choice)."""
    if not source.is_dir():
        return  # read_manifest says what is wrong
    for folder, folders, files in os.walk(source, followlinks=False, onerror=_walk_error):
        for name in folders + files:
            path = Path(folder) / name
            mode = path.lstat().st_mode
            if stat.S_ISLNK(mode):
                raise BackupError(
                    f"{path} is a symbolic link: an export holds only plain files and folders, and a link "
                    "could bring in content from outside it; nothing was imported"
                )
            if not (stat.S_ISDIR(mode) or stat.S_ISREG(mode)):
                raise BackupError(
                    f"{path} is not a plain file or folder: an export holds only those; nothing was imported"
                )


def _walk_error(exc: OSError) -> None:
    raise BackupError(
        f"cannot read {exc.filename}: {(exc.strerror or str(exc)).lower()}; nothing was imported"
    )


def _inside(source: Path, relative: object, what: str) -> Path:
    """``source / relative``, refused unless ``relative`` is a plain relative path that stays inside the
    export (no absolute path, no ``..``, nothing that resolves elsewhere)."""
    if not isinstance(relative, str) or not relative or "\x00" in relative:
        raise BackupError(
            f"{what}: the manifest names {relative!r}, not a file of the export; nothing was imported"
        )
    parts = relative.split("/")
    if relative.startswith("/") or Path(relative).is_absolute():
        rule = "an absolute path"
    elif ".." in parts or ".." in Path(relative).parts:
        rule = "a path with '..'"
    elif any(p in ("", ".") for p in parts):
        rule = "not a plain relative path"
    else:
        path = source / relative
        root = source.resolve()
        if path.resolve() == root or not path.resolve().is_relative_to(root):
            rule = "a path that resolves outside the export"
        else:
            return path
    raise BackupError(
        f"{what}: the manifest names {relative!r}, {rule}: every file of an export lies inside its folder; "
        "nothing was imported"
    )


def _read_plain(path: Path) -> bytes:
    """The bytes of a regular file, never through a link (a file swapped for one after the checks)."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    with os.fdopen(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
            raise BackupError(f"{path} is not a plain file; nothing was imported")
        return f.read()


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
    """Every file the manifest names lies inside the export and is there with its checksum; every table
    file has the manifest's columns as its header and holds as many rows as the manifest says."""
    _check_shape(manifest)
    paths = {
        table: _inside(source, entry["file"], f"table {table}") for table, entry in manifest["tables"].items()
    }
    artifacts = {key: _inside(source, f"artifacts/{key}", f"artifact {key}") for key in manifest["artifacts"]}
    for table, entry in manifest["tables"].items():
        _check_file(paths[table], entry["sha256"], f"table {table}")
    for key, digest in manifest["artifacts"].items():
        _check_file(artifacts[key], digest, f"artifact {key}")
    for table, entry in manifest["tables"].items():
        _check_rows(paths[table], entry, f"table {table}")


def _check_shape(manifest: dict[str, Any]) -> None:
    """The manifest's entries have the types an export writes (a hand-edited one may not)."""
    tables, artifacts = manifest.get("tables"), manifest.get("artifacts")
    problem = None
    if not isinstance(tables, dict) or not isinstance(artifacts, dict):
        problem = "'tables' and 'artifacts' must be objects"
    else:
        for table, entry in tables.items():
            if not (
                isinstance(entry, dict)
                and isinstance(entry.get("file"), str)
                and isinstance(entry.get("sha256"), str)
                and isinstance(entry.get("rows"), int)
                and not isinstance(entry.get("rows"), bool)
                and entry["rows"] >= 0
                and isinstance(entry.get("columns"), list)
                and entry["columns"]
                and all(isinstance(c, str) for c in entry["columns"])
            ):
                problem = f"table {table}: needs file, sha256, rows (a count) and columns"
                break
        else:
            bad = next((k for k, v in artifacts.items() if not isinstance(v, str)), None)
            if bad is not None:
                problem = f"artifact {bad}: needs a sha256"
    if problem is not None:
        raise BackupError(f"{MANIFEST} is not a valid export manifest ({problem}); nothing was imported")


def _check_rows(path: Path, entry: dict[str, Any], what: str) -> None:
    """The file's header is the manifest's columns and it holds the manifest's row count (CSV records,
    parsed as PostgreSQL wrote them: a quoted value may span lines)."""
    csv.field_size_limit(sys.maxsize)
    with path.open("r", encoding="utf-8", newline="") as text:
        reader = csv.reader(text)
        try:
            header = next(reader, None)
            rows = sum(1 for _ in reader)
        except (csv.Error, UnicodeDecodeError) as exc:
            raise BackupError(
                f"{what}: {path} is not a readable CSV file ({exc}); nothing was imported"
            ) from None
    if header != entry["columns"]:
        raise BackupError(
            f"{what}: {path} has the columns {header} but the manifest says {entry['columns']}: the export is "
            "damaged; nothing was imported"
        )
    if rows != entry["rows"]:
        raise BackupError(
            f"{what}: {path} holds {rows:,} rows but the manifest says {entry['rows']:,}: the export is "
            "damaged or was cut short; nothing was imported"
        )


def _check_file(path: Path, digest: str, what: str) -> None:
    if not path.is_file() or path.is_symlink():
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


def _copy_in(conn: psycopg.Connection, table: str, columns: list[str], path: Path) -> int:
    """Load the file into the table; the number of rows PostgreSQL loaded."""
    statement = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT csv, HEADER)").format(
        sql.Identifier(table), _columns(columns)
    )
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        with conn.cursor() as cur, open(fd, "rb") as source:
            with cur.copy(statement) as copy:
                while data := source.read(1 << 20):
                    copy.write(data)
            return cur.rowcount
    except OSError as exc:
        raise BackupError(
            f"table {table}: cannot read {path} ({_os_reason(exc)}); nothing was imported"
        ) from None
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
