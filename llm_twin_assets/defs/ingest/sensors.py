"""A sensor over the authors folder, and a daily re-crawl of every author."""

import hashlib
import json

import dagster as dg

from llm_twin_assets.crawling.links import MAX_LINKS_FILE_BYTES, LinksFileError, discover, load
from llm_twin_assets.defs.partitions import AUTHORS, authors_partitions
from llm_twin_assets.settings import get_settings

# Ingestion and features only, for one author. Datasets and training are not in it: they follow
# through declarative automation when these assets' data versions changed (defs/automation.py), so a
# re-crawl that found nothing new calls no teacher and trains nothing.
author_pipeline_job = dg.define_asset_job(
    "author_pipeline",
    selection=dg.AssetSelection.groups("ingest", "features"),  # partitioned by author, like its assets
    description="Crawl an author's links and refresh the features computed from them.",
)


@dg.sensor(
    job=author_pipeline_job,
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="A new or changed authors/<slug>.yaml adds the partition and runs that author.",
)
def authors_folder_sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult:
    folder = get_settings().authors_dir
    cursor: dict[str, str] = json.loads(context.cursor) if context.cursor else {}
    seen: dict[str, str] = {}
    runs, new_partitions = [], []
    existing = set(context.instance.get_dynamic_partitions(AUTHORS))
    for slug, path in discover(folder).items():
        if path.stat().st_size > MAX_LINKS_FILE_BYTES:  # refused by load() anyway: do not hash it every tick
            context.log.warning(
                f"skipping {path}: over the {MAX_LINKS_FILE_BYTES:,}-byte limit of a links file"
            )
            continue
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        seen[slug] = digest
        if cursor.get(slug) == digest:
            continue
        try:
            links = load(path)
        except LinksFileError as exc:
            context.log.warning(f"skipping invalid links file: {exc}")
            continue
        if slug not in existing:
            new_partitions.append(slug)
        runs.append(
            dg.RunRequest(
                partition_key=slug,
                run_key=f"{slug}:{digest[:16]}",
                tags={"llm_twin/links_sha256": links.sha256},
            )
        )
    return dg.SensorResult(
        run_requests=runs,
        dynamic_partitions_requests=[authors_partitions.build_add_request(new_partitions)]
        if new_partitions
        else [],
        cursor=json.dumps(seen, sort_keys=True),
    )


@dg.schedule(
    job=author_pipeline_job,
    cron_schedule="0 3 * * *",
    execution_timezone="UTC",
    description="Re-crawl every author daily: unchanged pages write nothing.",
)
def daily_recrawl_schedule(context: dg.ScheduleEvaluationContext) -> list[dg.RunRequest]:
    day = context.scheduled_execution_time.strftime("%Y-%m-%d")
    return [
        dg.RunRequest(partition_key=slug, run_key=f"recrawl:{slug}:{day}")
        for slug in context.instance.get_dynamic_partitions(AUTHORS)
    ]
