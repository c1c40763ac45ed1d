import dagster as dg

from llm_twin_assets.defs.release.assets import twin_release

defs = dg.Definitions(assets=[twin_release])
