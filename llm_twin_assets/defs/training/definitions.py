import dagster as dg

from llm_twin_assets.defs.training.assets import dpo_adapter, sft_adapter

defs = dg.Definitions(assets=[sft_adapter, dpo_adapter])
