"""The generation thread: continuous batching over a :class:`RunningBatch`.

When nothing runs, the first request waits up to ``max_wait_s`` for company; while rows are decoding,
waiting requests join between two steps, up to ``max_batch`` rows, and a finished row leaves at once.
Past ``max_pending`` waiting requests a new one is refused at once with an estimate of when to retry,
rather than queued into a client's timeout: the time the waiting requests take to drain at the rate rows
were measured to finish (the rows that ended in the last ``DRAIN_WINDOW_S`` of this busy spell; before
any ended, the running rows' remaining tokens at the measured step time), 1 to 60 s. Adapter changes
(tasks) run on this thread when no row is
running: a pending task stops admissions until the running rows finish, so a forward pass never sees an
adapter appear or vanish.

A failure is isolated: a request that cannot join ends alone (the running rows go on), a row whose
sampling fails leaves alone, and only a failed forward pass of the running rows fails them. Every
request ends: on stop, the rows still running and the requests still waiting end with a 503.
"""

from __future__ import annotations

import logging
import math
import queue
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from llm_twin_assets.serving import Overloaded, ServingError
from llm_twin_assets.serving.decoding import GenerationRequest, RunningBatch
from llm_twin_assets.serving.metrics import Metrics, metrics

log = logging.getLogger(__name__)

DRAIN_WINDOW_S = 30.0
"""How far back finished rows count towards the drain rate (Retry-After)."""
RETRY_BOUNDS_S = (1, 60)
ASSUMED_TOKENS = 128
"""An answer's length before any row was seen to end (the service's default cap)."""


@dataclass
class BatchStats:
    steps: int = 0
    rows: int = 0
    largest: int = 0


class Batcher:
    def __init__(
        self,
        batch: RunningBatch,
        *,
        max_batch: int = 8,
        max_wait_s: float = 0.01,
        max_pending: int = 32,
    ) -> None:
        self.batch = batch
        self.max_batch = max_batch
        self.max_wait_s = max_wait_s
        self.max_pending = max_pending
        self.stats = BatchStats()
        self._requests: queue.Queue[GenerationRequest] = queue.Queue()
        self._tasks: queue.Queue[Callable[[], None]] = queue.Queue()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._step_seconds = 0.05  # a recent decoding step's duration
        self._ended: deque[tuple[float, int]] = deque()  # (when, rows that ended): this busy spell's
        self._busy_since: float | None = None  # when rows started running after an idle moment
        self._drain_rate: float | None = None  # rows finishing per second, as last measured
        self.metrics: Metrics = metrics()
        self._thread = threading.Thread(target=self._loop, name="twin-generation", daemon=True)
        self._thread.start()

    def submit(self, request: GenerationRequest) -> None:
        if self._stopping.is_set():
            raise ServingError("the service is shutting down; retry shortly", status=503, retry_after=5)
        self.check_capacity()
        self._requests.put(request)
        self._wake.set()

    def check_capacity(self) -> None:
        waiting = self._requests.qsize()
        if waiting >= self.max_pending:
            retry = self.retry_after(waiting)
            self.metrics.overloaded.inc()
            raise Overloaded(
                f"the service is at capacity ({waiting} requests waiting for generation); retry in {retry} s",
                retry_after=retry,
            )

    def retry_after(self, waiting: int) -> int:
        """Whole seconds until the ``waiting`` requests have drained at the measured rate (bounded)."""
        rate = self._drain_rate or self.max_batch / (ASSUMED_TOKENS * self._step_seconds)
        low, high = RETRY_BOUNDS_S
        return int(min(high, max(low, math.ceil(waiting / rate))))

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
            if not len(self.batch):
                if self._tasks.empty() and self._requests.empty():
                    self._wake.wait(timeout=0.5)
                self._wake.clear()
                self._run_tasks()
            if self._tasks.empty():  # a pending task lets the running rows finish first
                joining = self._take(self.max_batch - len(self.batch), wait=not len(self.batch))
                if joining:
                    if self._busy_since is None:
                        self._busy_since = time.perf_counter()
                    self._admit(joining)
                    self.stats.rows += len(joining)
                    self._admitted(joining)
            if len(self.batch):
                rows = list(self.batch.rows)
                started = time.perf_counter()
                self._guarded(self.batch.step)
                self._step_seconds = 0.9 * self._step_seconds + 0.1 * (time.perf_counter() - started)
                self.stats.steps += 1
                self.stats.largest = max(self.stats.largest, len(rows))
                self.metrics.batch_rows.observe(len(rows))
                self.metrics.tokens.inc(sum(1 for r in rows if r.error is None))
                self._ended_rows([r for r in rows if r.done.is_set()])
            if not len(self.batch):
                self._busy_since = None
                self._ended.clear()
        self._end_all(ServingError("the service is shutting down; retry shortly", status=503, retry_after=5))

    def _admitted(self, joining: list[GenerationRequest]) -> None:
        """Metrics of the requests that just joined (their first tokens were chosen by the prefill)."""
        for request in joining:
            if request.started_at is not None:
                self.metrics.queue_wait.observe(request.started_at - request.queued_at)
            if request.first_token_at is not None:
                self.metrics.first_token.observe(request.first_token_at - request.queued_at)
        self.metrics.tokens.inc(sum(1 for r in joining if r.started_at is not None and r.error is None))
        self._ended_rows([r for r in joining if r.done.is_set()])

    def _ended_rows(self, ended: list[GenerationRequest]) -> None:
        """Count rows that ended, and measure again how fast rows finish (the basis of Retry-After)."""
        now = time.perf_counter()
        for request in ended:
            outcome = "error" if request.error is not None else request.finish_reason or "stop"
            self.metrics.generations.labels(outcome).inc()
        if ended:
            self._ended.append((now, len(ended)))
        while self._ended and self._ended[0][0] < now - DRAIN_WINDOW_S:
            self._ended.popleft()
        since = max(self._busy_since or now, now - DRAIN_WINDOW_S)
        finished = sum(n for _, n in self._ended)
        if finished >= 2 and now - since >= 0.2:
            self._drain_rate = finished / (now - since)
        elif self.batch.rows:  # nothing measured yet: the running rows' remaining tokens at this step time
            left = [max(1, r.max_new_tokens - len(r.token_ids)) for r in self.batch.rows]
            self._drain_rate = len(left) / (sum(left) / len(left) * self._step_seconds)

    def _admit(self, joining: list[GenerationRequest]) -> None:
        """Joining rows that fail end alone; the running batch is never failed for them."""
        try:
            self.batch.admit(joining)
        except Exception as exc:
            log.exception("admitting %d requests failed; the running rows go on", len(joining))
            for request in joining:
                if not request.done.is_set():
                    request.finish(exc)

    def _end_all(self, error: BaseException) -> None:
        self.batch.fail(error)
        while True:
            try:
                request = self._requests.get_nowait()
            except queue.Empty:
                return
            request.finish(error)

    def _guarded(self, action: Callable[[], None]) -> None:
        try:
            action()
        except Exception as exc:  # the rows carry the error; the thread lives on
            log.exception("a generation step of %d rows failed", len(self.batch))
            self.batch.fail(exc)

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

    def _take(self, room: int, wait: bool) -> list[GenerationRequest]:
        """Up to ``room`` waiting requests; with ``wait``, the first one waits ``max_wait_s`` for others."""
        taken: list[GenerationRequest] = []
        deadline = time.perf_counter() + (self.max_wait_s if wait else 0)
        while len(taken) < room:
            left = deadline - time.perf_counter()
            try:
                if taken and left > 0:
                    request = self._requests.get(timeout=left)
                else:
                    request = self._requests.get_nowait()
            except queue.Empty:
                break
            taken.append(request)
        return [r for r in taken if not r.cancelled.is_set() or _finish_cancelled(r)]


def _finish_cancelled(request: GenerationRequest) -> bool:
    """A request whose client left while it waited: finished without running."""
    request.finish_reason = "cancelled"
    request.finish()
    return False
