"""Extraction keeps what the page shows: no Markdown escapes added, none of the page's backslashes lost,
and the issue's sentence survives extraction, cleaning, chunking and passages unchanged."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import polars as pl
import pytest

from llm_twin_assets.crawling.articles import ArticleOptions, crawl_article, extract
from llm_twin_assets.crawling.feeds import html_fragment_to_text
from llm_twin_assets.crawling.http import PoliteClient
from llm_twin_assets.crawling.render import Renderer
from llm_twin_assets.datasets.passages import PassageOptions, passages_of
from llm_twin_assets.demo import serve_directory
from llm_twin_assets.features.chunking import ChunkingOptions, chunk_document
from llm_twin_assets.features.cleaning import clean_frame
from llm_twin_assets.features.tokens import token_counter
from llm_twin_assets.records import Document

ISSUE = '"tool run -- &lt;path&gt;" lost the path. He said "stop." Then (we left.) Done.'
BODY = rf"""<h1>Retries, honestly</h1>
<p>Set MAX_RETRIES to 3; __init__ and snake_case_names stay as they are.</p>
<p>{ISSUE} Later we learned to quote every placeholder we wrote in our notes.</p>
<p>So did <code>tool run -- &lt;path&gt;</code> and <code>a_b*c</code>, in code.</p>
<p>a*b*c is not emphasis, 2**3 is a power, and ~tilde~ is not struck out.</p>
<p># not a heading, just a hash at the start of a paragraph.</p>
<p>- not a list item, and neither is the next one.</p>
<p>1. not a numbered list either.</p>
<p>&gt; not a quote.</p>
<p>Files live in C:\Users\maya and the regex \d+ matches digits; \(x\) is not math, [x] is not a link.</p>
<p>This page shows entities: &amp;amp; and &amp;lt;b&amp;gt;, a | pipe, a \* star, `ticks` and &#x2424;.</p>
<table><tr><th>flag</th><th>meaning</th></tr><tr><td>a|b</td><td>&lt;either&gt;</td></tr></table>
<p>Some <b>bold</b> words and a <a href="https://x.org/a_b">link_with_underscores</a>.</p>
<pre><code>if a &lt; b and c_d: print("*x*")  # \n stays</code></pre>
<p>A last paragraph, long enough that this is clearly the main content of the page for any extractor.</p>
"""
PAGE = f"""<!doctype html><html><head><meta charset="utf-8"><title>Retries, honestly</title></head><body>
<nav>Home · Archive</nav><article>{BODY}</article><footer>© Maya</footer></body></html>"""

SHOWN = [
    "Set MAX_RETRIES to 3; __init__ and snake_case_names stay as they are.",
    '"tool run -- <path>" lost the path. He said "stop." Then (we left.) Done.',
    "So did `tool run -- <path>` and `a_b*c`, in code.",
    "a*b*c is not emphasis, 2**3 is a power, and ~tilde~ is not struck out.",
    "# not a heading, just a hash at the start of a paragraph.",
    "- not a list item, and neither is the next one.",
    "1. not a numbered list either.",
    "> not a quote.",
    r"Files live in C:\Users\maya and the regex \d+ matches digits; \(x\) is not math, [x] is not a link.",
    r"This page shows entities: &amp; and &lt;b&gt;, a | pipe, a \* star, `ticks` and ␤.",
    "a|b",
    "<either>",
    "Some **bold** words and a link_with_underscores.",  # Markdown for the page's own structure stays
    'if a < b and c_d: print("*x*")  # \\n stays',
]
"""Lines as a reader sees them on the page (the page's backslashes, and only those, included)."""


def assert_shown(text: str) -> None:
    for line in SHOWN:
        assert line in text, line
    assert text.count("\\") == 7  # C:\Users\maya (2), \d, \( and \), \*, \n in code: the page's own
    assert "$x$" not in text and "\n\n\n" not in text


def test_extraction_keeps_what_the_page_shows() -> None:
    found = extract(PAGE, "https://maya.example/retries")
    assert found is not None and found.title == "Retries, honestly"
    assert_shown(found.text)
    assert found.text.startswith("# Retries, honestly\n\n")  # headings are still marked


def test_a_page_that_uses_the_stand_in_characters_keeps_them() -> None:
    # The escapes are switched off by swapping characters for ideographs the page does not use.
    page = PAGE.replace("<p>Some", "<p>Ideographs 𠀀𠀁𠀂 and 𠀐𠀑 stay. Some")
    found = extract(page, "https://maya.example/retries")
    assert found is not None and "Ideographs 𠀀𠀁𠀂 and 𠀐𠀑 stay." in found.text
    assert_shown(found.text)


def test_feed_entries_keep_what_they_show() -> None:
    assert_shown(html_fragment_to_text(BODY))


@pytest.fixture
def served(tmp_path: Path) -> Iterator[str]:
    """``PAGE`` on a local HTTP server; its URL."""
    (tmp_path / "retries.html").write_text(PAGE, encoding="utf-8")
    with serve_directory(tmp_path) as base:
        yield f"{base}/retries.html"


def test_a_crawled_page_keeps_what_it_shows(served: str, fast_policy) -> None:  # type: ignore[no-untyped-def]
    async def crawl() -> str:
        async with PoliteClient(fast_policy) as client:
            renderer = Renderer(client)
            [document] = await crawl_article(
                served, "article", client, renderer, ArticleOptions(render="never")
            )
            return document.content

    assert_shown(asyncio.run(crawl()))


def test_the_issue_sentences_survive_extraction_cleaning_chunking_and_passages(embedder) -> None:  # type: ignore[no-untyped-def]
    found = extract(PAGE, "https://maya.example/retries")
    assert found is not None
    raw = pl.DataFrame(
        {
            "id": ["d1"],
            "author": ["maya"],
            "url": ["https://maya.example/retries"],
            "kind": ["article"],
            "title": [found.title],
            "content": [found.text],
            "content_hash": ["h"],
        }
    )
    cleaned, rejected = clean_frame(raw)
    assert rejected.height == 0
    content = str(cleaned["content"][0])
    sentences = ['"tool run -- <path>" lost the path.', 'He said "stop."', "Then (we left.)", "Done."]
    paragraph = " ".join(sentences)
    assert paragraph in content and "`tool run -- <path>`" in content

    chunks = chunk_document("d1", "article", content, ChunkingOptions(), token_counter(embedder.tokenizer))
    assert all(content[c.start : c.end] == c.text for c in chunks)
    assert any(paragraph in c.text for c in chunks)
    # Cut a sentence or two at a time: every cut in the paragraph falls between two sentences, each
    # with its own quote or bracket.
    span = (content.index(paragraph), content.index(paragraph) + len(paragraph))
    tiny = ChunkingOptions(max_tokens=8, target_tokens=7, overlap_tokens=0, special_tokens=0)
    small = chunk_document("d1", "article", content, tiny, lambda ts: [len(t.split()) for t in ts])
    assert_cut_between_sentences(content, span, [(c.start, c.end) for c in small])

    document = Document("d1", "https://maya.example/retries", "article", "Retries, honestly", content)
    passages, _ = passages_of(document, PassageOptions())
    assert any(paragraph in p.text for p in passages)
    few_words, _ = passages_of(document, PassageOptions(window_words=7, max_words=8, min_words=1))
    assert_cut_between_sentences(content, span, [(p.start, p.end) for p in few_words])
    assert all(content[p.start : p.end] == p.text for p in [*passages, *few_words])


def assert_cut_between_sentences(
    content: str, paragraph: tuple[int, int], spans: list[tuple[int, int]]
) -> None:
    start, end = paragraph
    ends = [e for _, e in spans if start < e < end]
    starts = [s for s, _ in spans if start < s < end]
    assert len(ends) >= 2 and len(starts) >= 2
    assert all(content[:e].endswith(("path.", '"stop."', "(we left.)")) for e in ends)
    assert all(content[s:].startswith(('He said "', "Then (", "Done.")) for s in starts)
