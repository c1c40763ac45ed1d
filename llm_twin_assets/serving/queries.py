"""Query embeddings in micro-batches, on the encoder's own thread, with a cache of recent questions.

One consumer encodes at a time, on a thread of its own (never the event loop's shared default pool, where
it would queue behind other blocking work); questions that arrive meanwhile wait and go into the next
batch together. An idle service encodes a question at once (``max_wait_s`` 2 ms: only what arrived in
about the same event-loop turn joins it): under load the batches form by themselves, behind the running
one. The same question asked again (a retried request, a chat page reloaded, a popular question) is
answered from a cache of the last ``cache_size`` questions' vectors: the vector the encoder gave that
question before, so its search is the same search; a question already being encoded waits for that
encoding instead of encoding twice.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any


class QueryEmbedder:
    def __init__(
        self,
        encode: Callable[[list[str]], Any],
        max_batch: int = 64,
        max_wait_s: float = 0.002,
        cache_size: int = 4096,
        thread_setup: Callable[[], None] | None = None,
    ) -> None:
        """``encode``: texts -> one vector per text (a 2-D array or a list of vectors), run on the
        encoder's own thread; ``thread_setup``: run once on that thread first (torch's thread count)."""
        self.encode = encode
        self.max_batch = max_batch
        self.max_wait_s = max_wait_s
        self.cache_size = cache_size
        self.batches = 0
        self.largest = 0
        self.hits = 0
        self.misses = 0
        self._cache: OrderedDict[str, Any] = OrderedDict()
        self._pending: list[tuple[str, asyncio.Future[Any]]] = []
        self._encoding: dict[str, asyncio.Future[Any]] = {}  # questions queued or being encoded
        self._consumer: asyncio.Task[None] | None = None
        self._executor = ThreadPoolExecutor(1, "twin-query-encoder", initializer=thread_setup)

    async def embed(self, text: str) -> Any:
        cached = self._cache.get(text)
        if cached is not None:
            self._cache.move_to_end(text)
            self.hits += 1
            return cached
        running = self._encoding.get(text)
        if running is not None:
            self.hits += 1
            return await asyncio.shield(running)
        self.misses += 1
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._encoding[text] = future
        self._pending.append((text, future))
        if self._consumer is None:
            self._consumer = asyncio.ensure_future(self._consume())
        return await asyncio.shield(future)

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)

    async def _consume(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            await asyncio.sleep(self.max_wait_s)  # let questions of the same loop turn join
            while self._pending:
                batch = self._pending[: self.max_batch]
                del self._pending[: self.max_batch]
                texts = [text for text, _ in batch]
                try:
                    vectors = await loop.run_in_executor(self._executor, self.encode, texts)
                except Exception as exc:
                    for text, future in batch:
                        self._encoding.pop(text, None)
                        if not future.done():
                            future.set_exception(exc)
                            future.exception()  # retrieved: a waiter that left must not log it
                    continue
                self.batches += 1
                self.largest = max(self.largest, len(batch))
                for (text, future), vector in zip(batch, vectors, strict=True):
                    self._encoding.pop(text, None)
                    self._remember(text, vector)
                    if not future.done():
                        future.set_result(vector)
        finally:
            self._consumer = None

    def _remember(self, text: str, vector: Any) -> None:
        if self.cache_size <= 0:
            return
        self._cache[text] = vector
        self._cache.move_to_end(text)
        while len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)
