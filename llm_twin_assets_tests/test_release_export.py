"""`llm-twin release export` (issue 23): a release as ONE LoRA adapter for a LoRA server (vLLM
`--enable-lora`): loaded on the plain base model with PEFT, it gives the twin's logits (base + SFT merged +
DPO), with its versions and decoding rules beside it. Real tiny adapters, real store and database."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from llm_twin_assets.artifacts import LocalArtifactStore
from llm_twin_assets.store.database import Database
from llm_twin_assets.training.adapters import publish_adapter
from llm_twin_assets_tests.serving.helpers import Adapters, make_adapter, release


def export(store: LocalArtifactStore, *args: str):  # type: ignore[no-untyped-def]
    from llm_twin_assets.cli import app

    return CliRunner().invoke(
        app, ["release", "export", "ada", *args], env={"LLM_TWIN_ARTIFACTS_URL": str(store.root)}
    )


@pytest.mark.slow
def test_a_release_exports_as_one_adapter_that_is_the_twin(
    db: Database, tmp_path: Path, tiny_model_path: Path
) -> None:
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from llm_twin_assets.training.twin import load_twin

    store = LocalArtifactStore(tmp_path / "artifacts")
    assert "has no current release" in export(store, str(tmp_path / "none")).output

    sft_dir = make_adapter(tiny_model_path, tmp_path / "sft", 21, 8, ("q_proj", "v_proj"))
    dpo_dir = make_adapter(tiny_model_path, tmp_path / "dpo", 1021, 4, ("q_proj", "v_proj", "down_proj"))
    sft = publish_adapter(store, "ada", "sft", "sft1", sft_dir, {"base_model": "tiny"})
    dpo = publish_adapter(
        store, "ada", "dpo", "dpo1", dpo_dir, {"base_model": "tiny", "parent_adapter": "sft1"}
    )
    with db.connect() as conn:
        conn.execute("INSERT INTO authors (slug, name) VALUES ('ada', 'Ada')")
        assert release(conn, "ada", Adapters(sft, dpo)).release == 1

    out = tmp_path / "exported" / "ada-r1"
    done = export(store, str(out))
    assert done.exit_code == 0, done.output
    assert (
        "rank 12" in done.output
        and "--lora-modules ada-r1=" in done.output
        and "--max-lora-rank 16" in done.output
    )
    assert sorted(p.name for p in out.iterdir()) == [
        "adapter_config.json",
        "adapter_model.safetensors",
        "twin.json",
    ]
    config = json.loads((out / "adapter_config.json").read_text())
    assert config["r"] == 12 and sorted(config["target_modules"]) == ["down_proj", "q_proj", "v_proj"]
    details = json.loads((out / "twin.json").read_text())
    assert (details["name"], details["release"], details["sft_version"], details["dpo_version"]) == (
        "ada-r1",
        1,
        "sft1",
        "dpo1",
    )
    assert not list(out.parent.glob(".*partial"))

    # On the plain base model the one adapter is the twin: its logits equal base + SFT merged + DPO.
    ids = torch.tensor([[1, 15, 42, 7, 99, 3, 250, 18]])
    twin = load_twin(sft_dir, dpo_dir).model
    served = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(str(tiny_model_path)), str(out))
    base = AutoModelForCausalLM.from_pretrained(str(tiny_model_path))
    with torch.no_grad():
        expected, got, plain = (m.eval()(ids).logits for m in (twin, served, base))
    assert torch.allclose(got, expected, atol=1e-4), (got - expected).abs().max()
    assert (plain - expected).abs().max() > 0.1  # the twin really differs from the base

    # Exporting again replaces the folder; an unknown release is refused by name.
    assert export(store, str(out), "--release", "1").exit_code == 0
    refused = export(store, str(out), "--release", "7")
    assert refused.exit_code != 0 and "has no release 7" in refused.output
