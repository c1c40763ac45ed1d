"""Stylometric distance between two sets of texts: Burrows' Delta over style features.

Each text becomes a vector of style features: the relative frequencies of English function words (the
classic Delta features: authors use them unconsciously and independently of topic), mean word and
sentence length, punctuation per word, line breaks per word and vocabulary richness (moving-average
type/token ratio, which does not shrink with length). A set of texts is profiled from the pooled
counts of its texts (word, function-word, sentence and punctuation counts summed; the type/token ratio
averaged over every window within a text), so a bootstrap resample of a set is profiled by summing
counts. Features are z-scored with the mean and spread of a background of single texts (the author's
training text and other voices), and the distance is the mean absolute difference of the two z-scored
profiles: 0 for a set against itself, larger the further apart the styles are.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

_FUNCTION_WORDS = """a about above after again against all am an and any are as at be because been before being below
    between both but by can could did do does doing down during each few for from further had has have
    having he her here hers him his how i if in into is it its itself just me more most my no nor not now
    of off on once only or other our out over own same she should so some such than that the their them
    then there these they this those through to too under until up very was we were what when where which
    while who whom why will with would you your yours"""
FUNCTION_WORDS = tuple(_FUNCTION_WORDS.split())
PUNCTUATION = ",.;:!?-()\"'`*#/"
_WORD = re.compile(r"[A-Za-z]+(?:'[A-Za-z]+)?")
_SENTENCE_END = re.compile(r"[.!?]+(?=\s|$)|\n\s*\n")
MATTR_WINDOW = 50


def feature_names() -> list[str]:
    return [
        *(f"fw:{w}" for w in FUNCTION_WORDS),
        "word_length",
        "sentence_length",
        *(f"punct:{p}" for p in PUNCTUATION),
        "line_breaks",
        "mattr",
    ]


def features(text: str) -> list[float]:
    """The style vector of one text (the order of :func:`feature_names`)."""
    words = [w.lower() for w in _WORD.findall(text)]
    n = max(len(words), 1)
    counts = Counter(words)
    sentences = max(len([s for s in _SENTENCE_END.split(text) if _WORD.search(s)]), 1)
    return [
        *(counts[w] / n for w in FUNCTION_WORDS),
        sum(len(w) for w in words) / n,
        len(words) / sentences,
        *(text.count(p) / n for p in PUNCTUATION),
        text.count("\n") / n,
        _mattr(words),
    ]


def _mattr(words: Sequence[str], window: int = MATTR_WINDOW) -> float:
    """Moving-average type/token ratio: mean distinct share over every window of ``window`` words."""
    total, windows = _mattr_sums(words, window)
    return total / windows if windows else 0.0


def _mattr_sums(words: Sequence[str], window: int = MATTR_WINDOW) -> tuple[float, int]:
    """The summed distinct share of every window of ``window`` words, and how many windows (a text no
    longer than a window is one window)."""
    if not words:
        return 0.0, 0
    if len(words) <= window:
        return len(set(words)) / len(words), 1
    counts = Counter(words[:window])
    total = len(counts)
    for i in range(window, len(words)):
        counts[words[i]] += 1
        out = words[i - window]
        counts[out] -= 1
        if counts[out] == 0:
            del counts[out]
        total += len(counts)
    return total / window, len(words) - window + 1


def pooled_counts(text: str) -> list[float]:
    """Additive style counts of one text: function-word counts, words, letters, sentences, punctuation
    counts, line breaks, summed window type/token ratios and windows (see :func:`profiles`)."""
    words = [w.lower() for w in _WORD.findall(text)]
    counts = Counter(words)
    sentences = len([s for s in _SENTENCE_END.split(text) if _WORD.search(s)])
    mattr_total, windows = _mattr_sums(words)
    return [
        *(float(counts[w]) for w in FUNCTION_WORDS),
        float(len(words)),
        float(sum(len(w) for w in words)),
        float(sentences),
        *(float(text.count(p)) for p in PUNCTUATION),
        float(text.count("\n")),
        mattr_total,
        float(windows),
    ]


def profiles(summed: np.ndarray) -> np.ndarray:
    """Style vectors (rows) from summed :func:`pooled_counts` (rows: one set of texts each)."""
    import numpy as np

    summed = np.atleast_2d(np.asarray(summed, dtype=float))
    f, p = len(FUNCTION_WORDS), len(PUNCTUATION)
    n = np.maximum(summed[:, f], 1.0)
    letters, sentences = summed[:, f + 1], np.maximum(summed[:, f + 2], 1.0)
    punct = summed[:, f + 3 : f + 3 + p]
    breaks, mattr, windows = summed[:, f + 3 + p], summed[:, f + 4 + p], summed[:, f + 5 + p]
    with np.errstate(divide="ignore", invalid="ignore"):
        ttr = np.where(windows > 0, mattr / np.maximum(windows, 1.0), 0.0)
    return np.column_stack(
        [summed[:, :f] / n[:, None], letters / n, n / sentences, punct / n[:, None], breaks / n, ttr]
    )


def profile(texts: Sequence[str]) -> list[float]:
    """The style vector of a set of texts, from their pooled counts."""
    import numpy as np

    summed = np.sum([pooled_counts(t) for t in texts], axis=0) if texts else np.zeros(len(pooled_counts("")))
    return [float(v) for v in profiles(summed)[0]]


def scaling(background: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Mean and spread of each feature over single background texts; features that do not vary
    (spread 0) carry no information and get spread NaN (left out of the distance)."""
    import numpy as np

    if len(background) < 2:
        raise ValueError("stylometric distance needs at least two background texts to scale features")
    rows = np.array([features(t) for t in background])
    mean, spread = rows.mean(axis=0), rows.std(axis=0, ddof=1)
    return mean, np.where(spread <= 1e-12, np.nan, spread)


def distances(a: np.ndarray, b: np.ndarray, mean: np.ndarray, spread: np.ndarray) -> np.ndarray:
    """Delta between rows of style vectors ``a`` and ``b`` (broadcast), z-scored by ``mean``/``spread``."""
    import numpy as np

    used = np.isfinite(spread)
    if not used.any():
        return np.zeros(np.broadcast(a, b).shape[0])
    za = (np.atleast_2d(a)[:, used] - mean[used]) / spread[used]
    zb = (np.atleast_2d(b)[:, used] - mean[used]) / spread[used]
    return np.asarray(np.abs(za - zb).mean(axis=1))


def delta(candidates: Sequence[str], reference: Sequence[str], background: Sequence[str]) -> float:
    """Burrows' Delta between ``candidates`` and ``reference`` (sets of texts), z-scored on ``background``.

    Features that do not vary across the background carry no information and are left out."""
    import numpy as np

    if not candidates or not reference:
        raise ValueError("stylometric distance needs texts on both sides")
    mean, spread = scaling(background)
    a, b = np.array(profile(candidates)), np.array(profile(reference))
    return float(distances(a, b, mean, spread)[0])
