import dagster as dg

from llm_twin_assets.defs.build_settings import build_settings
from llm_twin_assets.defs.ingest.assets import raw_documents
from llm_twin_assets.defs.ingest.checks import raw_documents_have_content, raw_documents_unique_content
from llm_twin_assets.defs.ingest.sensors import (
    author_pipeline_job,
    authors_folder_sensor,
    daily_recrawl_schedule,
)

defs = dg.Definitions(
    assets=[build_settings, raw_documents],
    asset_checks=[raw_documents_have_content, raw_documents_unique_content],
    jobs=[author_pipeline_job],
    sensors=[authors_folder_sensor],
    schedules=[daily_recrawl_schedule],
)
