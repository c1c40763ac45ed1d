"""The record types and ids every layer shares. Imports nothing from the package (enforced by import-linter).

Crawlers produce :class:`CrawledDocument` and :class:`CrawlOutcome`, the chunker :class:`Chunk`, the
store reads :class:`Document` rows for the dataset builders; ids are content-derived, so the same input
always gives the same id and every write can be an idempotent upsert.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

Kind = str
"""A document kind's name: one of ``llm_twin_assets.kinds.KINDS`` (checked where documents come in)."""

_SEP = "\x1f"  # unit separator: cannot appear in URLs or slugs, so parts never run together


def content_hash(text: str) -> str:
    """sha256 of the text, hex (64 chars)."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def stable_id(*parts: object) -> str:
    """A 32-hex-char id from its parts (sha256, truncated: 128 bits, collisions are not a concern)."""
    joined = _SEP.join(str(p) for p in parts)
    return hashlib.sha256(joined.encode("utf-8")).hexdigest()[:32]


def document_id(author: str, canonical_url: str) -> str:
    """One raw (and cleaned) document per author and canonical source URL."""
    return stable_id("document", author, canonical_url)


def chunk_id(document: str, ordinal: int, chunk_content_hash: str) -> str:
    """A chunk is identified by its document, its position and its content."""
    return stable_id("chunk", document, ordinal, chunk_content_hash)


def unit_id(chunk: str, start: int, end: int) -> str:
    """A retrieval unit is identified by its chunk and its span (document offsets)."""
    return stable_id("unit", chunk, start, end)


@dataclass
class CrawledDocument:
    url: str  # canonical: the row's identity
    kind: Kind
    content: str
    source_link: str  # the links-file entry it came from
    title: str | None = None
    published_at: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass
class LinkFailure:
    link: str
    kind: str | None
    error: str
    gone: bool = False
    """The source said the link is gone for good (HTTP 404/410, a deleted file), not a passing failure."""


@dataclass
class CrawlOutcome:
    documents: list[CrawledDocument] = field(default_factory=list)
    failures: list[LinkFailure] = field(default_factory=list)
    crawled_links: set[str] = field(default_factory=set)  # links that produced an answer
    complete_links: set[str] = field(default_factory=set)
    """Links whose answer lists every document they hold (a drafts folder, even an empty one, a LinkedIn
    export, an article page or a repository: their one document): a stored document of such a link
    that is no longer listed is gone at its source. A feed is never complete (it shows only its newest
    entries), so a post that left the feed is kept."""
    stats: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Chunk:
    id: str
    document_id: str
    ordinal: int
    text: str
    n_tokens: int
    content_hash: str
    start: int = 0
    """Where the chunk starts in its cleaned document: ``text == document[start:end]``."""
    end: int = 0
    heading_path: tuple[str, ...] = ()
    """The headings above the chunk, outermost first (for a repository: the file's path)."""
    context: str = ""
    """What is embedded above the chunk's text: its document's title and heading path (never part of
    the author's text)."""
    token_ids: tuple[int, ...] | None = None
    """What the embedder reads (context and text, special tokens included), as its tokenizer's ids, when
    the chunker could give them exactly (an additive tokenizer); the encoder then skips tokenizing."""


@dataclass(frozen=True)
class Document:
    """A cleaned document, as the dataset builders read it."""

    id: str
    url: str
    kind: str
    title: str
    content: str
    headings: tuple[tuple[int, int, int], ...] = ()
    """(start, end, level) of each heading line in ``content``, as the cleaner recorded them."""
