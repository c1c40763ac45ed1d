"""A validation split for training, carved out of the training split by document: the stage measures
its validation loss at step 0 and every ``save_steps``, keeps the best checkpoint, stops early when asked,
and says whether it ever improved on where it started (an SFT that did not keeps the weights it started
from; a DPO that did not is not promoted).

The dataset's test split is never read here: it is for the evaluation, once.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from typing import Any

MIN_TRAIN_DOCUMENTS = 2
"""A validation split is made only when at least this many documents stay for training."""


@dataclass
class ValidationSplit:
    train: list[dict[str, Any]]
    validation: list[dict[str, Any]]
    documents: list[str]
    """The documents held out for validation."""
    reason: str = ""
    """Why there is no validation split (empty when there is one)."""


def split_by_document(rows: list[dict[str, Any]], ratio: float, seed: int) -> ValidationSplit:
    """Hold out about ``ratio`` of the rows' documents (``document_id``), chosen by a seeded hash, so the
    same rows always give the same split. Rows keep their ``document_id`` key (drop it before training)."""
    if ratio <= 0:
        return ValidationSplit(rows, [], [], "validation_ratio is 0")
    documents = sorted({str(r["document_id"]) for r in rows})
    held = max(1, round(ratio * len(documents)))
    if len(documents) - held < MIN_TRAIN_DOCUMENTS:
        return ValidationSplit(
            rows,
            [],
            [],
            f"{len(documents)} training documents: too few to hold {held} out and keep "
            f"{MIN_TRAIN_DOCUMENTS} for training",
        )
    ranked = sorted(documents, key=lambda d: hashlib.sha256(f"{seed}:{d}".encode()).hexdigest())
    chosen = set(ranked[:held])
    return ValidationSplit(
        [r for r in rows if str(r["document_id"]) not in chosen],
        [r for r in rows if str(r["document_id"]) in chosen],
        sorted(chosen),
    )


def without_documents(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in r.items() if k != "document_id"} for r in rows]


@dataclass
class ValidationReport:
    examples: int
    documents: list[str]
    curve: list[dict[str, float]] = field(default_factory=list)
    """``{"step", "loss", ...}`` per evaluation, step 0 first; DPO adds reward margins and chosen log-probs."""
    kept_start: bool = False
    """The stage kept the weights it started from (SFT: no checkpoint beat step 0 on validation)."""

    def as_dict(self) -> dict[str, Any]:
        finite = [p for p in self.curve if math.isfinite(p["loss"])]
        initial = next((p for p in finite if p["step"] == 0), None)
        trained = [p for p in finite if p["step"] > 0]
        best = min(trained, key=lambda p: (p["loss"], p["step"])) if trained else None
        improved = bool(best and initial and best["loss"] < initial["loss"])
        return {
            "examples": self.examples,
            "documents": self.documents,
            "initial_loss": initial["loss"] if initial else None,
            "best_loss": best["loss"] if best else None,
            "best_step": int(best["step"]) if best else None,
            "improved": improved,
            "kept": "step 0" if self.kept_start else ("best checkpoint" if best else None),
            "curve": self.curve,
        }


def eval_point(step: int, metrics: dict[str, float]) -> dict[str, float]:
    """One evaluation's figures, from the Trainer's ``eval_*`` metrics."""
    point = {"step": float(step), "loss": float(metrics.get("eval_loss", float("nan")))}
    for name in ("rewards/margins", "rewards/accuracies", "logps/chosen"):
        if f"eval_{name}" in metrics:
            point[name] = float(metrics[f"eval_{name}"])
    return point
