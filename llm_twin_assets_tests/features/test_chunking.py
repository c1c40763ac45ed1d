"""Chunking with the real MiniLM tokenizer: limits never exceeded, boundaries respected, ids stable,
and every chunk a span of its document (nothing dropped or rewritten), on hostile text too."""

import itertools
import random
import unicodedata

import pytest

from llm_twin_assets.features.chunking import CHUNKER_VERSION, ChunkingOptions, chunk_document
from llm_twin_assets.features.sentences import CLOSERS, sentence_spans
from llm_twin_assets.features.tokens import token_counter
from llm_twin_assets.records import chunk_id, content_hash
from llm_twin_assets_tests.features import hostile

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
    assert all(repo[c.start : c.end] == c.text for c in chunks)  # spans of the document, no path prefix
    # A file's first chunk starts with its path line; no chunk runs over into the next file.
    assert chunks[0].text == "\u241e README.md\n# tinyvec\n\nA tiny index."
    code = chunks[1:]
    assert len(code) > 1 and code[0].text.startswith("\u241e tinyvec/index.py\nimport numpy as np\n\ndef f0(")
    for chunk in code[1:]:  # every other code chunk starts at a top-level definition
        assert chunk.text.startswith("def f")


def test_chunk_ids_are_stable_and_content_derived(count) -> None:  # type: ignore[no-untyped-def]
    text = paragraph(40)
    first = chunk_document("doc-1", "article", text, OPTIONS, count)
    again = chunk_document("doc-1", "article", text, OPTIONS, count)
    assert [c.id for c in first] == [c.id for c in again]
    assert first[0].id == chunk_id("doc-1", 0, content_hash(first[0].text))
    other = chunk_document("doc-2", "article", text, OPTIONS, count)
    assert not {c.id for c in first} & {c.id for c in other}


def words(texts: list[str]) -> list[int]:
    """A fast stand-in for the tokenizer: one token per word."""
    return [len(t.split()) for t in texts]


# A budget of a few words, so that even short hostile documents are cut into many chunks.
SMALL = ChunkingOptions(max_tokens=24, target_tokens=16, overlap_tokens=6, special_tokens=0)
ISSUE = 'He said "stop." Then (we left.) Done.'


def sentences(text: str) -> list[str]:
    return [text[s:e] for s, e in sentence_spans(text, 0, len(text))]


def test_the_issue_example_keeps_its_quote_and_parenthesis(count) -> None:  # type: ignore[no-untyped-def]
    assert sentences(ISSUE) == ['He said "stop."', "Then (we left.)", "Done."]
    one_sentence_each = ChunkingOptions(max_tokens=4, target_tokens=3, overlap_tokens=0, special_tokens=0)
    chunks = chunk_document("doc", "article", ISSUE, one_sentence_each, words)
    assert [c.text for c in chunks] == ['He said "stop."', "Then (we left.)", "Done."]
    assert [(c.start, c.end) for c in chunks] == [(0, 15), (16, 31), (32, 37)]
    [whole] = chunk_document("doc", "article", ISSUE, OPTIONS, count)
    assert (whole.text, whole.start, whole.end) == (ISSUE, 0, len(ISSUE))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "She said, \"He told me 'no.' Then left.\" OK.",
            ["She said, \"He told me 'no.' Then left.\"", "OK."],
        ),
        (
            "“Curly.” ‘Single.’ «Guillemets.» [Square.]",
            ["“Curly.”", "‘Single.’", "«Guillemets.»", "[Square.]"],
        ),
        ('"Quoted (nested [deep.])" End.', ['"Quoted (nested [deep.])"', "End."]),
        ("Wait... what? And then… nothing. so on.", ["Wait... what?", "And then… nothing. so on."]),
        (
            "Dr. Smith met J. R. Tolkien, e.g. on Monday. Fig. 3 shows it.",
            ["Dr. Smith met J. R. Tolkien, e.g. on Monday.", "Fig. 3 shows it."],
        ),
        (
            "Really?! Yes!! Version 2.0 costs $3.50. Done.",
            ["Really?!", "Yes!!", "Version 2.0 costs $3.50.", "Done."],
        ),
        ("数据很重要。真的吗？「好。」（是的。）", ["数据很重要。", "真的吗？", "「好。」", "（是的。）"]),
        ("مرحبا بالعالم. هذا نص؟ שלום עולם.", ["مرحبا بالعالم.", "هذا نص؟", "שלום עולם."]),
        (
            "Intro:\n- one. Two.\n- three\n1. four\n2) five",
            ["Intro:", "- one.", "Two.", "- three", "1. four", "2) five"],
        ),
        ("1. Install it. Then run it.", ["1. Install it.", "Then run it."]),
        (
            "Roses are red\nViolets are blue\nSugar is sweet",
            ["Roses are red\nViolets are blue\nSugar is sweet"],
        ),
        ("One.\r\nTwo.\tThree.", ["One.", "Two.", "Three."]),
    ],
)
def test_sentences_keep_their_closing_quotes_and_brackets_and_lines_stay_together(
    text: str, expected: list[str]
) -> None:
    assert sentences(text) == expected


def test_line_breaks_inside_a_paragraph_are_kept(count) -> None:  # type: ignore[no-untyped-def]
    text = (
        "Shopping list:\n- flour\n- water\n- salt\n\nRoses are red\nViolets are blue\n\n"
        "Maya Okafor\r\n12 Long Road\r\nLagos"
    )
    chunks = chunk_document("doc", "article", text, OPTIONS, count)
    assert [c.text for c in chunks] == [text]  # one chunk: the text itself, every line break in place
    small = ChunkingOptions(max_tokens=6, target_tokens=4, overlap_tokens=0, special_tokens=0)
    pieces = [c.text for c in chunk_document("doc", "article", text, small, words)]
    assert "Shopping list:\n- flour" in pieces and "- water\n- salt" in pieces  # cut between items
    assert "Roses are red\nViolets are blue" in pieces and "Maya Okafor\r\n12 Long Road\r\nLagos" in pieces


def spans_cover_the_text(text: str, chunks, options: ChunkingOptions, counter) -> None:  # type: ignore[no-untyped-def]
    assert all(text[c.start : c.end] == c.text and c.text.strip() for c in chunks)
    assert [c.start for c in chunks] == sorted(c.start for c in chunks)
    assert hostile.uncovered(text, [(c.start, c.end) for c in chunks]) == ""
    real = counter([c.text for c in chunks])
    assert all(
        n + options.special_tokens == c.n_tokens <= options.max_tokens
        for c, n in zip(chunks, real, strict=True)
    )


@pytest.mark.parametrize("kind", ["article", "post", "repository"])
def test_hostile_documents_chunk_into_spans_that_cover_them(kind: str) -> None:
    for seed in range(150):
        text = hostile.document(random.Random(seed))
        chunks = chunk_document("doc", kind, text, SMALL, words)
        spans_cover_the_text(text, chunks, SMALL, words)
        if kind != "repository":  # a closing quote or bracket is never cut off its sentence
            assert not [
                c for c in chunks if c.start and c.text[0] in CLOSERS and not text[c.start - 1].isspace()
            ]


@pytest.mark.parametrize("kind", ["article", "post", "repository"])
def test_hostile_documents_stay_within_the_real_tokenizer_limit(kind: str, count, tokenizer) -> None:  # type: ignore[no-untyped-def]
    for seed in range(25):
        text = hostile.document(random.Random(1000 + seed))
        chunks = chunk_document("doc", kind, text, OPTIONS, count)
        spans_cover_the_text(text, chunks, OPTIONS, count)
        for chunk in chunks:
            ids = tokenizer(chunk.text, add_special_tokens=True, truncation=False, verbose=False)["input_ids"]
            assert len(ids) == chunk.n_tokens <= OPTIONS.max_tokens


def test_chunks_of_balanced_sentences_are_balanced() -> None:
    for seed in range(200):
        text = hostile.balanced_document(random.Random(seed))
        for kind in ("article", "post"):
            chunks = chunk_document("doc", kind, text, SMALL, words)
            assert all(hostile.balanced(c.text) for c in chunks), (seed, kind)


def characters(texts: list[str]) -> list[int]:
    """A stand-in tokenizer that reads every character (MiniLM reads a word over 100 characters as one
    unknown token, so it never makes the chunker cut inside one)."""
    return [len("".join(t.split())) for t in texts]


@pytest.mark.parametrize("giant", ["👨‍👩‍👧" * 400, "🏳️‍🌈👍🏽" * 300, "e\u0301" * 1500, "x" * 5000])
def test_giant_words_are_cut_between_symbols_never_inside_one(giant: str) -> None:
    text = f"Before it. {giant} After it."
    options = ChunkingOptions(max_tokens=50, target_tokens=40, overlap_tokens=0, special_tokens=0)
    chunks = chunk_document("doc", "article", text, options, characters)
    assert len(chunks) > 10
    spans_cover_the_text(text, chunks, options, characters)
    for chunk in chunks[1:]:
        first, before = text[chunk.start], text[chunk.start - 1]
        assert unicodedata.category(first) not in ("Mn", "Me") and first not in "\u200d\ufe0f"
        assert before != "\u200d" and not "\U0001f3fb" <= first <= "\U0001f3ff"


def test_code_chunks_are_spans_and_decorators_stay_with_their_definitions(count) -> None:  # type: ignore[no-untyped-def]
    body = "\n\n".join(
        f"@cache\n@trace(level={i})\ndef f{i}(x):\n" + "    x = x + 1\n" * 40 + "    return x"
        for i in range(4)
    )
    repo = f"\u241e a.py\nimport os\n\n{body}\n\u241e b.py\nX = 1\n"
    chunks = chunk_document("doc", "repository", repo, OPTIONS, count)
    spans_cover_the_text(repo, chunks, OPTIONS, count)
    b = repo.index("\u241e b.py")
    assert all(c.end <= b or c.start >= b for c in chunks)  # no chunk runs over into the next file
    assert chunks[-1].text == "\u241e b.py\nX = 1"
    starts = [c.text.split("\n", 1)[0] for c in chunks[:-1]]
    assert starts[0] == "\u241e a.py" and "@trace(level=1)" not in starts
    # a long definition is cut between its lines, each piece starting at its line's indentation
    assert all(line.startswith(("\u241e", "@cache", "    x = x + 1", "    return")) for line in starts)


def test_the_chunker_version_is_exposed_for_the_chunk_key() -> None:
    assert isinstance(CHUNKER_VERSION, int) and CHUNKER_VERSION >= 2
