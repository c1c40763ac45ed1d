import dagster as dg

from llm_twin_assets.defs.evaluation.assets import twin_evaluation, twin_release

defs = dg.Definitions(assets=[twin_evaluation, twin_release])
