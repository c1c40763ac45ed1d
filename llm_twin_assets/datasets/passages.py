"""Passages: the windows of an author's cleaned text that become answers, verbatim.

Prose (articles, posts) is packed from whole paragraphs up to a word budget, with no overlap (an answer
is a passage the author wrote, once). Code is cut at file and top-level definition boundaries, the
same boundaries the chunker uses. Every passage is then trimmed so it starts and ends cleanly.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from llm_twin_assets.features.chunking import ChunkingOptions, chunk_document
from llm_twin_assets.records import Document


@dataclass(frozen=True)
class Passage:
    document_id: str
    document_url: str
    kind: str
    title: str
    ordinal: int
    text: str

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


_SENTENCE_END = re.compile(r"[.!?…][\"')\]”’»]*(?=\s|$)")
_CLEAN_START = re.compile(r"^[\w\"'“‘(\[«#*>`-]", re.UNICODE)


def trim_prose(text: str, *, ends_paragraph: bool = True) -> str | None:
    """The passage starting at a word and ending cleanly; ``None`` if nothing is left.

    A passage that ends where the author ended a paragraph is kept whole (a post may end without a
    full stop). One cut inside a paragraph loses its unfinished tail, back to the last sentence end.
    """
    text = text.strip()
    while text and not _CLEAN_START.match(text):
        text = text[1:].lstrip()
    if not text:
        return None
    if ends_paragraph or _SENTENCE_END.search(text[-3:]):
        return text
    ends = list(_SENTENCE_END.finditer(text))
    if not ends:
        return None
    return text[: ends[-1].end()].rstrip()


def _ends_paragraph(content: str, window: str) -> bool:
    at = content.find(window)
    if at < 0:  # the chunker normalised whitespace: judge by the window alone
        return False
    rest = content[at + len(window) :]
    return not rest.strip() or rest.startswith("\n")


def trim_code(text: str) -> str | None:
    lines = text.rstrip().splitlines()
    while lines and not lines[0].strip():
        lines.pop(0)
    return "\n".join(lines) if lines else None


def passages_of(document: Document, options: PassageOptions) -> tuple[list[Passage], int]:
    """The document's passages, and how many windows were dropped as too short or unclean."""
    chunking = ChunkingOptions(
        max_tokens=options.max_words, target_tokens=options.window_words, overlap_tokens=0, special_tokens=0
    )
    windows = [c.text for c in chunk_document(document.id, document.kind, document.content, chunking, _words)]
    kept: list[Passage] = []
    dropped = 0
    for window in windows:
        if document.kind == "repository":
            text = trim_code(window)
        else:
            text = trim_prose(window, ends_paragraph=_ends_paragraph(document.content, window))
        if text is None or len(text.split()) < options.min_words:
            dropped += 1
            continue
        kept.append(
            Passage(document.id, document.url, document.kind, document.title or document.url, len(kept), text)
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
