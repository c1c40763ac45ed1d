"""The twin as trained: the base model, the SFT adapter merged into it, then the DPO adapter on top."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import yaml

from llm_twin_assets.errors import ConfigError, ModelError

if TYPE_CHECKING:
    from llm_twin_assets.llm import LoadedLM


def trained_base(adapter: Path) -> Path:
    """The base model folder an adapter was trained on, on this machine: its ``training_job.yaml`` names
    the model as any machine can ('bundled', 'tiny', a hub id, or a folder)."""
    from llm_twin_assets.models.registry import model_folder
    from llm_twin_assets.settings import get_settings

    job = adapter / "training_job.yaml"
    if not job.exists():
        raise ModelError(f"{adapter} is not an adapter trained here (no training_job.yaml)")
    spec = str(yaml.safe_load(job.read_text())["base_model"])
    try:
        base = model_folder(spec, get_settings(), f"the base model of adapter {adapter}")
    except ConfigError as exc:
        raise ModelError(f"adapter {adapter} was trained on {spec}, which is not on this machine") from exc
    if not (base / "config.json").exists():
        raise ModelError(f"adapter {adapter} was trained on {base}, which is not on this machine")
    return base


def load_twin(sft: Path, dpo: Path | None = None, device: str = "cpu") -> LoadedLM:
    """Base + SFT (merged) + DPO (merged): the model DPO trained, with its adapter applied."""
    from peft import PeftModel

    from llm_twin_assets.llm import LoadedLM, load_causal_lm
    from llm_twin_assets.models.registry import ModelRef

    base = load_causal_lm(ModelRef(str(trained_base(sft)), True, "path"), device="cpu")
    model = PeftModel.from_pretrained(base.model, str(sft)).merge_and_unload()
    if dpo is not None:
        model = PeftModel.from_pretrained(model, str(dpo)).merge_and_unload()
    model.to(device).eval()
    model.requires_grad_(False)  # inference only; never the process-wide grad switch (it leaks)
    return LoadedLM(model=model, tokenizer=base.tokenizer, device=device)
