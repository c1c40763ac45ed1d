"""From generated answers and perplexity scores to one metrics map per model.

Models are named ``base``, ``sft``, ``twin`` (without retrieval) and ``base+rag``, ``sft+rag``,
``twin+rag`` (with the author's passages in the prompt); ``author`` is the author's own held-out
answers, scored by the same classifier as a reference for what "like the author" reaches.

Metrics (all on held-out examples):
- ``perplexity``: of the author's real answers, answer tokens only (lower is better);
- ``author_likeness``: mean P(author) of the model's answers under the authorship classifier (higher);
- ``style_distance``: Burrows' Delta of the answers to the author's held-out answers (lower);
- ``content_similarity``: mean cosine of each answer's embedding to the author's answer's (higher);
- ``finished``: share of answers that ended on their own rather than at the token cap;
- ``answer_words``: mean words per answer;
- ``judge_accuracy``, ``judge_style``: the optional LLM judge's mean 1-3 scores.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from llm_twin_assets.evaluation.authorship import AuthorshipClassifier
from llm_twin_assets.evaluation.stylometry import delta

if TYPE_CHECKING:
    import polars as pl

    from llm_twin_assets.artifacts import ArtifactStore
    from llm_twin_assets.evaluation.job import EvalJob
    from llm_twin_assets.training.reporting import Reporter

LOWER_IS_BETTER = {"perplexity", "style_distance"}


def model_name(model: str, variant: str) -> str:
    return model if variant == "plain" else f"{model}+rag"


def training_texts(store: ArtifactStore, job: EvalJob) -> dict[str, list[str]]:
    """The author's training answers, the base model's answers to training prompts (rejected side),
    and the base model's answers to held-out prompts (for the classifier's held-out AUC)."""
    from llm_twin_assets.datasets.versions import get_version, read_splits

    instruct = read_splits(store, get_version(store, job.author, "instruct", job.instruct_version))
    preference = read_splits(store, get_version(store, job.author, "preference", job.preference_version))
    train_author = list(instruct["train"]["answer"]) if "train" in instruct else []
    if "train" in preference:
        train_author += [t for t in preference["train"]["chosen"] if t not in set(train_author)]
    return {
        "train_author": train_author,
        "train_other": list(preference["train"]["rejected"]) if "train" in preference else [],
        "test_other": list(preference["test"]["rejected"]) if "test" in preference else [],
    }


def measure(
    job: EvalJob, frame: pl.DataFrame, store: ArtifactStore, reporter: Reporter
) -> tuple[pl.DataFrame, dict[str, Any]]:
    """Add per-answer measures to ``frame`` and return it with the results (metrics per model)."""
    import polars as pl

    texts = training_texts(store, job)
    held_out = [e.answer for e in job.examples]
    classifier = AuthorshipClassifier.fit(texts["train_author"], texts["train_other"], seed=job.seed)
    auc = classifier.auc(held_out, texts["test_other"])
    frame = frame.with_columns(pl.Series("p_author", classifier.p_author(list(frame["answer"]))))
    similarity = _content_similarity(job, list(frame["answer"]), list(frame["author_answer"]))
    frame = frame.with_columns(pl.Series("content_similarity", similarity))
    if job.judge is not None:
        frame = _judged(job, frame, reporter)
    background = texts["train_author"] + texts["train_other"]
    models: dict[str, dict[str, Any]] = {}
    versions = {"base": job.base_model, "sft": job.sft_version, "twin": job.dpo_version}
    for (model, variant), group in frame.group_by(["model", "variant"], maintain_order=True):
        answers = [a for a in group["answer"] if a.strip()]
        metrics: dict[str, float | None] = {
            "perplexity": math.exp(group["nll"].sum() / max(int(group["tokens"].sum()), 1)),
            "author_likeness": float(group["p_author"].mean()),  # type: ignore[arg-type]
            "style_distance": delta(answers, held_out, background) if answers else None,
            "content_similarity": float(group["content_similarity"].mean()),  # type: ignore[arg-type]
            "finished": float(group["finished"].cast(pl.Float64).mean()),  # type: ignore[arg-type]
            "answer_words": float(group["answer"].str.count_matches(r"\S+").mean()),  # type: ignore[arg-type]
        }
        if job.judge is not None:
            metrics["judge_accuracy"] = _mean_or_none(group["judge_accuracy"])
            metrics["judge_style"] = _mean_or_none(group["judge_style"])
        models[model_name(str(model), str(variant))] = {"version": versions[str(model)], "metrics": metrics}
    own = classifier.p_author(held_out)
    models["author"] = {
        "version": job.instruct_version,
        "metrics": {
            "author_likeness": sum(own) / len(own),
            "answer_words": sum(len(a.split()) for a in held_out) / len(held_out),
        },
    }
    truncated = int(frame["truncated"].sum())
    if truncated:
        reporter.info(f"{truncated} answers were longer than the model's window and scored cut")
    results = {
        "author": job.author,
        "evaluation_id": job.evaluation_id,
        "examples": len(job.examples),
        "models": models,
        "classifier": {
            "held_out_auc": auc,
            "train_author": len(texts["train_author"]),
            "train_other": len(texts["train_other"]),
            "test_author": len(held_out),
            "test_other": len(texts["test_other"]),
        },
    }
    reporter.info(
        "authorship classifier: held-out AUC "
        + (f"{auc:.3f}" if auc is not None else "not measurable (no held-out base answers)")
    )
    return frame, results


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


def _mean_or_none(column: pl.Series) -> float | None:
    value = column.drop_nulls().mean()
    return float(value) if value is not None else None  # type: ignore[arg-type]
