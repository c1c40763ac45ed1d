"""The feature stages after cleaning, one call each: ``chunks`` (cut an author's new or changed cleaned
documents into token-aware chunks) and ``chunk_embeddings`` (embed new or changed chunks and their
retrieval units, write the vectors, keep the author's own HNSW indexes). The assets map config to options
and a report to metadata.

A document's chunk key holds its content, kind, outline and the chunker's signature (its version, its
options, the embedder's tokenizer): a new chunker or other settings re-chunk it on the next run.

Retrieval units are made again only for chunks whose ``units_key`` changed (new or changed chunks); a
unit whose span and embedded text are unchanged keeps its vector. A frequent author gets an HNSW index of
their own (off-topic filtered searches stay exact); it is built concurrently, outside any transaction,
and asked for even when nothing new was embedded: a run cut short after its embeddings were committed (a
restart) still leaves the index built on retry.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from llm_twin_assets.features.chunking import CHUNKER_VERSION, ChunkingOptions
from llm_twin_assets.features.parallel import DocumentToChunk, chunk_documents
from llm_twin_assets.features.tokens import TokenCounter, token_counter
from llm_twin_assets.features.units import UNITS_VERSION, unit_spans
from llm_twin_assets.records import stable_id
from llm_twin_assets.store.author_indexes import ensure_author_index
from llm_twin_assets.store.chunks import (
    chunk_sizes,
    chunks_needing_embeddings,
    documents_needing_chunks,
    embedding_totals,
    refresh_statistics,
    replace_chunks,
    write_embeddings,
)
from llm_twin_assets.store.data_versions import data_version
from llm_twin_assets.store.units import (
    chunks_needing_units,
    ensure_units_dimension,
    refresh_unit_statistics,
    replace_units,
    units_needing_embeddings,
)

if TYPE_CHECKING:
    from llm_twin_assets.store.database import Database


@dataclass(frozen=True)
class IndexingReport:
    version: str
    """The data version: both the chunks' and the units' vectors (a search's results change with either)."""
    metadata: dict[str, Any]


def _rate(count: int, seconds: float) -> float:
    return round(count / seconds, 1) if count and seconds else 0.0


@dataclass(frozen=True)
class ChunkingReport:
    version: str
    tokens: list[int]
    """Tokens of every chunk the author has now."""
    metadata: dict[str, Any]


def chunk_author(
    database: Database,
    author: str,
    embedder: Any,
    options: ChunkingOptions,
    *,
    use_headings: bool = True,
    workers: int = 1,
) -> ChunkingReport:
    """Chunk ``author``'s cleaned documents whose chunk key changed, counting tokens with ``embedder``'s
    own tokenizer (a sentence-transformers model), on ``workers`` processes."""
    start = time.perf_counter()
    signature = (
        f"v{CHUNKER_VERSION}|{options}|{use_headings}|{embedder.tokenizer.name_or_path}"
        f"|{len(embedder.tokenizer)}"
    )
    count = token_counter(embedder.tokenizer)
    with database.connect() as conn:
        stale = documents_needing_chunks(
            conn,
            author,
            lambda content_hash, kind, outline: stable_id(content_hash, kind, outline, signature),
        )
        documents = [
            DocumentToChunk(d.id, d.kind, d.content, d.title, tuple(d.headings) if use_headings else ())
            for d in stale
        ]
        made = [c for found in chunk_documents(documents, options, count, workers=workers) for c in found]
        tokenizer = count.digest if isinstance(count, TokenCounter) else None
        result, removed = replace_chunks(
            conn, author, [(d.id, d.kind, d.key) for d in stale], made, tokenizer
        )
        if result.written or removed:
            refresh_statistics(conn)
        rows = chunk_sizes(conn, author)
        version = data_version(conn, "chunks", author)
    seconds = time.perf_counter() - start
    tokens = [n for _, n in rows]
    by_kind: dict[str, int] = {}
    for kind, _ in rows:
        by_kind[kind] = by_kind.get(kind, 0) + 1
    metadata = {
        "rechunked_documents": len(stale),
        "chunks_made": len(made),
        "new": len(result.inserted),
        "unchanged": result.unchanged,
        "removed": removed,
        "chunks": len(rows),
        "by_kind": by_kind,
        "max_tokens_seen": max(tokens, default=0),
        "token_limit": options.max_tokens,
        "seconds": round(seconds, 3),
        "chunks_per_s": _rate(len(made), seconds),
    }
    return ChunkingReport(version, tokens, metadata)


def embed_author(database: Database, encoder: Any, label: str, dim: int, author: str) -> IndexingReport:
    """Embed what changed of ``author``'s chunks and units with ``encoder`` (``features.encoding``),
    labelled ``label`` (the model), vectors of ``dim`` dimensions."""
    with database.connect() as conn:
        todo = chunks_needing_embeddings(conn, author, label, encoder.tokenizer_digest)
        units_start = time.perf_counter()
        stale = chunks_needing_units(conn, author, UNITS_VERSION)
        spans = [unit_spans(c.content, c.headings, c.kind) for c in stale]
        units_written, units_removed = replace_units(conn, author, stale, spans)
        units_split_s = time.perf_counter() - units_start
        ensure_units_dimension(conn)
        units_todo = units_needing_embeddings(conn, author, label)
    start = time.perf_counter()
    vectors = encoder.encode([c.text for c in todo], [c.token_ids for c in todo])
    encode_s = time.perf_counter() - start
    unit_vectors = encoder.encode([text for _, text in units_todo])
    units_encode_s = time.perf_counter() - start - encode_s
    with database.connect() as conn:
        written = write_embeddings(conn, [c.id for c in todo], vectors, label, dim) if todo else 0
        ids = [i for i, _ in units_todo]
        units_embedded = write_embeddings(conn, ids, unit_vectors, label, dim, "chunk_units") if ids else 0
        if units_embedded or units_removed:
            refresh_unit_statistics(conn)
        totals = embedding_totals(conn, author)
        version = stable_id(
            data_version(conn, "chunk_embeddings", author), data_version(conn, "chunk_units", author)
        )
    with database.connect(autocommit=True) as conn:
        author_index = ensure_author_index(conn, author)
        units_author_index = ensure_author_index(conn, author, table="chunk_units")
    metadata = {
        "embedded": written,
        "token_ids_reused": sum(c.token_ids is not None for c in todo),
        "author_index": author_index or "",
        "embedded_total": totals.chunks_embedded,
        "chunks_total": totals.chunks,
        "model": label,
        "backend": encoder.backend,
        "fallback_reason": encoder.fallback_reason or "",
        "device": encoder.device,
        "threads": encoder.threads,
        "batch_size": encoder.batch_size,
        "encode_seconds": round(encode_s, 3),
        "seconds": round(time.perf_counter() - start, 3),
        "chunks_per_s": _rate(len(todo), encode_s),
        "units_rebuilt_chunks": len(stale),
        "units_written": units_written.written,
        "units_removed": units_removed,
        "units_embedded": units_embedded,
        "units_total": totals.units,
        "chunks_with_units": totals.chunks_with_units,
        "units_author_index": units_author_index or "",
        "units_split_seconds": round(units_split_s, 3),
        "units_encode_seconds": round(units_encode_s, 3),
        "units_per_s": _rate(len(units_todo), units_encode_s),
    }
    return IndexingReport(version, metadata)
