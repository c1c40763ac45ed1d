"""Structure-aware chunking and passages: headings start chunks, list items, code blocks and tables are
units, every chunk knows its heading path, and the context embedded above it fits the embedder."""

from __future__ import annotations

import polars as pl

from llm_twin_assets.datasets.passages import PassageOptions, passages_of
from llm_twin_assets.features.chunking import ChunkingOptions, chunk_document
from llm_twin_assets.features.cleaning import clean_frame, take_headings
from llm_twin_assets.features.tokens import token_counter
from llm_twin_assets.records import Document

WORDS = ChunkingOptions(max_tokens=60, target_tokens=40, overlap_tokens=8, special_tokens=0)


def words(texts):  # type: ignore[no-untyped-def]
    return [len(t.split()) for t in texts]


def only_headings(text: str, start: int, end: int, heading_starts: set[int]) -> bool:
    """Whether every non-blank line of ``text[start:end]`` is a heading line."""
    position = start
    for line in text[start:end].split("\n"):
        if line.strip() and position not in heading_starts:
            return False
        position += len(line) + 1
    return True


def cleaned(markdown: str) -> tuple[str, list[tuple[int, int, int]]]:
    frame = pl.DataFrame(
        {
            "id": ["d"],
            "author": ["maya"],
            "url": ["https://maya.example/notes"],
            "kind": ["article"],
            "title": ["Release notes"],
            "content": [markdown],
            "content_hash": ["h"],
        }
    )
    kept, _ = clean_frame(frame)
    import json

    return kept["content"][0], [tuple(h) for h in json.loads(kept["headings"][0])]  # type: ignore[misc]


CHANGELOG = "\n\n".join(
    [
        "# Release notes",
        "Everything that changed, newest first.",
        "## Version 2.0",
        "### Breaking changes",
        "\n".join(
            f"- Item {i} of the breaking changes, described in a dozen plain words here." for i in range(6)
        ),
        "### Fixes",
        "\n".join(
            f"- Fix {i}: the **parser** no longer drops a trailing [comma](https://x.org)." for i in range(5)
        ),
        "## Version 1.0",
        "The first release. It reads files and writes them back, slowly but surely, every time.",
    ]
)


def test_the_cleaner_records_where_headings_are() -> None:
    text, headings = cleaned(CHANGELOG)
    assert "#" not in text  # the marks are gone from the author's text...
    assert [(text[s:e], level) for s, e, level in headings] == [  # ...their places and levels are kept
        ("Release notes", 1),
        ("Version 2.0", 2),
        ("Breaking changes", 3),
        ("Fixes", 3),
        ("Version 1.0", 2),
    ]
    assert take_headings("plain text") == ("plain text", [])


def test_headings_start_chunks_list_items_are_whole_and_chunks_know_their_path() -> None:
    text, headings = cleaned(CHANGELOG)
    chunks = chunk_document("d", "article", text, WORDS, words, title="Release notes", headings=headings)
    starts = {s for s, _, _ in headings}
    item_starts = {
        i for i in range(len(text)) if text.startswith("- ", i) and (i == 0 or text[i - 1] == "\n")
    }
    for chunk in chunks:
        assert text[chunk.start : chunk.end] == chunk.text
        assert chunk.start in starts | item_starts or chunk.text[0].isupper()  # never mid-item
        for s in (s for s in starts if chunk.start < s < chunk.end):  # a section starts a chunk...
            assert only_headings(text, chunk.start, s, starts)  # ...unless only headings come before it
    fixes = next(c for c in chunks if "Fix 0" in c.text)
    assert fixes.heading_path == ("Release notes", "Version 2.0", "Fixes")
    assert fixes.text.startswith("Fixes")  # the heading opens its section's chunk
    last = next(c for c in chunks if "first release" in c.text)
    assert last.heading_path == ("Release notes", "Version 1.0")
    breaking = [c for c in chunks if "breaking changes, described" in c.text]
    assert all(c.heading_path[-1] == "Breaking changes" for c in breaking)
    assert all(c.text.count("\n- ") + c.text.startswith("- ") == c.text.count("Item ") for c in breaking)


def test_code_blocks_and_tables_are_units() -> None:
    code = "```python\n" + "\n\n".join(f"x{i} = {i}  # a sentence. Another one." for i in range(4)) + "\n```"
    table = "| option | meaning |\n|---|---|\n" + "\n".join(
        f"| --flag-{i} | does thing {i}. |" for i in range(4)
    )
    text = f"Intro paragraph with a few words.\n\n{code}\n\nBetween them.\n\n{table}\n\nThe end of it all."
    chunks = chunk_document("d", "article", text, WORDS, words)
    fence, table_at = text.index("```"), text.index("| option")
    for chunk in chunks:  # no chunk starts or ends inside the code block or the table
        assert not fence < chunk.start < fence + len(code) and not fence < chunk.end < fence + len(code)
        assert not table_at < chunk.start < table_at + len(table)
        assert not table_at < chunk.end < table_at + len(table)


def test_nested_list_items_are_units_of_their_own() -> None:
    text = "Steps:\n\n" + "\n".join(
        f"- Step {i} of the plan, which takes a while to explain in words.\n  - Detail {i}a, indented below it."
        for i in range(8)
    )
    chunks = chunk_document("d", "article", text, WORDS, words)
    assert len(chunks) > 1
    for chunk in chunks[1:]:
        assert chunk.text.lstrip().startswith(("- Step", "- Detail")), chunk.text[:40]


def test_the_context_fits_beside_the_text_within_the_embedders_limit(embedder) -> None:  # type: ignore[no-untyped-def]
    count = token_counter(embedder.tokenizer)
    text, headings = cleaned(CHANGELOG * 3)
    title = "A rather long document title, " * 6
    options = ChunkingOptions(max_tokens=256, target_tokens=200, overlap_tokens=40, context_tokens=32)
    chunks = chunk_document("d", "article", text, options, count, title=title, headings=headings)
    assert all(c.context for c in chunks)
    for chunk in chunks:
        embedded = f"{chunk.context}\n{chunk.text}"
        assert count([chunk.context])[0] <= 32
        assert count([embedded])[0] + options.special_tokens <= 256  # the embedder reads all of it
        assert chunk.context.startswith("A rather long") and chunk.context not in chunk.text


def test_passages_start_and_end_at_headings_paragraphs_and_list_items() -> None:
    text, headings = cleaned(CHANGELOG)
    document = Document("d", "u", "article", "Release notes", text, tuple(headings))
    passages, _ = passages_of(document, PassageOptions(window_words=30, max_words=60, min_words=3))
    assert passages
    block_starts = {s for s, _, _ in headings} | {0}
    block_starts |= {i + 1 for i, ch in enumerate(text) if ch == "\n"}  # a line: a paragraph or an item
    heading_starts = sorted(s for s, _, _ in headings)
    for p in passages:
        assert p.start in block_starts, text[p.start : p.start + 30]
        following = text[p.end : p.end + 2]
        assert following in ("", "\n-", "\n\n") or following.startswith("\n"), repr(following)
        for s in (s for s in heading_starts if p.start < s < p.end):  # never across a section
            assert only_headings(text, p.start, s, set(heading_starts))
