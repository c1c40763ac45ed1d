"""Training throughput: stock TRL settings versus our profile, on the same data, in one run (SFT, or DPO
with ``--stage dpo``).

Both variants train the same LoRA (r=32, alpha=32 on every attention and MLP projection) on the same
prompt/completion examples. Stock = ``SFTConfig`` defaults (gradient checkpointing on, random order,
padded batches); ours = the profile the device gets (``full`` on CUDA, ``demo`` settings on the CPU,
with the benchmark's batch size and lengths): no gradient checkpointing, batches grouped by length.
Each variant runs in its own process (clean peak memory). Reported: real (non-pad) tokens/s over the
steps after warm-up, peak memory, and on CUDA the MFU: FLOPs per token = 4 x base params (forward and
activation gradients through frozen weights) + 6 x LoRA params + 12 x layers x hidden x mean sequence
(attention), against 989 TFLOP/s (H100/H200 dense bf16). DPO (``--stage dpo``): pairs made of the
same examples (chosen = one's completion, rejected = another's), ``DPOConfig`` defaults against the
``full`` DPO profile (RPO, the memory plan; Liger as the machine has it); tokens/s counts both sides of
each pair at the pairs' mean length, and the FLOPs add the reference model's forward (6 x base params).

CPU: ``make bench-train`` (the bundled SmolLM2; ~6 min on 2 cores).
GPU (weights cannot be downloaded there: random initialisation of the real shapes):
``python bench/train.py --device cuda --model 1b --tokenizer DIR`` and ``--model 8b`` (``--stage dpo``).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

SHAPES = {
    "tiny-shape": {
        "hidden_size": 128,
        "intermediate_size": 256,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "vocab_size": 49152,
        "tie_word_embeddings": True,
    },
    "1b": {
        "hidden_size": 2048,
        "intermediate_size": 8192,
        "num_hidden_layers": 16,
        "num_attention_heads": 32,
        "num_key_value_heads": 8,
        "vocab_size": 128256,
        "tie_word_embeddings": True,
        "rope_theta": 500000.0,
        "max_position_embeddings": 131072,
    },
    "8b": {
        "hidden_size": 4096,
        "intermediate_size": 14336,
        "num_hidden_layers": 32,
        "num_attention_heads": 32,
        "num_key_value_heads": 8,
        "vocab_size": 128256,
        "tie_word_embeddings": False,
        "rope_theta": 500000.0,
        "max_position_embeddings": 131072,
    },
}
PEAK_FLOPS = 989e12
PROJECTIONS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def examples(tokenizer, n: int, lengths: tuple[int, int], seed: int = 0) -> list[dict[str, object]]:  # type: ignore[no-untyped-def]
    from bench.features import make_corpus

    words = " ".join(d["content"] for d in make_corpus(300, seed=seed)).split()
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        target = rng.randint(*lengths)
        start = rng.randrange(0, len(words) - 2 * target)
        text = " ".join(words[start : start + target])  # ~1.3 tokens per word: cut to length below
        ids = tokenizer(text, add_special_tokens=False)["input_ids"][: max(8, target - 24)]
        rows.append(
            {
                "prompt": [{"role": "user", "content": "Write about this."}],
                "completion": [{"role": "assistant", "content": tokenizer.decode(ids)}],
            }
        )
    return rows


def pairs(rows: list[dict[str, object]], seed: int = 1) -> list[dict[str, object]]:
    """Preference pairs from the examples: chosen = an example's completion, rejected = another's."""
    rng = random.Random(seed)
    other = rows[:]
    rng.shuffle(other)
    return [
        {"prompt": r["prompt"], "chosen": r["completion"], "rejected": o["completion"]}
        for r, o in zip(rows, other, strict=True)
    ]


def child(args: argparse.Namespace) -> dict[str, object]:
    import torch
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer, TrainerCallback
    from trl import DPOConfig, DPOTrainer, SFTConfig, SFTTrainer

    from llm_twin_assets.training.config import hyper_for
    from llm_twin_assets.training.speedups import choose_speedups

    torch.set_num_threads(args.threads)
    cuda = args.device == "cuda"
    # Ours takes the fast paths the machine has (Liger, padding-free with FlashAttention 2); stock none.
    dpo = args.stage == "dpo"
    speedups = choose_speedups(args.device, args.stage) if args.variant == "ours" else None
    attention = speedups.attention if speedups else "sdpa"
    planned = 0
    tokenizer = AutoTokenizer.from_pretrained(args.tokenizer)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    if args.model in SHAPES:
        config = AutoConfig.from_pretrained(args.tokenizer)  # a Llama config, reshaped
        for key, value in SHAPES[args.model].items():
            setattr(config, key, value)
        config.head_dim = config.hidden_size // config.num_attention_heads
        torch.manual_seed(0)
        with torch.device(args.device):  # initialise where it trains: an 8B model on the CPU takes minutes
            model = AutoModelForCausalLM.from_config(
                config, dtype=torch.bfloat16 if cuda else torch.float32, attn_implementation=attention
            )
    else:
        model = AutoModelForCausalLM.from_pretrained(
            args.tokenizer, dtype=torch.bfloat16 if cuda else torch.float32, attn_implementation=attention
        )
    base_params = sum(p.numel() for p in model.parameters())
    rows = examples(tokenizer, args.examples, (args.min_length, args.max_length))
    singles = rows
    common = {
        "output_dir": tempfile.mkdtemp(),
        "max_steps": args.warmup + args.steps,
        "max_length": args.max_length,
        "per_device_train_batch_size": args.batch_size,
        "logging_steps": 1,
        "save_strategy": "no",
        "report_to": "none",
        "include_num_input_tokens_seen": "non_padding",
        "disable_tqdm": True,
        "use_cpu": not cuda,
        "bf16": cuda,
        "learning_rate": 1e-4,
        "dataloader_num_workers": 0,
    }
    if args.variant == "ours":
        from llm_twin_assets.training.memory import available_bytes, plan

        hyper = hyper_for(
            args.stage,
            "full" if cuda else "demo",
            {"batch_size": args.batch_size, "max_length": args.max_length, "bf16": cuda},
        )
        weights = sum(p.numel() * p.element_size() for p in model.parameters())
        free = available_bytes(args.device) + weights  # the model is already loaded
        fused = speedups.liger and not dpo  # type: ignore[union-attr]
        memory = plan(model.config.to_dict(), weights, free, hyper, args.stage, fused_loss=fused)
        print(memory.summary, flush=True)
        print(speedups.summary, flush=True)  # type: ignore[union-attr]
        common |= {
            "gradient_checkpointing": memory.checkpointing,
            "use_liger_kernel": speedups.liger,  # type: ignore[union-attr]
        }
        if not dpo:  # as the trainer sets them (training/trainer.py)
            common |= {
                "train_sampling_strategy": "group_by_length" if hyper.group_by_length else "random",
                "padding_free": speedups.padding_free,  # type: ignore[union-attr]
            }
        planned = memory.weights + memory.activations
    marks: dict[str, tuple[float, int]] = {}

    class Clock(TrainerCallback):  # type: ignore[misc]
        def on_step_end(self, a, state, control, **kw):  # type: ignore[no-untyped-def]
            if cuda:
                torch.cuda.synchronize()
            if state.global_step in (args.warmup, args.warmup + args.steps):
                marks[str(state.global_step)] = (time.perf_counter(), int(state.num_input_tokens_seen))

    lora = LoraConfig(
        r=32, lora_alpha=32, lora_dropout=0.0, target_modules=PROJECTIONS, task_type="CAUSAL_LM"
    )
    if dpo:
        common.pop("include_num_input_tokens_seen")  # counted from the pairs' lengths below
        rows = pairs(rows)
        rpo = (
            {"loss_type": ["sigmoid", "sft"], "loss_weights": [1.0, hyper.rpo_alpha]}
            if args.variant == "ours" and hyper.rpo_alpha
            else {}
        )
        trainer: Any = DPOTrainer(
            model=model,
            ref_model=None,
            args=DPOConfig(**common, beta=0.5, **rpo),
            train_dataset=Dataset.from_list(rows),
            processing_class=tokenizer,
            peft_config=lora,
            callbacks=[Clock()],
        )
    else:
        trainer = SFTTrainer(
            model=model,
            args=SFTConfig(**common),
            train_dataset=Dataset.from_list(rows),
            processing_class=tokenizer,
            peft_config=lora,
            callbacks=[Clock()],
        )
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    trainer.train()
    (t0, n0), (t1, n1) = marks[str(args.warmup)], marks[str(args.warmup + args.steps)]
    if dpo:  # both sides of each pair, at the pairs' mean length (capped at max_length each)
        sides = [
            min(
                args.max_length,
                len(
                    tokenizer(tokenizer.apply_chat_template(r["prompt"] + r[side], tokenize=False))[
                        "input_ids"
                    ]
                ),  # type: ignore[operator]
            )
            for r in rows
            for side in ("chosen", "rejected")
        ]
        n0, n1 = 0, int(args.steps * args.batch_size * 2 * sum(sides) / len(sides))
    tokens_per_s = (n1 - n0) / (t1 - t0)
    lora_params = sum(p.numel() for n, p in trainer.model.named_parameters() if "lora_" in n)
    cfg = model.config
    mean_len = (
        sum(
            len(
                tokenizer(tokenizer.apply_chat_template(r["prompt"] + r["completion"], tokenize=False))[
                    "input_ids"
                ]
            )
            for r in singles[:64]
        )
        / 64
    )
    flops_per_token = (
        (6 if dpo else 4) * base_params  # DPO: the reference model's forward pass on top
        + 6 * lora_params
        + 12 * cfg.num_hidden_layers * cfg.hidden_size * min(mean_len, args.max_length)
    )
    peak = (
        torch.cuda.max_memory_allocated()
        if cuda
        else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    )
    return {
        "variant": args.variant,
        "gradient_checkpointing": bool(common.get("gradient_checkpointing", True)),
        "sampling": common.get("train_sampling_strategy", "random"),
        "tokens_per_s": round(tokens_per_s, 1),
        "peak_memory_gib": round(peak / 2**30, 2),
        # the memory plan (weights + activations) against the real CUDA peak (LoRA, optimizer, workspaces on top)
        "planned_memory_gib": round(planned / 2**30, 2) if args.variant == "ours" else None,
        "speedups": speedups.summary if speedups else "none (stock)",
        "mfu_percent": round(100 * tokens_per_s * flops_per_token / PEAK_FLOPS, 1) if cuda else None,
        "base_params_m": round(base_params / 1e6, 1),
        "lora_params_m": round(lora_params / 1e6, 2),
        "measured_steps": args.steps,
        "seconds": round(t1 - t0, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--model", default="bundled", help="bundled, 1b or 8b (random weights of that shape)")
    parser.add_argument(
        "--tokenizer",
        default=None,
        help="a folder with a Llama config and tokenizer (default: the bundled SmolLM2)",
    )
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--min-length", type=int, default=64)
    parser.add_argument("--max-length", type=int, default=None)
    parser.add_argument("--examples", type=int, default=256)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--stage", default="sft", choices=["sft", "dpo"], help="SFT, or DPO on pairs")
    parser.add_argument("--variant", choices=["stock", "ours"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    cuda = args.device == "cuda"
    args.steps = args.steps or (20 if cuda else 4)
    args.batch_size = args.batch_size or ((4 if args.stage == "dpo" else 8) if cuda else 2)
    args.max_length = args.max_length or ((2048 if args.model == "8b" else 1024) if cuda else 384)
    if args.model == "8b" and cuda:
        args.min_length = max(args.min_length, 512)
    if args.tokenizer is None:
        from llm_twin_assets.models.registry import prepare_smollm2
        from llm_twin_assets.settings import get_settings

        args.tokenizer = str(prepare_smollm2(get_settings().model_cache))
    if args.variant:
        print("RESULT " + json.dumps(child(args)), flush=True)
        return

    from bench.harness import Report

    report = Report(f"train-{args.device}-{args.model}" + ("-dpo" if args.stage == "dpo" else ""))
    report.note(
        "setup",
        f"{args.stage} {args.model} on {args.device}, LoRA r=32 all projections, batch {args.batch_size}, "
        f"{args.min_length}-{args.max_length} tokens, {args.steps} measured steps after {args.warmup}",
    )
    results = {}
    for variant in ("stock", "ours"):
        command = [sys.executable, *sys.argv, "--variant", variant]
        done = subprocess.run(
            command, capture_output=True, text=True, env={**os.environ, "TOKENIZERS_PARALLELISM": "false"}
        )
        line = next((out for out in done.stdout.splitlines() if out.startswith("RESULT ")), None)
        if line is None:
            print(done.stderr[-3000:], file=sys.stderr)
            raise SystemExit(f"the {variant} run failed")
        results[variant] = json.loads(line.removeprefix("RESULT "))
        report.add(**results[variant])
    report.note(
        "speedup_tokens_per_s", round(results["ours"]["tokens_per_s"] / results["stock"]["tokens_per_s"], 2)
    )
    report.save()


if __name__ == "__main__":
    main()
