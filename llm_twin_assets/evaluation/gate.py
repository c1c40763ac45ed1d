"""The quality gate: the twin must beat its base model on held-out text before it is released.

Two comparisons, both without retrieval (the model alone), both with margins:
- perplexity of the author's held-out answers: twin <= base x (1 - ``perplexity_margin``);
- author-likeness (mean P(author) of the generated answers): twin >= base + ``likeness_margin``,
  believed only when the authorship classifier tells the two voices apart on held-out text
  (AUC >= ``min_classifier_auc``); a classifier that cannot is a failed gate, never a pass by default.

A failed gate says by how much each comparison missed. Defaults (and how they were chosen) in README.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class GateSettings:
    perplexity_margin: float = 0.05
    """The twin's held-out perplexity must be at least this share below the base model's."""
    likeness_margin: float = 0.05
    """The twin's mean P(author) must exceed the base model's by at least this much (absolute)."""
    min_classifier_auc: float = 0.75
    """Below this held-out AUC the classifier cannot tell the voices apart: likeness is not believed."""


@dataclass(frozen=True)
class GateDecision:
    passed: bool
    checks: dict[str, dict[str, Any]]
    reasons: list[str] = field(default_factory=list)
    settings: dict[str, float] = field(default_factory=dict)

    def summary(self) -> str:
        if self.passed:
            return "passed: " + "; ".join(c["detail"] for c in self.checks.values())
        return "failed: " + "; ".join(self.reasons)

    def as_dict(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "checks": self.checks,
            "reasons": self.reasons,
            "settings": self.settings,
        }


def decide(results: dict[str, Any], settings: GateSettings | None = None) -> GateDecision:
    settings = settings or GateSettings()
    models = results["models"]
    base, twin = models["base"]["metrics"], models["twin"]["metrics"]
    checks: dict[str, dict[str, Any]] = {}
    reasons: list[str] = []

    limit = base["perplexity"] * (1 - settings.perplexity_margin)
    ok = twin["perplexity"] <= limit
    gain = 1 - twin["perplexity"] / base["perplexity"]
    detail = (
        f"perplexity {twin['perplexity']:.3f} vs base {base['perplexity']:.3f} ({gain:+.1%} better; "
        f"needs {settings.perplexity_margin:.0%})"
    )
    checks["perplexity"] = {
        "passed": ok,
        "twin": twin["perplexity"],
        "base": base["perplexity"],
        "required_at_most": limit,
        "missed_by": 0.0 if ok else twin["perplexity"] - limit,
        "detail": detail,
    }
    if not ok:
        reasons.append(f"{detail}: missed by {twin['perplexity'] - limit:.3f}")

    auc = results["classifier"].get("held_out_auc")
    needed = base["author_likeness"] + settings.likeness_margin
    if auc is None or auc < settings.min_classifier_auc:
        shown = "not measurable" if auc is None else f"{auc:.3f}"
        detail = (
            f"author-likeness not believed: the classifier's held-out AUC is {shown} "
            f"(needs {settings.min_classifier_auc}); build the datasets from more of the author's text"
        )
        checks["author_likeness"] = {"passed": False, "classifier_auc": auc, "detail": detail}
        reasons.append(detail)
    else:
        ok = twin["author_likeness"] >= needed
        detail = (
            f"author-likeness {twin['author_likeness']:.3f} vs base {base['author_likeness']:.3f} "
            f"(needs +{settings.likeness_margin}; classifier AUC {auc:.3f})"
        )
        checks["author_likeness"] = {
            "passed": ok,
            "twin": twin["author_likeness"],
            "base": base["author_likeness"],
            "required_at_least": needed,
            "missed_by": 0.0 if ok else needed - twin["author_likeness"],
            "classifier_auc": auc,
            "detail": detail,
        }
        if not ok:
            reasons.append(f"{detail}: missed by {needed - twin['author_likeness']:.3f}")
    return GateDecision(not reasons, checks, reasons, asdict(settings))
