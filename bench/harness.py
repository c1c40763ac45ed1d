"""A small benchmark harness: timers, latency summaries, a printed table and a JSON record.

Benchmarks print figures; they never assert on them. Results also go to ``bench/results/<name>.json``
(ignored by git) so two runs can be compared.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"


@dataclass
class Latency:
    """Per-call latencies in seconds, summarised."""

    samples: list[float]

    @property
    def p50_ms(self) -> float:
        return 1000 * statistics.median(self.samples)

    @property
    def p95_ms(self) -> float:
        ordered = sorted(self.samples)
        return 1000 * ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]

    @property
    def qps(self) -> float:
        return len(self.samples) / sum(self.samples)


def measure(
    call: Callable[[Any], object], inputs: list[Any], warmup: int = 5
) -> tuple[Latency, list[object]]:
    """Run ``call`` on each input one at a time (one client); return latencies and results."""
    for item in inputs[:warmup]:
        call(item)
    samples, results = [], []
    for item in inputs:
        start = time.perf_counter()
        results.append(call(item))
        samples.append(time.perf_counter() - start)
    return Latency(samples), results


@contextmanager
def timer() -> Iterator[Callable[[], float]]:
    """``with timer() as elapsed: ...; elapsed()`` gives seconds so far (frozen at exit)."""
    start = time.perf_counter()
    end: list[float] = []
    yield lambda: (end[0] if end else time.perf_counter()) - start
    end.append(time.perf_counter())


@dataclass
class Report:
    name: str
    rows: list[dict[str, Any]] = field(default_factory=list)
    notes: dict[str, Any] = field(default_factory=dict)

    def add(self, **row: Any) -> None:
        self.rows.append(row)
        print("  " + "  ".join(f"{k}={_fmt(v)}" for k, v in row.items()), flush=True)

    def note(self, key: str, value: Any) -> None:
        self.notes[key] = value
        print(f"# {key}: {_fmt(value)}", flush=True)

    def table(self) -> str:
        if not self.rows:
            return ""
        cols = list(dict.fromkeys(k for row in self.rows for k in row))
        cells = [[_fmt(row.get(c, "")) for c in cols] for row in self.rows]
        widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(cols)]
        lines = ["  ".join(c.ljust(w) for c, w in zip(cols, widths, strict=True))]
        lines.append("  ".join("-" * w for w in widths))
        lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)) for r in cells]
        return "\n".join(lines)

    def save(self) -> Path:
        RESULTS.mkdir(exist_ok=True)
        path = RESULTS / f"{self.name}.json"
        record = {"machine": {"cpus": os.cpu_count(), "python": platform.python_version()}, **asdict(self)}
        path.write_text(json.dumps(record, indent=2, default=str))
        print(f"\n{self.table()}\n\nsaved {path}", flush=True)
        return path


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) < 1000 else f"{value:,.0f}"
    return str(value)
