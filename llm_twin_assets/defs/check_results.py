"""Library verdicts (``llm_twin_assets.verdicts``) as Dagster asset check results: one conversion for
every check of the graph."""

from __future__ import annotations

from typing import Any

import dagster as dg

from llm_twin_assets.verdicts import Verdict


def check_result(
    verdict: Verdict, check_name: str | None = None, asset_key: str | None = None, **also: Any
) -> dg.AssetCheckResult:
    """The verdict as a check result (named when the check is not the function running it); lists and
    dicts in its metadata shown as JSON, ``also`` added to it."""
    metadata = {
        k: dg.MetadataValue.json(v) if isinstance(v, (dict, list)) else v
        for k, v in {**verdict.metadata, **also}.items()
    }
    return dg.AssetCheckResult(
        check_name=check_name,
        asset_key=asset_key,
        passed=verdict.passed,
        severity=dg.AssetCheckSeverity.WARN if verdict.warn_only else dg.AssetCheckSeverity.ERROR,
        description=verdict.description,
        metadata=metadata,
    )
