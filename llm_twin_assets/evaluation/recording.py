"""An evaluation's results, decided and recorded: the gate's decision on them, the record PostgreSQL keeps
(what ``eval show`` and the release read), and what the gate's check shows."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from llm_twin_assets.evaluation.gate import GateDecision, GateSettings, decide
from llm_twin_assets.evaluation.run import examples_key
from llm_twin_assets.store import evaluations
from llm_twin_assets.verdicts import Verdict

if TYPE_CHECKING:
    from llm_twin_assets.evaluation.job import EvalJob
    from llm_twin_assets.store.database import Database


def decide_and_record(
    database: Database,
    job: EvalJob,
    results: dict[str, Any],
    gate: GateSettings,
    *,
    options: dict[str, Any],
    other_writers: int,
) -> GateDecision:
    """Decide the gate on ``results`` and save the evaluation (metrics per model, the decision, and the
    settings it was made with: ``options``, the job's own, the decoding the release will be served with)."""
    decision = decide(results, gate)
    record = evaluations.EvaluationRecord(
        id=job.evaluation_id,
        author=job.author,
        base_model=job.base_model,
        sft_version=job.sft_version,
        dpo_version=job.dpo_version,
        instruct_version=job.instruct_version,
        preference_version=job.preference_version,
        examples=len(job.examples),
        examples_key=examples_key(job.author, job.evaluation_id),
        settings={
            **options,
            "embedding_model": job.embedding_model,
            "timings": results.get("timings", {}),
            "device": results.get("device"),
            "generation": results.get("generation", {}),
            "held_out": results.get("held_out", {}),
            "bootstrap": results.get("bootstrap", {}),
            "differences": results.get("differences", {}),
            "other_writers": other_writers,
            # what every model generated with (chosen on validation): the release is served with it
            "decoding": results.get("decoding", {}).get("chosen", options.get("decoding")),
            "decoding_choice": results.get("decoding", {}),
        },
        classifier={**results["classifier"], "other_writers": results.get("writer_classifier", {})},
        gate=decision.as_dict(),
        gate_passed=decision.passed,
    )
    with database.connect() as conn:
        evaluations.save(conn, record, results["models"])
    return decision


def gate_verdict(decision: GateDecision, evaluation_id: str) -> Verdict:
    """The gate as a check result: each check's pass and what it missed by, the reasons, the margins."""
    seen: dict[str, object] = {
        "evaluation_id": evaluation_id,
        **{f"{name}_passed": bool(c["passed"]) for name, c in decision.checks.items()},
        **{
            f"{name}_missed_by": float(c["missed_by"])
            for name, c in decision.checks.items()
            if c.get("missed_by") is not None
        },
        "reasons": decision.reasons,
        "margins": decision.settings,
    }
    return Verdict(decision.passed, seen, description=decision.summary())
