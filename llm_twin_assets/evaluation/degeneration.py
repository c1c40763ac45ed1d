"""Degeneration of generated text: loops, low variety, echoed prompt markup, length.

Per text, additive counts (so a set of texts is measured by summing them, and a bootstrap resample by
summing a resample's counts):

- ``repeated_4grams`` / ``word_4grams``: word 4-grams that repeat an earlier 4-gram of the same text,
  over all its 4-grams. A looping answer ("I think the most important thing ... I think the most
  important thing ...") scores high; the author's own prose scores near 0. Words are lower-cased
  letters/digits (apostrophes kept), punctuation ignored.
- ``distinct_1`` / ``distinct_2``: distinct words (word bigrams) over all words (bigrams) of the text
  (Li et al. 2016, per text, pooled over a set as summed counts).
- ``markup_echoes``: echoes of prompt markup in an answer: the retrieval prompt's framing sentences
  (``prompting.RAG_OPENING`` / ``RAG_CLOSING``), the ``Excerpt 2:`` headings and ``<passage ...>`` tags
  of its earlier formats, chat template tokens (``<|im_start|>``, ``[INST]``, a bare ``assistant`` line, ...)
  and runs of three or more HTML tags in a row.
- ``words``: words (whitespace-separated), for length relative to the author's answers.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_WORD = re.compile(r"\w+(?:['’]\w+)*")
MARKUP = (
    re.compile(r"earlier writing, as reference material|end of the reference material", re.IGNORECASE),
    re.compile(r"</?\s*passage\b[^>\n]{0,40}>?", re.IGNORECASE),
    re.compile(r"(?im)^[ \t]*excerpt[ \t]+\d+[ \t]*:"),
    re.compile(r"<\|[A-Za-z_]+\|>|\[/?INST\]|<</?SYS>>|</?s>"),
    re.compile(r"(?m)^\s*(?:system|user|assistant)\s*:?\s*$"),
    re.compile(r"(?:</?[A-Za-z][A-Za-z0-9-]*(?:\s[^<>]{0,80})?/?>\s*){3,}"),
)
"""What counts as an echo of prompt markup (each match is one echo)."""


def words(text: str) -> list[str]:
    return [w.casefold() for w in _WORD.findall(text)]


def ngrams(tokens: list[str], n: int) -> list[tuple[str, ...]]:
    return [tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)]


@dataclass(frozen=True)
class Counts:
    """Additive degeneration counts of one text."""

    word_4grams: int
    repeated_4grams: int
    unigrams: int
    distinct_unigrams: int
    bigrams: int
    distinct_bigrams: int
    markup_echoes: int
    words: int

    @property
    def repeated_4gram_share(self) -> float:
        return self.repeated_4grams / self.word_4grams if self.word_4grams else 0.0

    @property
    def distinct_1(self) -> float:
        return self.distinct_unigrams / self.unigrams if self.unigrams else 0.0

    @property
    def distinct_2(self) -> float:
        return self.distinct_bigrams / self.bigrams if self.bigrams else 0.0


def counts(text: str) -> Counts:
    tokens = words(text)
    fours, twos = ngrams(tokens, 4), ngrams(tokens, 2)
    return Counts(
        word_4grams=len(fours),
        repeated_4grams=len(fours) - len(set(fours)),
        unigrams=len(tokens),
        distinct_unigrams=len(set(tokens)),
        bigrams=len(twos),
        distinct_bigrams=len(set(twos)),
        markup_echoes=markup_echoes(text),
        words=len(text.split()),
    )


def markup_echoes(text: str) -> int:
    """How many pieces of prompt markup (see :data:`MARKUP`) the text echoes."""
    return sum(len(pattern.findall(text)) for pattern in MARKUP)
