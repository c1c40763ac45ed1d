"""A validation split carved from the training split by document: the best checkpoint is the adapter kept,
and a DPO that never beat its step-0 validation loss is not promoted."""

import json
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import pytest

from llm_twin_assets.training.config import TrainingConfigError, hyper_for
from llm_twin_assets.training.validation import ValidationReport, split_by_document
from llm_twin_assets_tests.training.test_entry_points import jobs, run
from llm_twin_assets_tests.training.test_pretraining import pretraining_sft_job


def rows(documents: int, per_document: int = 2) -> list[dict[str, object]]:
    return [{"document_id": f"d{d}", "n": i} for d in range(documents) for i in range(per_document)]


def test_the_split_is_by_document_seeded_and_refused_when_too_few_documents_stay() -> None:
    split = split_by_document(rows(10), 0.2, seed=7)
    held = {r["document_id"] for r in split.validation}
    assert held == set(split.documents) and len(held) == 2
    assert held.isdisjoint({r["document_id"] for r in split.train}) and len(split.train) == 16
    assert split_by_document(rows(10), 0.2, seed=7).documents == split.documents  # same rows, same split

    small = split_by_document(rows(2), 0.2, seed=7)
    assert small.validation == [] and len(small.train) == 4
    assert small.reason == "2 training documents: too few to hold 1 out and keep 2 for training"
    assert split_by_document(rows(5), 0.0, seed=7).reason == "validation_ratio is 0"


def test_the_report_picks_the_best_trained_step_and_says_whether_it_improved() -> None:
    curve = [{"step": 0.0, "loss": 2.0}, {"step": 4.0, "loss": 1.5}, {"step": 8.0, "loss": 1.7}]
    summary = ValidationReport(3, ["d1"], curve).as_dict()
    assert (summary["best_step"], summary["best_loss"], summary["improved"]) == (4, 1.5, True)
    worse = ValidationReport(3, ["d1"], [{"step": 0.0, "loss": 1.0}, {"step": 4.0, "loss": 1.2}]).as_dict()
    assert worse["improved"] is False and worse["best_step"] == 4


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"validation_ratio": 0.5}, "validation_ratio must be in [0, 0.5)"),
        ({"rpo_alpha": -1}, "rpo_alpha must be 0 or more"),
    ],
)
def test_bad_validation_settings_are_named(overrides: dict[str, object], message: str) -> None:
    with pytest.raises(TrainingConfigError, match=message.replace("[", r"\[").replace(")", r"\)")):
        hyper_for("sft", "tiny", overrides)


@pytest.mark.slow
def test_sft_keeps_its_best_checkpoint_and_a_dpo_that_never_improves_is_not_promoted(
    tmp_path: Path, tiny_model_path: Path
) -> None:
    from safetensors.torch import load_file

    from llm_twin_assets.defs.training.assets import _validation_verdict

    sft, dpo = jobs(tmp_path, tiny_model_path)
    # A learning rate high enough to overfit 4 rows: the validation loss falls, then rises.
    sft = replace(
        sft, hyper=replace(sft.hyper, validation_ratio=0.34, learning_rate=2e-2, max_steps=24, save_steps=4)
    )
    done = run("sft", sft, tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    metrics = json.loads((tmp_path / "sft" / "metrics.json").read_text())
    validation = metrics["validation"]
    curve = validation["curve"]
    assert [int(p["step"]) for p in curve] == [0, 4, 8, 12, 16, 20, 24]
    best = min(curve[1:], key=lambda p: p["loss"])
    assert validation["best_step"] == int(best["step"]) and validation["best_loss"] == best["loss"]
    assert validation["improved"] is (best["loss"] < curve[0]["loss"])
    assert "validation: best loss" in done.stderr
    kept = load_file(str(tmp_path / "sft" / "adapter" / "adapter_model.safetensors"))
    if validation["improved"]:
        assert validation["kept"] == "best checkpoint"
        at_best = load_file(
            str(
                tmp_path
                / "sft"
                / "checkpoints"
                / f"checkpoint-{best['step']:.0f}"
                / "adapter_model.safetensors"
            )
        )
        assert kept.keys() == at_best.keys() and all((kept[k] == at_best[k]).all() for k in kept)
    else:  # no checkpoint beat step 0: the untrained adapter (LoRA's B starts at zero) is what is kept
        assert validation["kept"] == "step 0"
        assert all(not v.any() for k, v in kept.items() if "lora_B" in k)

    # DPO with a learning rate of 0 (RPO on): it cannot beat step 0, so its blocking check fails.
    dpo = replace(dpo, hyper=replace(dpo.hyper, validation_ratio=0.34, learning_rate=0.0, rpo_alpha=1.0))
    done = run("dpo", dpo, tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    metrics = json.loads((tmp_path / "dpo" / "metrics.json").read_text())
    assert metrics["validation"]["improved"] is False
    assert "rewards/margins" in metrics["validation"]["curve"][0]
    verdict = _validation_verdict(SimpleNamespace(manifest={"metrics": metrics}))
    assert verdict.passed is False and verdict.metadata["best_loss"] >= verdict.metadata["initial_loss"]  # type: ignore[operator]
    verdict = _validation_verdict(SimpleNamespace(manifest={"metrics": {"validation": {"reason": "x"}}}))
    assert verdict.passed is True and verdict.metadata == {"note": "no validation split: x"}


@pytest.mark.slow
def test_an_sft_that_never_beats_step_0_keeps_the_weights_it_started_from(
    tmp_path: Path, tiny_model_path: Path
) -> None:
    """Continued pre-training, then an SFT whose learning rate (50) wrecks what it learned (its validation loss
    only rises): the adapter kept is the one continued pre-training made, not SFT's best checkpoint."""
    from safetensors.torch import load_file

    done = run("sft", pretraining_sft_job(tmp_path, tiny_model_path, sft_learning_rate=50.0), tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    validation = json.loads((tmp_path / "sft" / "metrics.json").read_text())["validation"]
    assert validation["improved"] is False and validation["kept"] == "step 0", validation
    assert "the weights the stage started from are kept" in done.stderr
    kept = load_file(str(tmp_path / "sft" / "adapter" / "adapter_model.safetensors"))
    pretrained = load_file(str(tmp_path / "sft" / "pretrained" / "adapter_model.safetensors"))
    trained = load_file(str(tmp_path / "sft" / "checkpoints" / "checkpoint-4" / "adapter_model.safetensors"))
    assert kept.keys() == pretrained.keys()
    assert all((kept[k] == pretrained[k]).all() for k in kept)
    assert not all((trained[k] == pretrained[k]).all() for k in trained)  # SFT did move the weights
