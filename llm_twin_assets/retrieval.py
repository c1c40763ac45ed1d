"""Retrieval over authors' writing: the one search everything downstream uses.

``search(query, author=None, kinds=None, k=10)`` runs inside PostgreSQL, in one statement:

- vector search: the query embedded with the configured model against ``chunks.embedding`` (each chunk
  was embedded with its document's title and heading path above it; see :mod:`.store.vectors` for the
  index strategy: filtered searches still return k results), and against ``chunk_units.embedding``: the
  chunk's retrieval units (list items, table rows, sentence groups, short paragraphs:
  :mod:`.features.units`), each embedded on its own, so the one item that answers is not drowned by the
  chunk's other items (small-to-big). A unit counts for its chunk: the chunk's distance is the smaller of
  its own and its best unit's (max similarity), and the result is the chunk (the passage) with the unit
  that matched in ``SearchHit.unit``;
- full-text search: ``websearch_to_tsquery`` against ``chunks.tsv`` (the chunk and its context), which
  finds the literal terms vectors blur (a command, an option, a placeholder);
- the two rankings fused by reciprocal rank (RRF, the text ranking at half weight), then each further
  chunk of a document already placed counts less (``same_document_decay``), so one long page does not
  fill every slot (a hard ``max_per_document`` is there too).

With a cross-encoder configured (``LLM_TWIN_RERANKER_MODEL``; none ships offline, so the defaults are
good without one) the best ``rerank_depth`` fused results are re-scored by it and the best k kept.

The author and kind filters are in SQL for both rankings. Self-query: an explicit author wins; otherwise
an author the question names (full name or slug) restricts the search; otherwise every author's chunks
are searched and each result names its author. The defaults are the combination measured best on the
labelled benchmark (``bench/retrieval.py``).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from typing import TYPE_CHECKING, Any

from llm_twin_assets.errors import TwinError
from llm_twin_assets.kinds import KINDS
from llm_twin_assets.settings import TwinSettings, get_settings
from llm_twin_assets.store.database import Connection, ConnectionLost, Database, open_database
from llm_twin_assets.store.search import (
    MAX_K,
    SearchOptions,
    named_author,
    require_author,
    search_rows,
)

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

MAX_QUERY_CHARS = 2_000


@dataclass(frozen=True)
class SearchUnit:
    """The retrieval unit of a hit's chunk that matched: the one closest to the question (by vector; in
    text mode, the one holding most of its terms)."""

    id: str
    text: str
    start: int
    end: int
    """Offsets into the cleaned document, like the chunk's (``SearchHit.start`` / ``end``)."""
    similarity: float | None
    """Cosine similarity to the query (None in text mode)."""


@dataclass(frozen=True)
class SearchHit:
    chunk_id: str
    document_id: str
    document_url: str
    title: str | None
    heading_path: list[str]
    author: str
    kind: str
    score: float
    """The fused score (reciprocal ranks); in vector mode the cosine similarity."""
    similarity: float | None
    """Cosine similarity to the query, when the vector ranking saw the chunk: the chunk's own or, when
    closer, its best unit's."""
    text: str
    ranks: dict[str, int] = field(default_factory=dict)
    """The chunk's rank in each ranking that found it ('vector', 'text', 'unit'), 1-based."""
    start: int | None = None
    end: int | None = None
    """The chunk's (the passage's) offsets into its cleaned document."""
    unit: SearchUnit | None = None
    """The unit of the passage that matched (None: the chunk has no units, or ``units=False``)."""

    def unit_span(self) -> tuple[int, int] | None:
        """Where the matching unit lies in ``text`` (the unit's own offsets are the document's); None
        without a unit, or when it is not a span of ``text`` (never expected: units are spans of their
        chunk)."""
        if self.unit is None or self.start is None:
            return None
        a, b = self.unit.start - self.start, self.unit.end - self.start
        return (a, b) if 0 <= a < b <= len(self.text) and self.text[a:b] == self.unit.text else None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class Retriever:
    """A store and an embedding model, ready to answer many queries."""

    def __init__(
        self, database: Database, embedder: SentenceTransformer, dim: int = 384, reranker: Any = None
    ) -> None:
        self.database = database
        self.embedder = embedder
        self.dim = dim
        self.reranker = reranker
        """A sentence-transformers CrossEncoder, or None."""
        self._local = threading.local()  # one kept connection per thread: no connect per query

    @contextmanager
    def _connection(self) -> Iterator[Connection]:
        """This thread's kept connection; opened again after the server went away (a restart)."""
        conn = getattr(self._local, "conn", None)
        if conn is None or conn.closed or conn.broken:
            conn = self._local.conn = self.database.open()
        try:
            yield conn
        except ConnectionLost:
            conn.close()
            raise

    def embed(self, query: str):
        return self.embedder.encode([query], normalize_embeddings=True, convert_to_numpy=True)[0]

    def search(
        self,
        query: str,
        author: str | None = None,
        kinds: Sequence[str] | None = None,
        k: int = 10,
        options: SearchOptions | None = None,
        *,
        vector: Any = None,
    ) -> list[SearchHit]:
        """``vector``: the query already embedded (a caller that embeds many queries at once)."""
        options = options or SearchOptions()
        query = check_query(query, k)
        unknown_kinds = sorted(set(kinds or ()) - set(KINDS))
        if unknown_kinds:
            raise TwinError(f"unknown kind(s) {', '.join(unknown_kinds)}: use {', '.join(KINDS)}")
        if vector is None and options.mode != "text":
            vector = self.embed(query)
        try:
            rows = self._rows(query, vector, author, kinds, k, options)
        except ConnectionLost:  # the kept connection died (a server restart): once more, afresh
            rows = self._rows(query, vector, author, kinds, k, options)
        hits = [
            SearchHit(
                chunk_id=r[0],
                document_id=r[1],
                document_url=r[2],
                title=r[3],
                heading_path=list(r[4] or []),
                author=r[5],
                kind=r[6],
                score=round(float(r[7]), 6),
                similarity=None if r[8] is None else round(1.0 - float(r[8]), 6),
                text=r[9],
                ranks={
                    name: int(rank)
                    for name, rank in (("vector", r[10]), ("text", r[11]), ("unit", r[12]))
                    if rank
                },
                start=r[13],
                end=r[14],
                unit=None
                if r[15] is None
                else SearchUnit(
                    id=r[15],
                    text=r[16],
                    start=int(r[17]),
                    end=int(r[18]),
                    similarity=None if r[19] is None else round(1.0 - float(r[19]), 6),
                ),
            )
            for r in rows
        ]
        return self.rerank(query, hits)[:k] if self.reranker is not None and hits else hits

    def _rows(
        self,
        query: str,
        vector: Any,
        author: str | None,
        kinds: Sequence[str] | None,
        k: int,
        options: SearchOptions,
    ) -> list[tuple[Any, ...]]:
        with self._connection() as conn:
            if author is not None:
                require_author(conn, author)
            elif options.self_query:
                author = named_author(conn, query)
            depth = max(k, options.rerank_depth) if self.reranker is not None else k
            return search_rows(
                conn, query, vector, author=author, kinds=kinds, k=depth, options=options, dim=self.dim
            )

    def rerank(self, query: str, hits: list[SearchHit]) -> list[SearchHit]:
        """The hits re-scored by the cross-encoder (query against title, heading path and text), best first;
        ``score`` becomes its score, ``ranks["rerank"]`` the new place."""
        passages = [" › ".join([h.title or "", *h.heading_path]).strip(" ›") + "\n" + h.text for h in hits]
        scores = self.reranker.predict([(query, p) for p in passages], show_progress_bar=False)
        order = sorted(range(len(hits)), key=lambda i: (-float(scores[i]), hits[i].chunk_id))
        return [
            replace(hits[i], score=round(float(scores[i]), 6), ranks={**hits[i].ranks, "rerank": place})
            for place, i in enumerate(order, start=1)
        ]


def check_query(query: str, k: int) -> str:
    """The query, stripped; a clear error for an empty or huge query or a k out of range."""
    query = query.strip()
    if not query:
        raise TwinError("the search query is empty")
    if len(query) > MAX_QUERY_CHARS:
        raise TwinError(
            f"the search query is {len(query):,} characters; at most {MAX_QUERY_CHARS:,} are searched"
        )
    if not 1 <= k <= MAX_K:
        raise TwinError(f"k must be between 1 and {MAX_K}, got {k}")
    return query


_RETRIEVERS: dict[tuple[str | None, str, str, str | None], Retriever] = {}


def retriever(settings: TwinSettings | None = None) -> Retriever:
    """A cached Retriever for these settings (one model load per process)."""
    from llm_twin_assets.embeddings import load_embedder

    settings = settings or get_settings()
    key = (settings.database_url, str(settings.home), settings.embedding_model, settings.reranker_model)
    if key not in _RETRIEVERS:
        _RETRIEVERS[key] = Retriever(
            open_database(settings),
            load_embedder(settings),
            settings.embedding_dim,
            load_reranker(settings.reranker_model) if settings.reranker_model else None,
        )
    return _RETRIEVERS[key]


def load_reranker(model: str) -> Any:
    """The configured cross-encoder, from a folder or the local hub cache (never downloaded here)."""
    from llm_twin_assets.errors import ModelError
    from llm_twin_assets.models.registry import resolve

    ref = resolve(model, "LLM_TWIN_RERANKER_MODEL")
    if ref is None:
        from llm_twin_assets.errors import ConfigError

        raise ConfigError(
            "LLM_TWIN_RERANKER_MODEL",
            "is 'bundled', but no cross-encoder ships offline",
            "name a folder or unset it",
        )
    from sentence_transformers import CrossEncoder

    try:
        return CrossEncoder(ref.name_or_path, local_files_only=True, device="cpu")
    except (OSError, ValueError) as exc:
        raise ModelError(
            f"LLM_TWIN_RERANKER_MODEL: cannot load {ref.name_or_path} as a cross-encoder ({exc}). Fix: a local "
            "sentence-transformers CrossEncoder folder or a hub id already in the local hub cache, or unset it"
        ) from exc


def search(
    query: str,
    author: str | None = None,
    kinds: Sequence[str] | None = None,
    k: int = 10,
    *,
    settings: TwinSettings | None = None,
    options: SearchOptions | None = None,
) -> list[SearchHit]:
    """The ``k`` chunks that best answer ``query``, optionally of one author and of some kinds."""
    return retriever(settings).search(query, author=author, kinds=kinds, k=k, options=options)
