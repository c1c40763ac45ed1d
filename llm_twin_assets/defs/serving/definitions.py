import dagster as dg

from llm_twin_assets.defs.serving.assets import serving_report, serving_traces

defs = dg.Definitions(assets=[serving_traces, serving_report])
