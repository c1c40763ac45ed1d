"""Data checks on chunks and their embeddings, per author. Queries are plain functions."""

import warnings
from typing import Any

import dagster as dg
import psycopg
import psycopg.sql

from llm_twin_assets.defs.features.assets import chunk_embeddings, chunks
from llm_twin_assets.defs.partitions import authors_partitions
from llm_twin_assets.defs.resources import ModelsResource, StoreResource

warnings.filterwarnings("ignore", message="Specifying a partitions_def on an AssetCheckSpec")


def _result(rows: list[tuple[object, ...]], what: str, **extra: Any) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(
        passed=not rows, metadata={what: len(rows), "examples": [str(r[0]) for r in rows[:10]], **extra}
    )


def empty_chunks(conn: psycopg.Connection, author: str) -> dg.AssetCheckResult:
    rows = conn.execute(
        "SELECT id FROM chunks WHERE author = %s AND btrim(content) = ''", (author,)
    ).fetchall()
    return _result(rows, "empty")


def chunks_over_limit(conn: psycopg.Connection, author: str, limit: int) -> dg.AssetCheckResult:
    rows = conn.execute(
        "SELECT id, n_tokens FROM chunks WHERE author = %s AND n_tokens > %s", (author, limit)
    ).fetchall()
    return _result(rows, "over_limit", limit=limit)


def bad_embeddings(conn: psycopg.Connection, author: str, dim: int) -> dg.AssetCheckResult:
    rows = conn.execute(
        "SELECT id FROM chunks WHERE author = %s AND (embedding IS NULL OR vector_dims(embedding) <> %s"
        " OR abs(vector_norm(embedding) - 1) > 1e-3)",
        (author, dim),
    ).fetchall()
    return _result(rows, "missing_or_bad", dimension=dim)


def orphan_chunks(conn: psycopg.Connection, author: str) -> dg.AssetCheckResult:
    rows = conn.execute(
        "SELECT c.id FROM chunks c LEFT JOIN cleaned_documents d ON d.id = c.document_id"
        " LEFT JOIN raw_documents r ON r.id = c.document_id WHERE c.author = %s AND (d.id IS NULL OR r.id IS NULL)",
        (author,),
    ).fetchall()
    return _result(rows, "orphans")


def embedding_models(conn: psycopg.Connection, author: str, expected: str) -> dg.AssetCheckResult:
    models: dict[str, int] = dict(
        conn.execute(
            "SELECT coalesce(embedding_model, '(none)'), count(*) FROM chunks WHERE author = %s GROUP BY 1",
            (author,),
        ).fetchall()
    )
    return dg.AssetCheckResult(
        passed=set(models) <= {expected},
        metadata={"expected": expected, "found": dg.MetadataValue.json(models)},
    )


def bad_units(conn: psycopg.Connection, author: str, dim: int, model: str) -> dg.AssetCheckResult:
    """Units missing for a chunk (its units_key is not current), or not embedded with the configured
    model, dimension and unit norm."""
    from llm_twin_assets.features.units import UNITS_VERSION
    from llm_twin_assets.store.units import units_key_sql

    rows = conn.execute(
        psycopg.sql.SQL(
            "SELECT 'chunk ' || c.id FROM chunks c WHERE c.author = %s AND c.units_key IS DISTINCT FROM {key}"
            " UNION ALL SELECT 'unit ' || id FROM chunk_units WHERE author = %s AND (embedding IS NULL"
            " OR vector_dims(embedding) <> %s OR abs(vector_norm(embedding) - 1) > 1e-3"
            " OR embedding_model IS DISTINCT FROM %s)"
        ).format(key=units_key_sql(UNITS_VERSION)),
        (author, author, dim, model),
    ).fetchall()
    return _result(rows, "missing_or_bad", dimension=dim, model=model)


def units_outside_their_chunk(conn: psycopg.Connection, author: str) -> dg.AssetCheckResult:
    """Units that are not a span of their chunk (and so of its document): offsets outside the chunk, or
    text other than the chunk's text at those offsets."""
    rows = conn.execute(
        "SELECT u.id FROM chunk_units u JOIN chunks c ON c.id = u.chunk_id WHERE u.author = %s"
        " AND (u.char_start < c.char_start OR u.char_end > c.char_end OR u.document_id <> c.document_id"
        "  OR substr(c.content, u.char_start - c.char_start + 1, u.char_end - u.char_start) <> u.content)",
        (author,),
    ).fetchall()
    return _result(rows, "outside")


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
