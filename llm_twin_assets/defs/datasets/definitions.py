import dagster as dg

from llm_twin_assets.defs.datasets.assets import instruct_dataset, preference_dataset
from llm_twin_assets.defs.datasets.checks import instruct_checks, preference_checks

defs = dg.Definitions(
    assets=[instruct_dataset, preference_dataset],
    asset_checks=[*instruct_checks, *preference_checks],
)
