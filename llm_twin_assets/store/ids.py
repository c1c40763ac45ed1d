"""Deterministic, content-derived ids: the same input always gives the same id."""

from __future__ import annotations

import hashlib

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
