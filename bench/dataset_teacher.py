"""Dataset building throughput: examples/s of the local teacher, one prompt at a time versus batched.

Two generation tasks, as the dataset assets run them: the topic of a passage (the instruction, in the
'topic' style the bundled 135M teacher uses) and the base model's answer to an instruction (the
rejected side of a preference pair). Passages come from the generated corpus of bench/features.py.

CPU: ``make bench-datasets`` (the bundled SmolLM2, real stops, ~5 min on 2 cores).
GPU, with only torch and transformers installed: ``python bench/dataset_teacher.py --device cuda --model DIR
--random-init``, where DIR holds SmolLM2's config and tokenizer only: the weights are random and every
reply runs to its full length, so the figures are tokens the same architecture can generate.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.features import make_corpus
from bench.harness import Report
from llm_twin_assets.datasets.passages import Document, PassageOptions, passages_of_all, spread
from llm_twin_assets.datasets.prompts import TOPIC, answer_prompt, frame_instruction
from llm_twin_assets.datasets.teachers import LocalTeacher
from llm_twin_assets.llm import LoadedLM


def load(args: argparse.Namespace) -> LoadedLM:
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    dtype = torch.bfloat16 if args.device == "cuda" else torch.float32
    if args.model == "bundled":
        from llm_twin_assets.models.registry import prepare_smollm2
        from llm_twin_assets.settings import get_settings

        args.model = str(prepare_smollm2(get_settings().model_cache))
    tokenizer = AutoTokenizer.from_pretrained(args.model)
    if args.random_init:
        torch.manual_seed(0)
        model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(args.model), dtype=dtype)
    else:
        model = AutoModelForCausalLM.from_pretrained(args.model, dtype=dtype)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return LoadedLM(model.to(args.device).eval(), tokenizer, args.device)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--model", default="bundled", help="'bundled' or a model folder")
    parser.add_argument("--random-init", action="store_true", help="random weights, replies of full length")
    parser.add_argument("--passages", type=int, default=32, help="prompts per batched run")
    parser.add_argument("--single", type=int, default=8, help="prompts for the one-at-a-time run")
    parser.add_argument("--batch-sizes", default="8,32", help="comma-separated batch sizes")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    lm = load(args)
    docs = [
        Document(d["id"], d["url"], d["kind"], d["title"], d["content"]) for d in make_corpus(400, seed=1)
    ]
    passages = spread(passages_of_all(docs, PassageOptions())[0], max(args.passages, args.single))
    report = Report(f"dataset-teacher-{args.device}")
    report.note(
        "device", torch.cuda.get_device_name() if args.device == "cuda" else f"cpu, {args.threads} threads"
    )
    report.note(
        "model",
        f"{args.model} ({'random weights, full-length replies' if args.random_init else 'real weights, real stops'})",
    )
    tasks = {
        "topic": ([TOPIC.render(passage=p.text) for p in passages], 40),
        "rejected_answer": (
            [
                answer_prompt(frame_instruction(p.kind, "the cost of retries", p.title, i))
                for i, p in enumerate(passages)
            ],
            128,
        ),
    }
    fixed = {"min_new_tokens": None}
    for task, (prompts, max_new_tokens) in tasks.items():
        if args.random_init:
            fixed = {"min_new_tokens": max_new_tokens}
        kwargs = {k: v for k, v in fixed.items() if v is not None}
        runs = [(1, prompts[: args.single])] + [
            (int(b), prompts[: args.passages]) for b in args.batch_sizes.split(",")
        ]
        baseline = None
        for batch_size, chosen in runs:
            teacher = LocalTeacher(lm, "bench", batch_size=batch_size, **kwargs)
            teacher.complete(chosen[: min(2, len(chosen))], max_new_tokens=8)  # warm-up
            if args.device == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
            replies = teacher.complete(chosen, max_new_tokens=max_new_tokens)
            if args.device == "cuda":
                torch.cuda.synchronize()
            seconds = time.perf_counter() - start
            tokens = sum(len(lm.tokenizer(r.text, add_special_tokens=False)["input_ids"]) for r in replies)
            rate = len(chosen) / seconds
            baseline = baseline or rate
            report.add(
                task=task,
                batch=batch_size,
                prompts=len(chosen),
                seconds=round(seconds, 2),
                examples_per_s=round(rate, 2),
                new_tokens_per_s=round(tokens / seconds, 1),
                speedup=round(rate / baseline, 2),
                finished=sum(r.finished for r in replies),
            )
    report.save()


if __name__ == "__main__":
    main()
