"""Every metric is declared once (``evaluation.metrics``): tables, differences, the RAG-effect line and the
gate's checks follow from the registry, and a new per-answer metric needs only its entry and its column."""

from dataclasses import replace

import numpy as np
import polars as pl

from llm_twin_assets.evaluation import metrics
from llm_twin_assets.evaluation.gate import CHECKS
from llm_twin_assets.evaluation.intervals import Bootstrap
from llm_twin_assets.evaluation.metrics import REGISTRY, Metric
from llm_twin_assets.evaluation.report import comparison_rows, rag_effect_line, text_table
from llm_twin_assets.evaluation.summary import DIFFERENCES, summarize
from llm_twin_assets_tests.evaluation.test_metrics import voices


def test_names_are_unique_and_every_gated_metric_names_a_gate_check() -> None:
    names = [m.name for m in REGISTRY]
    assert len(names) == len(set(names))
    assert {m.gated_by for m in REGISTRY if m.gated_by} <= set(CHECKS)
    every = {"metrics": {m.name: 0.5 for m in REGISTRY}, "version": "v"}
    header, _ = comparison_rows({"twin": every})
    assert header[2:] == [m.column_label for m in REGISTRY if m.table == "voice"]
    header, _ = comparison_rows({"twin": every}, "degeneration")
    assert "repeats 4g ↓" in header and "words" in header
    assert DIFFERENCES == {
        "twin-base": ("perplexity_gain", "author_likeness", "writer_likeness", "style_distance"),
        "twin+rag-base+rag": ("perplexity_gain", "author_likeness", "writer_likeness", "style_distance"),
        "twin-author": ("repeated_4gram_share",),
        "twin+rag-author": ("repeated_4gram_share",),
    }


def test_the_rag_effect_line_reads_each_metrics_direction_from_the_registry() -> None:
    models = {
        "twin": {"metrics": {"perplexity": 20.0, "finished": 0.5, "answer_words": 40.0}},
        "twin+rag": {"metrics": {"perplexity": 25.0, "finished": 0.9, "answer_words": 80.0}},
    }
    line = rag_effect_line(models)
    assert line == (
        "twin+rag against twin: WORSE with the author's passages: perplexity 20.00 -> 25.00; "
        "better: finished 50% -> 90%"
    )  # answer words has no direction and is not part of the line


def _frame(answers: list[str], extra: dict[str, list[float]]) -> pl.DataFrame:
    n = len(answers)
    return pl.DataFrame(
        {
            "model": ["twin"] * n,
            "variant": ["plain"] * n,
            "answer": answers,
            "nll": [2.0] * n,
            "tokens": [10] * n,
            "finished": [True] * n,
            "p_author": [0.7] * n,
            "p_writer": [0.6] * n,
            "content_similarity": [0.5] * n,
            **extra,
        }
    )


def test_a_metric_added_to_the_registry_is_measured_shown_and_compared_from_its_column_alone(
    monkeypatch,
) -> None:
    added = Metric("warmth", "warmth", True, "{:.2f}", "voice", per_answer="warmth_score")
    monkeypatch.setattr(metrics, "REGISTRY", (*REGISTRY, added))
    author, other = voices(3, 30)
    answers = other[:12]
    frame = _frame(answers, {"warmth_score": [float(i % 3) for i in range(12)]})
    boot = Bootstrap.draw(12, 200, seed=1)
    models, _ = summarize(
        frame,
        author[:12],
        author[12:20],
        author[20:] + answers,
        boot,
        versions={"twin": "v1", "author": "d1"},
        author_scores={"author_likeness": [0.8] * 12, "writer_likeness": [0.7] * 12},
    )
    twin = models["twin"]
    assert twin["metrics"]["warmth"] == np.mean([i % 3 for i in range(12)])
    low, high = twin["intervals"]["warmth"]
    assert low < twin["metrics"]["warmth"] < high
    # the tables are built from the registry when they are made: the new column shows up
    assert "warmth ↑" in text_table(models)
    # a judge's missing scores (None) are left out of its mean, not counted as zero
    judged = _frame(answers, {"judge_style": [3.0, None] * 6})
    found, _ = summarize(
        judged,
        author[:12],
        [],
        author[20:] + answers,
        boot,
        versions={"twin": "v1"},
        author_scores={"author_likeness": [0.8] * 12, "writer_likeness": [0.7] * 12},
    )
    assert found["twin"]["metrics"]["judge_style"] == 3.0
    assert replace(added, gain=True).difference_name == "warmth_gain"
