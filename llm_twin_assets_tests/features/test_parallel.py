"""Chunking over the cores gives what one core gives, in the same order."""

from __future__ import annotations

import random

import pytest

from llm_twin_assets.features import parallel
from llm_twin_assets.features.chunking import ChunkingOptions, chunk_document
from llm_twin_assets.features.tokens import token_counter
from llm_twin_assets_tests.features import hostile


@pytest.fixture
def always_parallel(monkeypatch: pytest.MonkeyPatch) -> None:
    """Workers even for the small inputs of a test (the real threshold keeps small runs in-process)."""
    monkeypatch.setattr(parallel, "MIN_PARALLEL_CHARS", 0)


def documents(n: int) -> list[parallel.DocumentToChunk]:
    r = random.Random("parallel")
    kinds = ["article", "post", "repository"]
    docs = []
    for i in range(n):
        text = hostile.document(r)
        docs.append(parallel.DocumentToChunk(f"doc-{i}", kinds[i % 3], text, f"Title {i}", ((0, 5, 1),)))
    return docs


def test_chunking_on_two_processes_gives_the_same_chunks(always_parallel, embedder) -> None:  # type: ignore[no-untyped-def]
    count = token_counter(embedder.tokenizer)
    options = ChunkingOptions(max_tokens=256, context_tokens=32)
    docs = documents(60)
    alone = [
        chunk_document(d.id, d.kind, d.content, options, count, title=d.title, headings=d.headings)
        for d in docs
    ]
    spread = parallel.chunk_documents(docs, options, count, workers=2)
    assert spread == alone and sum(map(len, spread)) > 100
    assert all(c.token_ids is not None for chunks in spread for c in chunks)


def test_batches_are_runs_of_about_equal_size() -> None:
    batches = parallel._batches([10, 1, 1, 1, 10, 1, 1, 1, 10, 10], 4)
    assert [i for b in batches for i in b] == list(range(10))  # every item once, in order
    assert (
        len(batches) == 4
        and max(sum([10, 1, 1, 1, 10, 1, 1, 1, 10, 10][i] for i in b) for b in batches) <= 20
    )
    assert parallel._batches([5], 8) == [[0]]
    assert parallel.worker_count(None, 10) == 1  # a small input stays here
    assert parallel.worker_count(3, parallel.MIN_PARALLEL_CHARS) == 3
