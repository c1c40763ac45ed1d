"""Chunking with the real MiniLM tokenizer: limits never exceeded, boundaries respected, ids stable."""

import itertools

import pytest

from llm_twin_assets.features.chunking import ChunkingOptions, chunk_document, token_counter
from llm_twin_assets.records import chunk_id, content_hash

OPTIONS = ChunkingOptions()


@pytest.fixture(scope="module")
def count(embedder):  # type: ignore[no-untyped-def]
    return token_counter(embedder.tokenizer)


@pytest.fixture(scope="module")
def tokenizer(embedder):  # type: ignore[no-untyped-def]
    return embedder.tokenizer


def paragraph(n: int, seed: str = "idempotent pipelines") -> str:
    return " ".join(f"Sentence {i} says something about {seed}, and why it matters to me." for i in range(n))


TRICKY = {
    "one giant paragraph": paragraph(120),
    "a giant word": "see " + "x" * 5000 + " and then more words after it.",
    "a long URL-like token": "https://example.org/" + "a1b2c3/" * 400,
    "no punctuation at all": " ".join(["word"] * 3000),
    "emoji and CJK": "🙂 " * 600 + "数据管道很重要。" * 200,
    "many short paragraphs": "\n\n".join(f"Short paragraph {i}." for i in range(300)),
}


@pytest.mark.parametrize("kind", ["article", "post", "repository"])
@pytest.mark.parametrize("name", list(TRICKY))
def test_no_chunk_ever_exceeds_what_the_embedder_reads(name: str, kind: str, count, tokenizer) -> None:  # type: ignore[no-untyped-def]
    chunks = chunk_document("doc", kind, TRICKY[name], OPTIONS, count)
    assert chunks
    for chunk in chunks:
        real = len(
            tokenizer(chunk.text, add_special_tokens=True, truncation=False, verbose=False)["input_ids"]
        )
        assert real <= OPTIONS.max_tokens
        assert chunk.n_tokens == real
        assert chunk.text.strip()


def test_articles_split_on_paragraphs_and_sentences_with_overlap(count) -> None:  # type: ignore[no-untyped-def]
    text = "\n\n".join(
        [paragraph(6, "small machines"), paragraph(30, "boring databases"), paragraph(3, "tests")]
    )
    chunks = chunk_document("doc", "article", text, OPTIONS, count)
    assert len(chunks) >= 3
    assert all(c.text[-1] in ".!?" for c in chunks)  # every chunk ends at a sentence boundary
    # The long middle paragraph runs over several chunks, each repeating the previous one's last sentence.
    running = [c for c in chunks if "boring databases" in c.text]
    for before, after in itertools.pairwise(running):
        last_sentence = before.text.split(". ")[-1]
        assert last_sentence in after.text
    assert chunks[-1].text.endswith(paragraph(3, "tests").split(". ")[-1])


def test_posts_stay_whole_when_they_fit(count) -> None:  # type: ignore[no-untyped-def]
    post = "Unpopular opinion: one Postgres and a cron job.\n\nMeasure first. Scale second. 🙂"
    [chunk] = chunk_document("doc", "post", post, OPTIONS, count)
    assert chunk.text == post


def test_code_splits_on_files_and_top_level_definitions(count) -> None:  # type: ignore[no-untyped-def]
    functions = "\n\n".join(
        f"def f{i}(x):\n    total = x\n" + f"    total += {i}\n" * 12 + "    return total" for i in range(12)
    )
    repo = f"\u241e README.md\n# tinyvec\n\nA tiny index.\n\n\u241e tinyvec/index.py\nimport numpy as np\n\n{functions}\n"
    chunks = chunk_document("doc", "repository", repo, OPTIONS, count)
    assert chunks[0].text.startswith("README.md\n# tinyvec")
    code = [c for c in chunks if c.text.startswith("tinyvec/index.py\n")]
    assert len(code) == len(chunks) - 1 and len(code) > 1
    for chunk in code:  # every code chunk starts at a top-level definition (or the file's imports)
        first_line = chunk.text.split("\n", 1)[1].split("\n", 1)[0]
        assert first_line.startswith(("def f", "import numpy"))


def test_chunk_ids_are_stable_and_content_derived(count) -> None:  # type: ignore[no-untyped-def]
    text = paragraph(40)
    first = chunk_document("doc-1", "article", text, OPTIONS, count)
    again = chunk_document("doc-1", "article", text, OPTIONS, count)
    assert [c.id for c in first] == [c.id for c in again]
    assert first[0].id == chunk_id("doc-1", 0, content_hash(first[0].text))
    other = chunk_document("doc-2", "article", text, OPTIONS, count)
    assert not {c.id for c in first} & {c.id for c in other}
