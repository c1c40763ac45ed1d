"""The evaluation's metrics: one registry that the summary, the tables, the RAG-effect line, the Dagster
metadata and the gate's documentation all derive from. What each metric means is in ``measures``.

Adding a metric that is the mean of a per-answer score (the usual case):

1. an entry in :data:`REGISTRY` below, with ``per_answer`` naming the score's column (its interval,
   its table column, its paired differences, its chart and its RAG-effect entry follow from the entry);
2. the column itself, computed per answer in ``evaluation/measures.py`` (``measure_answers``).

Then bump :data:`METRICS_VERSION` (same file): every author's evaluation is measured again on its next
run. A metric that is not a mean of a per-answer score (a pooled ratio, a distance between pooled
profiles) is computed by name in ``evaluation/summary.py``; a metric the gate decides on also needs its
check in ``evaluation/gate.py`` (``gated_by`` names it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

METRICS_VERSION = "4"
"""Part of every evaluation's id: bump when a metric is added or its code changes what it measures;
older evaluations are then not reused. 2: bootstrap intervals, grouped cross-validated classifier AUC,
likeness against other writers, degeneration metrics, a generation budget derived from the author's
answer lengths, pooled style profiles (and the type/token ratio of long texts as a ratio).
3: decoding chosen on the validation split before the test split is generated. 4: the served answer path
(``twin+rag``) compared with intervals too: against ``base+rag`` and against the author."""

Table = Literal["voice", "degeneration", "retrieval"]
Pair = Literal["twin-base", "twin-author", "twin+rag-base+rag", "twin+rag-author"]
"""``left-right``: two rows of the summary (a model, ``+rag`` for its answers with retrieval, or the
author's held-out answers). ``twin+rag`` is what the service answers with by default."""
WITH_RAG: tuple[Pair, ...] = ("twin-base", "twin+rag-base+rag")


@dataclass(frozen=True)
class Metric:
    name: str
    label: str
    """The table column's header (its arrow, the direction, is added)."""
    higher_is_better: bool | None
    """Which way is better; ``None`` for a description (answer length, distinct-n) with no direction."""
    fmt: str
    table: Table
    """Where it is shown: the voice table, the degeneration table, or the retrieval line."""
    per_answer: str | None = None
    """The measures frame's column whose mean (over the answers that have a value) is the metric; None:
    computed by name in ``summary``."""
    compared: tuple[Pair, ...] = ()
    """The paired differences measured with an interval (twin - base, twin - author, and the same with
    retrieval)."""
    gain: bool = False
    """The twin - base difference is a relative gain, 1 - twin/base (perplexity), not a subtraction."""
    charted: bool = False
    """Drawn in the evaluation's bar chart in the Dagster UI."""
    rag_effect: bool = False
    """Part of the line that says what the author's retrieved passages do to the twin."""
    gated_by: str | None = None
    """The gate check (``gate.CHECKS``) that decides on it."""
    phrase: str = ""
    """How sentences name it (the differences, the RAG-effect line); the label when empty."""

    @property
    def column_label(self) -> str:
        arrow = {True: " ↑", False: " ↓", None: ""}[self.higher_is_better]
        return self.label + arrow

    @property
    def words(self) -> str:
        return self.phrase or self.label

    @property
    def difference_name(self) -> str:
        return f"{self.name}_gain" if self.gain else self.name

    @property
    def difference_label(self) -> str:
        return f"{self.words} gain" if self.gain else self.words

    @property
    def difference_fmt(self) -> str:
        return "{:+.1%}" if self.gain else self.fmt.replace("{:", "{:+", 1)


REGISTRY: tuple[Metric, ...] = (
    Metric(
        "perplexity", "perplexity", False, "{:.2f}", "voice",
        compared=WITH_RAG, gain=True, charted=True, rag_effect=True, gated_by="perplexity",
    ),
    Metric(
        "author_likeness", "likeness", True, "{:.3f}", "voice", per_answer="p_author",
        compared=WITH_RAG, charted=True, rag_effect=True, gated_by="author_likeness",
    ),
    Metric(
        "writer_likeness", "vs writers", True, "{:.3f}", "voice", per_answer="p_writer",
        compared=WITH_RAG, gated_by="writer_likeness", phrase="likeness vs writers",
    ),
    Metric(
        "style_distance", "style dist", False, "{:.3f}", "voice",
        compared=WITH_RAG, charted=True, rag_effect=True, gated_by="style_vs_base",
        phrase="style distance",
    ),
    Metric(
        "content_similarity", "content sim", True, "{:.3f}", "voice", per_answer="content_similarity",
        charted=True, phrase="content similarity",
    ),
    Metric("judge_accuracy", "judge acc", True, "{:.2f}", "voice", per_answer="judge_accuracy"),
    Metric("judge_style", "judge style", True, "{:.2f}", "voice", per_answer="judge_style"),
    Metric(
        "finished", "finished", True, "{:.0%}", "degeneration", per_answer="finished",
        rag_effect=True, gated_by="finished",
    ),
    Metric("answer_words", "words", None, "{:.0f}", "degeneration"),
    Metric("length_ratio", "length ×", None, "{:.2f}", "degeneration"),
    Metric(
        "repeated_4gram_share", "repeats 4g", False, "{:.1%}", "degeneration",
        compared=("twin-author", "twin+rag-author"), rag_effect=True, gated_by="repetition",
        phrase="repeated 4-grams",
    ),
    Metric("distinct_1", "distinct-1", None, "{:.2f}", "degeneration"),
    Metric("distinct_2", "distinct-2", None, "{:.2f}", "degeneration"),
    Metric(
        "markup_echo", "markup", False, "{:.0%}", "degeneration", rag_effect=True, phrase="markup echoes"
    ),
    Metric("hit@1", "hit@1", True, "{:.2f}", "retrieval"),
    Metric("hit@5", "hit@5", True, "{:.2f}", "retrieval"),
    Metric("mrr", "MRR", True, "{:.3f}", "retrieval"),
)  # fmt: skip

BY_NAME = {m.name: m for m in REGISTRY}


def shown_in(table: Table) -> tuple[Metric, ...]:
    """The metrics of one table, in registry order."""
    return tuple(m for m in REGISTRY if m.table == table)


def per_answer_means() -> tuple[Metric, ...]:
    """The metrics that are the mean of a per-answer column."""
    return tuple(m for m in REGISTRY if m.per_answer is not None)


def differences() -> dict[Pair, tuple[str, ...]]:
    """The paired differences measured, by pair: the metrics' difference names, in registry order."""
    found: dict[Pair, tuple[str, ...]] = {}
    for metric in REGISTRY:
        for pair in metric.compared:
            found[pair] = (*found.get(pair, ()), metric.difference_name)
    return found


def of_difference(name: str) -> Metric:
    """The metric a difference name (``perplexity_gain``, ``style_distance``) is measured on."""
    for metric in REGISTRY:
        if metric.difference_name == name:
            return metric
    raise KeyError(f"no metric has a difference called {name!r}")
