"""Memory planning: what cannot fit is refused, and ``auto`` checkpointing switches on only when needed."""

import json
from pathlib import Path

import pytest

from llm_twin_assets.training.config import TrainingConfigError, hyper_for
from llm_twin_assets.training.memory import activation_bytes, plan_memory

GIB = 2**30
H200 = 139 * GIB
LLAMA_8B = {
    "hidden_size": 4096,
    "intermediate_size": 14336,
    "num_hidden_layers": 32,
    "num_attention_heads": 32,
    "num_key_value_heads": 8,
    "vocab_size": 128256,
    "torch_dtype": "bfloat16",
}


def model_folder(root: Path, config: dict[str, object], weight_bytes: int) -> Path:
    """A model folder with the config and a (sparse) weights file of the given size."""
    root.mkdir()
    (root / "config.json").write_text(json.dumps(config))
    with (root / "model.safetensors").open("wb") as f:
        f.truncate(weight_bytes)
    return root


@pytest.fixture
def llama_8b(tmp_path: Path) -> Path:
    return model_folder(tmp_path / "llama-8b", LLAMA_8B, 16 * GIB)


def full(stage: str, **overrides: object):  # type: ignore[no-untyped-def]
    return hyper_for(stage, "full", overrides)


def test_the_estimate_follows_the_llama_block() -> None:
    # 2 bytes x (9 x 4096 + 2 x 1024 + 4 x 14336) per layer and token, 32 layers, plus (2 + 8) x vocab logits
    assert activation_bytes(LLAMA_8B, 1, 2, checkpointing=False) == 32 * 192_512 + 1_282_560
    # with checkpointing: each layer's input, one layer recomputed, the logits
    assert activation_bytes(LLAMA_8B, 1, 2, checkpointing=True) == 32 * 8192 + 192_512 + 1_282_560
    assert activation_bytes(LLAMA_8B, 1000, 2, False) == 1000 * activation_bytes(LLAMA_8B, 1, 2, False)


@pytest.mark.parametrize(
    ("stage", "batch", "length", "expected"),
    [
        ("sft", 4, 2048, False),  # 8k tokens: ~58 GiB of activations beside 21 GiB: fits on an H200
        ("sft", 8, 2048, True),  # 16k tokens: ~114 GiB: does not
        ("dpo", 4, 2048, True),  # chosen and rejected: twice the tokens
        ("dpo", 2, 2048, False),
    ],
)
def test_auto_checkpointing_only_when_the_activations_would_not_fit(
    llama_8b: Path, stage: str, batch: int, length: int, expected: bool
) -> None:
    hyper = full(stage, batch_size=batch, max_length=length)
    assert hyper.gradient_checkpointing == "auto"
    plan = plan_memory(llama_8b, "cuda", hyper, stage, available=H200)
    assert plan.checkpointing is expected
    assert plan.reason.startswith("auto:")
    assert "gradient checkpointing " + ("on" if expected else "off") in plan.summary


def test_a_fused_loss_holds_no_logits_and_lets_a_bigger_batch_skip_checkpointing(llama_8b: Path) -> None:
    assert activation_bytes(LLAMA_8B, 1, 2, checkpointing=False, fused_loss=True) == 32 * 192_512
    hyper = full("sft", batch_size=8, max_length=2048)
    # 16k tokens: ~114 GiB with the logits does not fit beside the weights; ~94 GiB without them does
    assert plan_memory(llama_8b, "cuda", hyper, "sft", available=H200).checkpointing is True
    fused = plan_memory(llama_8b, "cuda", hyper, "sft", available=H200, fused_loss=True)
    assert fused.checkpointing is False and fused.reason == "auto: the activations fit"


def test_an_explicit_setting_is_kept(llama_8b: Path) -> None:
    big = plan_memory(llama_8b, "cuda", full("sft", batch_size=8, gradient_checkpointing=False), "sft", H200)
    small = plan_memory(llama_8b, "cuda", full("sft", batch_size=1, gradient_checkpointing=True), "sft", H200)
    assert (big.checkpointing, small.checkpointing) == (False, True)
    assert big.reason == small.reason == "as configured"


def test_a_batch_too_big_even_with_checkpointing_is_refused_by_name(llama_8b: Path) -> None:
    with pytest.raises(TrainingConfigError, match=r"batch_size 32 x max_length 8192 needs about .* GiB"):
        plan_memory(llama_8b, "cuda", full("sft", batch_size=32, max_length=8192), "sft", H200)


def test_weights_that_cannot_fit_are_refused_by_name(llama_8b: Path) -> None:
    with pytest.raises(TrainingConfigError, match=r"llama-8b needs about 21\.\d GiB to train on cuda"):
        plan_memory(llama_8b, "cuda", full("sft"), "sft", available=16 * GIB)


def test_fp32_weights_count_double_in_bf16_terms(tmp_path: Path) -> None:
    folder = model_folder(tmp_path / "m", {**LLAMA_8B, "torch_dtype": "float32"}, 4 * GIB)
    assert plan_memory(folder, "cuda", full("sft"), "sft", available=H200).weights == 2 * GIB
    demo = hyper_for("sft", "demo")
    assert plan_memory(folder, "cpu", demo, "sft", available=H200).weights == 4 * GIB


def test_gradient_checkpointing_takes_only_true_false_or_auto() -> None:
    with pytest.raises(TrainingConfigError, match="gradient_checkpointing must be true, false or auto"):
        hyper_for("sft", "full", {"gradient_checkpointing": "sometimes"})
