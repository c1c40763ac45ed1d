"""Author-likeness: a classifier that tells the author's text from the base model's own answers.

Character n-grams (2 to 4, within word boundaries, TF-IDF with sublinear counts) and a logistic
regression with balanced class weights, trained on the author's training-split text against the base
model's answers to the same kind of instructions (the preference dataset's rejected side). Its AUC on
the held-out split says whether it can tell the two voices apart at all; only then is its P(author) of a
model's answers believed.
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
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline

        author = [t for t in author_texts if t.strip()]
        other = [t for t in other_texts if t.strip()]
        if len(author) < MIN_TRAIN_TEXTS or len(other) < MIN_TRAIN_TEXTS:
            raise EvaluationError(
                f"the authorship classifier needs at least {MIN_TRAIN_TEXTS} texts of each voice to train: got "
                f"{len(author)} of the author and {len(other)} base-model answers (the preference dataset's "
                "rejected side); build the datasets from more passages"
            )
        pipeline = make_pipeline(
            TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 4), sublinear_tf=True, min_df=1),
            LogisticRegression(C=10.0, class_weight="balanced", max_iter=2000, random_state=seed),
        )
        pipeline.fit([*author, *other], [1] * len(author) + [0] * len(other))
        return cls(pipeline, {"author": len(author), "other": len(other)})

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
