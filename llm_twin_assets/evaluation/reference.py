"""A reference text by other writers that ships with every Python: the Language Reference topics of the
standard library's ``pydoc_data`` (the help() texts, written by the Python documentation's authors).

Its prose paragraphs (code, tables and grammar left out) are one of the "other writers" that likeness
against other writers is measured on, so that the measure exists even for the only author in a store.
"""

from __future__ import annotations

import re

from llm_twin_assets.evaluation.job import Writing

SOURCE = "python-docs"
_PARAGRAPHS = re.compile(r"\n\s*\n")


def reference_passages(limit: int = 60, min_words: int = 30, max_words: int = 200) -> list[Writing]:
    """Up to ``limit`` prose paragraphs, spread over the topics (the same on every run); [] when the
    standard library's ``pydoc_data`` is missing."""
    try:
        from pydoc_data.topics import topics
    except ImportError:  # a trimmed Python without its help texts
        return []
    found: list[Writing] = []
    for key in sorted(topics):
        for paragraph in _PARAGRAPHS.split(str(topics[key])):
            lines = paragraph.strip("\n").splitlines()
            if not lines or any(line.startswith((" ", "\t", ">>>", "*", "+", "=")) for line in lines):
                continue
            text = " ".join(" ".join(lines).split())
            words = text.split()
            letters = sum(c.isalpha() or c.isspace() for c in text) / max(len(text), 1)
            if min_words <= len(words) <= max_words and letters > 0.9:
                found.append(Writing(SOURCE, f"{SOURCE}:{key}", text))
    if len(found) <= limit:
        return found
    step = len(found) / limit
    return [found[int(i * step)] for i in range(limit)]
