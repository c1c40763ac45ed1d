"""Bootstrap 95% intervals over held-out examples.

Every per-example metric is a statistic of the examples (a mean, a ratio of summed counts, a
perplexity, a stylometric distance of the answers as a set). Its interval resamples the *examples*
with replacement (``resamples`` times, seeded: the same evaluation gives the same interval) and takes
the 2.5th and 97.5th percentiles of the statistic over the resamples (percentile bootstrap). All
models are resampled with the same draws, so a difference between two models (twin - base) is paired:
its interval is that of the per-resample difference, narrower than the two intervals side by side.

With few examples an interval is wide (and a percentile bootstrap on fewer than about 10 examples is
itself unreliable, which is why the gate asks for at least 10): the gate passes a comparison only when
the whole interval clears its margin.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

RESAMPLES = 1000
LEVEL = 0.95

Interval = tuple[float, float]


@dataclass(frozen=True)
class Bootstrap:
    """Resampling weights: ``weights[b, i]`` is how often example ``i`` is drawn in resample ``b``."""

    weights: np.ndarray
    level: float = LEVEL

    @classmethod
    def draw(cls, n: int, resamples: int = RESAMPLES, seed: int = 0, level: float = LEVEL) -> Bootstrap:
        if n < 1:
            raise ValueError("a bootstrap needs at least one example")
        rng = np.random.default_rng(seed)
        picks = rng.integers(0, n, size=(resamples, n))
        weights = np.zeros((resamples, n))
        np.add.at(weights, (np.repeat(np.arange(resamples), n), picks.ravel()), 1.0)
        return cls(weights, level)

    @property
    def n(self) -> int:
        return int(self.weights.shape[1])

    def sums(self, values: Sequence[float] | np.ndarray) -> np.ndarray:
        """The resampled sums of a per-example value (or of each column of an (n, k) array)."""
        return self.weights @ np.asarray(values, dtype=float)

    def mean(self, values: Sequence[float] | np.ndarray) -> np.ndarray:
        return self.sums(values) / self.n

    def ratio(
        self, numerator: Sequence[float] | np.ndarray, denominator: Sequence[float] | np.ndarray
    ) -> np.ndarray:
        """Resampled sum(numerator) / sum(denominator) (NaN where the denominator sums to 0)."""
        with np.errstate(divide="ignore", invalid="ignore"):
            return self.sums(numerator) / self.sums(denominator)

    def interval(self, statistic: np.ndarray) -> Interval | None:
        """The percentile interval of resampled values (None when no resample could be computed)."""
        values = np.asarray(statistic, dtype=float)
        values = values[np.isfinite(values)]
        if values.size == 0:
            return None
        tail = (1 - self.level) / 2 * 100
        low, high = np.percentile(values, [tail, 100 - tail])
        return float(low), float(high)


def percentile_interval(
    n: int,
    statistic: Callable[[np.ndarray], float],
    resamples: int = RESAMPLES,
    seed: int = 0,
    level: float = LEVEL,
) -> Interval | None:
    """The interval of any statistic of resampled indices (slow path, for statistics such as AUC)."""
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(resamples):
        value = statistic(rng.integers(0, n, size=n))
        if value is not None and np.isfinite(value):
            values.append(value)
    if not values:
        return None
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(values, [tail, 100 - tail])
    return float(low), float(high)
