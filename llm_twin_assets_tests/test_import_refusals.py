"""`llm-twin import` refuses what it cannot trust — a symbolic link anywhere in the dump, a manifest path
that leaves the dump, a table file whose row count is not the manifest's — and then writes nothing at all
(not one row, not one artifact). `llm-twin export` refuses a target it must not or cannot write with one
line, never a traceback. Real store: the embedded PostgreSQL, a fresh database per import."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from llm_twin_assets.artifacts import LocalArtifactStore
from llm_twin_assets.backup import BackupError, export_store, import_store
from llm_twin_assets.settings import get_settings
from llm_twin_assets.store.database import Database, open_database
from llm_twin_assets.store.tables import tables_in_order

AUTHORS = [
    ("ada", "Ada"),
    ("bob", 'Bob "the builder"'),
    ("cy", "Cy\nover two lines, with a comma"),  # a quoted CSV value spanning lines: one row, not two
    ("dee", "Dee"),
    ("eve", "Eve"),
]
ARTIFACTS = {
    "datasets/ada/instruct/v1/train.jsonl": b'{"instruction": "hi", "answer": "hello"}\n',
    "adapters/ada/sft/v1/adapter_model.safetensors": b"\x00weights\x01" * 64,
    "adapters/ada/sft/v1/manifest.json": b'{"version": "v1"}',
}


@pytest.fixture
def dump(db: Database, tmp_path: Path) -> Path:
    """An export of a small warehouse: five authors and three artifacts."""
    with db.connect() as conn:
        for slug, name in AUTHORS:
            conn.execute("INSERT INTO authors (slug, name) VALUES (%s, %s)", (slug, name))
    store = LocalArtifactStore(tmp_path / "source-artifacts")
    for key, data in ARTIFACTS.items():
        store.put(key, data)
    target = tmp_path / "dump"
    export_store(db, store, target)
    manifest = json.loads((target / "manifest.json").read_text())
    assert manifest["tables"]["authors"]["rows"] == 5 and set(manifest["artifacts"]) == set(ARTIFACTS)
    return target


@pytest.fixture
def empty(fresh_database_url: str, tmp_path: Path) -> tuple[Database, LocalArtifactStore]:
    """The import's target: a new database with the schema, and an artifact store not yet made."""
    return open_database(get_settings(database_url=fresh_database_url)), LocalArtifactStore(
        tmp_path / "restored"
    )


def _rows(database: Database) -> dict[str, int]:
    with database.connect() as conn:
        counts = {}
        for table in tables_in_order(conn):
            row = conn.execute(f'SELECT count(*) FROM "{table}"').fetchone()
            counts[table] = row[0] if row else 0
        return counts


def _nothing_written(database: Database, store: LocalArtifactStore) -> None:
    assert set(_rows(database).values()) == {0}
    assert not store.root.exists()  # not even the store's folder


def _rewrite(dump: Path, change: Callable[[dict], None]) -> None:
    path = dump / "manifest.json"
    manifest = json.loads(path.read_text())
    change(manifest)
    path.write_text(json.dumps(manifest))


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _link_file(dump: Path, outside: Path) -> str:
    """tables/authors.csv becomes a link to an identical copy outside the dump (its checksum passes)."""
    shutil.copy(dump / "tables" / "authors.csv", outside)
    (dump / "tables" / "authors.csv").unlink()
    (dump / "tables" / "authors.csv").symlink_to(outside)
    return r"tables/authors.csv is a symbolic link: an export holds only plain files and folders"


def _link_folder(dump: Path, outside: Path) -> str:
    """artifacts/datasets becomes a link to an identical copy outside the dump."""
    shutil.copytree(dump / "artifacts" / "datasets", outside)
    shutil.rmtree(dump / "artifacts" / "datasets")
    (dump / "artifacts" / "datasets").symlink_to(outside, target_is_directory=True)
    return r"artifacts/datasets is a symbolic link"


def _link_tables(dump: Path, outside: Path) -> str:
    shutil.copytree(dump / "tables", outside)
    shutil.rmtree(dump / "tables")
    (dump / "tables").symlink_to(outside, target_is_directory=True)
    return r"dump/tables is a symbolic link"


def _link_manifest(dump: Path, outside: Path) -> str:
    shutil.copy(dump / "manifest.json", outside)
    (dump / "manifest.json").unlink()
    (dump / "manifest.json").symlink_to(outside)
    return r"dump/manifest.json is a symbolic link"


def _dotdot_path(dump: Path, outside: Path) -> str:
    """The manifest names ../<outside>/authors.csv, a valid copy (checksum and all)."""
    outside.mkdir()
    shutil.copy(dump / "tables" / "authors.csv", outside / "authors.csv")
    relative = os.path.relpath(outside / "authors.csv", dump)
    assert relative.startswith("..")
    _rewrite(dump, lambda m: m["tables"]["authors"].update(file=relative))
    (dump / "tables" / "authors.csv").unlink()
    return r"table authors: the manifest names '\.\./.*authors.csv', a path with '\.\.'"


def _absolute_path(dump: Path, outside: Path) -> str:
    shutil.copy(dump / "tables" / "authors.csv", outside)
    _rewrite(dump, lambda m: m["tables"]["authors"].update(file=str(outside)))
    (dump / "tables" / "authors.csv").unlink()
    return r"table authors: the manifest names '/.*', an absolute path"


def _dotdot_artifact(dump: Path, outside: Path) -> str:
    """An artifact key that climbs out of artifacts/ and out of the dump."""
    outside.write_bytes(b"outside content")
    key = os.path.relpath(outside, dump / "artifacts")
    _rewrite(dump, lambda m: m["artifacts"].update({key: _sha(outside)}))
    return r"artifact \.\./.*: the manifest names 'artifacts/\.\./.*', a path with '\.\.'"


def _short_csv(dump: Path, outside: Path) -> str:
    """authors.csv cut to 2 of its 5 rows, its checksum recomputed in the manifest."""
    import csv
    import io

    path = dump / "tables" / "authors.csv"
    records = list(csv.reader(io.StringIO(path.read_text(), newline="")))
    assert len(records) == 6  # the header and five rows
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows(records[:3])
    path.write_text(out.getvalue())
    _rewrite(dump, lambda m: m["tables"]["authors"].update(sha256=_sha(path)))
    return r"table authors: .*authors.csv holds 2 rows but the manifest says 5: the export is damaged or was cut short"


REFUSALS = {
    "a table file is a link": _link_file,
    "an artifacts folder is a link": _link_folder,
    "the tables folder is a link": _link_tables,
    "the manifest is a link": _link_manifest,
    "a ../ table path": _dotdot_path,
    "an absolute table path": _absolute_path,
    "a ../ artifact key": _dotdot_artifact,
    "a short CSV with its checksum recomputed": _short_csv,
}


@pytest.mark.parametrize("damage", REFUSALS.values(), ids=REFUSALS.keys())
def test_an_untrustworthy_dump_is_refused_and_nothing_is_written(
    damage: Callable[[Path, Path], str],
    dump: Path,
    empty: tuple[Database, LocalArtifactStore],
    tmp_path: Path,
) -> None:
    target_db, target_store = empty
    match = damage(dump, tmp_path / "outside")
    with pytest.raises(BackupError, match=match) as refused:
        import_store(target_db, target_store, dump)
    assert "nothing was imported" in str(refused.value) and "\n" not in str(refused.value)
    _nothing_written(target_db, target_store)


def test_the_cli_refuses_in_one_line(
    dump: Path, empty: tuple[Database, LocalArtifactStore], tmp_path: Path
) -> None:
    from llm_twin_assets.cli import app

    target_db, target_store = empty
    _link_file(dump, tmp_path / "elsewhere.csv")
    env = {"LLM_TWIN_DATABASE_URL": target_db.url, "LLM_TWIN_ARTIFACTS_URL": str(target_store.root)}
    result = CliRunner().invoke(app, ["import", str(dump)], env=env)
    assert result.exit_code == 2, result.output
    assert result.stdout == ""
    [line] = result.stderr.splitlines()
    assert line.startswith("error: ") and "authors.csv is a symbolic link" in line
    _nothing_written(target_db, target_store)


def test_an_intact_dump_imports_and_reports_the_rows_loaded(
    dump: Path, empty: tuple[Database, LocalArtifactStore]
) -> None:
    target_db, target_store = empty
    summary = import_store(target_db, target_store, dump)
    assert summary.tables["authors"] == 5 and summary.artifacts == len(ARTIFACTS)
    with target_db.connect() as conn:
        names = dict(conn.execute("SELECT slug, name FROM authors").fetchall())
    assert names == dict(AUTHORS)
    assert {k: target_store.get(k) for k in target_store.list_keys()} == ARTIFACTS


# -- export ------------------------------------------------------------------------------------------


def _unwritable(tmp_path: Path) -> Path:
    """A folder this process cannot create (root ignores permission bits, so for root: under /sys)."""
    if os.geteuid() == 0:
        return Path("/sys/llm-twin-export-test")
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    return locked / "export"


def _existing_file(tmp_path: Path) -> Path:
    (tmp_path / "there.txt").write_text("mine")
    return tmp_path / "there.txt"


def _non_empty_folder(tmp_path: Path) -> Path:
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("mine")
    return tmp_path / "full"


def _under_a_file(tmp_path: Path) -> Path:
    (tmp_path / "plain").write_text("mine")
    return tmp_path / "plain" / "export"


EXPORT_REFUSALS = {
    "an existing file": (_existing_file, r"there.txt already exists and is not a folder"),
    "a folder with something in it": (_non_empty_folder, r"full is not empty: export into a new folder"),
    "a path under a file": (
        _under_a_file,
        r"cannot write the export to .*plain/export: .*plain is not a folder",
    ),
    "an unwritable place": (_unwritable, r"cannot write the export to .*export"),
}


@pytest.mark.parametrize(("where", "says"), EXPORT_REFUSALS.values(), ids=EXPORT_REFUSALS.keys())
def test_export_refuses_where_it_must_not_or_cannot_write_in_one_line(
    where: Callable[[Path], Path], says: str, database: Database, tmp_path: Path
) -> None:
    from llm_twin_assets.cli import app

    target = where(tmp_path)
    before = sorted(p.name for p in target.parent.iterdir()) if target.parent.is_dir() else None
    env = {"LLM_TWIN_ARTIFACTS_URL": str(tmp_path / "artifacts")}
    result = CliRunner().invoke(app, ["export", str(target)], env=env)
    assert result.exit_code == 2, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert result.stdout == ""
    [line] = result.stderr.splitlines()
    assert line.startswith("error: ") and "Traceback" not in result.output
    import re

    assert re.search(says, line), line
    if before is not None:  # nothing left behind
        assert sorted(p.name for p in target.parent.iterdir()) == before
    if target.name == "there.txt":
        assert target.read_text() == "mine"
    if target.name == "full":
        assert [p.name for p in target.iterdir()] == ["keep.txt"]


def test_export_into_an_empty_folder_still_works(db: Database, tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    summary = export_store(db, LocalArtifactStore(tmp_path / "artifacts"), tmp_path / "empty")
    assert (tmp_path / "empty" / "manifest.json").is_file() and "authors" in summary.tables
