"""Author-likeness: a classifier that tells the author's text from the base model's own answers.

Character n-grams (2 to 4, within word boundaries, TF-IDF with sublinear counts) and a logistic
regression with balanced class weights, trained on the author's training-split text against the base
model's answers to the same kind of instructions (the preference dataset's rejected side). Whether it
can tell the two voices apart at all is measured by grouped cross-validation over documents
(:func:`grouped_auc`): every document's texts (the author's passages and the base model's answers to
instructions about them) are scored by a classifier trained on the other documents, and the AUC is
taken over all out-of-fold scores. Unlike a single held-out split, this is measurable whenever both
voices have two texts and the texts come from at least two documents; only then is P(author) of a
model's answers believed. The same classifier against *other writers* (other authors in the store and
a reference text, see ``measures``) says whether an answer sounds like the author rather than anyone.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from llm_twin_assets.evaluation import EvaluationError

MIN_TRAIN_TEXTS = 2


@dataclass
class AuthorshipClassifier:
    pipeline: Any
    trained_on: dict[str, int]

    @classmethod
    def fit(
        cls, author_texts: Sequence[str], other_texts: Sequence[str], seed: int = 0
    ) -> AuthorshipClassifier:
        author = [t for t in author_texts if t.strip()]
        other = [t for t in other_texts if t.strip()]
        if len(author) < MIN_TRAIN_TEXTS or len(other) < MIN_TRAIN_TEXTS:
            raise EvaluationError(
                f"the authorship classifier needs at least {MIN_TRAIN_TEXTS} texts of each voice to train: got "
                f"{len(author)} of the author and {len(other)} base-model answers (the preference dataset's "
                "rejected side); build the datasets from more passages"
            )
        return cls.fit_any(author, other, seed)

    @classmethod
    def fit_any(
        cls, author_texts: Sequence[str], other_texts: Sequence[str], seed: int = 0
    ) -> AuthorshipClassifier:
        """As :meth:`fit`, with at least one text of each voice (a cross-validation fold)."""
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline

        pipeline = make_pipeline(
            TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 4), sublinear_tf=True, min_df=1),
            LogisticRegression(C=10.0, class_weight="balanced", max_iter=2000, random_state=seed),
        )
        pipeline.fit([*author_texts, *other_texts], [1] * len(author_texts) + [0] * len(other_texts))
        return cls(pipeline, {"author": len(author_texts), "other": len(other_texts)})

    def p_author(self, texts: Sequence[str]) -> list[float]:
        """P(author) of each text (an empty text scores as the classifier's prior)."""
        if not texts:
            return []
        return [float(p) for p in self.pipeline.predict_proba(list(texts))[:, 1]]

    def auc(self, author_texts: Sequence[str], other_texts: Sequence[str]) -> float | None:
        """ROC AUC on held-out texts of both voices; None when a side is empty (not measurable)."""
        if not author_texts or not other_texts:
            return None
        from sklearn.metrics import roc_auc_score

        scores = self.p_author([*author_texts, *other_texts])
        return float(roc_auc_score([1] * len(author_texts) + [0] * len(other_texts), scores))


@dataclass(frozen=True)
class CrossValidated:
    auc: float | None
    """ROC AUC over the out-of-fold scores; None when not measurable (the reason in ``note``)."""
    folds: int
    groups: int
    labels: list[int]
    scores: list[float]
    note: str = ""


def grouped_auc(
    author_texts: Sequence[str],
    author_groups: Sequence[str],
    other_texts: Sequence[str],
    other_groups: Sequence[str],
    *,
    seed: int = 0,
    folds: int = 5,
) -> CrossValidated:
    """AUC of :class:`AuthorshipClassifier` by grouped k-fold over ``groups`` (documents): no group is
    ever both trained on and scored. ``folds`` is lowered to the number of groups; a fold whose
    training part lacks a voice is skipped (its texts unscored)."""
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import GroupKFold

    pairs = [(t, g, 1) for t, g in zip(author_texts, author_groups, strict=True) if t.strip()]
    pairs += [(t, g, 0) for t, g in zip(other_texts, other_groups, strict=True) if t.strip()]
    texts = [t for t, _, _ in pairs]
    groups = [g for _, g, _ in pairs]
    labels = [y for _, _, y in pairs]
    n_groups = len(set(groups))
    have = (labels.count(1), labels.count(0))
    if min(have) < MIN_TRAIN_TEXTS or n_groups < 2:
        return CrossValidated(
            None,
            0,
            n_groups,
            [],
            [],
            f"not measurable: {have[0]} texts of the author and {have[1]} of the other voice from "
            f"{n_groups} documents (needs {MIN_TRAIN_TEXTS} of each voice and 2 documents)",
        )
    k = min(folds, n_groups)
    scored_labels: list[int] = []
    scores: list[float] = []
    used = 0
    for train, test in GroupKFold(n_splits=k).split(texts, labels, groups):
        train_labels = [labels[i] for i in train]
        if min(train_labels.count(1), train_labels.count(0)) < 1:
            continue
        fold = AuthorshipClassifier.fit_any(
            [texts[i] for i in train if labels[i] == 1], [texts[i] for i in train if labels[i] == 0], seed
        )
        scores += fold.p_author([texts[i] for i in test])
        scored_labels += [labels[i] for i in test]
        used += 1
    if len(set(scored_labels)) < 2:
        return CrossValidated(
            None, used, n_groups, scored_labels, scores, "not measurable: no fold scored both voices"
        )
    auc = float(roc_auc_score(scored_labels, scores))
    return CrossValidated(auc, used, n_groups, scored_labels, scores)
