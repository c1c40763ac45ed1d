"""The training fast paths are chosen from what the machine has; CUDA-only ones are refused on the CPU."""

from __future__ import annotations

import importlib.util

import pytest

from llm_twin_assets.training.config import TrainingConfigError
from llm_twin_assets.training.speedups import choose_speedups


def test_on_the_cpu_auto_takes_no_cuda_path_and_says_why() -> None:
    chosen = choose_speedups("cpu", "sft")
    assert (chosen.liger, chosen.padding_free, chosen.attention) == (False, False, "sdpa")
    assert "liger: it runs on CUDA only" in chosen.summary and "FlashAttention 2" in chosen.summary


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ({"liger": "on"}, "liger is on but it runs on CUDA only"),
        ({"padding_free": "on"}, "padding_free is on but"),
    ],
)
def test_asking_for_a_cuda_path_on_the_cpu_is_refused_by_name(setting: dict[str, str], message: str) -> None:
    with pytest.raises(TrainingConfigError, match=message):
        choose_speedups("cpu", "sft", **setting)


def test_padding_free_is_never_chosen_without_a_kernel_that_keeps_examples_apart() -> None:
    flash = importlib.util.find_spec("flash_attn") is not None
    chosen = choose_speedups("cuda", "sft")
    assert chosen.padding_free == flash and chosen.attention == ("flash_attention_2" if flash else "sdpa")
    assert choose_speedups("cuda", "dpo").padding_free is False  # DPO batches are padded pairs
    liger = importlib.util.find_spec("liger_kernel") is not None
    assert chosen.liger == liger
    if not liger:
        assert "pip install 'llm-twin[cuda]'" in chosen.summary
        with pytest.raises(TrainingConfigError, match="liger-kernel is not installed"):
            choose_speedups("cuda", "sft", liger="on")


def test_off_is_off_and_nonsense_is_refused() -> None:
    chosen = choose_speedups("cuda", "sft", liger="off", padding_free="off")
    assert not chosen.liger and not chosen.padding_free and chosen.reasons == ()
    with pytest.raises(TrainingConfigError, match="liger must be one of auto, on, off, not 'yes'"):
        choose_speedups("cpu", "sft", liger="yes")
