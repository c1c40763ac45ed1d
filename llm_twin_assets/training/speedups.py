"""Which fast paths a training run takes: Liger's fused kernels, padding-free batches, the attention kernel.

None of them changes what is learned (the same loss on the same tokens), so none is part of an adapter's
version; each is chosen where the run happens, from what that machine has:

- ``liger`` (TrainingArguments ``use_liger_kernel``): Liger's fused Triton kernels (RMSNorm, RoPE,
  SwiGLU and, above all, the fused linear + cross-entropy that never materialises the logits). CUDA
  only; the ``liger-kernel`` package is the optional ``cuda`` extra (``pip install 'llm-twin[cuda]'``).
- ``padding_free`` (SFT): the examples of a batch concatenated into one row with ``position_ids``, no
  pad token computed at all. Correct only with an attention kernel that reads sequence boundaries from
  the position ids (FlashAttention 2, the ``flash-attn`` package, CUDA); with SDPA the examples of a
  row would attend to each other, so it is never chosen without it.

Each setting is ``auto`` (on where the machine has what it needs, off otherwise, the reason recorded),
``on`` (refused with a clear error where it cannot run) or ``off``.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass

from llm_twin_assets.training.config import TrainingConfigError

CHOICES = ("auto", "on", "off")


@dataclass(frozen=True)
class Speedups:
    liger: bool
    padding_free: bool
    attention: str
    """``attn_implementation`` for ``from_pretrained``: ``flash_attention_2`` or ``sdpa``."""
    reasons: tuple[str, ...]

    @property
    def summary(self) -> str:
        return (
            f"speed-ups: liger {'on' if self.liger else 'off'}, padding-free {'on' if self.padding_free else 'off'}, "
            f"attention {self.attention} ({'; '.join(self.reasons)})"
        )


def _installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def choose_speedups(device: str, stage: str, liger: str = "auto", padding_free: str = "auto") -> Speedups:
    for name, value in (("liger", liger), ("padding_free", padding_free)):
        if value not in CHOICES:
            raise TrainingConfigError(f"{name} must be one of {', '.join(CHOICES)}, not {value!r}")
    reasons = []
    cuda = device == "cuda"

    use_liger = False
    if liger != "off":
        missing = (
            "it runs on CUDA only"
            if not cuda
            else "liger-kernel is not installed (pip install 'llm-twin[cuda]')"
            if not _installed("liger_kernel")
            else ""
        )
        if missing and liger == "on":
            raise TrainingConfigError(f"liger is on but {missing}: set liger to auto or off")
        use_liger = not missing
        reasons.append(f"liger: {missing}" if missing else "liger: fused kernels")

    flash = cuda and _installed("flash_attn")
    use_padding_free = False
    if padding_free != "off":
        missing = (
            "TRL's DPO batches are padded pairs"
            if stage != "sft"
            else "it needs FlashAttention 2 on CUDA (the flash-attn package)"
            if not flash
            else ""
        )
        if missing and padding_free == "on":
            raise TrainingConfigError(f"padding_free is on but {missing}: set padding_free to auto or off")
        use_padding_free = not missing
        reasons.append(f"padding-free: {missing}" if missing else "padding-free: FlashAttention 2")
    return Speedups(use_liger, use_padding_free, "flash_attention_2" if flash else "sdpa", tuple(reasons))
