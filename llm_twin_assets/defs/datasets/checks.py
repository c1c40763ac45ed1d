"""The blocking checks a dataset version must pass before it becomes ``latest``.

They run inside the dataset asset, on the version that run built (not on whatever ``latest`` points
at), and the asset promotes the version only when all of them passed: a failed check leaves the
previous version serving. The judgements are plain functions (``datasets.validation``), tested directly.
"""

import warnings
from collections.abc import Callable
from typing import Any

import dagster as dg
import polars as pl

from llm_twin_assets.datasets import validation
from llm_twin_assets.defs.check_results import check_result
from llm_twin_assets.defs.partitions import authors_partitions
from llm_twin_assets.verdicts import Verdict

# Partitioned asset checks are marked preview in Dagster 1.13; we rely on them knowingly.
warnings.filterwarnings("ignore", message="Specifying a partitions_def on an AssetCheckSpec")

Judge = Callable[[str, Any, dict[str, pl.DataFrame]], Verdict]

CHECKS: dict[str, tuple[str, Judge]] = {
    "schema": (
        "Both splits exist with exactly the expected columns and types.",
        lambda name, version, splits: validation.schema(name, splits),
    ),
    "minimum_size": (
        "At least min_examples of the author's own examples, and a non-empty train split.",
        lambda name, version, splits: validation.minimum_size(
            splits, int(version.manifest.get("min_examples", 1))
        ),
    ),
    "no_split_leakage": (
        "No source document has examples in both train and test.",
        lambda name, version, splits: validation.split_leakage(splits),
    ),
    "texts_complete": (
        "No empty or truncated text; chosen and rejected differ.",
        lambda name, version, splits: validation.complete_texts(name, splits),
    ),
}


def check_specs(name: str) -> list[dg.AssetCheckSpec]:
    """``<name>_<check>`` for the ``<name>_dataset`` asset, blocking, per author."""
    return [
        dg.AssetCheckSpec(
            f"{name}_{check}",
            asset=f"{name}_dataset",
            description=description,
            blocking=True,
            partitions_def=authors_partitions,
        )
        for check, (description, _) in CHECKS.items()
    ]


def evaluate(name: str, version: Any, splits: dict[str, pl.DataFrame]) -> list[dg.AssetCheckResult]:
    """Every check on this version, each naming the version it judged."""
    return [
        check_result(
            judge(name, version, splits), f"{name}_{check}", f"{name}_dataset", version=version.version
        )
        for check, (_, judge) in CHECKS.items()
    ]
