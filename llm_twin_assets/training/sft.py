"""``python -m llm_twin_assets.training.sft --config job.yaml``: LoRA SFT on the instruct dataset."""

import sys

from llm_twin_assets.training.trainer import main

if __name__ == "__main__":
    sys.exit(main("sft"))
