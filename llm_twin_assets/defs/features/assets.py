"""cleaned_documents -> chunks -> chunk_embeddings: incremental, one transaction per write."""

import time

import dagster as dg
import polars as pl

from llm_twin_assets.defs.authoring import author_asset
from llm_twin_assets.defs.ingest.assets import raw_documents
from llm_twin_assets.defs.resources import ModelsResource, StoreResource
from llm_twin_assets.store.data_versions import data_version


class ChunkingConfig(dg.Config):
    """How documents are cut for the embedder."""

    target_tokens: int = 200
    """Aim for chunks of about this many word-pieces."""
    overlap_tokens: int = 40
    """Closing sentences repeated at the start of the next chunk of a running paragraph."""
    context_tokens: int = 32
    """Word-pieces kept for each chunk's context (document title and heading path), embedded above its
    text; 0 embeds the text alone (bench/retrieval.py measures both)."""
    use_headings: bool = True
    """Follow the document's headings: a heading starts a chunk, chunks carry their heading path."""


@author_asset(
    deps=[raw_documents],
    group_name="features",
    kinds={"polars", "postgres"},
    description="Normalised text of each raw document (prose keeps the author's style; code stays code).",
)
def cleaned_documents(context: dg.AssetExecutionContext, store: StoreResource) -> dg.MaterializeResult:
    from llm_twin_assets.features.cleaning import CLEANER_VERSION, clean_frame
    from llm_twin_assets.store.cleaned import (
        cleaned_count,
        raw_needing_cleaning,
        rejections_of,
        write_cleaned,
    )

    author = context.partition_key
    start = time.perf_counter()
    with store.database().connect() as conn:
        raw = raw_needing_cleaning(conn, author, CLEANER_VERSION)
        cleaned, rejected = clean_frame(raw)
        written = write_cleaned(conn, author, raw["id"].to_list(), cleaned, rejected, CLEANER_VERSION)
        total = cleaned_count(conn, author)
        rejections = rejections_of(conn, author)
        version = data_version(conn, "cleaned_documents", author)
    rejected = written.rejected
    kept = cleaned.filter(~pl.col("id").is_in(rejected["id"].to_list()))
    for row in rejected.iter_rows(named=True):
        context.log.warning(f"not kept: {row['url']}: {row['detail']}")
    seconds = time.perf_counter() - start
    return dg.MaterializeResult(
        data_version=dg.DataVersion(version),
        metadata={
            "judged_raw_documents": raw.height,
            "written": written.result.written,
            "rejected": rejected.height,
            "removed": written.removed,
            "documents": total,
            "rejected_total": dg.MetadataValue.json(rejections),
            "by_kind": dg.MetadataValue.json(dict(kept.group_by("kind").len().iter_rows())),
            "languages": dg.MetadataValue.json(dict(kept.group_by("language").len().iter_rows())),
            "truncated": int(kept["truncated"].sum()) if kept.height else 0,
            "rejections": dg.MetadataValue.json(
                [f"{r['url']}: {r['detail']}" for r in rejected.iter_rows(named=True)]
            ),
            "seconds": round(seconds, 3),
            "documents_per_s": round(raw.height / seconds, 1) if seconds else 0.0,
        },
    )


@author_asset(
    deps=[cleaned_documents],
    group_name="features",
    kinds={"python", "postgres"},
    description="Token-aware chunks (the embedder's own tokenizer: none is ever truncated).",
)
def chunks(
    context: dg.AssetExecutionContext, config: ChunkingConfig, store: StoreResource, models: ModelsResource
) -> dg.MaterializeResult:
    from llm_twin_assets.charts import histogram_markdown
    from llm_twin_assets.features.chunking import CHUNKER_VERSION, ChunkingOptions
    from llm_twin_assets.features.parallel import DocumentToChunk, chunk_documents
    from llm_twin_assets.features.tokens import TokenCounter, token_counter
    from llm_twin_assets.records import stable_id
    from llm_twin_assets.store.chunks import (
        chunk_sizes,
        documents_needing_chunks,
        refresh_statistics,
        replace_chunks,
    )

    author = context.partition_key
    embedder = models.embedder()
    start = time.perf_counter()  # after the model load: the figure is the chunking itself
    options = ChunkingOptions(
        max_tokens=int(embedder.max_seq_length or 0),
        target_tokens=config.target_tokens,
        overlap_tokens=config.overlap_tokens,
        context_tokens=config.context_tokens,
    )
    # Part of every document's chunk key: a new chunker or other settings re-chunk on the next run.
    signature = (
        f"v{CHUNKER_VERSION}|{options}|{config.use_headings}|{embedder.tokenizer.name_or_path}"
        f"|{len(embedder.tokenizer)}"
    )
    count = token_counter(embedder.tokenizer)
    with store.database().connect() as conn:
        stale = documents_needing_chunks(
            conn,
            author,
            lambda content_hash, kind, outline: stable_id(content_hash, kind, outline, signature),
        )
        documents = [
            DocumentToChunk(
                d.id, d.kind, d.content, d.title, tuple(d.headings) if config.use_headings else ()
            )
            for d in stale
        ]
        workers = models.settings().feature_workers
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
    return dg.MaterializeResult(
        data_version=dg.DataVersion(version),
        metadata={
            "rechunked_documents": len(stale),
            "chunks_made": len(made),
            "new": len(result.inserted),
            "unchanged": result.unchanged,
            "removed": removed,
            "chunks": len(rows),
            "by_kind": dg.MetadataValue.json(by_kind),
            "max_tokens_seen": max(tokens, default=0),
            "token_limit": options.max_tokens,
            "tokens_per_chunk": dg.MetadataValue.md(
                histogram_markdown(tokens, "Tokens per chunk", "word-pieces", options.max_tokens)
                if tokens
                else "none"
            ),
            "seconds": round(seconds, 3),
            "chunks_per_s": round(len(made) / seconds, 1) if seconds else 0.0,
        },
    )


@author_asset(
    deps=[chunks],
    group_name="features",
    kinds={"pytorch", "pgvector"},
    description="Unit-norm embeddings of every chunk in pgvector (HNSW), and of its retrieval units (list"
    " items, table rows, sentence groups: what search ranks besides the chunk), only for new or changed chunks.",
)
def chunk_embeddings(
    context: dg.AssetExecutionContext, store: StoreResource, models: ModelsResource
) -> dg.MaterializeResult:
    from llm_twin_assets.embeddings import model_label
    from llm_twin_assets.features.units import UNITS_VERSION, unit_spans
    from llm_twin_assets.records import stable_id
    from llm_twin_assets.store.author_indexes import ensure_author_index
    from llm_twin_assets.store.chunks import chunks_needing_embeddings, embedding_totals, write_embeddings
    from llm_twin_assets.store.units import (
        chunks_needing_units,
        ensure_units_dimension,
        refresh_unit_statistics,
        replace_units,
        units_needing_embeddings,
    )

    author = context.partition_key
    settings = models.settings()
    label = model_label(settings)
    encoder = models.encoder()
    with store.database().connect() as conn:
        todo = chunks_needing_embeddings(conn, author, label, encoder.tokenizer_digest)
        # Retrieval units: made again only for chunks whose units_key changed (new or changed chunks);
        # a unit whose span and embedded text are unchanged keeps its vector.
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
    with store.database().connect() as conn:
        written = (
            write_embeddings(conn, [c.id for c in todo], vectors, label, settings.embedding_dim)
            if todo
            else 0
        )
        units_embedded = (
            write_embeddings(
                conn,
                [i for i, _ in units_todo],
                unit_vectors,
                label,
                settings.embedding_dim,
                "chunk_units",
            )
            if units_todo
            else 0
        )
        if units_embedded or units_removed:
            refresh_unit_statistics(conn)
        totals = embedding_totals(conn, author)
        # The version covers both: a search's results change with either.
        version = stable_id(
            data_version(conn, "chunk_embeddings", author), data_version(conn, "chunk_units", author)
        )
    # A frequent author gets an HNSW index of their own (off-topic filtered searches stay exact);
    # built concurrently, outside any transaction. Asked even when nothing new was embedded: a run cut
    # short after its embeddings were committed (a restart) still leaves the index built on retry.
    with store.database().connect(autocommit=True) as conn:
        author_index = ensure_author_index(conn, author)
        units_author_index = ensure_author_index(conn, author, table="chunk_units")
    seconds = time.perf_counter() - start
    return dg.MaterializeResult(
        data_version=dg.DataVersion(version),
        metadata={
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
            "seconds": round(seconds, 3),
            "chunks_per_s": round(len(todo) / encode_s, 1) if todo and encode_s else 0.0,
            "units_rebuilt_chunks": len(stale),
            "units_written": units_written.written,
            "units_removed": units_removed,
            "units_embedded": units_embedded,
            "units_total": totals.units,
            "chunks_with_units": totals.chunks_with_units,
            "units_author_index": units_author_index or "",
            "units_split_seconds": round(units_split_s, 3),
            "units_encode_seconds": round(units_encode_s, 3),
            "units_per_s": round(len(units_todo) / units_encode_s, 1)
            if units_todo and units_encode_s
            else 0.0,
        },
    )
