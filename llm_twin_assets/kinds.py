"""The document kinds: every module that treats kinds differently reads this registry, and nothing else
names a kind. Imports nothing from the package (enforced by import-linter).

A kind's *family* decides how its text is treated everywhere: ``prose`` is cleaned of page boilerplate,
split into retrieval units, trimmed to sentence ends in passages, checked for answers cut mid-sentence
and given the prose instruction prompt; ``code`` is kept as written, chunked along files and
definitions, has its language recorded as ``code`` and is given the code instruction prompt. Its
*chunking* names the chunker (``features.chunking.CHUNKERS``); its *frames* are the instructions a
teacher's topic is framed in (``datasets.prompts.frame_instruction``).

Adding a kind (say ``talk``, talk transcripts read from pages or local text files):

1. an entry in :data:`REGISTRY` below;
2. a data-only migration, ``sql/NNN_talk_kind.sql``:
   ``INSERT INTO document_kinds (kind, family) VALUES ('talk', 'prose');``
   (the store refuses to start while a registered kind is missing from that table);
3. only if its links have a shape of their own (a host, a suffix): the rule in
   ``crawling/dispatcher.infer_kind`` that recognises them, and a crawler module under ``crawling/``
   when pages, feeds, local folders, LinkedIn exports and git repositories cannot read it. Without a
   rule, a links file names the kind (``kind: talk``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Family = Literal["prose", "code"]
Chunking = Literal["prose", "post", "code"]


@dataclass(frozen=True)
class DocumentKind:
    name: str
    family: Family
    chunking: Chunking
    """The chunker: ``prose`` (sections and blocks), ``post`` (a short post kept whole where it fits),
    ``code`` (files and definitions)."""
    frames: tuple[str, ...]
    """Instructions framed from a passage's topic (``{topic}``, ``{title}``); one is picked per passage."""
    description: str
    """What a document of this kind is, for help texts."""


REGISTRY: tuple[DocumentKind, ...] = (
    DocumentKind(
        "article",
        "prose",
        "prose",
        (
            'Write a passage for your article "{title}" about {topic}.',
            "Explain, in your own words and from your experience, {topic}.",
            "Write a few paragraphs on {topic}, the way you would for your blog.",
        ),
        "a page or blog article (also a local folder of drafts)",
    ),
    DocumentKind(
        "post",
        "prose",
        "post",
        ("Write a short social media post about {topic}.", "Share a quick post on {topic}."),
        "a short social post (also a LinkedIn data export)",
    ),
    DocumentKind(
        "repository",
        "code",
        "code",
        (
            'Write the code in your project "{title}" that deals with {topic}.',
            'Show how your project "{title}" implements {topic}.',
        ),
        "a git repository's source and docs",
    ),
)

KINDS: tuple[str, ...] = tuple(k.name for k in REGISTRY)
_BY_NAME = {k.name: k for k in REGISTRY}


def document_kind(name: str) -> DocumentKind:
    """The registered kind called ``name``; a ``ValueError`` naming the known kinds otherwise."""
    found = _BY_NAME.get(name)
    if found is None:
        raise ValueError(f"unknown document kind {name!r}: use {', '.join(KINDS)}")
    return found


def kinds_of(family: Family) -> tuple[str, ...]:
    """The registered kinds of one family, in registry order."""
    return tuple(k.name for k in REGISTRY if k.family == family)


def is_code(name: str) -> bool:
    """Whether ``name`` is a registered kind of the code family (an unknown kind is not)."""
    found = _BY_NAME.get(name)
    return found is not None and found.family == "code"


def is_prose(name: str) -> bool:
    """Whether ``name`` is a registered kind of the prose family (an unknown kind is not)."""
    found = _BY_NAME.get(name)
    return found is not None and found.family == "prose"


def kinds_help() -> str:
    """One line naming every kind and what it is, for CLI help."""
    return "; ".join(f"{k.name}: {k.description}" for k in REGISTRY)
