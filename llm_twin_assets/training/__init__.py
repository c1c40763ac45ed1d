"""Fine-tuning entry points (TRL + PEFT LoRA): SFT on the instruct dataset, then DPO on preferences.

Run on their own (``python -m llm_twin_assets.training.sft --config job.yaml``) or launched by the
Dagster assets through Pipes; no Dagster import here.
"""
