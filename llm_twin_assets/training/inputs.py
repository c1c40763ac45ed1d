"""What a training job reads: its dataset's training split in TRL's formats (examples that do not fit
``max_length`` left out, never truncated), its base model folder and, for DPO, the parent SFT adapter."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from llm_twin_assets.training.config import TrainingConfigError, TrainJob


def artifact_store(url: str):
    from llm_twin_assets.artifacts import open_store

    return open_store(url, Path(url))


def load_rows(job: TrainJob) -> list[dict[str, Any]]:
    """The training split of the exact dataset version the job names, in TRL's formats."""
    from llm_twin_assets.datasets.versions import get_version, read_splits

    store = artifact_store(job.artifacts_url)
    version = get_version(store, job.author, job.dataset_name, job.dataset_version)
    train = read_splits(store, version)["train"]
    require_examples(job, train.height)
    # Each row keeps its document, for the validation split (training.validation); dropped before training.
    if job.stage == "sft":  # prompt/completion: the loss is on the author's answer only
        return [
            {
                "prompt": [{"role": "user", "content": r["instruction"]}],
                "completion": [{"role": "assistant", "content": r["answer"]}],
                "document_id": r["document_id"],
            }
            for r in train.iter_rows(named=True)
        ]
    return [
        {
            "prompt": [{"role": "user", "content": r["prompt"]}],
            "chosen": [{"role": "assistant", "content": r["chosen"]}],
            "rejected": [{"role": "assistant", "content": r["rejected"]}],
            "document_id": r["document_id"],
        }
        for r in train.iter_rows(named=True)
    ]


def require_examples(job: TrainJob, count: int, why: str = "") -> None:
    if count < job.hyper.min_examples:
        raise TrainingConfigError(
            f"{job.dataset_name} dataset {job.dataset_version} of {job.author!r} has {count} training "
            f"examples{why}; at least {job.hyper.min_examples} are needed"
        )


def example_lengths(rows: list[dict[str, Any]], tokenizer: Any) -> list[int]:
    """Tokens of each example as the trainer sees it: the chat template over prompt and answer (for a
    preference pair, the longer of its two sides)."""
    sides = ("chosen", "rejected") if rows and "chosen" in rows[0] else ("completion",)
    lengths = [0] * len(rows)
    for side in sides:
        texts = [tokenizer.apply_chat_template(row["prompt"] + row[side], tokenize=False) for row in rows]
        for i, ids in enumerate(tokenizer(texts, add_special_tokens=False)["input_ids"]):
            lengths[i] = max(lengths[i], len(ids))
    return lengths


def within_max_length(
    job: TrainJob, rows: list[dict[str, Any]], tokenizer: Any
) -> tuple[list[dict[str, Any]], int]:
    """The examples that fit ``max_length`` whole, and how many did not (never truncated: see Hyper)."""
    lengths = example_lengths(rows, tokenizer)
    kept = [row for row, n in zip(rows, lengths, strict=True) if n <= job.hyper.max_length]
    over = len(rows) - len(kept)
    require_examples(job, len(kept), f" within max_length {job.hyper.max_length} ({over} longer)")
    return kept, over


def base_model_folder(job: TrainJob) -> Path:
    """The job's base model on this machine (built, found in a cache, or the folder named)."""
    from llm_twin_assets.models.registry import model_folder
    from llm_twin_assets.settings import get_settings

    # A trainer may fetch its hub model (a fresh GPU task has no cache); HF_HUB_OFFLINE still rules here.
    return model_folder(job.base_model, get_settings(), "the job's base_model", download=True)


def parent_adapter_folder(job: TrainJob) -> Path:
    """DPO: the parent SFT adapter, from the artifact store (downloaded next to the work folder)."""
    from llm_twin_assets.training.adapters import adapter_folder, get_adapter

    if not job.parent_adapter:
        raise TrainingConfigError("dpo needs its parent sft adapter: the job names no parent_adapter")
    store = artifact_store(job.artifacts_url)
    return adapter_folder(
        store, get_adapter(store, job.author, "sft", job.parent_adapter), Path(job.output_dir) / "inputs"
    )
