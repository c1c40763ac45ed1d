"""The service's retrieval, apart from HTTP and generation: a question's vector from the query encoder (its
own thread, micro-batched, cached: ``serving.queries``), then ``retrieval.search`` on a pool of its own
(each thread with its kept database connection), so a search never waits behind the generation thread or
other blocking work of the worker; at most ``serve_max_pending`` in flight, beyond that a 503."""

from __future__ import annotations

import asyncio
import functools
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from llm_twin_assets import retrieval
from llm_twin_assets.errors import TwinError
from llm_twin_assets.serving import Overloaded, ServingError
from llm_twin_assets.serving.queries import QueryEmbedder
from llm_twin_assets.serving.schemas import MatchedUnit, Source, link_of
from llm_twin_assets.settings import TwinSettings

SEARCH_THREADS = 4
"""Threads that run searches (each with its kept database connection): retrieval's own, so a search never
waits behind other blocking work of the worker."""
ENCODER_THREADS = 1
"""torch threads of the query encoder: it runs beside the generation thread, whose threads already fill
the cores; two busy thread teams on the same cores slow both (measured: bench/serve.py)."""


class ServiceRetrieval:
    def __init__(self, settings: TwinSettings) -> None:
        self.max_pending = settings.serve_max_pending
        self.retriever = retrieval.retriever(settings)
        self.retriever.embed("warm up")  # the first encode pays for lazy initialisation
        self.queries = QueryEmbedder(
            self._encode, thread_setup=functools.partial(set_torch_threads, ENCODER_THREADS)
        )
        self._searches = ThreadPoolExecutor(SEARCH_THREADS, "twin-retrieval")
        self._in_flight = 0

    def _encode(self, texts: list[str]) -> Any:
        return self.retriever.embedder.encode(
            texts, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False
        )

    async def sources(self, query: str, author: str | None, top_k: int) -> tuple[list[Source], float]:
        """The passages for ``query`` (``author``'s when given) and the milliseconds it took; a refusal of
        the search (a bad filter, say) is a 400, too many in flight a 503."""
        if self._in_flight >= self.max_pending:
            raise Overloaded(f"{self._in_flight} retrievals in flight; retry shortly", retry_after=1)
        self._in_flight += 1
        started = time.perf_counter()
        try:
            vector = await self.queries.embed(query.strip())
            search = functools.partial(self.retriever.search, query, author, None, top_k, vector=vector)
            hits = await asyncio.get_running_loop().run_in_executor(self._searches, search)
        except TwinError as exc:
            raise ServingError(str(exc)) from exc
        finally:
            self._in_flight -= 1
        sources = [
            Source(
                chunk_id=h.chunk_id,
                document_url=h.document_url,
                link=link_of(h.document_url),
                title=h.title,
                kind=h.kind,
                score=h.score,
                similarity=h.similarity,
                text=h.text,
                unit=matched_unit(h),
            )
            for h in hits
        ]
        return sources, round((time.perf_counter() - started) * 1000, 2)

    def close(self) -> None:
        self.queries.close()
        self._searches.shutdown(wait=False, cancel_futures=True)


def matched_unit(hit: retrieval.SearchHit) -> MatchedUnit | None:
    """The hit's matching unit with offsets into the passage's text."""
    span = hit.unit_span()
    if span is None or hit.unit is None:
        return None
    return MatchedUnit(text=hit.unit.text, start=span[0], end=span[1], similarity=hit.unit.similarity)


def set_torch_threads(threads: int) -> None:
    import torch

    # per thread (OpenMP), and only once the thread has initialised its own: torch initialises a thread's
    # count lazily, at its first parallel operation, to the count set last by ANY thread — the count
    # set before that would be lost
    torch.get_num_threads()
    torch.set_num_threads(threads)
