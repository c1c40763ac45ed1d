"""Memory planning before training: does the base model fit, and does it need gradient checkpointing?

Gradient checkpointing trades compute for memory (about 2.7x fewer tokens/s measured on an H200 for a
1B model with LoRA), so with ``gradient_checkpointing: auto`` it is switched on only when the
activations a training step keeps for the backward pass would not fit beside the weights.

The activation estimate is per token, per decoder layer, for a Llama-style block with a fused
attention kernel (sdpa: no sequence x sequence scores are kept), in the training dtype's bytes ``b``:
``b x (9 h + 2 kv + 4 i)``: the two RMSNorm inputs (upcast to fp32: 2 h each) and outputs, q/k/v, the
attention output and o_proj's input, and in the MLP the gate, SiLU, up and product tensors (``i`` each).
On top come the logits with their fp32 log-softmax (``(b + 8) x vocab`` per token; none with Liger's
fused linear + cross-entropy, which computes the loss chunk by chunk and never holds them) and, for DPO, the
chosen and rejected sequences of each pair in one batch (twice the tokens; the reference pass keeps
nothing). With checkpointing, a layer keeps only its input (``b x h`` per token) and one layer at a time
is recomputed in full.

The estimate is deliberately on the high side: against the tensors autograd really saves (SmolLM2,
fp32, LoRA on every projection) it is 1.4x, at any length; the surplus covers the loss's fp32
transients, which peak at the end of the forward while every activation is still held. A test keeps it
between 1x and 4x of the measured figure on the tiny Llama.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llm_twin_assets.training.config import Hyper, TrainingConfigError

HEADROOM = 0.9  # of the free memory: allocator fragmentation, CUDA context, kernels' workspaces
OVERHEAD = 1.3  # on the weights: LoRA weights, their gradients and optimizer state, buffers
FIXED = 1 << 28  # 256 MiB of runtime buffers


@dataclass(frozen=True)
class MemoryPlan:
    weights: int  # bytes of the base weights in the training dtype
    activations: int  # bytes one step keeps for the backward pass, at the longest batch
    available: int
    checkpointing: bool
    reason: str

    @property
    def summary(self) -> str:
        gib = 2**30
        return (
            f"memory: weights {self.weights / gib:.1f} GiB, activations at the longest batch "
            f"{self.activations / gib:.1f} GiB, free {self.available / gib:.1f} GiB; "
            f"gradient checkpointing {'on' if self.checkpointing else 'off'} ({self.reason})"
        )


def available_bytes(device: str) -> int:
    if device == "cuda":
        import torch

        return int(torch.cuda.mem_get_info()[0])
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) * 1024
    return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def weight_bytes(model_dir: Path, config: dict[str, Any], bf16: bool) -> int:
    """The base weights' size in the training dtype (from the files on disk and their stored dtype)."""
    on_disk = sum(p.stat().st_size for p in model_dir.glob("*.safetensors")) or sum(
        p.stat().st_size for p in model_dir.glob("*.bin")
    )
    stored = str(config.get("torch_dtype") or config.get("dtype") or "float32")
    scale = 0.5 if bf16 and "32" in stored else 2.0 if not bf16 and "16" in stored else 1.0
    return int(on_disk * scale)


def activation_bytes(
    config: dict[str, Any], tokens: int, dtype_bytes: int, checkpointing: bool, fused_loss: bool = False
) -> int:
    """Bytes kept for the backward pass of one step over ``tokens`` tokens (see the module's notes);
    ``fused_loss``: Liger's fused linear + cross-entropy (no logits held)."""
    h = int(config["hidden_size"])
    i = int(config.get("intermediate_size") or 4 * h)
    layers = int(config["num_hidden_layers"])
    heads = int(config.get("num_attention_heads") or 1)
    kv = h * int(config.get("num_key_value_heads") or heads) // heads
    vocab = int(config.get("vocab_size") or 0)
    per_layer = dtype_bytes * (9 * h + 2 * kv + 4 * i)
    logits = 0 if fused_loss else (dtype_bytes + 8) * vocab
    if checkpointing:
        return tokens * (layers * dtype_bytes * h + per_layer + logits)
    return tokens * (layers * per_layer + logits)


def plan_memory(
    model_dir: Path,
    device: str,
    hyper: Hyper,
    stage: str,
    available: int | None = None,
    fused_loss: bool = False,
) -> MemoryPlan:
    """The plan for a base model folder on ``device`` (its free memory unless ``available`` is given);
    ``fused_loss`` when the run takes Liger's kernels (``training.speedups``)."""
    free = available_bytes(device) if available is None else available
    config = _config(model_dir)
    return plan(
        config,
        weight_bytes(model_dir, config, hyper.bf16),
        free,
        hyper,
        stage,
        f"base model {model_dir}",
        device,
        fused_loss,
    )


def plan(
    config: dict[str, Any],
    weights: int,
    free: int,
    hyper: Hyper,
    stage: str,
    what: str = "the base model",
    device: str = "the device",
    fused_loss: bool = False,
) -> MemoryPlan:
    """Refuse what cannot fit; decide gradient checkpointing for ``auto``."""
    base = int(weights * OVERHEAD) + FIXED
    if base > free:
        raise TrainingConfigError(
            f"{what} needs about {base / 2**30:.1f} GiB to train on {device} "
            f"({weights / 2**30:.1f} GiB of weights); only {free / 2**30:.1f} GiB are free"
        )
    if "hidden_size" not in config or "num_hidden_layers" not in config:
        wanted = hyper.gradient_checkpointing
        return MemoryPlan(weights, 0, free, wanted is True, "no layer sizes in config.json to plan with")
    tokens = hyper.batch_size * hyper.max_length * (2 if stage == "dpo" else 1)
    dtype_bytes = 2 if hyper.bf16 else 4
    full = activation_bytes(config, tokens, dtype_bytes, checkpointing=False, fused_loss=fused_loss)
    budget = HEADROOM * free - base
    if hyper.gradient_checkpointing == "auto":
        if full <= budget:
            return MemoryPlan(weights, full, free, False, "auto: the activations fit")
        light = activation_bytes(config, tokens, dtype_bytes, checkpointing=True, fused_loss=fused_loss)
        if light > budget:
            raise TrainingConfigError(
                f"batch_size {hyper.batch_size} x max_length {hyper.max_length} needs about "
                f"{(base + light) / 2**30:.1f} GiB on {device} even with gradient checkpointing; "
                f"{free / 2**30:.1f} GiB are free: lower batch_size or max_length"
            )
        return MemoryPlan(weights, light, free, True, "auto: the activations would not fit without it")
    on = bool(hyper.gradient_checkpointing)
    kept = activation_bytes(config, tokens, dtype_bytes, checkpointing=on, fused_loss=fused_loss)
    return MemoryPlan(weights, kept, free, on, "as configured")


def _config(model_dir: Path) -> dict[str, Any]:
    path = model_dir / "config.json"
    return dict(json.loads(path.read_text())) if path.exists() else {}
