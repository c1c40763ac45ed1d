"""``python -m llm_twin_assets.evaluation.run --config job.yaml``: evaluate a twin against its base model.

First the decoding rules are chosen with the twin on the validation examples (documents its training held
out, never the test split's; ``evaluation.decoding_choice``). Then for the base model, the SFT adapter and
the twin (DPO on its recorded SFT parent), each without and with the author's retrieved passages, with
those rules: generate an answer to every held-out instruction (batched, greedy) and
score the author's real answer (perplexity). The generation budget is derived from the author's own
answer lengths (:func:`generation_budget`). Then measure the answers: author-likeness (against the base
model and against other writers), stylometric distance, content similarity, degeneration (and the
optional judge), each with a bootstrap 95% interval. Results go to the artifact store:

    evaluations/<author>/<id>/examples.parquet   one row per (example, model, variant)
    evaluations/<author>/<id>/results.json       metrics per model, the classifier, timings (last)

Launched by Dagster (Pipes) like the trainers, on the same launcher, so it runs where the GPU is.
"""

from __future__ import annotations

import gc
import io
import math
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from llm_twin_assets.artifacts import ArtifactStore, open_store, read_json, write_json
from llm_twin_assets.decoding_rules import Decoding
from llm_twin_assets.evaluation import EvaluationError
from llm_twin_assets.evaluation.job import MODELS, VARIANTS, EvalJob, Example, job_from_dict, load_job
from llm_twin_assets.training.reporting import Reporter, entry_point

if TYPE_CHECKING:
    import polars as pl

    from llm_twin_assets.llm import LoadedLM


def results_key(author: str, evaluation_id: str) -> str:
    return f"evaluations/{author}/{evaluation_id}/results.json"


def examples_key(author: str, evaluation_id: str) -> str:
    return f"evaluations/{author}/{evaluation_id}/examples.parquet"


def stored_results(store: ArtifactStore, author: str, evaluation_id: str) -> dict[str, Any] | None:
    """The results of a finished evaluation (written last), or None."""
    key = results_key(author, evaluation_id)
    return read_json(store, key, "") if store.exists(key) else None


def messages_for(example: Example, variant: str) -> list[dict[str, str]]:
    from llm_twin_assets.prompting import plain_messages, rag_messages

    return (
        rag_messages(example.instruction, example.context)
        if variant == "rag"
        else plain_messages(example.instruction)
    )


def evaluate(job: EvalJob, pipes: Any = None) -> dict[str, Any]:
    """Run the job; returns its results (also in the artifact store, under the job's id)."""
    if not job.evaluation_id:
        raise EvaluationError("the evaluation job has no evaluation_id: build it with EvalJob.key()")
    out = Path(job.output_dir)
    with Reporter(out / job.log_name, pipes) as reporter:
        results = _evaluate(job, out, reporter)
        reporter.materialized(
            {"evaluation_id": job.evaluation_id, **{k: v for k, v in results["timings"].items()}}
        )
    return results


def _evaluate(job: EvalJob, out: Path, reporter: Reporter) -> dict[str, Any]:
    import polars as pl
    import torch

    device = ("cuda" if torch.cuda.is_available() else "cpu") if job.device == "auto" else job.device
    if job.threads:
        torch.set_num_threads(job.threads)
    store = open_store(job.artifacts_url, Path(job.artifacts_url))
    folders = _twin_folders(job, store, out / "inputs")
    reporter.info(
        f"evaluating {job.author}'s twin (sft {job.sft_version}, dpo {job.dpo_version}) on "
        f"{len(job.examples)} held-out examples, {device}"
    )
    rows: list[dict[str, Any]] = []
    timings: dict[str, float] = {}
    budget: dict[str, Any] = {}
    choice = _decoding_choice(job, store, folders, device, reporter, timings)
    decoding = Decoding.from_dict(choice["chosen"])
    for model in MODELS:
        lm = _load(model, folders, device)
        if not budget:
            budget = generation_budget(lm, job)
            reporter.info(f"generation budget: {budget['max_new_tokens']} new tokens ({budget['rule']})")
        for variant in VARIANTS:
            rows += _answer(lm, model, variant, job, budget["max_new_tokens"], decoding, timings, reporter)
        del lm
        gc.collect()
        if device == "cuda":
            torch.cuda.empty_cache()
    frame = pl.DataFrame(rows)
    from llm_twin_assets.evaluation.measures import measure

    frame, results = measure(job, frame, store, reporter)
    results["generation"] = budget
    results["decoding"] = choice
    results["timings"] = timings
    results["device"] = device
    buffer = io.BytesIO()
    frame.write_parquet(buffer, compression="zstd")
    store.put(examples_key(job.author, job.evaluation_id), buffer.getvalue())
    write_json(store, results_key(job.author, job.evaluation_id), results)  # last: the evaluation is whole
    return results


def _twin_folders(job: EvalJob, store: ArtifactStore, cache: Path) -> dict[str, Path]:
    """The twin's two adapters (their lineage checked), each in a local folder under ``cache``."""
    from llm_twin_assets.training.adapters import LineageError, adapter_folder, check_lineage, get_adapter

    try:
        sft = get_adapter(store, job.author, "sft", job.sft_version)
        dpo = get_adapter(store, job.author, "dpo", job.dpo_version)
        check_lineage(sft, dpo)
    except LineageError:
        raise
    except Exception as exc:  # a version that no longer exists
        raise EvaluationError(f"cannot evaluate {job.author!r}'s twin: {exc}") from exc
    return {"sft": adapter_folder(store, sft, cache), "dpo": adapter_folder(store, dpo, cache)}


def _answer(
    lm: LoadedLM,
    model: str,
    variant: str,
    job: EvalJob,
    max_new_tokens: int,
    decoding: Decoding,
    timings: dict[str, float],
    reporter: Reporter,
) -> list[dict[str, Any]]:
    """One model's answers to the examples in one variant (prompt), each with the perplexity of the
    author's own answer under that prompt; the speeds go into ``timings``."""
    from llm_twin_assets.evaluation.perplexity import score_answers

    prompts = [messages_for(e, variant) for e in job.examples]
    start = time.perf_counter()
    answers = _generate(lm, prompts, job, max_new_tokens, decoding)
    generated = time.perf_counter() - start
    start = time.perf_counter()
    scored = score_answers(lm, prompts, [e.answer for e in job.examples])
    scoring = time.perf_counter() - start
    timings[f"{model}_{variant}_generate_examples_per_s"] = round(len(prompts) / generated, 3)
    timings[f"{model}_{variant}_perplexity_examples_per_s"] = round(len(prompts) / scoring, 3)
    reporter.info(
        f"{model} {variant}: {len(prompts)} answers in {generated:.1f}s, perplexity pass {scoring:.1f}s"
    )
    return [
        {
            "example_id": example.id,
            "document_id": example.document_id,
            "instruction": example.instruction,
            "author_answer": example.answer,
            "model": model,
            "variant": variant,
            "answer": reply.text,
            "finished": reply.finished,
            "nll": score.nll,
            "tokens": score.tokens,
            "truncated": score.truncated,
        }
        for example, reply, score in zip(job.examples, answers, scored, strict=True)
    ]


def _load(model: str, folders: dict[str, Path], device: str) -> LoadedLM:
    from llm_twin_assets.llm import load_causal_lm
    from llm_twin_assets.models.registry import ModelRef
    from llm_twin_assets.training.twin import load_twin, trained_base

    if model == "base":
        return load_causal_lm(ModelRef(str(trained_base(folders["sft"])), True, "path"), device=device)
    return load_twin(folders["sft"], folders["dpo"] if model == "twin" else None, device=device)


def generation_budget(lm: LoadedLM, job: EvalJob, examples: list[Example] | None = None) -> dict[str, Any]:
    """The new-token budget of every answer, and how it was chosen: the job's fixed ``max_new_tokens``,
    or ``budget_factor`` x the 90th percentile of the author's held-out answer lengths in the model's
    tokens, within [``budget_min_tokens``, ``budget_max_tokens``]. ``finished`` (an answer that ended on
    its own within the budget) is judged against the author's own lengths, not a fixed cap."""
    import numpy as np

    examples = job.examples if examples is None else examples
    lengths = [len(lm.tokenizer(e.answer, add_special_tokens=False)["input_ids"]) for e in examples]
    p90 = float(np.percentile(lengths, 90)) if lengths else 0.0
    if job.max_new_tokens is not None:
        return {
            "max_new_tokens": job.max_new_tokens,
            "rule": "fixed by max_new_tokens",
            "author_p90_tokens": p90,
        }
    derived = math.ceil(job.budget_factor * p90)
    chosen = min(max(derived, job.budget_min_tokens), job.budget_max_tokens)
    return {
        "max_new_tokens": chosen,
        "rule": (
            f"{job.budget_factor:g} x the author's p90 answer length ({p90:.0f} tokens) = {derived}, "
            f"within [{job.budget_min_tokens}, {job.budget_max_tokens}]"
        ),
        "author_p90_tokens": p90,
    }


def _decoding_choice(
    job: EvalJob,
    store: ArtifactStore,
    folders: dict[str, Path],
    device: str,
    reporter: Reporter,
    timings: dict[str, float],
) -> dict[str, Any]:
    """The decoding rules every model generates with on the test split: chosen with the twin on the
    validation examples (``evaluation.decoding_choice``), or the configured ones with the reason."""
    import torch

    from llm_twin_assets.evaluation import decoding_choice
    from llm_twin_assets.evaluation.measures import training_texts

    if not job.choose_decoding:
        return decoding_choice.kept(job.decoding, "as configured: choose_decoding is off")
    if not job.validation_examples:
        reason = "as configured: the twin's training held out no validation documents to choose on"
        reporter.info(f"decoding {reason}")
        return decoding_choice.kept(job.decoding, reason)
    start = time.perf_counter()
    lm = _load("twin", folders, device)
    validation = job.validation_examples
    budget = generation_budget(lm, job, validation)
    voices = training_texts(store, job)
    prompts = [messages_for(e, "plain") for e in validation]
    trials = []
    for candidate in decoding_choice.candidates(job.decoding):
        replies = _generate(lm, prompts, job, budget["max_new_tokens"], Decoding.from_dict(candidate))
        trials.append(
            decoding_choice.trial(
                candidate,
                [r.text for r in replies],
                [r.finished for r in replies],
                [e.answer for e in validation],
                voices.train_author + voices.train_other,
                job.max_repeat_excess,
                job.min_finished,
            )
        )
    chosen, reason = decoding_choice.choose(trials)
    del lm
    gc.collect()
    if device == "cuda":
        torch.cuda.empty_cache()
    timings["decoding_choice_seconds"] = round(time.perf_counter() - start, 2)
    reporter.info(
        f"decoding chosen on {len(validation)} validation examples of {job.validation_documents} documents: "
        f"{chosen.decoding} ({reason})"
    )
    return decoding_choice.summary(chosen, reason, trials, len(validation), job.validation_documents)


def _generate(
    lm: LoadedLM,
    prompts: list[list[dict[str, str]]],
    job: EvalJob,
    max_new_tokens: int,
    decoding: Decoding,
) -> list[Any]:
    """Greedy replies (with ``decoding``'s rules) in batches of similar prompt length, returned in the
    prompts' order."""
    from llm_twin_assets.llm import chat_prompt_ids, generate_replies

    order = sorted(range(len(prompts)), key=lambda i: len(chat_prompt_ids(lm, prompts[i])))
    replies: dict[int, Any] = {}
    for start in range(0, len(order), job.batch_size):
        batch = order[start : start + job.batch_size]
        out = generate_replies(
            lm, [prompts[i] for i in batch], max_new_tokens=max_new_tokens, seed=job.seed, decoding=decoding
        )
        replies.update(zip(batch, out, strict=True))
    return [replies[i] for i in range(len(prompts))]


def read_examples(store: ArtifactStore, author: str, evaluation_id: str) -> pl.DataFrame:
    import polars as pl

    return pl.read_parquet(io.BytesIO(store.get(examples_key(author, evaluation_id))))


def main(argv: list[str] | None = None) -> int:
    return entry_point(
        "python -m llm_twin_assets.evaluation.run",
        argv,
        load_job,
        lambda extra: job_from_dict(extra, "the Pipes extra 'job'"),
        lambda job: Path(job.output_dir) / job.log_name,
        evaluate,
    )


if __name__ == "__main__":
    sys.exit(main())
