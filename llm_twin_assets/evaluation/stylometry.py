"""Stylometric distance between two sets of texts: Burrows' Delta over style features.

Each text becomes a vector of style features: the relative frequencies of English function words (the
classic Delta features: authors use them unconsciously and independently of topic), mean word and
sentence length, punctuation per word, line breaks per word and vocabulary richness (moving-average
type/token ratio, which does not shrink with length). A set of texts is profiled as one concatenated
text. Features are z-scored with the mean and spread of a background of single texts (the author's
training text and other voices), and the distance is the mean absolute difference of the two z-scored
profiles: 0 for a set against itself, larger the further apart the styles are.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence

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
    if not words:
        return 0.0
    if len(words) <= window:
        return len(set(words)) / len(words)
    counts = Counter(words[:window])
    total = len(counts)
    for i in range(window, len(words)):
        counts[words[i]] += 1
        out = words[i - window]
        counts[out] -= 1
        if counts[out] == 0:
            del counts[out]
        total += len(counts)
    return total / (len(words) - window + 1)


def profile(texts: Sequence[str]) -> list[float]:
    """The style vector of a set of texts, read as one text."""
    return features("\n\n".join(texts))


def delta(candidates: Sequence[str], reference: Sequence[str], background: Sequence[str]) -> float:
    """Burrows' Delta between ``candidates`` and ``reference`` (sets of texts), z-scored on ``background``.

    Features that do not vary across the background carry no information and are left out."""
    if not candidates or not reference:
        raise ValueError("stylometric distance needs texts on both sides")
    if len(background) < 2:
        raise ValueError("stylometric distance needs at least two background texts to scale features")
    rows = [features(t) for t in background]
    a, b = profile(candidates), profile(reference)
    total, used = 0.0, 0
    for i in range(len(a)):
        column = [r[i] for r in rows]
        mean = sum(column) / len(column)
        spread = math.sqrt(sum((v - mean) ** 2 for v in column) / (len(column) - 1))
        if spread <= 1e-12:
            continue
        total += abs((a[i] - mean) / spread - (b[i] - mean) / spread)
        used += 1
    return total / used if used else 0.0
