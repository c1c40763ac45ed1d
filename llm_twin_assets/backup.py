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

import errno
import hashlib
import json
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from llm_twin_assets.artifacts import ArtifactStore
from llm_twin_assets.export_folder import (
    FORMAT,
    MANIFEST,
    VERSION,
    BackupError,
    inside,
    read_manifest,
    read_plain,
    refuse_links,
    sha256_of,
    verify,
)
from llm_twin_assets.store.database import Connection, Database, DatabaseError, stored_dimension
from llm_twin_assets.store.tables import (
    applied_migrations,
    copy_in,
    copy_out,
    read_one_snapshot,
    refusal,
    reset_sequences,
    row_count,
    stored_columns,
    tables_in_order,
)

Progress = Callable[[str], None]


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
        read_one_snapshot(conn)
        schema = applied_migrations(conn)
        dimension = stored_dimension(conn)
        for table in tables_in_order(conn):
            columns = stored_columns(conn, table)
            path = target / "tables" / f"{table}.csv"
            rows = copy_out(conn, table, columns, path)
            tables[table] = {
                "file": f"tables/{table}.csv",
                "columns": columns,
                "rows": rows,
                "sha256": sha256_of(path),
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
            path = inside(source, f"artifacts/{key}", f"artifact {key}")
            data = read_plain(path)
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
                    path = inside(source, entry["file"], f"table {table}")
                    loaded[table] = _copy_in(conn, table, entry["columns"], path)
                    if loaded[table] != entry["rows"]:
                        raise BackupError(
                            f"table {table}: {path} loaded {loaded[table]:,} rows but the manifest says "
                            f"{entry['rows']:,}: the export is damaged; nothing was imported"
                        )
                    progress(f"table {table}: {loaded[table]:,} rows")
            reset_sequences(conn)
    except BaseException:
        for key in written:  # the store was empty of these keys: leave it as it was
            store.delete(key)
        raise
    _rebuild_author_indexes(database, progress)
    size = sum(p.stat().st_size for p in source.rglob("*") if p.is_file())
    return Summary(loaded, len(written), size)


def _check_target(conn: Connection, manifest: dict[str, Any]) -> None:
    here = applied_migrations(conn)
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
        rows = row_count(conn, table)
        if rows:
            raise BackupError(
                f"import needs an empty store, but {table} has {rows:,} rows: use a new database"
            )
    unknown = sorted(set(manifest["tables"]) - set(tables_in_order(conn)))
    if unknown:
        raise BackupError(f"the export has tables this version does not know: {', '.join(unknown)}")


def _copy_in(conn: Connection, table: str, columns: list[str], path: Path) -> int:
    """Load the file into the table; the number of rows PostgreSQL loaded."""
    try:
        return copy_in(conn, table, columns, path)
    except OSError as exc:
        raise BackupError(
            f"table {table}: cannot read {path} ({_os_reason(exc)}); nothing was imported"
        ) from None
    except DatabaseError as exc:
        raise BackupError(
            f"table {table}: {path} could not be loaded ({refusal(exc)}); nothing was imported"
        ) from exc


def _rebuild_author_indexes(database: Database, progress: Progress) -> None:
    from llm_twin_assets.store.author_indexes import ensure_author_indexes

    with database.connect(autocommit=True) as conn:
        built = [name for name in ensure_author_indexes(conn).values() if name]
    if built:
        progress(f"per-author vector indexes: {len(built)}")
