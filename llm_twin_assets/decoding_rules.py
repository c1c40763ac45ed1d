"""Decoding rules that keep a small twin from looping: no repeated n-gram within an answer, and a
repetition penalty. One implementation, applied to one row's logits, used by the evaluation
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

    def __post_init__(self) -> None:
        if self.no_repeat_ngram_size < 0 or self.no_repeat_ngram_size == 1:
            raise ValueError(f"no_repeat_ngram_size must be 0 or at least 2, not {self.no_repeat_ngram_size}")
        if not 1.0 <= self.repetition_penalty <= 2.0:
            raise ValueError(f"repetition_penalty must be in [1, 2], not {self.repetition_penalty}")

    @property
    def active(self) -> bool:
        return self.no_repeat_ngram_size > 0 or self.repetition_penalty != 1.0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any] | None) -> Decoding:
        values = values or {}
        return cls(
            no_repeat_ngram_size=int(values.get("no_repeat_ngram_size", 0)),
            repetition_penalty=float(values.get("repetition_penalty", 1.0)),
        )


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


def constrain(logits: Any, generated: Sequence[int], decoding: Decoding) -> Any:
    """One row's next-token logits (a 1-D tensor) with the rules applied; a new tensor, or ``logits``
    itself when no rule is on."""
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
    return out


def logits_processor(decoding: Decoding, prompt_width: int) -> Any:
    """A transformers ``LogitsProcessor`` applying :func:`constrain` to each row of a left-padded batch
    whose prompts end at column ``prompt_width``."""
    from transformers import LogitsProcessor

    class RowRules(LogitsProcessor):
        def __call__(self, input_ids: Any, scores: Any) -> Any:
            for row in range(scores.shape[0]):
                generated = input_ids[row, prompt_width:].tolist()
                scores[row] = constrain(scores[row], generated, decoding)
            return scores

    return RowRules()
