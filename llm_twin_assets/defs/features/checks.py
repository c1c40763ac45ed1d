"""Data checks on chunks and their embeddings, per author; the queries are ``store.integrity``'s."""

import warnings
from typing import Any

import dagster as dg

from llm_twin_assets.defs.check_results import check_result
from llm_twin_assets.defs.features.assets import chunk_embeddings, chunks
from llm_twin_assets.defs.partitions import authors_partitions
from llm_twin_assets.defs.resources import ModelsResource, StoreResource
from llm_twin_assets.store import integrity
from llm_twin_assets.store.database import Connection
from llm_twin_assets.verdicts import Verdict, from_rows

warnings.filterwarnings("ignore", message="Specifying a partitions_def on an AssetCheckSpec")


def _result(rows: list[tuple[object, ...]], what: str, **extra: Any) -> dg.AssetCheckResult:
    return check_result(from_rows(rows, what, **extra))


def empty_chunks(conn: Connection, author: str) -> dg.AssetCheckResult:
    return _result(integrity.blank_chunks(conn, author), "empty")


def chunks_over_limit(conn: Connection, author: str, limit: int) -> dg.AssetCheckResult:
    return _result(integrity.chunks_over(conn, author, limit), "over_limit", limit=limit)


def bad_embeddings(conn: Connection, author: str, dim: int) -> dg.AssetCheckResult:
    return _result(integrity.chunks_badly_embedded(conn, author, dim), "missing_or_bad", dimension=dim)


def orphan_chunks(conn: Connection, author: str) -> dg.AssetCheckResult:
    return _result(integrity.chunks_without_documents(conn, author), "orphans")


def embedding_models(conn: Connection, author: str, expected: str) -> dg.AssetCheckResult:
    models = integrity.embedding_models_used(conn, author)
    return check_result(Verdict(set(models) <= {expected}, {"expected": expected, "found": models}))


def bad_units(conn: Connection, author: str, dim: int, model: str) -> dg.AssetCheckResult:
    """Units missing for a chunk (its units_key is not current), or not embedded with the configured
    model, dimension and unit norm."""
    from llm_twin_assets.features.units import UNITS_VERSION
    from llm_twin_assets.store.units import units_key_sql

    rows = integrity.units_missing_or_bad(conn, author, units_key_sql(UNITS_VERSION), dim, model)
    return _result(rows, "missing_or_bad", dimension=dim, model=model)


def units_outside_their_chunk(conn: Connection, author: str) -> dg.AssetCheckResult:
    """Units that are not a span of their chunk (and so of its document)."""
    return _result(integrity.units_outside_their_chunk(conn, author), "outside")


def _check(asset, name: str, description: str, blocking: bool = True):
    return dg.asset_check(
        asset=asset, name=name, partitions_def=authors_partitions, blocking=blocking, description=description
    )


@_check(chunks, "chunks_not_empty", "No chunk is empty or blank.")
def chunks_not_empty(context: dg.AssetCheckExecutionContext, store: StoreResource) -> dg.AssetCheckResult:
    with store.database().connect() as conn:
        return empty_chunks(conn, context.partition_key)


@_check(
    chunks, "chunks_within_token_limit", "Every chunk fits what the embedder reads: nothing is truncated."
)
def chunks_within_token_limit(
    context: dg.AssetCheckExecutionContext, store: StoreResource, models: ModelsResource
) -> dg.AssetCheckResult:
    with store.database().connect() as conn:
        return chunks_over_limit(conn, context.partition_key, int(models.embedder().max_seq_length or 0))


@_check(chunks, "chunks_have_documents", "No chunk whose document is gone.")
def chunks_have_documents(
    context: dg.AssetCheckExecutionContext, store: StoreResource
) -> dg.AssetCheckResult:
    with store.database().connect() as conn:
        return orphan_chunks(conn, context.partition_key)


@_check(
    chunk_embeddings,
    "embeddings_complete_and_unit_norm",
    "Every chunk is embedded with the configured dimension and unit norm.",
)
def embeddings_complete_and_unit_norm(
    context: dg.AssetCheckExecutionContext, store: StoreResource, models: ModelsResource
) -> dg.AssetCheckResult:
    with store.database().connect() as conn:
        return bad_embeddings(conn, context.partition_key, models.settings().embedding_dim)


@_check(
    chunk_embeddings,
    "embeddings_from_configured_model",
    "Every embedding was made by the configured model (a model change is visible here).",
)
def embeddings_from_configured_model(
    context: dg.AssetCheckExecutionContext, store: StoreResource, models: ModelsResource
) -> dg.AssetCheckResult:
    from llm_twin_assets.embeddings import model_label

    with store.database().connect() as conn:
        return embedding_models(conn, context.partition_key, model_label(models.settings()))


@_check(
    chunk_embeddings,
    "units_complete_and_unit_norm",
    "Every chunk has its retrieval units, each embedded with the configured model, dimension and unit norm.",
)
def units_complete_and_unit_norm(
    context: dg.AssetCheckExecutionContext, store: StoreResource, models: ModelsResource
) -> dg.AssetCheckResult:
    from llm_twin_assets.embeddings import model_label

    settings = models.settings()
    with store.database().connect() as conn:
        return bad_units(conn, context.partition_key, settings.embedding_dim, model_label(settings))


@_check(
    chunk_embeddings,
    "units_are_spans_of_their_chunk",
    "Every retrieval unit is a span of its chunk: its offsets inside the chunk's, its text the chunk's there.",
)
def units_are_spans_of_their_chunk(
    context: dg.AssetCheckExecutionContext, store: StoreResource
) -> dg.AssetCheckResult:
    with store.database().connect() as conn:
        return units_outside_their_chunk(conn, context.partition_key)
