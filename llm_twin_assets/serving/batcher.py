"""The generation thread: requests that arrive while a batch is being formed go into it together.

The first waiting request opens a batch; others that arrive within ``max_wait_s`` join it, up to
``max_batch``; the batch decodes to the end (each row stops on its own) and the next one forms from
whatever queued meanwhile. Past ``max_pending`` waiting requests a new one is refused at once with an
estimate of when to retry, rather than queued into a client's timeout. Adapter changes run on this thread
between batches, so a forward pass never sees an adapter appear or vanish.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from llm_twin_assets.serving import Overloaded
from llm_twin_assets.serving.decoding import GenerationRequest

log = logging.getLogger(__name__)


@dataclass
class BatchStats:
    batches: int = 0
    rows: int = 0
    largest: int = 0


class Batcher:
    def __init__(
        self,
        run_batch: Callable[[list[GenerationRequest]], None],
        *,
        max_batch: int = 8,
        max_wait_s: float = 0.01,
        max_pending: int = 32,
    ) -> None:
        self.run_batch = run_batch
        self.max_batch = max_batch
        self.max_wait_s = max_wait_s
        self.max_pending = max_pending
        self.stats = BatchStats()
        self._requests: queue.Queue[GenerationRequest] = queue.Queue()
        self._tasks: queue.Queue[Callable[[], None]] = queue.Queue()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._batch_seconds = 1.0  # the last batch's duration: the basis of Retry-After
        self._thread = threading.Thread(target=self._loop, name="twin-generation", daemon=True)
        self._thread.start()

    def submit(self, request: GenerationRequest) -> None:
        self.check_capacity()
        self._requests.put(request)
        self._wake.set()

    def check_capacity(self) -> None:
        waiting = self._requests.qsize()
        if waiting >= self.max_pending:
            batches_ahead = waiting // self.max_batch + 1
            retry = max(1.0, round(batches_ahead * self._batch_seconds, 1))
            raise Overloaded(
                f"the service is at capacity ({waiting} requests waiting for generation); retry in {retry:g} s",
                retry_after=retry,
            )

    def call_soon(self, task: Callable[[], None]) -> None:
        """Run ``task`` on the generation thread, between batches."""
        self._tasks.put(task)
        self._wake.set()

    def run(self, task: Callable[[], object], timeout: float = 600.0) -> object:
        """Run ``task`` on the generation thread and return its result (or raise its error)."""
        done = threading.Event()
        box: dict[str, object] = {}

        def wrapped() -> None:
            try:
                box["value"] = task()
            except BaseException as exc:
                box["error"] = exc
            finally:
                done.set()

        self.call_soon(wrapped)
        if not done.wait(timeout):
            raise TimeoutError("the generation thread did not run the task in time")
        if "error" in box:
            raise box["error"]  # type: ignore[misc]
        return box.get("value")

    @property
    def waiting(self) -> int:
        return self._requests.qsize()

    def stop(self) -> None:
        self._stopping.set()
        self._wake.set()
        self._thread.join(timeout=10)

    def _loop(self) -> None:
        while not self._stopping.is_set():
            self._wake.wait(timeout=0.5)
            self._wake.clear()
            self._run_tasks()
            batch = self._take_batch()
            if not batch:
                continue
            started = time.perf_counter()
            try:
                self.run_batch(batch)
            except Exception:  # the requests carry the error; the thread lives on
                log.exception("a generation batch of %d failed", len(batch))
            self._batch_seconds = time.perf_counter() - started
            self.stats.batches += 1
            self.stats.rows += len(batch)
            self.stats.largest = max(self.stats.largest, len(batch))
            if not self._requests.empty() or not self._tasks.empty():
                self._wake.set()

    def _run_tasks(self) -> None:
        while True:
            try:
                task = self._tasks.get_nowait()
            except queue.Empty:
                return
            try:
                task()
            except Exception:
                log.exception("a generation-thread task failed")

    def _take_batch(self) -> list[GenerationRequest]:
        batch: list[GenerationRequest] = []
        try:
            batch.append(self._requests.get_nowait())
        except queue.Empty:
            return batch
        deadline = time.perf_counter() + self.max_wait_s
        while len(batch) < self.max_batch:
            left = deadline - time.perf_counter()
            try:
                batch.append(
                    self._requests.get(timeout=max(left, 0)) if left > 0 else self._requests.get_nowait()
                )
            except queue.Empty:
                break
        return [r for r in batch if not r.cancelled.is_set() or _finish_cancelled(r)]


def _finish_cancelled(request: GenerationRequest) -> bool:
    """A request whose client left while it waited: finished without running."""
    request.finish_reason = "cancelled"
    request.done.set()
    return False
