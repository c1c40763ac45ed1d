"""A sensor over the authors folder, and a daily re-crawl of every author."""

import hashlib
import json

import dagster as dg

from llm_twin_assets.authors import authors_folder
from llm_twin_assets.crawling.links import MAX_LINKS_FILE_BYTES, LinksFileError, discover, load
from llm_twin_assets.defs.build_settings import check_author
from llm_twin_assets.defs.partitions import AUTHORS, authors_partitions
from llm_twin_assets.settings import get_settings
from llm_twin_assets.store.build_settings import settings_digest

# Ingestion and features only, for one author. Datasets and training are not in it: they follow
# through declarative automation when these assets' data versions changed (defs/automation.py), so a
# re-crawl that found nothing new calls no teacher and trains nothing.
BUILD_TAG = "llm_twin/build_settings"
"""Run tag: the digest of the author's build settings the run was requested with."""

author_pipeline_job = dg.define_asset_job(
    "author_pipeline",
    selection=dg.AssetSelection.groups("ingest", "features"),  # partitioned by author, like its assets
    description="Crawl an author's links and refresh the features computed from them.",
)


@dg.sensor(
    job=author_pipeline_job,
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="A new or changed authors/<slug>.yaml adds the partition and runs that author; a file that "
    "`llm-twin author add` would refuse (a local link that does not resolve, bad build settings) starts no run.",
)
def authors_folder_sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult:
    settings = get_settings()
    folder = authors_folder(settings)  # with LLM_TWIN_AUTHORS_URL: refreshed from S3 first
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
            build = check_author(links, settings)
        except LinksFileError as exc:
            context.log.warning(f"refused links file (no run; fix it and save it again): {exc}")
            continue
        if slug not in existing:
            new_partitions.append(slug)
        runs.append(
            dg.RunRequest(
                partition_key=slug,
                run_key=f"{slug}:{digest[:16]}",
                tags={"llm_twin/links_sha256": links.sha256, BUILD_TAG: settings_digest(build)},
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
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Re-crawl every author daily at 03:00 UTC: unchanged pages write nothing. An author whose "
    "links file is missing or would be refused is skipped and named.",
)
def daily_recrawl_schedule(context: dg.ScheduleEvaluationContext) -> list[dg.RunRequest] | dg.SkipReason:
    settings = get_settings()
    day = context.scheduled_execution_time.strftime("%Y-%m-%d")
    found = discover(authors_folder(settings))
    runs, skipped = [], []
    for slug in context.instance.get_dynamic_partitions(AUTHORS):
        try:
            if slug not in found:
                raise LinksFileError(
                    f"no links file for {slug!r} in {settings.authors_url or settings.authors_dir}"
                )
            links = load(found[slug])
            build = check_author(links, settings)
        except LinksFileError as exc:
            context.log.warning(f"not re-crawling {slug}: {exc}")
            skipped.append(slug)
            continue
        runs.append(
            dg.RunRequest(
                partition_key=slug,
                run_key=f"recrawl:{slug}:{day}",
                tags={"llm_twin/links_sha256": links.sha256, BUILD_TAG: settings_digest(build)},
            )
        )
    if not runs and skipped:
        return dg.SkipReason(f"every author's links file is missing or refused: {', '.join(skipped)}")
    return runs
