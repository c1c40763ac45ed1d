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


def add_concatenated(model: Any, sft: Path, dpo: Path | None, name: str) -> Any:
    """Add the twin to ``model`` (a PeftModel, or a plain model that becomes one) as ONE adapter ``name``:
    SFT and DPO concatenated (A = [s_sft A_sft; s_dpo A_dpo], B = [B_sft, B_dpo]: rank r_sft + r_dpo,
    the delta exactly their sum). The two parts are removed again whatever happens. Returns the PeftModel."""
    import warnings

    from peft import PeftModel

    parts = [f"{name}__sft"] + ([f"{name}__dpo"] if dpo is not None else [])
    if isinstance(model, PeftModel):
        model.load_adapter(str(sft), adapter_name=parts[0])
    else:
        model = PeftModel.from_pretrained(model, str(sft), adapter_name=parts[0])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "adapter ... was active which is now deleted": intended
        try:
            if dpo is not None:
                model.load_adapter(str(dpo), adapter_name=parts[1])
            model.add_weighted_adapter(parts, [1.0] * len(parts), name, combination_type="cat")
        finally:
            for part in parts:
                if part in model.peft_config:
                    model.delete_adapter(part)
    return model


def export_twin_adapter(sft: Path, dpo: Path | None, out: Path, details: dict[str, Any]) -> dict[str, Any]:
    """Write the twin as ONE PEFT LoRA adapter on the plain base model, for a LoRA server that loads
    adapters by name (vLLM ``--enable-lora --lora-modules <name>=<out>`` or its runtime
    ``/v1/load_lora_adapter``): SFT and DPO concatenated exactly as the service builds them (rank
    r_sft + r_dpo, the delta their exact sum; ``serving/twins.py``). ``details`` (author, release,
    versions, decoding) go to ``twin.json`` beside it. Written to a sibling folder, renamed into place.
    Returns the adapter's rank, target modules and base model."""
    import json
    import shutil

    from transformers import AutoModelForCausalLM

    base = trained_base(sft)
    spec = str(yaml.safe_load((sft / "training_job.yaml").read_text())["base_model"])
    peft = add_concatenated(AutoModelForCausalLM.from_pretrained(str(base)), sft, dpo, "twin")
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
