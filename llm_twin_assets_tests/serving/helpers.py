"""Released twins for serving tests: real LoRA adapters on the tiny Llama (random, non-zero B, so each
author's twin really differs from the base and from the others), published in the artifact store and
released through the same store functions ``twin_release`` uses."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import psycopg
import yaml

from llm_twin_assets.artifacts import LocalArtifactStore
from llm_twin_assets.store import releases
from llm_twin_assets.store.releases import Release
from llm_twin_assets.training.adapters import AdapterVersion, promote, publish_adapter


def make_adapter(base: Path, folder: Path, seed: int, rank: int, targets: tuple[str, ...]) -> Path:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_pretrained(str(base))
    config = LoraConfig(
        r=rank,
        lora_alpha=2 * rank,
        target_modules=list(targets),
        init_lora_weights=False,
        task_type="CAUSAL_LM",
    )
    peft_model = get_peft_model(model, config)
    with torch.no_grad():  # strong enough that every author's greedy answer differs
        for name, parameter in peft_model.named_parameters():
            if "lora_B" in name:
                parameter.mul_(4.0)
    peft_model.save_pretrained(str(folder))
    (folder / "training_job.yaml").write_text(yaml.safe_dump({"base_model": "tiny"}))
    return folder


@dataclass(frozen=True)
class Adapters:
    sft: AdapterVersion
    dpo: AdapterVersion


def publish_twin(store: LocalArtifactStore, base: Path, work: Path, author: str, seed: int) -> Adapters:
    """An SFT adapter (rank 8, attention) and a DPO adapter trained "on it" (rank 4, MLP too)."""
    sft_dir = make_adapter(base, work / f"{author}-{seed}-sft", seed, 8, ("q_proj", "v_proj"))
    dpo_dir = make_adapter(
        base, work / f"{author}-{seed}-dpo", seed + 1000, 4, ("q_proj", "v_proj", "down_proj")
    )
    sft = publish_adapter(store, author, "sft", f"sft{seed:04d}", sft_dir, {"base_model": "tiny"})
    dpo = publish_adapter(
        store, author, "dpo", f"dpo{seed:04d}", dpo_dir, {"base_model": "tiny", "parent_adapter": sft.version}
    )
    promote(store, sft)
    promote(store, dpo)
    return Adapters(sft, dpo)


def release(conn: psycopg.Connection, author: str, adapters: Adapters) -> Release:
    """Record an evaluation that passed (its id names the DPO version) and release it."""
    evaluation_id = f"eval-{adapters.dpo.version}"
    conn.execute(
        "INSERT INTO evaluations (id, author, base_model, sft_version, dpo_version, instruct_version,"
        " preference_version, examples, examples_key, settings, classifier, gate, gate_passed)"
        " VALUES (%s, %s, 'tiny', %s, %s, 'i1', 'p1', 1, 'k', '{}', '{}', %s, true) ON CONFLICT DO NOTHING",
        (evaluation_id, author, adapters.sft.version, adapters.dpo.version, json.dumps({"passed": True})),
    )
    evaluation = type(
        "Evaluation",
        (),
        {
            "id": evaluation_id,
            "author": author,
            "base_model": "tiny",
            "sft_version": adapters.sft.version,
            "dpo_version": adapters.dpo.version,
            "instruct_version": "i1",
            "preference_version": "p1",
        },
    )()
    released, _ = releases.record(conn, evaluation)
    return released
