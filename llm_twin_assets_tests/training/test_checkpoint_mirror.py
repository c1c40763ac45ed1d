"""Checkpoints mirrored to the artifact store (issue 23): a training task killed on one machine resumes on
another whose disk starts empty, from the last checkpoint the first one mirrored to S3 (a real S3 API on
127.0.0.1). A checkpoint is whole or invisible there; a download that does not match its manifest is
refused; the mirror is deleted once the adapter is published."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import uuid
from dataclasses import replace
from pathlib import Path

import pytest

from llm_twin_assets.artifacts import ArtifactError, LocalArtifactStore, S3ArtifactStore
from llm_twin_assets.datasets.versions import latest
from llm_twin_assets.training import adapters
from llm_twin_assets.training.checkpoints import MANIFEST, CheckpointMirror, last_complete_checkpoint
from llm_twin_assets.training.config import TrainJob, hyper_for
from llm_twin_assets_tests.training.helpers import publish_small
from llm_twin_assets_tests.training.test_entry_points import ENV


def fake_checkpoint(checkpoints: Path, step: int, best: str | None = None) -> Path:
    folder = checkpoints / f"checkpoint-{step}"
    (folder / "nested").mkdir(parents=True)
    (folder / "optimizer.pt").write_bytes(os.urandom(3000))
    (folder / "nested" / "weights.bin").write_bytes(os.urandom(500))
    (folder / "trainer_state.json").write_text(
        json.dumps({"global_step": step, "best_model_checkpoint": best})
    )
    return folder


def test_a_checkpoint_is_whole_or_invisible_and_comes_back_checked(tmp_path: Path, s3_client) -> None:  # type: ignore[no-untyped-def]
    store = S3ArtifactStore(s3_client, "twins", f"mirror/{uuid.uuid4().hex}")
    mirror = CheckpointMirror.for_job(store, "ada", "sft", "v1")
    assert mirror is not None and mirror.where().endswith("/checkpoints/ada/sft/v1")
    assert CheckpointMirror.for_job(LocalArtifactStore(tmp_path / "a"), "ada", "sft", "v1") is None
    assert CheckpointMirror.for_job(store, "ada", "sft", "") is None

    there = tmp_path / "machine-a" / "checkpoints"
    elsewhere = "/machine-a/llm-twin-training/sft/v1/checkpoints/checkpoint-4"
    four, eight = fake_checkpoint(there, 4, best=elsewhere), fake_checkpoint(there, 8, best=elsewhere)
    mirror.upload(four)
    manifest = mirror.upload(eight)
    assert manifest["step"] == 8 and set(manifest["files"]) == {
        "optimizer.pt",
        "nested/weights.bin",
        "trainer_state.json",
    }
    # A checkpoint whose upload was cut off before its manifest is not one.
    torn = fake_checkpoint(there, 12)
    store.put("checkpoints/ada/sft/v1/checkpoint-12/optimizer.pt", (torn / "optimizer.pt").read_bytes())
    assert sorted(mirror.synced()) == [4, 8]
    (torn / "trainer_state.json").unlink()
    with pytest.raises(ArtifactError, match="not whole"):
        mirror.upload(torn)

    # Another machine: both come back byte for byte, and the best one is named where it now is.
    here = tmp_path / "machine-b" / "checkpoints"
    restored = mirror.restore(here)
    assert [p.name for p in restored] == ["checkpoint-4", "checkpoint-8"]
    for name in ("optimizer.pt", "nested/weights.bin"):
        assert (here / "checkpoint-8" / name).read_bytes() == (eight / name).read_bytes()
    state = json.loads((here / "checkpoint-8" / "trainer_state.json").read_text())
    assert state["best_model_checkpoint"] == str(here / "checkpoint-4") and state["global_step"] == 8
    assert last_complete_checkpoint(here) == (str(here / "checkpoint-8"), [])
    assert sorted(p.name for p in here.iterdir()) == ["checkpoint-4", "checkpoint-8"]  # no partial folder

    # Pruned to what the trainer kept: the manifest goes first, then every file.
    assert mirror.prune({8}) == [4]
    assert sorted(mirror.synced()) == [8]
    assert not store.list_keys("checkpoints/ada/sft/v1/checkpoint-4/")

    # A mirrored file that does not match its manifest is refused by name, and nothing is left half-there.
    store.put("checkpoints/ada/sft/v1/checkpoint-8/optimizer.pt", b"not the optimizer state")
    third = tmp_path / "machine-c" / "checkpoints"
    with pytest.raises(ArtifactError, match=r"checkpoint-8/optimizer.pt does not match its manifest"):
        mirror.restore(third)
    assert not third.exists() or not any(third.iterdir())

    mirror.clear()
    assert store.list_keys("checkpoints/ada/sft/v1/") == []


STEPS = 40  # the tiny profile saves every 8 steps and keeps 2


@pytest.mark.slow
def test_a_task_killed_after_a_checkpoint_resumes_on_another_machine(
    tmp_path: Path, s3_endpoint: str, s3_client
) -> None:  # type: ignore[no-untyped-def]
    prefix = f"resume/{uuid.uuid4().hex}"
    store = S3ArtifactStore(s3_client, "twins", prefix)
    local = tmp_path / "launcher"
    publish_small(local)
    for path in sorted(p for p in local.rglob("*") if p.is_file()):
        store.put(path.relative_to(local).as_posix(), path.read_bytes())
    job = TrainJob(
        stage="sft",
        profile="tiny",
        author="ada",
        base_model="tiny",
        artifacts_url=f"s3://twins/{prefix}",
        dataset_version=latest(store, "ada", "instruct").version,
        output_dir="unused",
        adapter_version="s1",
        threads=1,
        hyper=replace(hyper_for("sft", "tiny"), max_steps=STEPS),
    )
    payload = json.dumps(job.remote())
    mirror = CheckpointMirror(store, "checkpoints/ada/sft/s1")
    env = {
        **ENV,
        "AWS_ENDPOINT_URL": s3_endpoint,
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_DEFAULT_REGION": "us-east-1",
    }

    def task(name: str) -> tuple[Path, list[str]]:
        folder = tmp_path / name
        folder.mkdir()
        (folder / "job.json").write_text(payload)
        command = [sys.executable, "-m", "llm_twin_assets.training.sft", "--config", "job.json"]
        return folder, command

    # Machine A: killed (SIGKILL, as a lost instance) once its first checkpoint is mirrored.
    first, command = task("machine-a")
    process = subprocess.Popen(
        command,
        cwd=first,
        env={**env, "LLM_TWIN_HOME": str(first / "home")},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 300
    while not store.exists(f"checkpoints/ada/sft/s1/checkpoint-8/{MANIFEST}"):
        assert process.poll() is None, "the trainer ended before its first checkpoint was mirrored"
        assert time.monotonic() < deadline, "no checkpoint was mirrored within 300 s"
        time.sleep(0.02)
    process.kill()
    process.wait(30)
    mirrored = max(mirror.synced())
    assert 8 <= mirrored < STEPS
    assert not adapters.exists(store, "ada", "sft", "s1"), "the killed task published its adapter"

    # Machine B: another disk and data home; it downloads the mirror and trains only what was left.
    second, command = task("machine-b")
    done = subprocess.run(
        command,
        cwd=second,
        env={**env, "LLM_TWIN_HOME": str(second / "home")},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    log = (second / job.remote()["output_dir"] / "train.log").read_text()
    assert f"checkpoint-{mirrored} from s3://twins/{prefix}/checkpoints/ada/sft/s1" in log, log[-3000:]
    assert re.search(rf"resuming from \S*checkpoints/checkpoint-{mirrored}\b", log), log[-3000:]
    trained = [int(m) for m in re.findall(rf"step (\d+)/{STEPS} loss", log)]
    assert trained == list(range(mirrored + 1, STEPS + 1))

    published = adapters.get_adapter(store, "ada", "sft", "s1")
    metrics = published.manifest["metrics"]
    assert metrics["steps"] == STEPS and metrics["resumed_from"].endswith(f"checkpoint-{mirrored}")
    assert [p["step"] for p in metrics["losses"]] == list(range(1, STEPS + 1))  # the whole curve, once
    assert adapters.completeness(store, published).passed
    assert store.list_keys("checkpoints/ada/sft/s1/") == []  # published: the mirror is gone
