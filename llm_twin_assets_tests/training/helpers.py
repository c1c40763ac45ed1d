"""Small datasets a tiny model can memorise, published as real dataset versions."""

from pathlib import Path

import polars as pl

from llm_twin_assets.artifacts import LocalArtifactStore
from llm_twin_assets.datasets.building import INSTRUCT_SCHEMA, PREFERENCE_SCHEMA, split_frame
from llm_twin_assets.datasets.versions import DatasetVersion, promote, publish


def publish_small(root: Path, author: str = "ada", rows: int = 8) -> tuple[DatasetVersion, DatasetVersion]:
    store = LocalArtifactStore(root)
    instruct = [
        {
            "id": f"r{i}",
            "author": author,
            "document_id": f"d{i % 4}",
            "document_url": "u",
            "kind": "post",
            "source": "author",
            "instruction": f"Tell me about topic {i}.",
            "answer": f"Topic {i} is lovely and I write about it often.",
        }
        for i in range(rows)
    ]
    pairs = [
        {
            "id": f"p{i}",
            "author": author,
            "document_id": f"d{i % 4}",
            "document_url": "u",
            "kind": "post",
            "prompt": f"Tell me about topic {i}.",
            "chosen": f"Topic {i} is lovely and I write about it often.",
            "rejected": "I cannot help with that request at all, sorry.",
        }
        for i in range(rows)
    ]
    i, _ = publish(
        store,
        author,
        "instruct",
        split_frame(pl.DataFrame(instruct, schema=INSTRUCT_SCHEMA), 0.25, 1),
        {"min_examples": 1},
    )
    p, _ = publish(
        store,
        author,
        "preference",
        split_frame(pl.DataFrame(pairs, schema=PREFERENCE_SCHEMA), 0.25, 1),
        {"min_examples": 1},
    )
    promote(store, i)
    promote(store, p)
    return i, p
