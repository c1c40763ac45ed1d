"""Units into chunks: each unit's tokens counted (one batch), a unit over the limit cut (at line breaks,
then between words, then between characters, never inside one drawn symbol), and units packed greedily
into chunks of about ``target_tokens``, the close of a paragraph that runs on repeated as overlap.
``features.chunking`` decides what the units are."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import NamedTuple

from llm_twin_assets.features.sentences import Span
from llm_twin_assets.features.tokens import Counter

_LINE = re.compile(r"\S(?:[^\n]*\S)?")
_CODE_LINE = re.compile(r"[^\S\n]*\S(?:[^\n]*\S)?")  # with its indentation
_WORD = re.compile(r"\S+")


@dataclass(frozen=True)
class ChunkingOptions:
    max_tokens: int = 256  # what the embedder reads, special tokens included
    target_tokens: int = 200
    overlap_tokens: int = 40
    special_tokens: int = 2  # [CLS] and [SEP]
    context_tokens: int = 0
    """Kept for the context (title and heading path) embedded above each chunk; 0 = no context."""
    units: str = "sentences"
    """'sentences' (chunks for retrieval) or 'blocks' (passages: whole paragraphs and list items)."""

    @property
    def budget(self) -> int:
        """Tokens for the chunk's own text."""
        return self.max_tokens - self.special_tokens - self.context_tokens


class Unit(NamedTuple):
    start: int
    end: int
    opens: bool  # starts a paragraph (or a definition): a preferred break point
    size: int = 0  # tokens
    heading: bool = False  # a heading line: starts a chunk (after anything but headings)


def _inside_symbol(text: str, i: int) -> bool:
    """Whether a cut before ``text[i]`` would split one drawn symbol (combining marks, emoji sequences)."""
    ch = text[i]
    return (
        unicodedata.category(ch) in ("Mn", "Mc", "Me")
        or ch in "\u200d\ufe0e\ufe0f"
        or "\U0001f3fb" <= ch <= "\U0001f3ff"  # skin tones
        or "\U000e0020" <= ch <= "\U000e007f"  # tag sequences (subdivision flags)
        or text[i - 1] == "\u200d"
    )


def _split_chars(text: str, start: int, end: int, budget: int, count: Counter) -> list[Unit]:
    """A word longer than the limit, cut between characters (never inside a drawn symbol)."""
    size = count([text[start:end]])[0]
    if size <= budget or end - start < 2:
        return [Unit(start, end, False, size)]
    step = max(1, (end - start) * budget // (size + 1))
    cuts = [start]
    for planned in range(start + step, end, step):
        cut = planned  # moved back to the symbol's start, or past its end if it started before the last cut
        while cut > cuts[-1] and _inside_symbol(text, cut):
            cut -= 1
        if cut == cuts[-1]:
            cut = planned
            while cut < end and _inside_symbol(text, cut):
                cut += 1
        if cuts[-1] < cut < end:
            cuts.append(cut)
    if len(cuts) == 1:  # one symbol over the limit: the limit wins
        cuts = list(range(start, end, step))
    spans = list(zip(cuts, [*cuts[1:], end], strict=True))
    pieces: list[Unit] = []
    for (s, e), n in zip(spans, count([text[s:e] for s, e in spans]), strict=True):
        pieces += [Unit(s, e, False, n)] if n <= budget else _split_chars(text, s, e, budget, count)
    return pieces


def split_long(
    text: str, start: int, end: int, budget: int, count: Counter, *, indented: bool = False
) -> list[Unit]:
    """Spans of ``text[start:end]`` of at most ``budget`` tokens each (counted, not estimated): cut at
    line breaks, else between words, else between characters. ``indented`` pieces of code start at
    the start of their line."""
    parts = [m.span() for m in (_CODE_LINE if indented else _LINE).finditer(text, start, end)]
    if len(parts) < 2:
        parts = [m.span() for m in _WORD.finditer(text, start, end)]
        if len(parts) < 2:
            return _split_chars(text, start, end, budget, count)
    groups: list[list[Unit]] = []  # parts packed together; a part over the limit is cut on its own
    used = 0
    for (s, e), n in zip(parts, count([text[s:e] for s, e in parts]), strict=True):
        if n > budget:
            groups += [[piece] for piece in split_long(text, s, e, budget, count)]
            used = budget + 1  # nothing joins a cut part
            continue
        if not groups or used + n + len(groups[-1]) > budget:
            groups.append([])
            used = 0
        groups[-1].append(Unit(s, e, False, n))
        used += n
    # Parts packed together are counted together: a seam may cost more than the parts' sum.
    joined = [g for g in groups if len(g) > 1]
    real = count([text[g[0].start : g[-1].end] for g in joined])
    sizes = iter(real)
    pieces: list[Unit] = []
    for group in groups:
        if len(group) == 1:
            pieces.append(group[0])
            continue
        n = next(sizes)
        if n <= budget:
            pieces.append(Unit(group[0].start, group[-1].end, False, n))
        else:  # rare: pack again with the excess taken off the budget
            smaller = max(1, budget - (n - budget) - 1)
            pieces += split_long(text, group[0].start, group[-1].end, smaller, count, indented=indented)
    return pieces


def expand(
    text: str, units: list[Unit], options: ChunkingOptions, count: Counter, *, indented: bool = False
) -> list[Unit]:
    """The units with their token counts (one batch), those over the limit cut into pieces."""
    expanded: list[Unit] = []
    for unit, size in zip(units, count([text[u.start : u.end] for u in units]), strict=True):
        if size <= options.budget:
            expanded.append(unit._replace(size=size))
        else:
            pieces = split_long(text, unit.start, unit.end, options.budget, count, indented=indented)
            expanded += [p._replace(opens=unit.opens and i == 0) for i, p in enumerate(pieces)]
    return expanded


def pack(units: list[Unit], options: ChunkingOptions, *, overlap: bool) -> list[Span]:
    """Greedy packing of units into chunks of about ``target_tokens``, as spans of the text."""
    chunks: list[Span] = []
    current: list[Unit] = []
    used = 0
    for unit in units:
        full = used + unit.size > options.target_tokens or used + unit.size + len(current) > options.budget
        soft_break = unit.opens and used >= 0.6 * options.target_tokens
        new_section = unit.heading and not all(u.heading for u in current)
        if current and (full or soft_break or new_section):
            chunks.append((current[0].start, current[-1].end))
            carried: list[Unit] = []
            carried_tokens = 0
            if overlap and not unit.opens and not unit.heading:  # a paragraph runs on: repeat its close
                for previous in reversed(current[1:]):  # never the whole previous chunk
                    tokens = carried_tokens + previous.size
                    if (
                        tokens > options.overlap_tokens
                        or tokens + unit.size + len(carried) + 1 > options.budget
                    ):
                        break
                    carried.insert(0, previous)
                    carried_tokens = tokens
            current, used = carried, carried_tokens
        current.append(unit)
        used += unit.size
    if current:
        chunks.append((current[0].start, current[-1].end))
    return chunks
