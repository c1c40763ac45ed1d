"""Training integrity: no silent truncation, remote jobs that carry no local path, adapters promoted only
after their checks, the twin resolved from DPO's recorded parent, atomic adapter downloads."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from dataclasses import replace
from pathlib import Path

import polars as pl
import pytest

from llm_twin_assets.artifacts import LocalArtifactStore, S3ArtifactStore
from llm_twin_assets.datasets.building import INSTRUCT_SCHEMA, split_frame
from llm_twin_assets.datasets.versions import promote, publish
from llm_twin_assets.defs.resources import remote_job
from llm_twin_assets.training import adapters
from llm_twin_assets.training.config import TrainJob, hyper_for
from llm_twin_assets_tests.training.helpers import publish_small
from llm_twin_assets_tests.training.test_entry_points import ENV, jobs, run


def publish_lengths(root: Path, long_rows: int, short_rows: int = 6) -> str:
    """An instruct dataset with ``long_rows`` answers far over 64 tokens and short ones that fit."""
    rows = [
        {
            "id": f"r{i}",
            "author": "ada",
            "document_id": f"d{i % 4}",
            "document_url": "u",
            "kind": "post",
            "source": "author",
            "instruction": f"Tell me about topic {i}.",
            "answer": ("A long answer that goes on and on. " * 20)
            if i < long_rows
            else f"Topic {i} is short.",
        }
        for i in range(long_rows + short_rows)
    ]
    store = LocalArtifactStore(root)
    version, _ = publish(
        store, "ada", "instruct", split_frame(pl.DataFrame(rows, schema=INSTRUCT_SCHEMA), 0.2, 1), {}
    )
    promote(store, version)
    return version.version


@pytest.mark.slow
def test_examples_over_max_length_are_left_out_whole_and_counted(
    tmp_path: Path, tiny_model_path: Path
) -> None:
    sft, _ = jobs(tmp_path, tiny_model_path)
    version = publish_lengths(tmp_path / "artifacts", long_rows=4)
    job = replace(
        sft, dataset_version=version, hyper=replace(sft.hyper, max_length=64, max_steps=2, min_examples=2)
    )
    done = run("sft", job, tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    metrics = json.loads((tmp_path / "sft" / "metrics.json").read_text())
    train_rows = metrics["examples"] + metrics["examples_over_max_length"]
    assert metrics["examples_over_max_length"] >= 2 and metrics["examples"] >= 2 and train_rows <= 10
    log = (tmp_path / "sft" / "train.log").read_text()
    assert (
        f"{metrics['examples_over_max_length']} longer than max_length 64 left out (never truncated)" in log
    )

    too_long = replace(job, hyper=replace(job.hyper, min_examples=metrics["examples"] + 1))
    failed = run("sft", replace(too_long, output_dir=str(tmp_path / "sft-too-long")), tmp_path)
    assert failed.returncode == 2
    assert "within max_length 64" in failed.stderr and "longer); at least" in failed.stderr


@pytest.mark.slow
def test_a_remote_job_names_no_local_path_and_the_trainer_fetches_what_it_needs(
    tmp_path: Path, s3_endpoint: str, s3_client, settings
) -> None:  # type: ignore[no-untyped-def]
    from llm_twin_assets.datasets.versions import latest

    prefix = f"remote/{uuid.uuid4().hex}"
    store = S3ArtifactStore(s3_client, "twins", prefix)
    local = tmp_path / "launcher"
    publish_small(local)  # built here, then copied into the bucket the task reads
    for path in sorted(p for p in local.rglob("*") if p.is_file()):
        store.put(path.relative_to(local).as_posix(), path.read_bytes())
    common = {
        "profile": "tiny",
        "author": "ada",
        "base_model": "tiny",
        "artifacts_url": f"s3://twins/{prefix}",
    }
    sft = TrainJob(
        stage="sft",
        dataset_version=latest(store, "ada", "instruct").version,
        output_dir=str(settings.home / "training" / "ada" / "sft" / "s1"),
        adapter_version="s1",
        hyper=replace(hyper_for("sft", "tiny"), max_steps=3),
        **common,
    )
    dpo = TrainJob(
        stage="dpo",
        dataset_version=latest(store, "ada", "preference").version,
        output_dir=str(settings.home / "training" / "ada" / "dpo" / "d1"),
        adapter_version="d1",
        parent_adapter="s1",
        hyper=replace(hyper_for("dpo", "tiny"), max_steps=2),
        **common,
    )
    for job in (sft, dpo):
        payload = remote_job(job)
        text = json.dumps(payload)
        for here in (str(settings.home), str(tmp_path), str(settings.model_cache), os.getcwd()):
            assert here not in text, f"{here} travels in the remote job: {text}"
        # The task: another data home, another working folder; only the job, the bucket and its keys.
        task_home = tmp_path / f"task-{job.stage}"
        task_home.mkdir()
        (task_home / "job.json").write_text(text)
        env = {
            **ENV,
            "LLM_TWIN_HOME": str(task_home / "home"),
            "AWS_ENDPOINT_URL": s3_endpoint,
            "AWS_ACCESS_KEY_ID": "test",
            "AWS_SECRET_ACCESS_KEY": "test",
            "AWS_DEFAULT_REGION": "us-east-1",
        }
        done = subprocess.run(
            [sys.executable, "-m", f"llm_twin_assets.training.{job.stage}", "--config", "job.json"],
            cwd=task_home,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode == 0, done.stderr[-3000:]
    published = adapters.get_adapter(store, "ada", "dpo", "d1")
    assert published.manifest["parent_adapter"] == "s1"
    assert adapters.completeness(store, published).passed
    fetched = task_home / payload["output_dir"] / "inputs" / "ada" / "sft" / "s1"
    assert (fetched / "adapter_model.safetensors").is_file()  # the task downloaded its parent itself


def test_the_twin_is_resolved_from_dpo_parent_and_a_mismatch_names_both_versions(tmp_path: Path) -> None:
    store = LocalArtifactStore(tmp_path)

    def publish_adapter(stage: str, version: str, parent: str | None = None) -> adapters.AdapterVersion:
        folder = tmp_path / "src" / version
        folder.mkdir(parents=True)
        for name in adapters.REQUIRED_FILES:
            (folder / name).write_text("{}")
        details = {"base_model": "tiny-llama", "parent_adapter": parent, "metrics": {"final_loss": 0.5}}
        published = adapters.publish_adapter(store, "ada", stage, version, folder, details)
        adapters.promote(store, published)
        return published

    first_sft = publish_adapter("sft", "sft-1")
    dpo = publish_adapter("dpo", "dpo-1", parent="sft-1")
    publish_adapter("sft", "sft-2")  # SFT retrained since: the latest SFT is not the twin's
    twin = adapters.resolve_twin(store, "ada")
    assert (twin.sft.version, twin.dpo.version if twin.dpo else None) == ("sft-1", "dpo-1")
    assert twin.sft == first_sft
    with pytest.raises(
        adapters.LineageError,
        match="dpo adapter dpo-1 .* trained on sft adapter sft-1, not on sft adapter sft-2",
    ):
        adapters.check_lineage(adapters.latest_adapter(store, "ada", "sft"), dpo)
    assert adapters.lineage(store, dpo).passed

    orphan = publish_adapter("dpo", "dpo-2", parent="sft-gone")
    assert not adapters.lineage(store, orphan).passed
    with pytest.raises(
        adapters.LineageError,
        match="trained on sft adapter sft-gone, which the artifact store no longer holds",
    ):
        adapters.resolve_twin(store, "ada")


def test_an_adapter_that_fails_its_checks_is_not_promoted(tmp_path: Path) -> None:
    from llm_twin_assets.defs.training.assets import _check_and_promote

    store = LocalArtifactStore(tmp_path)
    folder = tmp_path / "src"
    folder.mkdir()
    for name in adapters.REQUIRED_FILES:
        (folder / name).write_text("{}")
    good = adapters.publish_adapter(store, "ada", "sft", "good", folder, {"metrics": {"final_loss": 0.4}})
    results, data_version = _check_and_promote(store, good)
    assert all(r.passed for r in results) and data_version.value == "good"
    bad = adapters.publish_adapter(
        store, "ada", "sft", "bad", folder, {"metrics": {"final_loss": float("nan")}}
    )
    (store.root / "adapters/ada/sft/bad/adapter_model.safetensors").unlink()
    results, data_version = _check_and_promote(store, bad)
    [result] = results
    assert not result.passed and result.metadata["missing"].value == ["adapter_model.safetensors"]
    assert data_version.value == "good" and adapters.latest_adapter(store, "ada", "sft").version == "good"


def test_a_half_downloaded_adapter_is_downloaded_again(tmp_path: Path, s3_client) -> None:  # type: ignore[no-untyped-def]
    store = S3ArtifactStore(s3_client, "twins", f"dl/{uuid.uuid4().hex}")
    folder = tmp_path / "src"
    folder.mkdir()
    for name in adapters.REQUIRED_FILES:
        (folder / name).write_text(name)
    published = adapters.publish_adapter(store, "ada", "sft", "v1", folder, {})
    cache = tmp_path / "cache"
    partial = cache / "ada" / "sft" / "v1"
    partial.mkdir(parents=True)
    (partial / "adapter_config.json").write_text("adapter_config.json")  # a download cut short
    got = adapters.adapter_folder(store, published, cache)
    assert got == partial and sorted(p.name for p in got.iterdir()) == sorted(adapters.REQUIRED_FILES)
    assert not [p for p in got.parent.iterdir() if p.name.startswith(".")]  # no staging folder left
