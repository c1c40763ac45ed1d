"""Quality filters for teacher replies and generated answers. Each drop has a named reason, counted."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

_LABEL = re.compile(
    r"^\s*(?:[*_#>\s]*)(?:instruction|question|request|prompt|task|here(?:'s| is)[^:\n]{0,60})\s*[:：]\s*",
    re.IGNORECASE,
)
_WORD = re.compile(r"\w+", re.UNICODE)
_DESCRIBES = re.compile(
    r"^(?:the|this|that)\s+(?:passage|text|code|snippet|excerpt|article|post)\b", re.IGNORECASE
)
_VAGUE = re.compile(r"\b(?:this|the)\s+(?:text|passage|topic)\b|\ba\s+topic\b", re.IGNORECASE)
_QUOTES = "\"'“”‘’`*_ "


@dataclass(frozen=True)
class InstructionRules:
    min_words: int = 3
    max_words: int = 60
    max_copied_fraction: float = 0.5
    """Drop an instruction when this share of its word 4-grams appears in the passage."""
    max_similarity: float = 0.7
    """Drop an instruction this similar (word-trigram Jaccard) to one already kept."""


def words(text: str) -> list[str]:
    return [w.lower() for w in _WORD.findall(text)]


def ngrams(tokens: list[str], n: int) -> set[tuple[str, ...]]:
    return {tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)}


def jaccard(a: set[tuple[str, ...]], b: set[tuple[str, ...]]) -> float:
    return len(a & b) / len(a | b) if a and b else 0.0


def clean_instruction(reply: str) -> str:
    """The instruction in a teacher's reply: labels, quotes and anything after the first paragraph removed."""
    text = reply.strip()
    text = _LABEL.sub("", text, count=1).strip()
    paragraph = next((p for p in re.split(r"\n\s*\n", text) if p.strip()), "")
    line = " ".join(paragraph.split())
    line = _LABEL.sub("", line, count=1).strip()
    return line.strip(_QUOTES).strip()


_TOPIC_LEAD = re.compile(
    r"^(?:the\s+)?(?:main\s+)?(?:topic|subject|theme)(?:\s+of\s+(?:this|the)\s+(?:text|passage|code))?\s+(?:is|are)\s+"
    r"(?:about\s+|that\s+)?|^(?:this|the)\s+(?:text|passage|code)\s+(?:is\s+about|discusses|explores|describes|covers|explains)\s+",
    re.IGNORECASE,
)


def clean_topic(reply: str) -> str:
    """The topic phrase in a reply like "The main topic of this text is the cost of retries."."""
    text = clean_instruction(reply)
    text = _TOPIC_LEAD.sub("", text, count=1).strip()
    first = re.split(r"(?<=[.!?])\s", text, maxsplit=1)[0]
    first = first.rstrip(" .!?;:").strip(_QUOTES)
    if first[:1].isupper() and not first[1:2].isupper():
        first = first[0].lower() + first[1:]
    return first


_COMMON_WORDS = """a about above after again against all am an and any are as at be because been before being below
    between both but by can could did do does doing down during each few for from further had has have
    having he her here hers him his how i if in into is it its just me more most my no nor not now of off
    on once only or other our out over own same she should so some such than that the their them then
    there these they this those through to too under until up very was we were what when where which
    while who whom why will with would you your yours write explain describe tell give share discuss
    think thoughts view views opinion advice approach way ways about thing things something someone
    people make made one two use using used"""
_COMMON = frozenset(_COMMON_WORDS.split())


def repeats_phrase(text: str, n: int = 3) -> bool:
    """A word n-gram occurs twice: "measure first and scale, measure first and scale" (a looping reply)."""
    tokens = words(text)
    grams = [tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)]
    return len(grams) != len(set(grams))


def content_stems(text: str) -> set[str]:
    """The content words of a text (4 letters or more, not common) as 4-letter prefixes, a crude stem:
    "retries" and "retry" meet at "retr"."""
    return {w[:4] for w in words(text) if len(w) >= 4 and w not in _COMMON}


def off_topic(text: str, passage: str) -> bool:
    """No content word of ``text`` is in the passage: the reply is about something else."""
    mine = content_stems(text)
    return bool(mine) and not mine & content_stems(passage)


def topic_problem(topic: str, finished: bool, max_words: int = 20) -> str | None:
    if not topic:
        return "empty"
    if not finished:
        return "too_long"
    n = len(words(topic))
    if n < 2:
        return "too_short"
    if n > max_words:
        return "too_long"
    if sum(c.isalpha() for c in topic) < 0.5 * len(topic.replace(" ", "")):
        return "not_text"
    if _VAGUE.search(topic):
        return "describes_passage"
    if repeats_phrase(topic):
        return "repeats_phrase"
    return None


def instruction_problem(
    instruction: str, passage: str, finished: bool, rules: InstructionRules
) -> str | None:
    """Why this instruction is unusable, or ``None`` when it is fine (duplicates are judged separately)."""
    if not instruction:
        return "empty"
    if not finished:
        return "too_long"
    tokens = words(instruction)
    if sum(c.isalpha() for c in instruction) < 0.5 * len(instruction.replace(" ", "")):
        return "not_text"
    if len(tokens) < rules.min_words:
        return "too_short"
    if len(tokens) > rules.max_words:
        return "too_long"
    if _DESCRIBES.match(instruction):
        return "describes_passage"
    if repeats_phrase(instruction):
        return "repeats_phrase"
    if off_topic(instruction, passage):
        return "off_topic"
    grams = ngrams(tokens, 4)
    if grams and len(grams & ngrams(words(passage), 4)) / len(grams) >= rules.max_copied_fraction:
        return "copies_passage"
    return None


class NearDuplicates:
    """Remembers kept texts; ``seen`` is true for one too similar to an earlier one (trigram Jaccard)."""

    def __init__(self, threshold: float) -> None:
        self.threshold = threshold
        self._kept: list[set[tuple[str, ...]]] = []
        self._by_gram: dict[tuple[str, ...], list[int]] = {}

    def seen(self, text: str) -> bool:
        tokens = words(text)
        grams = ngrams(tokens, 3) or {tuple(tokens)}
        candidates = {i for g in grams for i in self._by_gram.get(g, ())}
        if any(jaccard(grams, self._kept[i]) >= self.threshold for i in candidates):
            return True
        for g in grams:
            self._by_gram.setdefault(g, []).append(len(self._kept))
        self._kept.append(grams)
        return False


def clean_answer(reply: str, finished: bool) -> str:
    """A generated answer, cut back to its last sentence end when generation ran out of tokens."""
    text = reply.strip()
    if finished:
        return text
    ends = list(re.finditer(r"[.!?…][\"')\]”’]*(?=\s|$)", text))
    return text[: ends[-1].end()] if ends else text


def rejected_problem(rejected: str, chosen: str, min_words: int, max_similarity: float) -> str | None:
    if not rejected.strip():
        return "empty"
    if len(words(rejected)) < min_words:
        return "too_short"
    if jaccard(ngrams(words(rejected), 3), ngrams(words(chosen), 3)) >= max_similarity:
        return "too_similar"
    return None


def tally(reasons: Iterable[str]) -> dict[str, int]:
    return dict(sorted(Counter(reasons).items()))
