"""Train/test splits by source document, never by row: no test example shares a document with training."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable


def split_documents(document_ids: Iterable[str], test_ratio: float, seed: int) -> dict[str, str]:
    """``{document_id: "train" | "test"}``; the same ids, ratio and seed always give the same split.

    The test share is ``round(test_ratio * documents)``, at least one document when there are two or
    more and the ratio is positive, and never every document.
    """
    if not 0 <= test_ratio < 1:
        raise ValueError(f"test_ratio must be in [0, 1), got {test_ratio}")
    ids = sorted(set(document_ids))
    order = sorted(ids, key=lambda d: hashlib.sha256(f"{seed}:{d}".encode()).hexdigest())
    n_test = 0
    if test_ratio > 0 and len(ids) >= 2:
        n_test = min(len(ids) - 1, max(1, round(test_ratio * len(ids))))
    test = set(order[:n_test])
    return {d: "test" if d in test else "train" for d in ids}
