"""Decoding rules that keep a small twin from looping: no repeated n-gram within an answer (of tokens, or
of *words*: tokens compared by their letters and digits alone), and a repetition penalty. One implementation, applied to one row's logits, used by the evaluation
(``llm.generate_replies``, through a transformers logits processor) and by the service's own decoding
loop, so a served answer has exactly the tokens the evaluation measured.

Both rules look only at the tokens generated so far for that row, never at the prompt: the prompt quotes
the author's passages, and an answer may repeat their words.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class Decoding:
    no_repeat_ngram_size: int = 0
    """Never generate an n-gram of this many tokens twice in one answer (0 = off)."""
    repetition_penalty: float = 1.0
    """Divide a positive logit (multiply a negative one) of a token already in the answer by this (1 = off)."""
    no_repeat_word_ngram_size: int = 0
    """Never generate a run of this many word tokens twice in one answer (0 = off). Word tokens are
    compared by their letters and digits, lowercased (``Ġecho``, ``Ċecho`` and ``Echo`` are one word);
    tokens without any (spaces, punctuation, quotes) are not part of a run. The token rule misses a line
    repeated with other spacing or quoting; the evaluation counts such a line as repeated words."""

    def __post_init__(self) -> None:
        for name in ("no_repeat_ngram_size", "no_repeat_word_ngram_size"):
            size = getattr(self, name)
            if size < 0 or size == 1:
                raise ValueError(f"{name} must be 0 or at least 2, not {size}")
        if not 1.0 <= self.repetition_penalty <= 2.0:
            raise ValueError(f"repetition_penalty must be in [1, 2], not {self.repetition_penalty}")

    @property
    def active(self) -> bool:
        return (
            self.no_repeat_ngram_size > 0
            or self.repetition_penalty != 1.0
            or self.no_repeat_word_ngram_size > 0
        )

    @classmethod
    def from_dict(cls, values: dict[str, Any] | None) -> Decoding:
        values = values or {}
        return cls(
            no_repeat_ngram_size=int(values.get("no_repeat_ngram_size", 0)),
            repetition_penalty=float(values.get("repetition_penalty", 1.0)),
            no_repeat_word_ngram_size=int(values.get("no_repeat_word_ngram_size", 0)),
        )

    def as_dict(self) -> dict[str, Any]:
        """The rules, without the word rule when it is off (what releases made before it stored)."""
        found = asdict(self)
        if not self.no_repeat_word_ngram_size:
            del found["no_repeat_word_ngram_size"]
        return found


class WordClasses:
    """Each token's word: the lowercased letters and digits of its text, as a class number (-1: a token
    with none). Built once per tokenizer (:func:`word_classes`)."""

    def __init__(self, texts: Sequence[str]) -> None:
        ids: dict[str, int] = {}
        self.of: list[int] = []
        self.members: dict[int, list[int]] = {}
        for token, text in enumerate(texts):
            word = "".join(ch for ch in text.lower() if ch.isalnum())
            if not word:
                self.of.append(-1)
                continue
            cls = ids.setdefault(word, len(ids))
            self.of.append(cls)
            self.members.setdefault(cls, []).append(token)

    def banned(self, generated: Sequence[int], n: int) -> list[int]:
        """The tokens whose word would complete a run of ``n`` words already in ``generated``."""
        words = [c for c in (self.of[t] if 0 <= t < len(self.of) else -1 for t in generated) if c >= 0]
        return sorted(t for cls in banned(words, n) for t in self.members.get(cls, ()))


_CLASSES: dict[tuple[str, int], WordClasses] = {}


def word_classes(tokenizer: Any) -> WordClasses:
    """The word classes of ``tokenizer``'s vocabulary (cached by its name and size)."""
    key = (str(getattr(tokenizer, "name_or_path", "")), len(tokenizer))
    if key not in _CLASSES:
        tokens = tokenizer.convert_ids_to_tokens(list(range(len(tokenizer))))
        texts = [tokenizer.convert_tokens_to_string([t]) if t is not None else "" for t in tokens]
        _CLASSES[key] = WordClasses(texts)
    return _CLASSES[key]


def banned(generated: Sequence[int], n: int) -> set[int]:
    """The tokens that would complete an n-gram already in ``generated``."""
    if n <= 0 or len(generated) < n - 1:
        return set()
    prefix = tuple(generated[len(generated) - (n - 1) :]) if n > 1 else ()
    return {
        generated[i + n - 1]
        for i in range(len(generated) - n + 1)
        if tuple(generated[i : i + n - 1]) == prefix
    }


def constrain(
    logits: Any, generated: Sequence[int], decoding: Decoding, words: WordClasses | None = None
) -> Any:
    """One row's next-token logits (a 1-D tensor) with the rules applied; a new tensor, or ``logits``
    itself when no rule is on. ``words``: the tokenizer's word classes, needed by the word rule."""
    if not decoding.active or not generated:
        return logits
    out = logits.clone()
    if decoding.repetition_penalty != 1.0:
        seen = sorted(set(generated))
        values = out[seen]
        out[seen] = values.where(values < 0, values / decoding.repetition_penalty).where(
            values >= 0, values * decoding.repetition_penalty
        )
    if decoding.no_repeat_ngram_size:
        ban = sorted(banned(generated, decoding.no_repeat_ngram_size))
        if ban:
            out[ban] = float("-inf")
    if decoding.no_repeat_word_ngram_size:
        if words is None:
            raise ValueError("the word n-gram rule needs the tokenizer's word classes")
        ban = [t for t in words.banned(generated, decoding.no_repeat_word_ngram_size) if t < out.shape[0]]
        if ban:
            out[ban] = float("-inf")
    return out


def logits_processor(decoding: Decoding, prompt_width: int, words: WordClasses | None = None) -> Any:
    """A transformers ``LogitsProcessor`` applying :func:`constrain` to each row of a left-padded batch
    whose prompts end at column ``prompt_width``."""
    from transformers import LogitsProcessor

    class RowRules(LogitsProcessor):
        def __call__(self, input_ids: Any, scores: Any) -> Any:
            for row in range(scores.shape[0]):
                generated = input_ids[row, prompt_width:].tolist()
                scores[row] = constrain(scores[row], generated, decoding, words)
            return scores

    return RowRules()
