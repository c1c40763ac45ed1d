"""An export folder as an import finds it: its manifest, and every check made before anything is written —
plain files and folders only (no symbolic link anywhere), every path the manifest names inside the folder,
every checksum, every table file's header and row count."""

from __future__ import annotations

import csv
import hashlib
import json
import os
import stat
import sys
from pathlib import Path
from typing import Any

from llm_twin_assets.errors import TwinError

FORMAT = "llm-twin-export"
VERSION = 1
MANIFEST = "manifest.json"


class BackupError(TwinError):
    """An export or import refused; the message names the file or table and what is wrong."""


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


def inside(source: Path, relative: object, what: str) -> Path:
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


def read_plain(path: Path) -> bytes:
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
        table: inside(source, entry["file"], f"table {table}") for table, entry in manifest["tables"].items()
    }
    artifacts = {key: inside(source, f"artifacts/{key}", f"artifact {key}") for key in manifest["artifacts"]}
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
    if sha256_of(path) != digest:
        raise BackupError(
            f"{what}: {path} does not match its checksum: the export is damaged; nothing was imported"
        )


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()
