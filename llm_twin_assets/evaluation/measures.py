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

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from llm_twin_assets.evaluation.authorship import AuthorshipClassifier, CrossValidated, grouped_auc
from llm_twin_assets.evaluation.degeneration import counts as degeneration_counts
from llm_twin_assets.evaluation.intervals import Bootstrap, percentile_interval
from llm_twin_assets.evaluation.summary import summarize

if TYPE_CHECKING:
    import polars as pl

    from llm_twin_assets.artifacts import ArtifactStore
    from llm_twin_assets.evaluation.job import EvalJob, Writing
    from llm_twin_assets.training.reporting import Reporter


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

    voices = training_texts(store, job)
    held_out = [e.answer for e in job.examples]
    n = len(held_out)
    boot = Bootstrap.draw(n, job.resamples, job.seed)
    writers = other_writers(job)
    classifier, cv, writer, writer_cv = _classifiers(job, voices, writers)
    frame = _per_answer(job, frame, classifier, writer)
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
    )
    truncated = int(frame["truncated"].sum())
    if truncated:
        reporter.info(f"{truncated} answers were longer than the model's window and scored cut")
    held = _held_out(job)
    results = {
        "author": job.author,
        "evaluation_id": job.evaluation_id,
        "examples": n,
        "held_out": held,
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
    reporter.info(held["note"])
    reporter.info(
        "authorship classifier (author vs base model): "
        + _auc_text(cv)
        + "; against other writers: "
        + _auc_text(writer_cv)
    )
    return frame, results


def _per_answer(
    job: EvalJob, frame: pl.DataFrame, classifier: AuthorshipClassifier, writer: AuthorshipClassifier
) -> pl.DataFrame:
    """The measures of each answer: likeness (against the base, against other writers), content
    similarity to the author's answer, repeated 4-grams and prompt-markup echoes."""
    import polars as pl

    answers = list(frame["answer"])
    counts = [degeneration_counts(a) for a in answers]
    return frame.with_columns(
        pl.Series("p_author", classifier.p_author(answers)),
        pl.Series("p_writer", writer.p_author(answers)),
        pl.Series("content_similarity", _content_similarity(job, answers, list(frame["author_answer"]))),
        pl.Series("repeated_4gram_share", [c.repeated_4gram_share for c in counts]),
        pl.Series("markup_echoes", [c.markup_echoes for c in counts]),
    )


def _classifiers(
    job: EvalJob, voices: Any, writers: list[Any]
) -> tuple[AuthorshipClassifier, CrossValidated, AuthorshipClassifier, CrossValidated]:
    """The author against the base model's voice and against other writers: each classifier (fit on
    the training texts) and its grouped cross-validated AUC."""
    author_texts, author_groups = [t for t, _ in voices.author], [d for _, d in voices.author]
    classifier = AuthorshipClassifier.fit(voices.train_author, voices.train_other, seed=job.seed)
    cv = grouped_auc(
        author_texts, author_groups, [t for t, _ in voices.other], [d for _, d in voices.other], seed=job.seed
    )
    writer = AuthorshipClassifier.fit(voices.train_author, [w.text for w in writers], seed=job.seed)
    writer_cv = grouped_auc(
        author_texts,
        [f"author:{d}" for d in author_groups],
        [w.text for w in writers],
        [f"{w.source}:{w.group}" for w in writers],
        seed=job.seed,
    )
    return classifier, cv, writer, writer_cv


def _held_out(job: EvalJob) -> dict[str, Any]:
    """How many held-out examples, from how many test documents, and whether that is enough."""
    from llm_twin_assets.evaluation.prepare import held_out_note

    n = len(job.examples)
    test_documents = len({e.document_id for e in job.examples})
    return {
        "examples": n,
        "test_documents": test_documents,
        "documents": job.documents,
        "needed": job.min_examples,
        "enough": n >= job.min_examples,
        "note": held_out_note(n, test_documents, job.documents or test_documents, job.min_examples),
    }


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
