"""Hostile text for the chunker and passage tests: seeded, so every failure names a reproducible case."""

from __future__ import annotations

import random

from llm_twin_assets.features.sentences import CLOSERS

__all__ = ["CLOSERS", "balanced", "balanced_document", "document", "paragraph", "uncovered"]

SENTENCES = [
    'He said "stop." Then (we left.) Done.',
    "She said, \"He told me 'no.' Then left.\" OK.",
    "“Curly,” she said. ‘Single.’ «Guillemets.» [Bracketed.] {Braced.}",
    "Wait... what? And then… nothing. Hmm …",
    "Dr. Smith met Mr. J. R. Tolkien at 5 p.m. yesterday, i.e. Monday. Fig. 3 shows it.",
    'Really?! Yes!! (Maybe.) "Quoted (nested [deep.])" End.',
    "数据管道很重要。我们需要测试！真的吗？「好。」『对。』（是的。）",
    "مرحبا بالعالم. هذا نص عربي؟ שלום עולם. (טקסט.)",
    "Use `a.b()` then `x < y` and `<path>` here. It works.",
    "Family 👨‍👩‍👧‍👦 and flag 🏳️‍🌈 and thumbs 👍🏽. Nice 🎉!",
    "Version 2.0 costs $3.50. Pi is 3.14159. Done.",
    '"tool run -- <path>" lost the path. Use C:\\Users\\maya and \\d+ here.',
    "Tabs\tinside\tthe sentence. And    spaces.",
    "nai\u0308ve cafe\u0301 with combining marks. Next one.",
    "e.g. this starts lower. so does this one. Then a capital.",
    "می\u200cخواهم بنویسم. Persian keeps its ZWNJ.",
]
"""Sentences whose brackets and double quotes are balanced, every one."""
BLOCKS = [
    "- item one\n- item two\n- item three",
    "1. first step\n2. second step\n3) third step",
    "* star item\n+ plus item\n• bullet item",
    "Roses are red\nViolets are blue\nSugar is sweet\nAnd so are you",
    "Maya Okafor\n12 Long Road\nLagos 100001\nNigeria",
    "```python\ndef f(x):\n    return x. Not a sentence\n```",
    "| a | b |\n|---|---|\n| 1 | 2 |",
    "line one\r\nline two\r\n\r\nafter a CRLF blank line",
]
GIANT_WORDS = [
    lambda r: "https://example.org/" + "a1b2c3/" * r.randint(50, 400),
    lambda r: "x" * r.randint(500, 4000),
    lambda r: "👨‍👩‍👧" * r.randint(100, 400),
    lambda r: "e\u0301" * r.randint(300, 1500),
    lambda r: "数据管道很重要" * r.randint(50, 300),
]
SEPARATORS = [" ", " ", "\n", "\n\n", "\n\n", "\r\n", "\r\n\r\n", "\n \n", "\t", "\n\n\n\n", ""]
BRACKETS = ["()", "[]", "{}", "“”", "«»", "「」", "『』", "（）"]


def paragraph(r: random.Random, sentences: int) -> str:
    return " ".join(r.choice(SENTENCES) for _ in range(sentences))


def document(r: random.Random, *, giant_words: bool = True) -> str:
    """Paragraphs, lists, poems, addresses, code, tables, giant words and one-line walls of text, joined
    by every kind of white space (CRLF and tabs included), sometimes with blank space around."""
    parts = []
    for _ in range(r.randint(1, 12)):
        roll = r.random()
        if roll < 0.55:
            parts.append(paragraph(r, r.randint(1, 8)))
        elif roll < 0.8:
            parts.append(r.choice(BLOCKS))
        elif roll < 0.9 and giant_words:
            parts.append(r.choice(GIANT_WORDS)(r))
        else:
            parts.append(paragraph(r, r.randint(20, 60)))  # a giant line
    text = parts[0]
    for part in parts[1:]:
        text += r.choice(SEPARATORS) + part
    if r.random() < 0.2:
        text = f"\n\n  \n{text}\n\n\t\n"
    return text


def balanced_document(r: random.Random) -> str:
    """Paragraphs of balanced sentences only."""
    separator = r.choice(["\n\n", " ", "\r\n\r\n", "\n"])
    return separator.join(paragraph(r, r.randint(1, 8)) for _ in range(r.randint(1, 6)))


def balanced(text: str) -> bool:
    """Double quotes paired and every bracket closed as often as opened."""
    return text.count('"') % 2 == 0 and all(text.count(a) == text.count(b) for a, b in BRACKETS)


def uncovered(text: str, spans: list[tuple[int, int]]) -> str:
    """The characters outside every span, but blank space (empty when the spans cover the text)."""
    missing = []
    position = 0
    for start, end in sorted(spans):
        if start > position:
            missing.append(text[position:start])
        position = max(position, end)
    missing.append(text[position:])
    return "".join("".join(piece.split()) for piece in missing)
