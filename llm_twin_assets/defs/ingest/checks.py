"""Data checks on ``raw_documents``, per author; the queries are ``store.integrity``'s."""

import warnings

import dagster as dg

from llm_twin_assets.defs.check_results import check_result
from llm_twin_assets.defs.ingest.assets import raw_documents
from llm_twin_assets.defs.partitions import authors_partitions
from llm_twin_assets.defs.resources import StoreResource
from llm_twin_assets.store import integrity
from llm_twin_assets.store.database import Connection
from llm_twin_assets.verdicts import Verdict

# Partitioned asset checks are marked preview in Dagster 1.13; we rely on them knowingly.
warnings.filterwarnings("ignore", message="Specifying a partitions_def on an AssetCheckSpec")


def empty_content(conn: Connection, author: str) -> dg.AssetCheckResult:
    rows = integrity.blank_raw_documents(conn, author)
    return check_result(Verdict(not rows, {"empty": len(rows), "urls": [r[0] for r in rows[:20]]}))


def duplicate_content(conn: Connection, author: str) -> dg.AssetCheckResult:
    rows = integrity.raw_documents_sharing_content(conn, author)
    shown = {"duplicate_groups": len(rows), "examples": [r[1] for r in rows[:10]]}
    return check_result(Verdict(not rows, shown, warn_only=True))


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
