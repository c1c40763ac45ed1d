"""Retrieval on its own path: query vectors cached and shared (a repeated or concurrent question is encoded
once, and answered with the very vector the encoder gave it), the service's /retrieve answers exactly what
``retrieval.search`` answers in process, and each thread keeps the torch thread count it set, whatever
other threads set later (the generation thread's count survives the query encoder's)."""

from __future__ import annotations

import asyncio
import threading

import httpx
import numpy as np
import pytest

from llm_twin_assets import retrieval
from llm_twin_assets.serving.generators import _set_threads
from llm_twin_assets.serving.queries import QueryEmbedder
from llm_twin_assets.settings import TwinSettings
from llm_twin_assets_tests.serving.conftest import Service


def test_query_vectors_are_cached_and_shared() -> None:
    calls: list[list[str]] = []

    def encode(texts: list[str]) -> np.ndarray:
        calls.append(texts)
        return np.array([[float(len(t)), float(i)] for i, t in enumerate(texts)])

    async def main() -> None:
        embedder = QueryEmbedder(encode, cache_size=2)
        try:
            first = await asyncio.gather(*(embedder.embed(q) for q in ("a", "bb", "a", "ccc")))
            assert [len(c) for c in calls] == [3]  # one batch; the repeated question encoded once
            assert first[0] is first[2]
            again = await embedder.embed("ccc")  # cached: the vector it got, not a new one
            assert again is first[3] and len(calls) == 1
            await embedder.embed("a")  # evicted (cache of 2: "bb", "ccc" were newer): encoded again
            assert calls[-1] == ["a"]
            assert embedder.hits == 2 and embedder.misses == 4
        finally:
            embedder.close()

    asyncio.run(main())


def test_each_thread_keeps_its_torch_thread_count() -> None:
    import torch

    counts: dict[str, int] = {}
    generation_set = threading.Event()
    encoder_set = threading.Event()

    def generation() -> None:
        _set_threads(2)  # before this thread's first parallel operation
        generation_set.set()
        encoder_set.wait(10)
        counts["generation"] = torch.get_num_threads()

    def encoder() -> None:
        generation_set.wait(10)
        _set_threads(1)
        counts["encoder"] = torch.get_num_threads()
        encoder_set.set()

    threads = [threading.Thread(target=generation), threading.Thread(target=encoder)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(20)
    assert counts == {"generation": 2, "encoder": 1}


def test_the_service_retrieves_what_search_finds(service: Service, settings: TwinSettings) -> None:
    query = "How often does the chain get oil?"
    expected = retrieval.search(query, author="ada", k=3, settings=settings)
    answers = [
        httpx.post(f"{service.url}/retrieve", json={"query": query, "author": "ada", "top_k": 3}, timeout=60)
        for _ in range(2)  # the second from the cached vector
    ]
    for response in answers:
        assert response.status_code == 200, response.text
        sources = response.json()["sources"]
        assert [s["chunk_id"] for s in sources] == [h.chunk_id for h in expected]
        assert [s["score"] for s in sources] == [h.score for h in expected]
        # the service's query encoder runs on one torch thread, this process's on two: the vectors agree
        # to float rounding, and a similarity (rounded to 6 places) can land one unit apart
        similarities = [h.similarity for h in expected]
        assert [s["similarity"] for s in sources] == pytest.approx(similarities, abs=2e-6)
