"""Retrieval units: the small parts of a chunk that search ranks on their own (small-to-big retrieval).

A chunk of a list-heavy page holds twenty items; a reader's question matches one of them, and the other
nineteen drown it in the chunk's embedding. So each chunk is also cut into units, each embedded on its
own (with the chunk's context above it, like the chunk), and a search that finds a unit returns its chunk
(the passage) with the unit marked (:mod:`llm_twin_assets.retrieval`).

The units of a chunk, in order, are spans of its text (like chunks, lossless: ``text[start:end]``):

- each list item (a line starting ``-``, ``*``, ``+``, ``•``, ``1.``, ``1)``: the chunker's own rule);
- each row of a table (not its ``|---|`` separator rows);
- a paragraph of at most :data:`MAX_UNIT_CHARS` characters, whole; a longer paragraph (or list item) as
  groups of its sentences of at most :data:`GROUP_CHARS` characters (a longer sentence alone);
- never a heading (it is in the chunk's context already) nor a fenced code block (searched as the chunk);
- nothing of fewer than :data:`MIN_UNIT_WORDS` words (a separator, a lone label).

A chunk that would have a single unit has none: the chunk is its own unit. Chunks of code (repository
documents) have none either.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from llm_twin_assets.features.chunking import Heading, _blocks, block_spans
from llm_twin_assets.features.sentences import sentence_spans
from llm_twin_assets.kinds import is_code

UNITS_VERSION = 1
"""Changes whenever the same chunk gives other units: part of every chunk's ``units_key``."""
MAX_UNIT_CHARS = 400
GROUP_CHARS = 300
MIN_UNIT_WORDS = 3

Span = tuple[int, int]
_LINE = re.compile(r"\S(?:[^\n]*\S)?")
_TABLE_SEPARATOR = re.compile(r"[\s|:+\-]*")
_WORD = re.compile(r"\w+")


def _sentence_groups(text: str, start: int, end: int) -> list[Span]:
    """The sentences of ``text[start:end]``, consecutive ones joined up to GROUP_CHARS characters."""
    groups: list[Span] = []
    for s, e in sentence_spans(text, start, end):
        if groups and e - groups[-1][0] <= GROUP_CHARS:
            groups[-1] = (groups[-1][0], e)
        else:
            groups.append((s, e))
    return groups


def unit_spans(text: str, headings: Sequence[Heading] = (), kind: str = "article") -> list[Span]:
    """The units of a chunk's ``text`` (offsets into it), in order; ``headings``: the heading lines that
    fall in it (offsets into it). Empty when the chunk is its own unit."""
    if is_code(kind):  # code is chunked along definitions: a chunk is its own unit
        return []
    spans: list[Span] = []
    for s, e, what in _blocks(text, headings):
        if what in ("heading", "code"):
            continue
        if what == "table":
            spans += [
                m.span() for m in _LINE.finditer(text, s, e) if not _TABLE_SEPARATOR.fullmatch(m.group())
            ]
            continue
        for a, b in block_spans(text, s, e):  # its list items, or the whole paragraph
            spans += [(a, b)] if b - a <= MAX_UNIT_CHARS else _sentence_groups(text, a, b)
    spans = [(a, b) for a, b in spans if len(_WORD.findall(text, a, b)) >= MIN_UNIT_WORDS]
    return spans if len(spans) > 1 else []
