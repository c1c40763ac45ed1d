"""Continued pre-training: the SFT adapter first learns the author's own text (the dataset's corpus, the
validation documents left out) as a plain causal LM, then the instructions, starting from where it left."""

import json
from dataclasses import replace
from pathlib import Path

import polars as pl
import pytest

from llm_twin_assets.artifacts import LocalArtifactStore
from llm_twin_assets.datasets.building import CORPUS_SCHEMA, row_id
from llm_twin_assets.datasets.versions import get_version, publish, read_splits
from llm_twin_assets.training.config import TrainingConfigError, TrainJob, hyper_for
from llm_twin_assets_tests.training.test_entry_points import jobs, run


def pretraining_sft_job(tmp_path: Path, tiny_model_path: Path, sft_learning_rate: float) -> TrainJob:
    """An SFT job on the tiny model: 3 epochs of continued pre-training on a dataset version with a
    corpus, a validation split of one document, then 4 SFT steps at ``sft_learning_rate``; not published."""
    sft, _ = jobs(tmp_path, tiny_model_path)
    version = with_corpus(tmp_path / "artifacts", sft.dataset_version)
    hyper = replace(
        sft.hyper,
        pretrain_epochs=3.0,
        pretrain_learning_rate=2e-2,
        learning_rate=sft_learning_rate,
        validation_ratio=0.34,
        max_steps=4,
        save_steps=2,
    )
    return replace(sft, dataset_version=version, hyper=hyper, adapter_version="")


def with_corpus(artifacts: Path, version: str) -> str:
    """The same instruct splits published again with a corpus: each training document's answers plus a
    passage of its own that has no instruction, and a document ("d9") with no SFT row at all."""
    store = LocalArtifactStore(artifacts)
    splits = read_splits(store, get_version(store, "ada", "instruct", version))
    answers = [(r["document_id"], r["answer"]) for r in splits["train"].iter_rows(named=True)]
    extra = [
        (d, f"Essay {d} ends with a line only the corpus has: measure twice, ship once.")
        for d in [*sorted(set(splits["train"]["document_id"])), "d9"]
    ]
    rows = answers + extra
    corpus = pl.DataFrame(
        [
            {"id": row_id(d, str(i), t), "document_id": d, "kind": "post", "text": t}
            for i, (d, t) in enumerate(rows)
        ],
        schema=CORPUS_SCHEMA,
    )
    published, _ = publish(store, "ada", "instruct", splits, {"min_examples": 1}, {"corpus": corpus})
    return published.version


def test_pretraining_is_an_sft_setting() -> None:
    assert hyper_for("sft", "tiny", {"pretrain_epochs": 2}).pretrain_epochs == 2
    with pytest.raises(TrainingConfigError, match="pretrain_epochs is an SFT setting"):
        hyper_for("dpo", "tiny", {"pretrain_epochs": 1})
    with pytest.raises(TrainingConfigError, match="pretrain_learning_rate must be 0 or more"):
        hyper_for("sft", "tiny", {"pretrain_learning_rate": -1})


@pytest.mark.slow
def test_sft_starts_from_the_adapter_pretrained_on_the_corpus_without_the_validation_documents(
    tmp_path: Path, tiny_model_path: Path
) -> None:
    from safetensors.torch import load_file

    # SFT's own learning rate is 0: the adapter it publishes is the pre-trained one, bit for bit.
    job = pretraining_sft_job(tmp_path, tiny_model_path, sft_learning_rate=0.0)
    version = job.dataset_version
    done = run("sft", job, tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    metrics = json.loads((tmp_path / "sft" / "metrics.json").read_text())
    pretraining, held_out = metrics["pretraining"], metrics["validation"]["documents"]
    assert len(held_out) == 1
    store = LocalArtifactStore(tmp_path / "artifacts")
    train = read_splits(store, get_version(store, "ada", "instruct", version))["train"]
    train_docs = set(train["document_id"]) - set(held_out)
    expected = train.filter(pl.col("document_id").is_in(train_docs)).height + len(train_docs) + 1  # + d9
    assert pretraining["source"] == "corpus" and pretraining["passages"] == expected
    assert pretraining["documents"] == len(train_docs) + 1 and pretraining["steps"] > 0
    assert pretraining["final_loss"] < pretraining["first_loss"]  # it learned the author's text
    assert "continued pre-training: 3 epoch(s) over" in done.stderr

    kept = load_file(str(tmp_path / "sft" / "adapter" / "adapter_model.safetensors"))
    pretrained = load_file(str(tmp_path / "sft" / "pretrained" / "adapter_model.safetensors"))
    assert kept.keys() == pretrained.keys()
    assert all((kept[k] == pretrained[k]).all() for k in kept)
    assert any(pretrained[k].abs().sum() > 0 for k in pretrained if "lora_B" in k)  # trained, not initial

    again = run("sft", job, tmp_path)  # a retry: the pre-trained adapter is reused, not trained again
    assert again.returncode == 0, again.stderr[-3000:]
    assert "continued pre-training: reusing" in again.stderr


@pytest.mark.slow
def test_a_dataset_version_without_a_corpus_pretrains_on_its_training_answers(
    tmp_path: Path, tiny_model_path: Path
) -> None:
    sft, _ = jobs(tmp_path, tiny_model_path)
    job = replace(sft, hyper=replace(sft.hyper, pretrain_epochs=1.0, max_steps=2), adapter_version="")
    done = run("sft", job, tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    pretraining = json.loads((tmp_path / "sft" / "metrics.json").read_text())["pretraining"]
    assert pretraining["source"] == "training answers (this dataset version has no corpus)"
    store = LocalArtifactStore(tmp_path / "artifacts")
    train = read_splits(store, get_version(store, "ada", "instruct", sft.dataset_version))["train"]
    assert pretraining["passages"] == train["answer"].n_unique()
