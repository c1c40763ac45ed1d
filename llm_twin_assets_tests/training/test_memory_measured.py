"""The activation estimate against what autograd really keeps for the backward pass (tiny Llama, CPU)."""

import json
from pathlib import Path

import pytest

from llm_twin_assets.training.config import ALL_PROJECTIONS
from llm_twin_assets.training.memory import activation_bytes


def saved_for_backward(model_dir: Path, batch: int, length: int, checkpointing: bool) -> int:
    """Bytes of the distinct tensors autograd saves during one LoRA training forward (weights excluded)."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32, attn_implementation="sdpa")
    lora = LoraConfig(r=8, lora_alpha=16, lora_dropout=0.0, target_modules=list(ALL_PROJECTIONS))
    model = get_peft_model(model, lora)
    if checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.enable_input_require_grads()
    model.train()
    weights = {p.untyped_storage().data_ptr() for p in model.parameters()}
    storages: dict[int, int] = {}

    def keep(tensor: torch.Tensor) -> torch.Tensor:
        storage = tensor.untyped_storage()
        if storage.data_ptr() not in weights:
            storages[storage.data_ptr()] = storage.nbytes()
        return tensor

    ids = torch.randint(0, model.config.vocab_size, (batch, length))
    with torch.autograd.graph.saved_tensors_hooks(keep, lambda t: t):
        model(input_ids=ids, labels=ids).loss.backward()
    return sum(storages.values())


@pytest.mark.parametrize("checkpointing", [False, True])
def test_the_estimate_covers_what_autograd_keeps(tiny_model_path: Path, checkpointing: bool) -> None:
    config = json.loads((tiny_model_path / "config.json").read_text())
    batch, length = 2, 128
    measured = saved_for_backward(tiny_model_path, batch, length, checkpointing)
    estimate = activation_bytes(config, batch * length, 4, checkpointing)
    assert measured > 0
    # Never below what is really kept (an underestimate would let auto run out of memory), and not
    # so far above that auto would switch checkpointing on for nothing.
    assert measured <= estimate <= 4 * measured, (measured, estimate)


def test_the_estimate_grows_like_the_measurement(tiny_model_path: Path) -> None:
    config = json.loads((tiny_model_path / "config.json").read_text())
    short, long = (saved_for_backward(tiny_model_path, 2, n, False) for n in (64, 256))
    # linear in tokens (sdpa keeps no sequence x sequence scores), as the estimate assumes
    assert 3.5 < long / short < 4.5
    assert activation_bytes(config, 512, 4, False) == 4 * activation_bytes(config, 128, 4, False)
