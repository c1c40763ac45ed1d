"""Continued pre-training: before SFT, the SFT stage's own LoRA adapter learns the author's text as a plain
causal language model, then goes on to learn the instructions (``Hyper.pretrain_epochs``).

The text is the instruct dataset version's ``corpus`` (``datasets.building.training_corpus``): every
passage of every document outside the test split, including passages that got no usable instruction, so
the model sees more of the author than the SFT examples hold. The documents of the trainer's validation
split are left out too, so the validation loss that picks the best SFT checkpoint stays held out. A dataset
version built before corpora existed falls back to its training answers (said in the metrics).

The result is one adapter folder (``<work>/pretrained``), written whole once: a retried job that finds it
does not train it again, and SFT starts from it (its checkpoints then hold the adapter's state).
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from llm_twin_assets.training.config import TrainingConfigError, TrainJob
from llm_twin_assets.training.reporting import Reporter

DONE = "pretraining.json"


def corpus_rows(store: Any, job: TrainJob, left_out: set[str]) -> tuple[list[dict[str, str]], str]:
    """The texts to pre-train on (documents in ``left_out`` removed) and where they came from."""
    import polars as pl

    from llm_twin_assets.datasets.versions import get_version, read_extra, read_splits

    version = get_version(store, job.author, "instruct", job.dataset_version)
    corpus = read_extra(store, version, "corpus")
    source = "corpus"
    if corpus is None:
        train = read_splits(store, version)["train"].filter(pl.col("source") == "author")
        corpus = train.select("document_id", pl.col("answer").alias("text")).unique(maintain_order=True)
        source = "training answers (this dataset version has no corpus)"
    rows = [
        {"text": r["text"], "document_id": r["document_id"]}
        for r in corpus.iter_rows(named=True)
        if r["document_id"] not in left_out and r["text"].strip()
    ]
    if not rows:
        raise TrainingConfigError(
            f"pretrain_epochs is {job.hyper.pretrain_epochs} but instruct dataset {job.dataset_version} of "
            f"{job.author!r} has no text to pre-train on outside the test and validation documents"
        )
    return rows, source


def pretrain(
    base_model: Callable[[], Any],
    tokenizer: Any,
    rows: list[dict[str, str]],
    source: str,
    job: TrainJob,
    out: Path,
    arguments: dict[str, Any],
    reporter: Reporter,
) -> tuple[Path, dict[str, Any]]:
    """Train a new LoRA adapter on the base model (loaded by ``base_model`` when needed) as a causal LM over
    ``rows``; returns its folder and what it measured. ``arguments`` are the stage's trainer arguments
    (without validation: batch, length, device); epochs and learning rate are its own."""
    from datasets import Dataset
    from transformers.trainer_callback import PrinterCallback
    from trl import SFTConfig, SFTTrainer

    folder = out / "pretrained"
    if (folder / DONE).exists():
        done = json.loads((folder / DONE).read_text())
        reporter.info(f"continued pre-training: reusing {folder} ({done['steps']} steps, trained before)")
        return folder, done
    hyper = job.hyper
    documents = len({r["document_id"] for r in rows})
    words = sum(len(r["text"].split()) for r in rows)
    reporter.info(
        f"continued pre-training: {hyper.pretrain_epochs:g} epoch(s) over {len(rows)} passages "
        f"({words:,} words, {documents} documents) from the {source}"
    )
    args = {
        **arguments,
        "output_dir": str(out / "pretrain-checkpoints"),
        "num_train_epochs": hyper.pretrain_epochs,
        "max_steps": -1,
        "learning_rate": hyper.pretrain_learning_rate or hyper.learning_rate,
        "save_strategy": "no",  # one short run, saved whole at its end
    }
    lora = hyper.lora_config()
    trainer: Any = SFTTrainer(
        model=base_model(),
        args=SFTConfig(**args, dataset_text_field="text"),
        train_dataset=Dataset.from_list([{"text": r["text"]} for r in rows]),
        processing_class=tokenizer,
        peft_config=lora,
    )
    trainer.remove_callback(PrinterCallback)
    start = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - start
    losses = [float(e["loss"]) for e in trainer.state.log_history if "loss" in e]
    done = {
        "source": source,
        "passages": len(rows),
        "documents": documents,
        "words": words,
        "epochs": hyper.pretrain_epochs,
        "steps": int(trainer.state.global_step),
        "first_loss": losses[0] if losses else None,
        "final_loss": losses[-1] if losses else None,
        "tokens": int(trainer.state.num_input_tokens_seen),
        "seconds": round(seconds, 2),
    }
    _save_whole(trainer.model, folder, done)
    curve = f"loss {losses[0]:.4f} -> {losses[-1]:.4f}" if losses else "no loss logged"
    reporter.info(f"continued pre-training: {done['steps']} steps, {curve} in {seconds:.0f} s")
    return folder, done


def _save_whole(model: Any, folder: Path, done: dict[str, Any]) -> None:
    """The adapter and its ``DONE`` record saved next to ``folder``, then renamed into place: a run killed
    while saving leaves no folder that looks finished (and its leftovers are cleared on the next try)."""
    partial = folder.with_name(folder.name + ".partial")
    for leftover in (partial, folder):  # left by a run killed while saving (no DONE in either)
        if leftover.exists():
            shutil.rmtree(leftover)
    model.save_pretrained(partial)
    (partial / DONE).write_text(json.dumps(done, indent=2))
    partial.rename(folder)
