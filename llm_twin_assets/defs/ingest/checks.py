"""Data checks on ``raw_documents``, per author. The queries are plain functions, tested directly."""

import warnings

import dagster as dg
import psycopg

from llm_twin_assets.defs.ingest.assets import raw_documents
from llm_twin_assets.defs.partitions import authors_partitions
from llm_twin_assets.defs.resources import StoreResource

# Partitioned asset checks are marked preview in Dagster 1.13; we rely on them knowingly.
warnings.filterwarnings("ignore", message="Specifying a partitions_def on an AssetCheckSpec")


def empty_content(conn: psycopg.Connection, author: str) -> dg.AssetCheckResult:
    rows = conn.execute(
        "SELECT url FROM raw_documents WHERE author = %s AND btrim(content) = '' ORDER BY url", (author,)
    ).fetchall()
    return dg.AssetCheckResult(
        passed=not rows, metadata={"empty": len(rows), "urls": [r[0] for r in rows[:20]]}
    )


def duplicate_content(conn: psycopg.Connection, author: str) -> dg.AssetCheckResult:
    rows = conn.execute(
        "SELECT content_hash, array_agg(url ORDER BY url) FROM raw_documents WHERE author = %s "
        "GROUP BY content_hash HAVING count(*) > 1",
        (author,),
    ).fetchall()
    return dg.AssetCheckResult(
        passed=not rows,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={
            "duplicate_groups": len(rows),
            "examples": dg.MetadataValue.json([r[1] for r in rows[:10]]),
        },
    )


@dg.asset_check(
    asset=raw_documents,
    partitions_def=authors_partitions,
    blocking=True,
    description="Every stored document has non-blank content.",
)
def raw_documents_have_content(
    context: dg.AssetCheckExecutionContext, store: StoreResource
) -> dg.AssetCheckResult:
    with store.database().connect() as conn:
        return empty_content(conn, context.partition_key)


@dg.asset_check(
    asset=raw_documents,
    partitions_def=authors_partitions,
    description="No two URLs of one author hold the same content (mirrors, syndication).",
)
def raw_documents_unique_content(
    context: dg.AssetCheckExecutionContext, store: StoreResource
) -> dg.AssetCheckResult:
    with store.database().connect() as conn:
        return duplicate_content(conn, context.partition_key)
