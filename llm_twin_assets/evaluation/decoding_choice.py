"""Decoding chosen on a validation split: which anti-loop rules the twin generates with, decided on
documents held out of training and apart from the test split, before the test split is read.

The candidates (:data:`GRID`, after the configured rules) are tried with the twin on the validation
examples: the author's instructions from the documents its SFT (and DPO) stage held out for validation.
Each candidate's answers are measured like the evaluation measures them:

- ``repeated_4gram_share`` (pooled over the answers) against the author's own on the same examples,
- ``finished``: the share of answers that ended on their own within the generation budget,
- ``style_distance``: Burrows' Delta of the answers to the author's validation answers.

The rule: among the candidates that do not loop (repeats at most the author's + ``max_repeat_excess``)
and finish (at least ``min_finished``), the one closest to the author's style; ties go to the earlier
candidate. When none meets both, the least degenerate (smallest shortfall on the two) is chosen and the
choice says so. With no validation examples, the configured rules are kept, with the reason.

The chosen rules are what every model of the evaluation then generates with on the test split, and what
the release it passes is served with.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from llm_twin_assets.decoding_rules import Decoding

GRID: tuple[Decoding, ...] = (
    Decoding(),
    Decoding(no_repeat_ngram_size=3),
    Decoding(no_repeat_ngram_size=4),
    Decoding(no_repeat_ngram_size=3, repetition_penalty=1.15),
    Decoding(repetition_penalty=1.3),
    Decoding(no_repeat_ngram_size=3, no_repeat_word_ngram_size=4),
)
"""Candidates tried after the configured rules: greedy, no repeated 3- or 4-token n-gram, repetition
penalties (alone and with the 3-gram rule), and the 3-token rule with no repeated run of 4 words (which
catches a line repeated with other spacing or quoting: the 3-token rule alone let the second real
author's twin repeat 12% of its word 4-grams)."""


def candidates(configured: dict[str, Any]) -> list[dict[str, Any]]:
    """The configured rules first, then :data:`GRID`, without duplicates."""
    seen: list[Decoding] = []
    for decoding in (Decoding.from_dict(configured), *GRID):
        if decoding not in seen:
            seen.append(decoding)
    return [d.as_dict() for d in seen]


@dataclass(frozen=True)
class Trial:
    decoding: dict[str, Any]
    repeated_4gram_share: float
    finished: float
    style_distance: float | None
    met_rules: bool
    shortfall: float
    """How far the candidate misses the two rules (0 when it meets them)."""

    def as_dict(self) -> dict[str, Any]:
        return {
            "decoding": self.decoding,
            "repeated_4gram_share": round(self.repeated_4gram_share, 4),
            "finished": round(self.finished, 4),
            "style_distance": None if self.style_distance is None else round(self.style_distance, 4),
            "met_rules": self.met_rules,
        }


def trial(
    decoding: dict[str, Any],
    answers: Sequence[str],
    finished: Sequence[bool],
    author_answers: Sequence[str],
    background: Sequence[str],
    max_repeat_excess: float,
    min_finished: float,
) -> Trial:
    """One candidate's answers on the validation examples, measured against the author's."""
    from llm_twin_assets.evaluation.degeneration import counts
    from llm_twin_assets.evaluation.stylometry import delta

    def share(texts: Sequence[str]) -> float:
        found = [counts(t) for t in texts]
        total = sum(c.word_4grams for c in found)
        return sum(c.repeated_4grams for c in found) / total if total else 0.0

    repeats = share(answers)
    done = sum(bool(f) for f in finished) / len(finished) if finished else 0.0
    try:
        style: float | None = delta(answers, author_answers, background)
    except ValueError:  # no background to scale on, or no text on one side
        style = None
    if style is not None and style != style:  # NaN: no feature varies
        style = None
    excess = max(0.0, repeats - (share(author_answers) + max_repeat_excess))
    missing = max(0.0, min_finished - done)
    return Trial(decoding, repeats, done, style, excess == 0 and missing == 0, excess + missing)


def choose(trials: Sequence[Trial]) -> tuple[Trial, str]:
    """The chosen trial and why (see the module's rule)."""
    if not trials:
        raise ValueError("no decoding candidates were tried")
    passing = [t for t in trials if t.met_rules]
    if passing:
        styled = [t for t in passing if t.style_distance is not None]
        if styled:
            best = min(styled, key=lambda t: t.style_distance)  # type: ignore[arg-type,return-value]
            return best, (
                f"closest to the author's style (delta {best.style_distance:.3f}) of the "
                f"{len(passing)} of {len(trials)} candidates that neither loop nor run out of budget"
            )
        return passing[0], f"the first of {len(passing)} candidates that neither loop nor run out of budget"
    best = min(trials, key=lambda t: t.shortfall)
    return best, (
        f"no candidate met the rules (no loops, enough finished): the least degenerate "
        f"(repeats {best.repeated_4gram_share:.2f}, finished {best.finished:.2f})"
    )


def summary(
    chosen: Trial, reason: str, trials: Sequence[Trial], examples: int, documents: int
) -> dict[str, Any]:
    """What the evaluation records (results ``decoding``): the rules chosen, why, and every trial."""
    return {
        "chosen": chosen.decoding,
        "rule": reason,
        "on": "validation",
        "validation_examples": examples,
        "validation_documents": documents,
        "candidates": [t.as_dict() for t in trials],
    }


def kept(configured: dict[str, Any], reason: str) -> dict[str, Any]:
    """The configured rules kept without a choice (no validation examples, or choosing turned off)."""
    return {
        "chosen": Decoding.from_dict(configured).as_dict(),
        "rule": reason,
        "on": "configuration",
        "validation_examples": 0,
        "validation_documents": 0,
        "candidates": [],
    }
