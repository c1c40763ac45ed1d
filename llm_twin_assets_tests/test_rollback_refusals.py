"""`llm-twin release rollback` checks every file the release needs — both adapters, weights included,
against the checksums recorded when they were published — before anything changes. A release whose
weights are gone or damaged is refused in one line, and the author's current release is exactly as it
was (same row, same time of change), still resolved for serving. Real tiny LoRA adapters, real store."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from llm_twin_assets.artifacts import LocalArtifactStore
from llm_twin_assets.evaluation.releases import serving
from llm_twin_assets.store import releases
from llm_twin_assets.store.database import Database
from llm_twin_assets.training.adapters import (
    AdapterFilesError,
    get_adapter,
    publish_adapter,
    safetensors_problem,
    verify_twin_files,
)
from llm_twin_assets_tests.serving.helpers import Adapters, make_adapter, release


@pytest.fixture(scope="module")
def adapter_folders(tiny_model_path: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Two twins' worth of real PEFT adapters on the tiny Llama, made once for the module."""
    work = tmp_path_factory.mktemp("adapters")
    return {
        name: make_adapter(tiny_model_path, work / name, seed, rank, targets)
        for name, seed, rank, targets in (
            ("sft1", 11, 8, ("q_proj", "v_proj")),
            ("dpo1", 1011, 4, ("q_proj", "v_proj", "down_proj")),
            ("sft2", 12, 8, ("q_proj", "v_proj")),
            ("dpo2", 1012, 4, ("q_proj", "v_proj", "down_proj")),
        )
    }


@pytest.fixture
def twins(
    db: Database, tmp_path: Path, adapter_folders: dict[str, Path]
) -> tuple[LocalArtifactStore, Adapters]:
    """Ada with release 1 and release 2 (current); returns the store and release 1's adapters."""
    store = LocalArtifactStore(tmp_path / "artifacts")
    published = []
    for n in (1, 2):
        sft = publish_adapter(
            store, "ada", "sft", f"sft{n}", adapter_folders[f"sft{n}"], {"base_model": "tiny"}
        )
        dpo = publish_adapter(
            store,
            "ada",
            "dpo",
            f"dpo{n}",
            adapter_folders[f"dpo{n}"],
            {"base_model": "tiny", "parent_adapter": sft.version},
        )
        published.append(Adapters(sft, dpo))
    with db.connect() as conn:
        conn.execute("INSERT INTO authors (slug, name) VALUES ('ada', 'Ada')")
        assert release(conn, "ada", published[0]).release == 1
        assert release(conn, "ada", published[1]).release == 2
    return store, published[0]


def _current(db: Database) -> tuple:
    with db.connect() as conn:
        row = conn.execute(
            "SELECT release, reason, changed_at FROM current_releases WHERE author = 'ada'"
        ).fetchone()
    assert row is not None
    return tuple(row)


def _rollback(store: LocalArtifactStore, version: str = "1"):  # type: ignore[no-untyped-def]
    from llm_twin_assets.cli import app

    return CliRunner().invoke(
        app, ["release", "rollback", "ada", version], env={"LLM_TWIN_ARTIFACTS_URL": str(store.root)}
    )


def _weights(store: LocalArtifactStore, stage: str) -> Path:
    return store.root / "adapters" / "ada" / stage / f"{stage}1" / "adapter_model.safetensors"


def _drop_checksums(store: LocalArtifactStore, stage: str) -> None:
    """Make the adapter's manifest one published before checksums were recorded."""
    path = store.root / "adapters" / "ada" / stage / f"{stage}1" / "manifest.json"
    manifest = json.loads(path.read_text())
    del manifest["sha256"]
    path.write_text(json.dumps(manifest))


def _missing_dpo_weights(store: LocalArtifactStore) -> str:
    _weights(store, "dpo").unlink()
    return "dpo adapter dpo1 of 'ada': adapter_model.safetensors is missing from the artifact store"


def _missing_sft_weights_old_manifest(store: LocalArtifactStore) -> str:
    _drop_checksums(store, "sft")
    _weights(store, "sft").unlink()
    return "sft adapter sft1 of 'ada': adapter_model.safetensors is missing from the artifact store"


def _corrupted_sft_weights(store: LocalArtifactStore) -> str:
    path = _weights(store, "sft")
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF  # one flipped bit in a weight: same size, still a valid safetensors file
    path.write_bytes(bytes(data))
    assert safetensors_problem(bytes(data)) is None
    return (
        "sft adapter sft1 of 'ada': adapter_model.safetensors does not match the checksum recorded when it "
        "was published"
    )


def _cut_weights_old_manifest(store: LocalArtifactStore) -> str:
    _drop_checksums(store, "dpo")
    path = _weights(store, "dpo")
    path.write_bytes(path.read_bytes()[:-64])
    return "dpo adapter dpo1 of 'ada': adapter_model.safetensors is not a whole safetensors file"


def _missing_config(store: LocalArtifactStore) -> str:
    (_weights(store, "dpo").parent / "adapter_config.json").unlink()
    return "dpo adapter dpo1 of 'ada': adapter_config.json is missing from the artifact store"


def _missing_manifest(store: LocalArtifactStore) -> str:
    (_weights(store, "sft").parent / "manifest.json").unlink()
    return "sft adapter sft1 of 'ada': manifest.json is missing from the artifact store"


DAMAGE = {
    "DPO weights gone": _missing_dpo_weights,
    "SFT weights gone, manifest without checksums": _missing_sft_weights_old_manifest,
    "SFT weights corrupted": _corrupted_sft_weights,
    "DPO weights cut short, manifest without checksums": _cut_weights_old_manifest,
    "DPO adapter_config.json gone": _missing_config,
    "SFT manifest gone": _missing_manifest,
}


@pytest.mark.parametrize("damage", DAMAGE.values(), ids=DAMAGE.keys())
def test_a_release_that_cannot_be_served_is_refused_and_the_current_one_stays(
    damage, db: Database, twins: tuple[LocalArtifactStore, Adapters]
) -> None:  # type: ignore[no-untyped-def]
    store, _ = twins
    before = _current(db)
    assert before[0] == 2
    says = damage(store)

    result = _rollback(store)
    assert result.exit_code == 2, result.output
    assert result.stdout == ""
    [line] = result.stderr.splitlines()
    assert line.startswith("error: release 1 of 'ada' cannot be served: ")
    assert says in line and line.endswith("nothing changed (ada still serves release 2)")

    assert _current(db) == before  # the same release, not even re-pointed
    current, twin = serving(db, store, "ada")  # what the service resolves for ada
    assert (current.release, twin.sft.version, twin.dpo.version if twin.dpo else None) == (2, "sft2", "dpo2")


def test_an_intact_release_rolls_back_and_published_adapters_record_their_checksums(
    db: Database, twins: tuple[LocalArtifactStore, Adapters]
) -> None:
    store, first = twins
    for adapter in (first.sft, first.dpo):
        assert set(adapter.manifest["sha256"]) == set(adapter.manifest["files"])
        assert "adapter_model.safetensors" in adapter.manifest["files"]
    assert verify_twin_files(store, "ada", "sft1", "dpo1") == []

    result = _rollback(store, "dpo1")  # by DPO version
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == "ada now serves release 1 (sft sft1, dpo dpo1)"
    with db.connect() as conn:
        current = releases.current(conn, "ada")
    assert current is not None and current.release == 1


def test_an_old_release_without_checksums_is_checked_for_presence_and_says_so(
    db: Database, twins: tuple[LocalArtifactStore, Adapters]
) -> None:
    store, _ = twins
    _drop_checksums(store, "sft")
    assert "sha256" not in get_adapter(store, "ada", "sft", "sft1").manifest
    result = _rollback(store)
    assert result.exit_code == 0, result.output
    note, done = result.stdout.splitlines()
    assert note == (
        "note: sft adapter sft1 of 'ada' records no checksums (published before they were): its files were "
        "checked for presence only"
    )
    assert done.startswith("ada now serves release 1")


def test_verify_twin_files_names_the_file_and_the_rule(twins: tuple[LocalArtifactStore, Adapters]) -> None:
    store, _ = twins
    _corrupted_sft_weights(store)
    with pytest.raises(AdapterFilesError, match=r"sft1 of 'ada': adapter_model.safetensors does not match"):
        verify_twin_files(store, "ada", "sft1", "dpo1")
    assert verify_twin_files(store, "ada", "sft2", "dpo2") == []
