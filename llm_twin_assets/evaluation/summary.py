"""Per-answer measures to metrics: for each model (and the author's own held-out answers as a yardstick)
its metrics with their bootstrap intervals, and the paired differences the gate decides on. Pure numpy
over the measures frame that ``evaluation.measures`` builds."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from llm_twin_assets.evaluation.degeneration import counts as degeneration_counts
from llm_twin_assets.evaluation.intervals import Bootstrap
from llm_twin_assets.evaluation.metrics import differences, of_difference, per_answer_means

if TYPE_CHECKING:
    import numpy as np
    import polars as pl

DIFFERENCES = differences()
"""The paired differences measured (``evaluation.metrics``); ``perplexity_gain`` is 1 - twin/base."""


def model_name(model: str, variant: str) -> str:
    return model if variant == "plain" else f"{model}+rag"


def summarize(
    frame: pl.DataFrame,
    held_out: list[str],
    train_author: list[str],
    background: list[str],
    boot: Bootstrap,
    *,
    versions: dict[str, str],
    author_scores: dict[str, list[float]],
) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, dict[str, Any]]]]:
    """Metrics with intervals per model, and the paired differences, from per-answer measures.

    ``frame``: one row per (example, model, variant), each (model, variant) in the examples' order, with
    ``answer``, ``nll``, ``tokens``, ``finished``, ``p_author``, ``p_writer``, ``content_similarity``
    (and the judge's columns when judged); ``held_out``: the author's answers in the same order;
    ``background``: single texts that scale the style features; ``author_scores``: P(author) of her
    held-out answers under each classifier (``author_likeness``, ``writer_likeness``)."""
    import numpy as np

    from llm_twin_assets.evaluation import stylometry

    mean, spread = stylometry.scaling(background)
    author_style = np.array([stylometry.pooled_counts(a) for a in held_out])
    author_degeneration = _degeneration_arrays(held_out)
    models: dict[str, dict[str, Any]] = {}
    resampled: dict[str, dict[str, np.ndarray]] = {}
    for (model, variant), group in frame.group_by(["model", "variant"], maintain_order=True):
        name = model_name(str(model), str(variant))
        metrics, stats = _model_metrics(group, boot, mean, spread, author_style, author_degeneration["words"])
        models[name] = {"version": versions[str(model)], **_with_intervals(metrics, stats, boot)}
        resampled[name] = stats
    author_metrics, author_stats = _author_metrics(
        train_author,
        author_scores["author_likeness"],
        author_scores["writer_likeness"],
        author_degeneration,
        boot,
        mean,
        spread,
        author_style,
    )
    models["author"] = {
        "version": versions.get("author", ""),
        **_with_intervals(author_metrics, author_stats, boot),
    }
    resampled["author"] = author_stats
    return models, _differences(models, resampled, boot)


def _degeneration_arrays(texts: list[str]) -> dict[str, np.ndarray]:
    import numpy as np

    found = [degeneration_counts(t) for t in texts]
    names = (
        "word_4grams",
        "repeated_4grams",
        "unigrams",
        "distinct_unigrams",
        "bigrams",
        "distinct_bigrams",
        "markup_echoes",
        "words",
    )
    return {name: np.array([float(getattr(c, name)) for c in found]) for name in names}


def _ratio(numerator: np.ndarray, denominator: np.ndarray) -> float | None:
    total = float(denominator.sum())
    return float(numerator.sum()) / total if total else None


def _degeneration_metrics(
    d: dict[str, np.ndarray], author_words: np.ndarray, boot: Bootstrap
) -> tuple[dict[str, float | None], dict[str, np.ndarray]]:
    import numpy as np

    metrics = {
        "answer_words": float(d["words"].mean()),
        "length_ratio": _ratio(d["words"], author_words),
        "repeated_4gram_share": _ratio(d["repeated_4grams"], d["word_4grams"]) or 0.0,
        "distinct_1": _ratio(d["distinct_unigrams"], d["unigrams"]),
        "distinct_2": _ratio(d["distinct_bigrams"], d["bigrams"]),
        "markup_echo": float((d["markup_echoes"] > 0).mean()),
    }
    stats = {
        "answer_words": boot.mean(d["words"]),
        "length_ratio": boot.ratio(d["words"], author_words),
        "repeated_4gram_share": np.nan_to_num(boot.ratio(d["repeated_4grams"], d["word_4grams"]), nan=0.0),
        "distinct_1": boot.ratio(d["distinct_unigrams"], d["unigrams"]),
        "distinct_2": boot.ratio(d["distinct_bigrams"], d["bigrams"]),
        "markup_echo": boot.mean((d["markup_echoes"] > 0).astype(float)),
    }
    return metrics, stats


def _style(
    counts: np.ndarray, author_style: np.ndarray, mean: np.ndarray, spread: np.ndarray, boot: Bootstrap
) -> tuple[float | None, np.ndarray]:
    """Delta of the answers (pooled counts) to the author's held-out answers, and per resample (paired:
    the same examples on both sides)."""
    import numpy as np

    from llm_twin_assets.evaluation import stylometry

    words = stylometry.FUNCTION_WORDS
    if counts[:, len(words)].sum() == 0:
        return None, np.full(boot.weights.shape[0], np.nan)
    point = stylometry.distances(
        stylometry.profiles(counts.sum(axis=0)), stylometry.profiles(author_style.sum(axis=0)), mean, spread
    )[0]
    summed = boot.sums(counts)
    values = stylometry.distances(
        stylometry.profiles(summed), stylometry.profiles(boot.sums(author_style)), mean, spread
    )
    values[summed[:, len(words)] == 0] = np.nan
    return float(point), values


def _model_metrics(
    group: pl.DataFrame,
    boot: Bootstrap,
    mean: np.ndarray,
    spread: np.ndarray,
    author_style: np.ndarray,
    author_words: np.ndarray,
) -> tuple[dict[str, float | None], dict[str, np.ndarray]]:
    import numpy as np

    from llm_twin_assets.evaluation import stylometry

    nll, tokens = group["nll"].to_numpy().astype(float), group["tokens"].to_numpy().astype(float)
    answers = list(group["answer"])
    style, style_values = _style(
        np.array([stylometry.pooled_counts(a) for a in answers]), author_style, mean, spread, boot
    )
    metrics: dict[str, float | None] = {
        "perplexity": math.exp(nll.sum() / max(tokens.sum(), 1.0)),
        "style_distance": style,
    }
    with np.errstate(over="ignore"):
        stats: dict[str, np.ndarray] = {
            "perplexity": np.exp(boot.sums(nll) / np.maximum(boot.sums(tokens), 1.0)),
            "style_distance": style_values,
        }
    for metric in per_answer_means():
        if metric.per_answer in group.columns:  # the judge's scores only when judged
            metrics[metric.name], stats[metric.name] = _mean(group[metric.per_answer], boot)
    degeneration, degeneration_stats = _degeneration_metrics(
        _degeneration_arrays(answers), author_words, boot
    )
    metrics.update(degeneration)
    stats.update(degeneration_stats)
    return metrics, stats


def _mean(column: pl.Series, boot: Bootstrap) -> tuple[float | None, np.ndarray]:
    """The mean of a per-answer score over the answers that have one (a judge may give none), and per
    resample."""
    import numpy as np

    values = column.cast(float).fill_null(float("nan")).to_numpy()
    present = np.isfinite(values)
    point = float(values[present].mean()) if present.any() else None
    return point, boot.ratio(np.where(present, values, 0.0), present.astype(float))


def _author_metrics(
    train_author: list[str],
    own: list[float],
    own_writer: list[float],
    degeneration: dict[str, np.ndarray],
    boot: Bootstrap,
    mean: np.ndarray,
    spread: np.ndarray,
    author_style: np.ndarray,
) -> tuple[dict[str, float | None], dict[str, np.ndarray]]:
    """The author's held-out answers as a model: likeness, degeneration, and the style distance of her
    training answers to them (the held-out side resampled)."""
    import numpy as np

    from llm_twin_assets.evaluation import stylometry

    metrics, stats = _degeneration_metrics(degeneration, degeneration["words"], boot)
    metrics.update({"author_likeness": float(np.mean(own)), "writer_likeness": float(np.mean(own_writer))})
    stats.update({"author_likeness": boot.mean(own), "writer_likeness": boot.mean(own_writer)})
    if train_author:
        train = stylometry.profiles(np.sum([stylometry.pooled_counts(t) for t in train_author], axis=0))
        point = stylometry.distances(train, stylometry.profiles(author_style.sum(axis=0)), mean, spread)[0]
        metrics["style_distance"] = float(point)
        stats["style_distance"] = stylometry.distances(
            train, stylometry.profiles(boot.sums(author_style)), mean, spread
        )
    return metrics, stats


def _with_intervals(
    metrics: dict[str, float | None], stats: dict[str, np.ndarray], boot: Bootstrap
) -> dict[str, Any]:
    intervals: dict[str, list[float] | None] = {}
    for name, value in metrics.items():
        found = boot.interval(stats[name]) if value is not None and name in stats else None
        intervals[name] = list(found) if found else None
    return {"metrics": metrics, "intervals": intervals}


def _differences(
    models: dict[str, dict[str, Any]], resampled: dict[str, dict[str, np.ndarray]], boot: Bootstrap
) -> dict[str, dict[str, dict[str, Any]]]:
    """Paired differences with their intervals: ``twin-base`` and ``twin-author`` (metric: value,
    interval). ``perplexity_gain`` = 1 - twin/base perplexity (higher is better)."""
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for pair, names in DIFFERENCES.items():
        left, right = pair.split("-")
        if left not in models or right not in models:
            continue
        found: dict[str, dict[str, Any]] = {}
        for name in names:
            gain, metric = of_difference(name).gain, of_difference(name).name
            a, b = models[left]["metrics"].get(metric), models[right]["metrics"].get(metric)
            if a is None or b is None or metric not in resampled[left] or metric not in resampled[right]:
                found[name] = {"value": None, "interval": None}
                continue
            if gain:
                value = 1 - a / b
                values = 1 - resampled[left][metric] / resampled[right][metric]
            else:
                value = a - b
                values = resampled[left][metric] - resampled[right][metric]
            interval = boot.interval(values)
            found[name] = {"value": float(value), "interval": list(interval) if interval else None}
        out[pair] = found
    return out
