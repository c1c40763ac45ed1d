"""The twin as trained: the base model, the SFT adapter merged into it, then the DPO adapter on top."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

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


def export_twin_adapter(sft: Path, dpo: Path | None, out: Path, details: dict[str, Any]) -> dict[str, Any]:
    """Write the twin as ONE PEFT LoRA adapter on the plain base model, for a LoRA server that loads
    adapters by name (vLLM ``--enable-lora --lora-modules <name>=<out>`` or its runtime
    ``/v1/load_lora_adapter``): SFT and DPO concatenated exactly as the service builds them (rank
    r_sft + r_dpo, the delta their exact sum; ``serving/twins.py``). ``details`` (author, release,
    versions, decoding) go to ``twin.json`` beside it. Written to a sibling folder, renamed into place.
    Returns the adapter's rank, target modules and base model."""
    import json
    import shutil
    import warnings

    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    base = trained_base(sft)
    spec = str(yaml.safe_load((sft / "training_job.yaml").read_text())["base_model"])
    model = AutoModelForCausalLM.from_pretrained(str(base))
    peft = PeftModel.from_pretrained(model, str(sft), adapter_name="sft")
    parts = ["sft"]
    if dpo is not None:
        peft.load_adapter(str(dpo), adapter_name="dpo")
        parts.append("dpo")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        peft.add_weighted_adapter(parts, [1.0] * len(parts), "twin", combination_type="cat")
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.parent / f".{out.name}.partial"
    shutil.rmtree(partial, ignore_errors=True)
    peft.save_pretrained(str(partial), selected_adapters=["twin"])
    folder = partial / "twin"  # PEFT writes an adapter not named 'default' into its own subfolder
    config_file = folder / "adapter_config.json"
    config = json.loads(config_file.read_text())
    # as a LoRA server names the base: the hub id for the bundled model, a hub id as given, else the folder's name
    named = {"bundled": "HuggingFaceTB/SmolLM2-135M-Instruct"}.get(spec, spec)
    config["base_model_name_or_path"] = base.name if Path(named).is_absolute() else named
    config_file.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    summary = {
        "rank": int(config["r"]),
        "target_modules": sorted(config["target_modules"]),
        "base_model": spec,
        "base_folder": str(base),
    }
    (folder / "twin.json").write_text(json.dumps({**details, **summary}, indent=2, default=str) + "\n")
    if out.exists():
        shutil.rmtree(out)
    folder.rename(out)
    shutil.rmtree(partial, ignore_errors=True)
    return summary
