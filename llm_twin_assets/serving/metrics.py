"""Prometheus metrics of generation, exported on BentoML's ``/metrics`` beside its own request metrics.

- ``llm_twin_generated_tokens_total`` (counter): tokens decoded, the first token of each row included;
- ``llm_twin_generations_total`` (counter, by ``outcome``): rows that ended: ``stop``, ``length``,
  ``cancelled`` or ``error``;
- ``llm_twin_time_to_first_token_seconds`` (histogram): from a request's arrival in the queue to its first
  token;
- ``llm_twin_queue_wait_seconds`` (histogram): from arrival to the start of its prefill;
- ``llm_twin_batch_rows`` (histogram): rows decoded together in each step (continuous batching at work);
- ``llm_twin_overloaded_total`` (counter): generations refused with 503 because too many waited.

``prometheus_client`` is imported on first use, not at import time: BentoML points
``PROMETHEUS_MULTIPROC_DIR`` at its multiprocess folder in the worker only after the service module is
imported, and a client imported before that would count in a registry ``/metrics`` never reads. The
metrics are created once per process (the registry refuses a name twice).
"""

from __future__ import annotations

import threading
from typing import Any

_LOCK = threading.Lock()
_METRICS: Metrics | None = None

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)
ROW_BUCKETS = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64)


class Metrics:
    def __init__(self) -> None:
        from prometheus_client import Counter, Histogram

        self.tokens: Any = Counter("llm_twin_generated_tokens", "Tokens generated (decoded), all rows.")
        self.generations: Any = Counter(
            "llm_twin_generations", "Generations (rows) that ended, by outcome.", ["outcome"]
        )
        self.first_token: Any = Histogram(
            "llm_twin_time_to_first_token_seconds",
            "From a generation request's arrival to its first token.",
            buckets=LATENCY_BUCKETS,
        )
        self.queue_wait: Any = Histogram(
            "llm_twin_queue_wait_seconds",
            "From a generation request's arrival to the start of its prefill.",
            buckets=LATENCY_BUCKETS,
        )
        self.batch_rows: Any = Histogram(
            "llm_twin_batch_rows", "Rows decoded together in one decoding step.", buckets=ROW_BUCKETS
        )
        self.overloaded: Any = Counter(
            "llm_twin_overloaded", "Generations refused (503) because too many were waiting."
        )


def metrics() -> Metrics:
    """This process's metrics, created on first use."""
    global _METRICS
    if _METRICS is None:
        with _LOCK:
            if _METRICS is None:
                _METRICS = Metrics()
    return _METRICS
