"""Sentences and paragraphs as spans of a text: where chunking may cut prose.

A paragraph ends at a blank line. A sentence ends after ``.``, ``!``, ``?``, ``…`` (or a run of them) and
the closing quotes and brackets right after them, when white space and a sentence that does not start in
lower case follow; after ``。！？`` even without white space. Not after an abbreviation (``Mr.``, ``e.g.``)
or an initial (``J.``), after a list number at the start of a line (``1.``), nor inside brackets or a
double quotation still open. A line that starts a list item starts a unit of its own.
"""

from __future__ import annotations

import re

Span = tuple[int, int]

CLOSERS = "\"'”’»›)]}」』）】〕〉》〗〙〛"
"""Closing quotes and brackets: they stay with the sentence they close."""
_BRACKETS = tuple(
    (pair[0], pair[1]) for pair in ("()", "[]", "{}", "“”", "«»", "「」", "『』", "（）", "【】")
)
_CLOSING = f"[{re.escape(CLOSERS)}]*"
_SENTENCE_END = re.compile(rf"(?P<spaced>[.!?…‽⁇⁈⁉؟۔।॥]+{_CLOSING})(?=\s)|[。！？｡．]+{_CLOSING}")
LIST_ITEM = re.compile(r"\n[^\S\n]*(?:[-*+•‣◦▪]|\d{1,9}[.)])[^\S\n]")
_UNIT_BREAK = re.compile(f"{_SENTENCE_END.pattern}|(?P<item>{LIST_ITEM.pattern})")
_PARAGRAPH_BREAK = re.compile(r"\n[^\S\n]*\n\s*")
_ABBREVIATIONS = frozenset(
    "mr mrs ms dr prof sr jr st vs etc cf al fig figs vol pp inc ltd approx dept e.g i.e a.m p.m "  # noqa: SIM905
    "u.s u.k ph.d".split()
)
_LIST_NUMBER = re.compile(r"[^\S\n]*(?:\d{1,9}|[A-Za-z]|[ivxlcdm]{1,6}|[IVXLCDM]{1,6})")
_MAX_SENTENCE_CHARS = 2_000  # an unclosed bracket or quote holds sentences together no further than this
_OPENERS = "\"'“‘«(["
_OPENING = re.compile('["' + re.escape("".join(o for o, _ in _BRACKETS)) + "]")
NON_SPACE = re.compile(r"\S")


def trimmed(text: str, start: int, end: int) -> Span | None:
    """``start:end`` without the blank space at its ends; ``None`` if nothing else is there."""
    first = NON_SPACE.search(text, start, end)
    if first is None:
        return None
    return first.start(), start + len(text[start:end].rstrip())


def _opens_a_bracket(text: str, start: int, end: int) -> bool:
    """Whether ``text[start:end]`` leaves a bracket or a double quotation open."""
    if end - start > _MAX_SENTENCE_CHARS or _OPENING.search(text, start, end) is None:
        return False
    if text.count('"', start, end) % 2:
        return True
    return any(text.count(o, start, end) > text.count(c, start, end) for o, c in _BRACKETS)


def _ends_sentence(text: str, start: int, match: re.Match[str], paragraph_start: int) -> bool:
    """Whether a candidate sentence end really ends the sentence that began at ``start``."""
    if _opens_a_bracket(text, start, match.end()):
        return False
    if match["spaced"] is None:  # 。！？: no abbreviations, no case
        return True
    following = NON_SPACE.search(text, match.end())
    if following is None or following[0].islower():
        return False
    if match["spaced"].rstrip(CLOSERS) != ".":
        return True
    line_start = max(paragraph_start, text.rfind("\n", paragraph_start, match.start()) + 1)
    words = text[max(line_start, match.start() - 12) : match.start()].split()
    word = words[-1].lstrip(_OPENERS) if words else ""
    if word.lower() in _ABBREVIATIONS or (len(word) == 1 and word.isupper()):
        return False
    return not _LIST_NUMBER.fullmatch(text, line_start, match.start())  # "1. " starting a line


def sentence_spans(text: str, start: int, end: int) -> list[Span]:
    """The sentences and list items of the paragraph ``text[start:end]``, trimmed."""
    spans: list[Span] = []
    unit_start = start
    for match in _UNIT_BREAK.finditer(text, start, end):
        if match["item"] is not None:
            cut = match.start()
        elif _ends_sentence(text, unit_start, match, start):
            cut = match.end()
        else:
            continue
        span = trimmed(text, unit_start, cut)
        if span is not None:
            spans.append(span)
            unit_start = cut
    last = trimmed(text, unit_start, end)
    return [*spans, last] if last is not None else spans


def paragraph_spans(text: str, start: int = 0, end: int | None = None) -> list[Span]:
    """The paragraphs of ``text[start:end]`` (separated by blank lines), trimmed."""
    end = len(text) if end is None else end
    spans: list[Span] = []
    for match in _PARAGRAPH_BREAK.finditer(text, start, end):
        span = trimmed(text, start, match.start())
        if span is not None:
            spans.append(span)
        start = match.end()
    last = trimmed(text, start, end)
    return [*spans, last] if last is not None else spans
