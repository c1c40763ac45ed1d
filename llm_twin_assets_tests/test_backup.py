"""`llm-twin export` / `import`: the whole warehouse round-trips into an empty store (same search results,
same releases served), and a partial, damaged or unloadable export is refused with nothing written."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from pathlib import Path

import pytest

from llm_twin_assets.artifacts import LocalArtifactStore
from llm_twin_assets.backup import BackupError, import_store
from llm_twin_assets.evaluation.releases import serving
from llm_twin_assets.retrieval import Retriever
from llm_twin_assets.settings import TwinSettings, get_settings
from llm_twin_assets.store import releases, traces
from llm_twin_assets.store.database import Database, open_database
from llm_twin_assets_tests.features.test_feature_assets import run, seed
from llm_twin_assets_tests.serving.conftest import ADA, BOB
from llm_twin_assets_tests.serving.helpers import publish_twin, release
from llm_twin_assets_tests.test_cli import LLM_TWIN
from llm_twin_assets_tests.training.helpers import publish_small

QUERIES = ["How do you descale a kettle?", "register allocation and spilling", "bicycle chain oil"]


@pytest.fixture
def warehouse(
    db: Database, settings: TwinSettings, tmp_path: Path, tiny_model_path: Path
) -> tuple[Database, LocalArtifactStore]:
    for author, docs in (("ada", ADA), ("bob", BOB)):
        seed(db, author, docs)
        assert run(author).success
    store = LocalArtifactStore(tmp_path / "artifacts")
    publish_small(store.root, "ada")
    adapters = publish_twin(store, tiny_model_path, tmp_path, "ada", 3)
    with db.connect() as conn:
        release(conn, "ada", adapters)
        conn.execute("TRUNCATE serving_traces")
        traces.write(conn, [traces.Trace("/rag", 200, 12.5, "ada", "kettles?", 1, ["c1"], [0.5], 0.7, 20, 8)])
    return db, store


def export(tmp_path: Path, store: LocalArtifactStore, settings: TwinSettings) -> Path:
    target = tmp_path / "backup"
    env = {**os.environ, "LLM_TWIN_HOME": str(settings.home), "LLM_TWIN_ARTIFACTS_URL": str(store.root)}
    done = subprocess.run(
        [LLM_TWIN, "export", str(target)], capture_output=True, text=True, env=env, timeout=300
    )
    assert done.returncode == 0, done.stderr
    assert "exported" in done.stdout and "table chunks:" in done.stdout
    return target


def searches(database: Database, embedder) -> list[list[tuple[str, float]]]:  # type: ignore[no-untyped-def]
    retriever = Retriever(database, embedder)
    return [[(h.chunk_id, h.score) for h in retriever.search(q, k=5)] for q in QUERIES]


def test_an_export_imports_into_an_empty_store_with_the_same_search_and_releases(
    warehouse,
    settings: TwinSettings,
    fresh_database_url: str,
    tmp_path: Path,
    embedder,  # type: ignore[no-untyped-def]
) -> None:
    source_db, source_store = warehouse
    backup = export(tmp_path, source_store, settings)
    manifest = json.loads((backup / "manifest.json").read_text())
    assert manifest["tables"]["chunks"]["rows"] > 0 and manifest["embedding_dim"] == 384
    assert any(k.startswith("adapters/ada/dpo/") for k in manifest["artifacts"])
    assert any(k.startswith("datasets/ada/") for k in manifest["artifacts"])

    target_db = open_database(get_settings(database_url=fresh_database_url))
    target_store = LocalArtifactStore(tmp_path / "restored")
    summary = import_store(target_db, target_store, backup)
    assert summary.tables == {t: v["rows"] for t, v in manifest["tables"].items()}

    assert searches(target_db, embedder) == searches(source_db, embedder)
    with source_db.connect() as a, target_db.connect() as b:
        assert releases.all_current(a) == releases.all_current(b)
        [imported] = traces.recent(b)
        assert imported["query"] == "kettles?" and imported == traces.recent(a)[0]
        traces.write(b, [traces.Trace("/retrieve", 200, 1.0)])  # the serial continues after the import
        assert [r["id"] for r in traces.recent(b)] == [imported["id"] + 1, imported["id"]]
    current, twin = serving(target_db, target_store, "ada")
    assert (
        current.release == 1
        and twin.dpo is not None
        and twin.dpo.manifest["parent_adapter"] == twin.sft.version
    )
    assert sorted(target_store.list_keys()) == sorted(source_store.list_keys())


def test_partial_damaged_or_unloadable_exports_are_refused_and_nothing_is_written(
    warehouse,
    settings: TwinSettings,
    fresh_database_url: str,
    tmp_path: Path,  # type: ignore[no-untyped-def]
) -> None:
    _, source_store = warehouse
    backup = export(tmp_path, source_store, settings)
    target_db = open_database(get_settings(database_url=fresh_database_url))
    target_store = LocalArtifactStore(tmp_path / "restored")

    def refused(match: str) -> None:
        with pytest.raises(BackupError, match=match):
            import_store(target_db, target_store, backup)
        with target_db.connect() as conn:
            assert conn.execute("SELECT count(*) FROM authors").fetchone() == (0,)
            assert conn.execute("SELECT count(*) FROM chunks").fetchone() == (0,)
        assert target_store.list_keys() == []

    manifest_path = backup / "manifest.json"
    manifest_text = manifest_path.read_text()
    chunks = backup / "tables" / "chunks.csv"
    original = chunks.read_bytes()

    chunks.write_bytes(original[:-100])  # cut short
    refused(r"table chunks: .*chunks.csv does not match its checksum")
    chunks.unlink()
    refused(r"table chunks: .*chunks.csv is missing: the export is partial")

    # a file that passes its checksum but cannot be loaded (a vector of the wrong dimension)
    lines = original.decode().splitlines(keepends=True)
    broken = (lines[0] + lines[1].replace("[", "[1,", 1) + "".join(lines[2:])).encode()
    chunks.write_bytes(broken)
    manifest = json.loads(manifest_text)
    manifest["tables"]["chunks"]["sha256"] = hashlib.sha256(broken).hexdigest()
    manifest_path.write_text(json.dumps(manifest))
    refused(r"table chunks: .* could not be loaded .*nothing was imported")

    manifest_path.unlink()
    refused(r"has no manifest.json: not an export, or one that did not finish")

    chunks.write_bytes(original)
    manifest_path.write_text(manifest_text)
    import_store(target_db, target_store, backup)
    with pytest.raises(BackupError, match="import needs an empty store, but authors has 2 rows"):
        import_store(target_db, LocalArtifactStore(tmp_path / "other"), backup)
