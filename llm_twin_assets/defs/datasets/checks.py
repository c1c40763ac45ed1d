"""Checks on the latest published version of each dataset, per author."""

import warnings
from typing import Any

import dagster as dg

from llm_twin_assets.datasets import validation
from llm_twin_assets.defs.datasets.assets import instruct_dataset, preference_dataset
from llm_twin_assets.defs.partitions import authors_partitions
from llm_twin_assets.defs.resources import ArtifactsResource

warnings.filterwarnings("ignore", message="Specifying a partitions_def on an AssetCheckSpec")


def _latest(artifacts: ArtifactsResource, author: str, name: str):  # type: ignore[no-untyped-def]
    from llm_twin_assets.datasets.versions import latest, read_splits

    store = artifacts.store()
    version = latest(store, author, name)
    return version, read_splits(store, version)


def _result(verdict: validation.Verdict, version) -> dg.AssetCheckResult:  # type: ignore[no-untyped-def]
    shown: dict[str, Any] = {
        k: dg.MetadataValue.json(v) if isinstance(v, (dict, list)) else v for k, v in verdict.metadata.items()
    }
    return dg.AssetCheckResult(
        passed=verdict.passed,
        metadata={
            "version": version.version,
            **shown,
        },
    )


def _checks_for(asset, name: str) -> list[dg.AssetChecksDefinition]:  # type: ignore[no-untyped-def]
    def check(suffix: str, description: str, judge):  # type: ignore[no-untyped-def]
        @dg.asset_check(
            asset=asset,
            name=f"{name}_{suffix}",
            partitions_def=authors_partitions,
            blocking=True,
            description=description,
        )
        def _check(
            context: dg.AssetCheckExecutionContext, artifacts: ArtifactsResource
        ) -> dg.AssetCheckResult:
            version, splits = _latest(artifacts, context.partition_key, name)
            return _result(judge(version, splits), version)

        return _check

    return [
        check(
            "schema",
            "Both splits exist with exactly the expected columns and types.",
            lambda v, s: validation.schema(name, s),
        ),
        check(
            "minimum_size",
            "At least min_examples of the author's own examples, and a non-empty train split.",
            lambda v, s: validation.minimum_size(s, int(v.manifest.get("min_examples", 1))),
        ),
        check(
            "no_split_leakage",
            "No source document has examples in both train and test.",
            lambda v, s: validation.split_leakage(s),
        ),
        check(
            "texts_complete",
            "No empty or truncated text; chosen and rejected differ.",
            lambda v, s: validation.complete_texts(name, s),
        ),
    ]


instruct_checks = _checks_for(instruct_dataset, "instruct")
preference_checks = _checks_for(preference_dataset, "preference")
