"""Evaluation throughput: examples/s of the twin evaluation's two model passes, one example at a time
versus batched, as ``llm_twin_assets.evaluation.run`` runs them.

- generate: greedy answers to held-out instructions (left-padded batches of similar prompt length);
- perplexity: the author's answer scored under the model (answer tokens only), batches bounded by a
  token budget, only the answer positions' logits kept.

Instructions and answers come from the generated corpus of bench/features.py (passages as answers).

CPU: ``make bench-evaluation`` (the bundled SmolLM2, real stops, a few minutes on 2 cores).
GPU: ``python bench/evaluation.py --device cuda`` (bf16), or with ``--model DIR --random-init`` where DIR
holds a config and tokenizer only (every answer then runs to its full length).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.dataset_teacher import load
from bench.features import make_corpus
from bench.harness import Report
from llm_twin_assets.datasets.passages import Document, PassageOptions, passages_of_all, spread
from llm_twin_assets.evaluation.perplexity import score_answers
from llm_twin_assets.llm import chat_prompt_ids, generate_replies
from llm_twin_assets.prompting import plain_messages


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--model", default="bundled", help="'bundled' or a model folder")
    parser.add_argument("--random-init", action="store_true", help="random weights, answers of full length")
    parser.add_argument("--examples", type=int, default=32, help="examples per batched run")
    parser.add_argument("--single", type=int, default=8, help="examples for the one-at-a-time runs")
    parser.add_argument("--batch-sizes", default="8,16", help="generation batch sizes")
    parser.add_argument("--token-budgets", default="2048,8192", help="perplexity batch budgets (tokens)")
    parser.add_argument("--max-new-tokens", type=int, default=128)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    lm = load(args)
    docs = [
        Document(d["id"], d["url"], d["kind"], d["title"], d["content"]) for d in make_corpus(400, seed=2)
    ]
    passages = spread(passages_of_all(docs, PassageOptions())[0], max(args.examples, args.single))
    prompts = [plain_messages(f"Write a {p.kind} about {p.title}.") for p in passages]
    answers = [p.text for p in passages]
    report = Report(f"evaluation-{args.device}")
    report.note(
        "device", torch.cuda.get_device_name() if args.device == "cuda" else f"cpu, {args.threads} threads"
    )
    report.note(
        "model",
        f"{args.model} ({'random weights, full-length answers' if args.random_init else 'real weights, real stops'})",
    )

    def timed(call):  # type: ignore[no-untyped-def]
        if args.device == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        result = call()
        if args.device == "cuda":
            torch.cuda.synchronize()
        return result, time.perf_counter() - start

    extra = {"min_new_tokens": args.max_new_tokens} if args.random_init else {}
    generate_replies(lm, prompts[:2], max_new_tokens=4)  # warm-up
    baseline = None
    for batch in [1, *(int(b) for b in args.batch_sizes.split(","))]:
        chosen = prompts[: args.single] if batch == 1 else prompts[: args.examples]
        order = sorted(range(len(chosen)), key=lambda i: len(chat_prompt_ids(lm, chosen[i])))

        def run(chosen=chosen, order=order, batch=batch):  # type: ignore[no-untyped-def]
            out = []
            for start in range(0, len(order), batch):
                group = [chosen[i] for i in order[start : start + batch]]
                out += generate_replies(lm, group, max_new_tokens=args.max_new_tokens, **extra)
            return out

        replies, seconds = timed(run)
        tokens = sum(len(lm.tokenizer(r.text, add_special_tokens=False)["input_ids"]) for r in replies)
        rate = len(chosen) / seconds
        baseline = baseline or rate
        report.add(
            task="generate",
            batch=batch,
            examples=len(chosen),
            seconds=round(seconds, 2),
            examples_per_s=round(rate, 2),
            new_tokens_per_s=round(tokens / seconds, 1),
            speedup=round(rate / baseline, 2),
            finished=sum(r.finished for r in replies),
        )
    baseline = None
    for budget in [0, *(int(b) for b in args.token_budgets.split(","))]:
        n = args.single if budget == 0 else args.examples
        scored, seconds = timed(
            lambda n=n, budget=budget: score_answers(
                lm, prompts[:n], answers[:n], token_budget=max(budget, 1)
            )
        )
        rate = n / seconds
        baseline = baseline or rate
        report.add(
            task="perplexity",
            batch="one at a time" if budget == 0 else f"{budget} tokens",
            examples=n,
            seconds=round(seconds, 2),
            examples_per_s=round(rate, 2),
            answer_tokens_per_s=round(sum(s.tokens for s in scored) / seconds, 1),
            speedup=round(rate / baseline, 2),
        )
    report.save()


if __name__ == "__main__":
    main()
