"""Passages: the windows of an author's cleaned text that become answers, verbatim.

Every passage is a span of its cleaned document (``content[start:end] == text``): trimming drops
characters at its ends, never in its middle. Prose (articles, posts) is packed from whole blocks —
paragraphs, list items, code blocks, tables — up to a word budget, with no overlap (an answer is a
passage the author wrote, once), never across a heading; so a passage starts at a heading, a paragraph
or a list item and ends at the end of one (a block over the limit alone is cut, at a sentence end with
the quotes and brackets that close it). Code is cut at file and top-level definition boundaries, the same boundaries the
chunker uses; the crawler's ``␞ path`` line is not the author's text and is left out.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from llm_twin_assets.features.chunking import ChunkingOptions, chunk_document
from llm_twin_assets.features.sentences import CLOSERS, sentence_spans, trimmed
from llm_twin_assets.kinds import is_code
from llm_twin_assets.records import Document

Span = tuple[int, int]


@dataclass(frozen=True)
class Passage:
    document_id: str
    document_url: str
    kind: str
    title: str
    ordinal: int
    text: str
    start: int = 0
    """Where the passage starts in its cleaned document: ``text == content[start:end]``."""
    end: int = 0

    @property
    def words(self) -> int:
        return len(self.text.split())


@dataclass(frozen=True)
class PassageOptions:
    window_words: int = 160
    """Target size of a prose passage; paragraphs are packed up to it (a longer paragraph stands alone)."""
    max_words: int = 320
    """No passage is longer: a longer paragraph is cut at sentence ends."""
    min_words: int = 12
    """Shorter passages are dropped (``answer_too_short``)."""


def _words(texts: Sequence[str]) -> list[int]:
    return [len(t.split()) for t in texts]


_CLOSING = f"[{re.escape(CLOSERS)}]*"
_ENDS_SENTENCE = re.compile(rf"[.!?…‽⁇⁈⁉؟۔।॥。！？｡．]+{_CLOSING}\Z")
# Punctuation that continues something before it: a passage does not start with it (".NET" does).
_UNCLEAN_START = re.compile(r"(?:[\s,;:!?…)\]}»”’—–]|\.(?!\w))+")
# After a window's end: the end of the text, a blank line, or a new list item.
_CLEAN_END = re.compile(r"[^\S\n]*(?:\Z|\n[^\S\n]*(?:\n|\Z)|\n[^\S\n]*(?:[-*+•‣◦▪]|\d{1,9}[.)])[^\S\n])")
_FILE_LINE = re.compile(r"\u241e [^\n]*(?:\n|\Z)")
_BLANK_LINES = re.compile(r"(?:[^\S\n]*\n)+")


def _ends_sentence(text: str, start: int, end: int) -> bool:
    return _ENDS_SENTENCE.search(text[max(start, end - 16) : end]) is not None


def trim_prose_span(text: str, start: int, end: int, *, ends_paragraph: bool) -> Span | None:
    """``text[start:end]`` starting at a word and ending cleanly, as a span; ``None`` if nothing is left.

    A window that ends where the author ended a paragraph (or a list item) is kept whole: a post may
    end without a full stop. Otherwise it loses its unfinished tail, back to the last sentence end
    and the quotes and brackets that close it."""
    lead = _UNCLEAN_START.match(text, start, end)
    span = trimmed(text, lead.end() if lead else start, end)
    if span is None:
        return None
    start, end = span
    if ends_paragraph or _ends_sentence(text, start, end):
        return span
    for _, sentence_end in reversed(sentence_spans(text, start, end)[:-1]):
        if _ends_sentence(text, start, sentence_end):
            return start, sentence_end
    return None


def trim_prose(text: str, *, ends_paragraph: bool = True) -> str | None:
    """:func:`trim_prose_span` of a whole text, as text."""
    span = trim_prose_span(text, 0, len(text), ends_paragraph=ends_paragraph)
    return text[span[0] : span[1]] if span else None


def trim_code_span(text: str, start: int, end: int) -> Span | None:
    """``text[start:end]`` without a leading ``␞ path`` line, blank lines, or trailing blank space."""
    header = _FILE_LINE.match(text, start, end)
    start = header.end() if header else start
    blank = _BLANK_LINES.match(text, start, end)
    start = blank.end() if blank else start
    span = trimmed(text, start, end)
    return (start, span[1]) if span else None  # the first line keeps its indentation


def passages_of(document: Document, options: PassageOptions) -> tuple[list[Passage], int]:
    """The document's passages, and how many windows were dropped as too short or unclean."""
    chunking = ChunkingOptions(
        max_tokens=options.max_words,
        target_tokens=options.window_words,
        overlap_tokens=0,
        special_tokens=0,
        units="blocks",
    )
    content = document.content
    kept: list[Passage] = []
    dropped = 0
    windows = chunk_document(
        document.id,
        document.kind,
        content,
        chunking,
        _words,
        title=document.title,
        headings=document.headings,
    )
    for window in windows:
        if is_code(document.kind):
            span = trim_code_span(content, window.start, window.end)
        else:
            clean_end = _CLEAN_END.match(content, window.end) is not None
            span = trim_prose_span(content, window.start, window.end, ends_paragraph=clean_end)
        text = content[span[0] : span[1]] if span else ""
        if span is None or len(text.split()) < options.min_words:
            dropped += 1
            continue
        kept.append(
            Passage(
                document.id,
                document.url,
                document.kind,
                document.title or document.url,
                len(kept),
                text,
                start=span[0],
                end=span[1],
            )
        )
    return kept, dropped


def passages_of_all(documents: Iterable[Document], options: PassageOptions) -> tuple[list[Passage], int]:
    passages: list[Passage] = []
    dropped = 0
    for document in documents:
        kept, lost = passages_of(document, options)
        passages += kept
        dropped += lost
    return passages, dropped


def spread(passages: list[Passage], limit: int | None) -> list[Passage]:
    """At most ``limit`` passages, taken round-robin over documents so every document is represented."""
    if limit is None or len(passages) <= limit:
        return passages
    by_document: dict[str, list[Passage]] = {}
    for p in passages:
        by_document.setdefault(p.document_id, []).append(p)
    picked: list[Passage] = []
    depth = 0
    while len(picked) < limit:
        for group in by_document.values():
            if depth < len(group) and len(picked) < limit:
                picked.append(group[depth])
        depth += 1
    return picked
