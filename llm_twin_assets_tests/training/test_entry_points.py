"""The trainer entry points, run as a person runs them: ``python -m ... --config job.yaml``."""

import json
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest

from llm_twin_assets.training.config import TrainJob, hyper_for
from llm_twin_assets_tests.training.helpers import publish_small

ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}


def run(stage: str, job: TrainJob, tmp_path: Path, timeout: int = 300) -> subprocess.CompletedProcess[str]:
    path = tmp_path / f"{stage}-{time.monotonic_ns()}.yaml"
    job.to_file(path)
    return subprocess.run(
        [sys.executable, "-m", f"llm_twin_assets.training.{stage}", "--config", str(path)],
        capture_output=True,
        text=True,
        env=ENV,
        timeout=timeout,
    )


def jobs(tmp_path: Path, tiny_model_path: Path) -> tuple[TrainJob, TrainJob]:
    instruct, preference = publish_small(tmp_path / "artifacts")
    common = {
        "author": "ada",
        "base_model": str(tiny_model_path),
        "artifacts_url": str(tmp_path / "artifacts"),
        "threads": 1,
    }
    sft = TrainJob(
        stage="sft",
        profile="tiny",
        dataset_version=instruct.version,
        output_dir=str(tmp_path / "sft"),
        adapter_version="sft-under-test",  # published to the artifact store, where DPO fetches it
        hyper=hyper_for("sft", "tiny"),
        **common,
    )
    dpo = TrainJob(
        stage="dpo",
        profile="tiny",
        dataset_version=preference.version,
        output_dir=str(tmp_path / "dpo"),
        parent_adapter="sft-under-test",
        hyper=hyper_for("dpo", "tiny"),
        **common,
    )
    return sft, dpo


def logits(model_dir: Path, adapter: Path | None):  # type: ignore[no-untyped-def]
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    if adapter is not None:
        model = PeftModel.from_pretrained(model, adapter)
    ids = tokenizer("Tell me about topic 3.", return_tensors="pt")
    with torch.no_grad():
        return model(**ids).logits


@pytest.mark.slow
def test_sft_then_dpo_train_adapters_that_load_and_change_the_model(
    tmp_path: Path, tiny_model_path: Path
) -> None:
    sft, dpo = jobs(tmp_path, tiny_model_path)
    done = run("sft", sft, tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    metrics = json.loads((tmp_path / "sft" / "metrics.json").read_text())
    losses = [p["loss"] for p in metrics["losses"]]
    assert metrics["steps"] == 24 and len(losses) == 24
    assert losses[-1] < losses[0] - 0.3  # it memorises the small dataset
    assert metrics["tokens"] > 0 and metrics["tokens_per_s"] > 0 and metrics["peak_memory_mb"] > 0
    assert metrics["gradient_checkpointing"] is False and metrics["activation_estimate_mb"] > 0
    assert (metrics["liger"], metrics["padding_free"], metrics["attention"]) == (False, False, "sdpa")  # CPU
    assert metrics["memory_plan_mb"] > 0 and "speed-ups: liger off" in done.stderr
    adapter = tmp_path / "sft" / "adapter"
    assert (adapter / "adapter_model.safetensors").exists() and (adapter / "training_job.yaml").exists()
    base, tuned = logits(tiny_model_path, None), logits(tiny_model_path, adapter)
    assert (base - tuned).abs().max() > 1e-3

    done = run("dpo", dpo, tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    metrics = json.loads((tmp_path / "dpo" / "metrics.json").read_text())
    losses = [p["loss"] for p in metrics["losses"]]
    assert losses[-1] < losses[0]  # chosen pulls away from rejected
    assert (tmp_path / "dpo" / "adapter" / "adapter_config.json").exists()

    from llm_twin_assets.training.twin import load_twin

    ids = {"input_ids": __import__("torch").tensor([[1, 2, 3, 4]])}
    sft_only = load_twin(adapter).model(**ids).logits
    twin = load_twin(adapter, tmp_path / "dpo" / "adapter").model(**ids).logits
    assert (sft_only - twin).abs().max() > 1e-4  # the DPO adapter is applied on top of the merged SFT
    assert __import__("torch").is_grad_enabled()  # loading the twin leaves the process's autograd alone


@pytest.mark.slow
def test_the_demo_profile_trains_the_bundled_model(tmp_path: Path, settings) -> None:  # type: ignore[no-untyped-def]
    from llm_twin_assets.models.registry import prepare_smollm2

    sft, _ = jobs(tmp_path, prepare_smollm2(settings.model_cache))
    job = replace(sft, profile="demo", hyper=replace(hyper_for("sft", "demo"), max_steps=2, min_examples=2))
    assert job.hyper.group_by_length
    done = run("sft", job, tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    metrics = json.loads((tmp_path / "sft" / "metrics.json").read_text())
    assert metrics["steps"] == 2 and metrics["profile"] == "demo" and 0 < metrics["final_loss"] < 20


@pytest.mark.slow
@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            lambda j, tmp: replace(j, dataset_version="0000000000000000"),
            "instruct dataset version 0000000000000000 of author 'ada' does not exist",
        ),
        (
            lambda j, tmp: replace(j, hyper=replace(j.hyper, min_examples=100)),
            "has 6 training examples; at least 100 are needed",
        ),
        (
            lambda j, tmp: replace(j, hyper=replace(j.hyper, target_modules=("q_proj", "qkv"))),
            "target module(s) ['qkv'] are not linear layers of this model",
        ),
        (
            lambda j, tmp: replace(
                j, hyper=replace(j.hyper, gradient_checkpointing="auto", batch_size=512, max_length=4096)
            ),
            "batch_size 512 x max_length 4096 needs about",
        ),
        (lambda j, tmp: replace(j, base_model=str(tmp)), "not a model folder (no config.json)"),
        (lambda j, tmp: replace(j, stage="dpo"), "dpo needs its parent sft adapter"),
    ],
    ids=["no-such-version", "too-small", "unknown-target", "batch-too-big", "not-a-model", "dpo-without-sft"],
)
def test_problems_fail_before_training_with_a_named_cause(
    tmp_path: Path, tiny_model_path: Path, change, message: str
) -> None:  # type: ignore[no-untyped-def]
    sft, _ = jobs(tmp_path, tiny_model_path)
    job = change(sft, tmp_path / "empty")
    (tmp_path / "empty").mkdir(exist_ok=True)
    stage = job.stage
    done = run(stage, job, tmp_path)
    assert done.returncode == 2, done.stderr[-2000:]
    assert message in done.stderr
    assert message in (Path(job.output_dir) / "train.log").read_text()
    assert not (Path(job.output_dir) / "checkpoints").exists()


def test_a_base_model_too_big_for_memory_is_refused(tmp_path: Path, tiny_model_path: Path) -> None:
    sft, _ = jobs(tmp_path, tiny_model_path)
    huge = tmp_path / "huge"
    huge.mkdir()
    (huge / "config.json").write_text((tiny_model_path / "config.json").read_text())
    with (huge / "model.safetensors").open("wb") as f:  # sparse: 4 TiB on paper, nothing on disk
        f.truncate(4 << 40)
    done = run("sft", replace(sft, base_model=str(huge)), tmp_path)
    assert done.returncode == 2 and "needs about" in done.stderr and "GiB are free" in done.stderr


@pytest.mark.slow
def test_a_killed_trainer_resumes_from_its_last_checkpoint(tmp_path: Path, tiny_model_path: Path) -> None:
    sft, _ = jobs(tmp_path, tiny_model_path)
    job = replace(sft, hyper=replace(sft.hyper, max_steps=40, save_steps=4))
    path = tmp_path / "job.yaml"
    job.to_file(path)
    command = [sys.executable, "-m", "llm_twin_assets.training.sft", "--config", str(path)]
    process = subprocess.Popen(command, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    checkpoints = tmp_path / "sft" / "checkpoints"
    deadline = time.monotonic() + 240
    while (
        not (checkpoints / "checkpoint-8").exists() and process.poll() is None and time.monotonic() < deadline
    ):
        time.sleep(0.2)
    time.sleep(0.5)  # let the checkpoint finish writing
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert not (tmp_path / "sft" / "metrics.json").exists()  # it really died before the end

    done = subprocess.run(command, env=ENV, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    metrics = json.loads((tmp_path / "sft" / "metrics.json").read_text())
    assert "checkpoint-" in metrics["resumed_from"] and metrics["steps"] == 40
    resumed_at = int(metrics["resumed_from"].rsplit("-", 1)[1])
    assert resumed_at >= 8
    trained_now = [int(m) for m in re.findall(r"step (\d+)/40 loss", done.stderr)]
    assert min(trained_now) > resumed_at  # the steps before were not redone
    assert [p["step"] for p in metrics["losses"]] == list(range(1, 41))  # the whole curve, once

    # Died after training but before publishing: the retry resumes from the last checkpoint, trains
    # nothing, and still reports the run's real final loss (not NaN, which would fail its check forever).
    (tmp_path / "sft" / "metrics.json").unlink()
    again = subprocess.run(command, env=ENV, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr[-3000:]
    redone = json.loads((tmp_path / "sft" / "metrics.json").read_text())
    assert redone["resumed_from"].endswith("checkpoint-40") and redone["steps"] == 40
    assert redone["final_loss"] == metrics["final_loss"] and redone["losses"] == metrics["losses"]
