"""``python -m llm_twin_assets.training.dpo --config job.yaml``: LoRA DPO on the preference dataset,
starting from the SFT adapter merged into the base."""

import sys

from llm_twin_assets.training.trainer import main

if __name__ == "__main__":
    sys.exit(main("dpo"))
