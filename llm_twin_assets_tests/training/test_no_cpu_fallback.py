"""A trainer asked for a GPU on a machine without CUDA stops with one line and exit 2: it never trains on
the CPU instead (a GPU step sent to CPU capacity by mistake would otherwise run for days)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest

from llm_twin_assets.training.config import TrainJob
from llm_twin_assets_tests.training.test_entry_points import jobs


def _train(job: TrainJob, tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    path = tmp_path / f"sft-{time.monotonic_ns()}.yaml"
    job.to_file(path)
    return subprocess.run(
        [sys.executable, "-m", "llm_twin_assets.training.sft", "--config", str(path)],
        capture_output=True,
        text=True,
        # no GPU visible to the trainer, on any machine: the refusal is what is tested
        env={
            **os.environ,
            "HF_HUB_OFFLINE": "1",
            "TOKENIZERS_PARALLELISM": "false",
            "CUDA_VISIBLE_DEVICES": "",
            **env,
        },
        timeout=300,
    )


@pytest.mark.parametrize(
    ("device", "env_device"), [("cuda", "cpu"), ("auto", "cuda")], ids=["job-device", "LLM_TWIN_DEVICE"]
)
def test_a_gpu_job_without_cuda_fails_in_one_line(
    tmp_path: Path, tiny_model_path: Path, device: str, env_device: str
) -> None:
    sft, _ = jobs(tmp_path, tiny_model_path)
    job = replace(sft, device=device)
    done = _train(job, tmp_path, LLM_TWIN_DEVICE=env_device)
    assert done.returncode == 2, done.stderr[-2000:]
    message = "a GPU was asked for"
    [line] = [x for x in done.stderr.splitlines() if message in x]
    assert "no CUDA device" in line
    assert message in (Path(job.output_dir) / "train.log").read_text()
    assert not (Path(job.output_dir) / "checkpoints").exists()  # nothing trained on the CPU


def test_auto_without_a_gpu_request_still_trains_on_the_cpu_path(
    tmp_path: Path, tiny_model_path: Path
) -> None:
    """``auto`` with LLM_TWIN_DEVICE unset or cpu is not a GPU request: the check stays out of its way
    (the job is stopped by a named problem after the device check, to keep this test short)."""
    sft, _ = jobs(tmp_path, tiny_model_path)
    (tmp_path / "empty").mkdir()
    job = replace(sft, device="auto", base_model=str(tmp_path / "empty"))
    done = _train(job, tmp_path, LLM_TWIN_DEVICE="cpu")
    assert done.returncode == 2 and "not a model folder" in done.stderr
    assert "a GPU was asked for" not in done.stderr
