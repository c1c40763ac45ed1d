"""Dataset versions as ``datasets.Dataset`` objects in the conversational formats TRL expects.

- instruct -> ``messages``: [user instruction, assistant answer]          (SFTTrainer)
- preference -> ``prompt``: [user], ``chosen``: [assistant], ``rejected``: [assistant]   (DPOTrainer)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import polars as pl

from llm_twin_assets.artifacts import ArtifactStore
from llm_twin_assets.datasets.versions import DatasetVersion, get_version, latest, read_splits

if TYPE_CHECKING:
    from datasets import DatasetDict


def to_trl(name: str, frame: pl.DataFrame) -> list[dict[str, object]]:
    if name == "instruct":
        return [
            {
                "messages": [
                    {"role": "user", "content": row["instruction"]},
                    {"role": "assistant", "content": row["answer"]},
                ],
                "id": row["id"],
                "document_id": row["document_id"],
            }
            for row in frame.iter_rows(named=True)
        ]
    if name == "preference":
        return [
            {
                "prompt": [{"role": "user", "content": row["prompt"]}],
                "chosen": [{"role": "assistant", "content": row["chosen"]}],
                "rejected": [{"role": "assistant", "content": row["rejected"]}],
                "id": row["id"],
                "document_id": row["document_id"],
            }
            for row in frame.iter_rows(named=True)
        ]
    raise ValueError(f"unknown dataset {name!r}: expected 'instruct' or 'preference'")


def load_dataset(store: ArtifactStore, author: str, name: str, version: str | None = None) -> DatasetDict:
    """One version (the latest by default) as a ``DatasetDict`` with ``train`` and ``test`` splits."""
    from datasets import Dataset, DatasetDict

    chosen: DatasetVersion = (
        latest(store, author, name) if version is None else get_version(store, author, name, version)
    )
    return DatasetDict(
        {split: Dataset.from_list(to_trl(name, frame)) for split, frame in read_splits(store, chosen).items()}
    )
