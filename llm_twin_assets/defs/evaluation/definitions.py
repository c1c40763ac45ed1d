import dagster as dg

from llm_twin_assets.defs.evaluation.assets import twin_evaluation

defs = dg.Definitions(assets=[twin_evaluation])
