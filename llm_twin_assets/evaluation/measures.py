"""From generated answers and perplexity scores to one metrics map per model, each with its interval.

Models are named ``base``, ``sft``, ``twin`` (without retrieval) and ``base+rag``, ``sft+rag``,
``twin+rag`` (with the author's passages in the prompt); ``author`` is the author's own held-out
answers, measured the same way as a reference for what "like the author" reaches.

Metrics (all on held-out examples):
- ``perplexity``: of the author's real answers, answer tokens only (lower is better);
- ``author_likeness``: mean P(author) of the model's answers under the classifier of the author against
  the base model's answers (higher);
- ``writer_likeness``: mean P(author) under the classifier of the author against *other writers* (other
  authors in the store, and the Python documentation's prose, see ``reference``): "sounds like the
  author", not only "does not sound like the base model" (higher);
- ``style_distance``: Burrows' Delta of the answers to the author's held-out answers (lower; for
  ``author``: her training answers against her held-out ones, a yardstick);
- ``content_similarity``: mean cosine of each answer's embedding to the author's answer's (higher);
- ``finished``: share of answers that ended on their own within the generation budget (which is derived
  from the author's own answer lengths, see ``run.generation_budget``);
- ``answer_words``: mean words per answer; ``length_ratio``: words of the answers over the author's;
- ``repeated_4gram_share``, ``distinct_1``, ``distinct_2``, ``markup_echo`` (share of answers echoing
  prompt markup): degeneration, see ``degeneration``;
- ``judge_accuracy``, ``judge_style``: the optional LLM judge's mean 1-3 scores.

Every metric has a bootstrap 95% interval over the examples (``intervals``; paired across models), and
the differences the gate uses (twin - base, twin - author) have their own intervals (``differences``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from llm_twin_assets.evaluation.authorship import AuthorshipClassifier, CrossValidated, grouped_auc
from llm_twin_assets.evaluation.degeneration import counts as degeneration_counts
from llm_twin_assets.evaluation.intervals import Bootstrap, percentile_interval

if TYPE_CHECKING:
    import numpy as np
    import polars as pl

    from llm_twin_assets.artifacts import ArtifactStore
    from llm_twin_assets.evaluation.job import EvalJob, Writing
    from llm_twin_assets.training.reporting import Reporter

LOWER_IS_BETTER = {"perplexity", "style_distance", "repeated_4gram_share", "markup_echo"}
DIFFERENCES = {
    "twin-base": ("perplexity_gain", "author_likeness", "writer_likeness", "style_distance"),
    "twin-author": ("repeated_4gram_share",),
}
"""The differences the gate decides on; ``perplexity_gain`` is 1 - twin/base perplexity."""


def model_name(model: str, variant: str) -> str:
    return model if variant == "plain" else f"{model}+rag"


@dataclass(frozen=True)
class Voices:
    """The author's text and the base model's answers, each with its document (for grouped CV)."""

    train_author: list[str]
    train_other: list[str]
    author: list[tuple[str, str]]
    """(text, document) of every author answer, train and test."""
    other: list[tuple[str, str]]
    """(text, document) of every base-model answer (the preference dataset's rejected side)."""


def training_texts(store: ArtifactStore, job: EvalJob) -> Voices:
    """The author's answers (train split, and all with their documents) and the base model's answers
    to the same instructions (the rejected side), from the datasets the twin was trained on."""
    from llm_twin_assets.datasets.versions import get_version, read_splits

    instruct = read_splits(store, get_version(store, job.author, "instruct", job.instruct_version))
    preference = read_splits(store, get_version(store, job.author, "preference", job.preference_version))
    own = {n: f.filter(f["source"] == "author") if "source" in f.columns else f for n, f in instruct.items()}
    train_author = list(own["train"]["answer"]) if "train" in own else []
    if "train" in preference:
        known = set(train_author)
        train_author += [t for t in preference["train"]["chosen"] if t not in known]
    author = [(a, d) for f in own.values() for a, d in zip(f["answer"], f["document_id"], strict=True)]
    other = [
        (r, d) for f in preference.values() for r, d in zip(f["rejected"], f["document_id"], strict=True)
    ]
    return Voices(
        train_author=train_author,
        train_other=list(preference["train"]["rejected"]) if "train" in preference else [],
        author=author,
        other=other,
    )


def other_writers(job: EvalJob) -> list[Writing]:
    """Other authors' passages from the job, then the reference text that ships with Python."""
    from llm_twin_assets.evaluation.reference import reference_passages

    return [*job.other_writers, *reference_passages()]


def measure(
    job: EvalJob, frame: pl.DataFrame, store: ArtifactStore, reporter: Reporter
) -> tuple[pl.DataFrame, dict[str, Any]]:
    """Add per-answer measures to ``frame`` and return it with the results (metrics per model)."""
    import polars as pl

    voices = training_texts(store, job)
    held_out = [e.answer for e in job.examples]
    n = len(held_out)
    boot = Bootstrap.draw(n, job.resamples, job.seed)
    classifier = AuthorshipClassifier.fit(voices.train_author, voices.train_other, seed=job.seed)
    cv = grouped_auc(
        [t for t, _ in voices.author],
        [d for _, d in voices.author],
        [t for t, _ in voices.other],
        [d for _, d in voices.other],
        seed=job.seed,
    )
    writers = other_writers(job)
    writer = AuthorshipClassifier.fit(voices.train_author, [w.text for w in writers], seed=job.seed)
    writer_cv = grouped_auc(
        [t for t, _ in voices.author],
        [f"author:{d}" for _, d in voices.author],
        [w.text for w in writers],
        [f"{w.source}:{w.group}" for w in writers],
        seed=job.seed,
    )
    answers = list(frame["answer"])
    frame = frame.with_columns(
        pl.Series("p_author", classifier.p_author(answers)),
        pl.Series("p_writer", writer.p_author(answers)),
        pl.Series("content_similarity", _content_similarity(job, answers, list(frame["author_answer"]))),
        pl.Series("repeated_4gram_share", [degeneration_counts(a).repeated_4gram_share for a in answers]),
        pl.Series("markup_echoes", [degeneration_counts(a).markup_echoes for a in answers]),
    )
    if job.judge is not None:
        frame = _judged(job, frame, reporter)
    models, differences = summarize(
        frame,
        held_out,
        voices.train_author,
        voices.train_author + voices.train_other,
        boot,
        versions={
            "base": job.base_model,
            "sft": job.sft_version,
            "twin": job.dpo_version,
            "author": job.instruct_version,
        },
        author_scores={
            "author_likeness": classifier.p_author(held_out),
            "writer_likeness": writer.p_author(held_out),
        },
        judged=job.judge is not None,
    )
    truncated = int(frame["truncated"].sum())
    if truncated:
        reporter.info(f"{truncated} answers were longer than the model's window and scored cut")
    from llm_twin_assets.evaluation.prepare import held_out_note

    test_documents = len({e.document_id for e in job.examples})
    note = held_out_note(n, test_documents, job.documents or test_documents, job.min_examples)
    results = {
        "author": job.author,
        "evaluation_id": job.evaluation_id,
        "examples": n,
        "held_out": {
            "examples": n,
            "test_documents": test_documents,
            "documents": job.documents,
            "needed": job.min_examples,
            "enough": n >= job.min_examples,
            "note": note,
        },
        "bootstrap": {"resamples": job.resamples, "level": boot.level, "seed": job.seed, "unit": "example"},
        "models": models,
        "differences": differences,
        "classifier": {
            **_classifier_summary(cv, job),
            "train_author": len(voices.train_author),
            "train_other": len(voices.train_other),
            "test_author": n,
        },
        "writer_classifier": {
            **_classifier_summary(writer_cv, job),
            "train_author": len(voices.train_author),
            "other_writers": _sources(writers),
        },
    }
    reporter.info(note)
    reporter.info(
        "authorship classifier (author vs base model): "
        + _auc_text(cv)
        + "; against other writers: "
        + _auc_text(writer_cv)
    )
    return frame, results


def summarize(
    frame: pl.DataFrame,
    held_out: list[str],
    train_author: list[str],
    background: list[str],
    boot: Bootstrap,
    *,
    versions: dict[str, str],
    author_scores: dict[str, list[float]],
    judged: bool = False,
) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, dict[str, Any]]]]:
    """Metrics with intervals per model, and the paired differences, from per-answer measures.

    ``frame``: one row per (example, model, variant), each (model, variant) in the examples' order, with
    ``answer``, ``nll``, ``tokens``, ``finished``, ``p_author``, ``p_writer``, ``content_similarity``
    (and the judge's columns when ``judged``); ``held_out``: the author's answers in the same order;
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
        metrics, stats = _model_metrics(
            group, boot, mean, spread, author_style, author_degeneration["words"], judged=judged
        )
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


def _auc_text(cv: CrossValidated) -> str:
    if cv.auc is None:
        return cv.note
    return f"grouped {cv.folds}-fold AUC {cv.auc:.3f} over {cv.groups} documents"


def _sources(writers: list[Writing]) -> dict[str, int]:
    found: dict[str, int] = {}
    for w in writers:
        found[w.source] = found.get(w.source, 0) + 1
    return found


def _classifier_summary(cv: CrossValidated, job: EvalJob) -> dict[str, Any]:
    interval = None
    if cv.auc is not None:
        labels, scores = cv.labels, cv.scores
        interval = percentile_interval(
            len(labels),
            lambda idx: _auc([labels[i] for i in idx], [scores[i] for i in idx]),
            resamples=job.resamples,
            seed=job.seed,
        )
    return {
        "held_out_auc": cv.auc,
        "auc_interval": list(interval) if interval else None,
        "method": f"grouped {cv.folds}-fold cross-validation over {cv.groups} documents",
        "folds": cv.folds,
        "documents": cv.groups,
        "note": cv.note,
    }


def _auc(labels: list[int], scores: list[float]) -> float:
    """ROC AUC by ranks (ties averaged); NaN when a class is missing."""
    import numpy as np
    from scipy.stats import rankdata

    y = np.asarray(labels)
    positives, negatives = int(y.sum()), int(len(y) - y.sum())
    if not positives or not negatives:
        return float("nan")
    ranks = rankdata(scores)
    return float((ranks[y == 1].sum() - positives * (positives + 1) / 2) / (positives * negatives))


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
    *,
    judged: bool,
) -> tuple[dict[str, float | None], dict[str, np.ndarray]]:
    import numpy as np

    from llm_twin_assets.evaluation import stylometry

    nll, tokens = group["nll"].to_numpy().astype(float), group["tokens"].to_numpy().astype(float)
    answers = list(group["answer"])
    style, style_values = _style(
        np.array([stylometry.pooled_counts(a) for a in answers]), author_style, mean, spread, boot
    )
    p_author, p_writer = group["p_author"].to_numpy(), group["p_writer"].to_numpy()
    similarity, finished = group["content_similarity"].to_numpy(), group["finished"].to_numpy().astype(float)
    metrics: dict[str, float | None] = {
        "perplexity": math.exp(nll.sum() / max(tokens.sum(), 1.0)),
        "author_likeness": float(p_author.mean()),
        "writer_likeness": float(p_writer.mean()),
        "style_distance": style,
        "content_similarity": float(similarity.mean()),
        "finished": float(finished.mean()),
    }
    with np.errstate(over="ignore"):
        stats: dict[str, np.ndarray] = {
            "perplexity": np.exp(boot.sums(nll) / np.maximum(boot.sums(tokens), 1.0)),
            "author_likeness": boot.mean(p_author),
            "writer_likeness": boot.mean(p_writer),
            "style_distance": style_values,
            "content_similarity": boot.mean(similarity),
            "finished": boot.mean(finished),
        }
    degeneration, degeneration_stats = _degeneration_metrics(
        _degeneration_arrays(answers), author_words, boot
    )
    metrics.update(degeneration)
    stats.update(degeneration_stats)
    if judged:
        for column in ("judge_accuracy", "judge_style"):
            values = group[column].cast(float).to_numpy()
            present = np.isfinite(values)
            metrics[column] = float(values[present].mean()) if present.any() else None
            stats[column] = boot.ratio(np.where(present, values, 0.0), present.astype(float))
    return metrics, stats


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
            metric = "perplexity" if name == "perplexity_gain" else name
            a, b = models[left]["metrics"].get(metric), models[right]["metrics"].get(metric)
            if a is None or b is None or metric not in resampled[left] or metric not in resampled[right]:
                found[name] = {"value": None, "interval": None}
                continue
            if name == "perplexity_gain":
                value = 1 - a / b
                values = 1 - resampled[left][metric] / resampled[right][metric]
            else:
                value = a - b
                values = resampled[left][metric] - resampled[right][metric]
            interval = boot.interval(values)
            found[name] = {"value": float(value), "interval": list(interval) if interval else None}
        out[pair] = found
    return out


def _content_similarity(job: EvalJob, answers: list[str], references: list[str]) -> list[float]:
    from llm_twin_assets.embeddings import load_embedder
    from llm_twin_assets.settings import get_settings

    embedder = load_embedder(get_settings(embedding_model=job.embedding_model, device=job.device))
    a = embedder.encode(answers, normalize_embeddings=True, batch_size=32, show_progress_bar=False)
    b = embedder.encode(references, normalize_embeddings=True, batch_size=32, show_progress_bar=False)
    return [float(x @ y) for x, y in zip(a, b, strict=True)]


def _judged(job: EvalJob, frame: pl.DataFrame, reporter: Reporter) -> pl.DataFrame:
    import polars as pl

    from llm_twin_assets.evaluation.judge import judge, judge_teacher

    assert job.judge is not None
    teacher = judge_teacher(job.judge)
    verdicts = judge(
        teacher, job.judge, list(frame["instruction"]), list(frame["author_answer"]), list(frame["answer"])
    )
    unreadable = sum(1 for v in verdicts if v.accuracy is None or v.style is None)
    reporter.info(f"judge {teacher.label}: {len(verdicts)} verdicts, {unreadable} unreadable")
    return frame.with_columns(
        pl.Series("judge_accuracy", [v.accuracy for v in verdicts], dtype=pl.Int64),
        pl.Series("judge_style", [v.style for v in verdicts], dtype=pl.Int64),
        pl.Series("judge_reason", [v.reason for v in verdicts]),
    )
