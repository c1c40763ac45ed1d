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
    from llm_twin_assets.features.chunking import ChunkingOptions
    from llm_twin_assets.indexing import chunk_author

    embedder = models.embedder()  # loaded before the report's clock starts: the figure is the chunking
    options = ChunkingOptions(
        max_tokens=int(embedder.max_seq_length or 0),
        target_tokens=config.target_tokens,
        overlap_tokens=config.overlap_tokens,
        context_tokens=config.context_tokens,
    )
    report = chunk_author(
        store.database(),
        context.partition_key,
        embedder,
        options,
        use_headings=config.use_headings,
        workers=models.settings().feature_workers,
    )
    histogram = (
        histogram_markdown(report.tokens, "Tokens per chunk", "word-pieces", options.max_tokens)
        if report.tokens
        else "none"
    )
    metadata = {
        **report.metadata,
        "by_kind": dg.MetadataValue.json(report.metadata["by_kind"]),
        "tokens_per_chunk": dg.MetadataValue.md(histogram),
    }
    return dg.MaterializeResult(data_version=dg.DataVersion(report.version), metadata=metadata)


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
    from llm_twin_assets.indexing import embed_author

    settings = models.settings()
    encoder = models.encoder()
    report = embed_author(
        store.database(), encoder, model_label(settings), settings.embedding_dim, context.partition_key
    )
    return dg.MaterializeResult(data_version=dg.DataVersion(report.version), metadata=report.metadata)
