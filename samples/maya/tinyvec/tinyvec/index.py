"""An exact cosine-similarity index. Small on purpose."""

from __future__ import annotations

import numpy as np


class Index:
    """Keys and unit vectors in one matrix; search is one matrix-vector product."""

    def __init__(self, dim: int) -> None:
        self.dim = dim
        self._keys: list[str] = []
        self._positions: dict[str, int] = {}
        self._vectors = np.zeros((0, dim), dtype=np.float32)

    def __len__(self) -> int:
        return len(self._keys)

    def add(self, key: str, vector: np.ndarray) -> None:
        """Add or replace; adding the same key and vector twice changes nothing."""
        unit = _normalise(np.asarray(vector, dtype=np.float32), self.dim)
        if key in self._positions:
            self._vectors[self._positions[key]] = unit
            return
        self._positions[key] = len(self._keys)
        self._keys.append(key)
        self._vectors = np.vstack([self._vectors, unit[None, :]])

    def search(self, query: np.ndarray, k: int = 10) -> list[tuple[str, float]]:
        """The k most similar keys with their cosine similarity, best first."""
        if not self._keys:
            return []
        scores = self._vectors @ _normalise(np.asarray(query, dtype=np.float32), self.dim)
        top = np.argsort(-scores, kind="stable")[:k]
        return [(self._keys[i], float(scores[i])) for i in top]


def _normalise(vector: np.ndarray, dim: int) -> np.ndarray:
    if vector.shape != (dim,):
        raise ValueError(f"expected a vector of {dim} dimensions, got shape {vector.shape}")
    norm = float(np.linalg.norm(vector))
    if norm == 0.0:
        raise ValueError("cannot index a zero vector")
    return vector / norm
