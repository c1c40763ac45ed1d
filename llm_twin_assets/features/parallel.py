"""Chunking spread over the machine's cores.

Chunking is pure Python over each document (regular expressions, the tokenizer called on small batches
of units), so one core bounds it: the documents are cut into batches of about equal size and chunked
in worker processes (``spawn``: safe beside the threads of Dagster, torch and the Rust tokenizer). The
result is the same as on one core, in the same order (tested). A small input runs in this process:
starting the workers and sending the chunks back costs about half a second. Where worker processes
cannot start (a program read from standard input cannot be re-imported by ``spawn``), the work runs
here, logged.

Cleaning stays in one process: it is fast already (mostly polars' native string expressions, run on
polars' own thread pool), and splitting it over processes was slower at every size tried (figures:
``bench/README.md``).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from dataclasses import dataclass
from multiprocessing import get_context
from typing import Any

from llm_twin_assets.features.chunking import ChunkingOptions, chunk_document
from llm_twin_assets.features.tokens import Counter, TokenCounter
from llm_twin_assets.records import Chunk

log = logging.getLogger(__name__)

MIN_PARALLEL_CHARS = 2_000_000
"""Less text than this (about 1,000 articles, a second of one core's work) is chunked in this process."""


@dataclass(frozen=True)
class DocumentToChunk:
    id: str
    kind: str
    content: str
    title: str = ""
    headings: tuple[tuple[int, int, int], ...] = ()


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def worker_count(setting: int | None, total_chars: int) -> int:
    """``setting`` processes (0 or None: one per core), or 1 for a small input."""
    if total_chars < MIN_PARALLEL_CHARS:
        return 1
    return max(1, setting or available_cores())


def _batches(sizes: Sequence[int], parts: int) -> list[list[int]]:
    """Indexes cut into about ``parts`` runs of consecutive items of about equal total size."""
    total = sum(sizes) or 1
    target = total / parts
    out: list[list[int]] = [[]]
    filled = 0
    for i, size in enumerate(sizes):
        if out[-1] and filled + size > target * len(out) and len(out) < parts:
            out.append([])
        out[-1].append(i)
        filled += size
    return [b for b in out if b]


# Worker side: the counter and options are built once per process.
_WORKER: dict[str, Any] = {}


def _start_chunker(tokenizer_json: str, options: ChunkingOptions) -> None:
    os.environ["TOKENIZERS_PARALLELISM"] = "false"  # one process per core already
    _WORKER["count"] = TokenCounter(tokenizer_json)
    _WORKER["options"] = options


def _chunk_batch(documents: list[DocumentToChunk]) -> list[list[Chunk]]:
    return _chunk_all(documents, _WORKER["options"], _WORKER["count"])


def _chunk_all(
    documents: Sequence[DocumentToChunk], options: ChunkingOptions, count: Counter
) -> list[list[Chunk]]:
    return [
        chunk_document(d.id, d.kind, d.content, options, count, title=d.title, headings=d.headings)
        for d in documents
    ]


@contextmanager
def _pool(
    workers: int, initializer: Any = None, initargs: tuple[Any, ...] = ()
) -> Iterator[ProcessPoolExecutor]:
    pool = ProcessPoolExecutor(
        max_workers=workers, mp_context=get_context("spawn"), initializer=initializer, initargs=initargs
    )
    try:
        yield pool
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def chunk_documents(
    documents: Sequence[DocumentToChunk],
    options: ChunkingOptions,
    count: Counter,
    *,
    workers: int | None = None,
) -> list[list[Chunk]]:
    """The chunks of each document (as :func:`chunk_document` makes them), in order, on ``workers``
    processes (None: one per core; a small input, or a counter that is not a :class:`TokenCounter`,
    stays in this process)."""
    processes = worker_count(workers, sum(len(d.content) for d in documents))
    if processes <= 1 or len(documents) < 2 or not isinstance(count, TokenCounter):
        return _chunk_all(documents, options, count)
    # Several batches per process even out documents of uneven cost.
    batches = _batches([len(d.content) for d in documents], processes * 4)
    try:
        with _pool(processes, _start_chunker, (count.tokenizer_json, options)) as pool:
            results = pool.map(_chunk_batch, [[documents[i] for i in batch] for batch in batches])
            return [chunks for batch in results for chunks in batch]
    except BrokenProcessPool as exc:
        log.warning("chunking on one core: worker processes could not run (%s)", exc)
        return _chunk_all(documents, options, count)
