"""An evaluation job for tests that need one but run no evaluation: fixed stand-in versions and paths."""

from __future__ import annotations

from typing import Any

from llm_twin_assets.evaluation.job import EvalJob


def eval_job(**fields: Any) -> EvalJob:
    """An EvalJob for author ``ada`` whose versions, paths and models are fixed stand-ins; ``fields`` on top."""
    defaults: dict[str, Any] = {
        "author": "ada",
        "artifacts_url": "",
        "output_dir": "",
        "sft_version": "s",
        "dpo_version": "d",
        "base_model": "tiny",
        "instruct_version": "i",
        "preference_version": "p",
        "embedding_model": "bundled",
        "examples": [],
    }
    return EvalJob(**(defaults | fields))
