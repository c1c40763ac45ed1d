import dagster as dg

from llm_twin_assets.defs.datasets.assets import instruct_dataset, preference_dataset

# The blocking checks are part of each asset (check_specs): they judge the version the run built.
defs = dg.Definitions(assets=[instruct_dataset, preference_dataset])
