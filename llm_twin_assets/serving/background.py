"""The service's two background threads: the release watcher (LISTEN twin_releases, and a poll as a
fallback for a notification missed while disconnected) and the trace writer (requests never wait for
their trace to reach the database; a database outage loses traces, never answers)."""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable

from llm_twin_assets.store import traces
from llm_twin_assets.store.database import BadValue, Connection, Database, DatabaseError
from llm_twin_assets.store.releases import listen_for_releases

log = logging.getLogger(__name__)


class ReleaseWatcher:
    """Calls ``on_change()`` when any author's current release may have moved."""

    def __init__(self, database: Database, on_change: Callable[[], None], poll_s: float = 30.0) -> None:
        self.database = database
        self.on_change = on_change
        self.poll_s = poll_s
        self.listening = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="release-watcher", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                with self.database.connect(autocommit=True) as conn:
                    listen_for_releases(conn)
                    self.listening.set()
                    self._changed()  # whatever moved while we were not listening
                    polled = time.monotonic()
                    while not self._stop.is_set():
                        # short waits, so that stopping never waits for a poll period
                        moved = [n.payload for n in conn.notifies(timeout=1.0, stop_after=1)]
                        if moved or time.monotonic() - polled >= self.poll_s:
                            if moved:
                                log.info("release notification for %s", ", ".join(moved))
                            self._changed()
                            polled = time.monotonic()
            except DatabaseError as exc:
                self.listening.clear()
                log.warning("release watcher lost the database (%s); retrying", exc)
                self._stop.wait(min(self.poll_s, 5.0))

    def _changed(self) -> None:
        try:
            self.on_change()
        except Exception:
            log.exception("refreshing the releases failed")

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


class TraceWriter:
    def __init__(self, database: Database, flush_s: float = 0.2, max_queue: int = 10_000) -> None:
        self.database = database
        self.flush_s = flush_s
        self.written = 0
        self.dropped = 0
        self._queue: queue.Queue[traces.Trace] = queue.Queue(maxsize=max_queue)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="trace-writer", daemon=True)
        self._thread.start()

    def add(self, trace: traces.Trace) -> None:
        try:
            self._queue.put_nowait(trace)
        except queue.Full:
            self.dropped += 1

    def _loop(self) -> None:
        conn: Connection | None = None
        while not (self._stop.is_set() and self._queue.empty()):
            batch: list[traces.Trace] = []
            try:
                batch.append(self._queue.get(timeout=self.flush_s))
                while len(batch) < 500:
                    batch.append(self._queue.get_nowait())
            except queue.Empty:
                pass
            if not batch:
                continue
            try:
                if conn is None or conn.closed:
                    conn = self.database.open()
                self._write(conn, batch)
            except DatabaseError as exc:
                self.dropped += len(batch)
                log.warning("could not write %d traces: %s", len(batch), exc)
                if conn is not None:
                    conn.close()
                conn = None
        if conn is not None:
            conn.close()

    def _write(self, conn: Connection, batch: list[traces.Trace]) -> None:
        """The batch in one insert; if the database refuses it for its data, row by row, so one bad
        trace never costs the others."""
        try:
            traces.write(conn, batch)
            self.written += len(batch)
            return
        except (*BadValue, ValueError) as exc:
            log.warning("a batch of %d traces was refused (%s); writing them one by one", len(batch), exc)
        written, refused = traces.write_each(conn, batch)
        self.written += written
        self.dropped += len(refused)
        for trace, error in refused:
            log.warning("dropped one %s trace the database refused: %s", trace.route, error)

    def flush(self, timeout: float = 5.0) -> None:
        deadline = time.monotonic() + timeout
        while not self._queue.empty() and time.monotonic() < deadline:
            time.sleep(0.05)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
