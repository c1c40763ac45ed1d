"""Twin quality, one lever at a time: the same author's twin trained and evaluated with each lever of the
recipe added to the one before, on the same datasets and the same held-out test split.

Levers (cumulative, in this order):

1. ``baseline``: SFT then DPO on the whole training split (no validation split, no early stopping, no
   RPO term), plain greedy decoding;
2. ``+ decoding rule``: no repeated 3-token n-gram within an answer (the configured default);
3. ``+ early stopping``: a validation split by document (20%), the best checkpoint by validation loss
   kept, training stopped after 2 evaluations without improvement, a DPO that never improves its
   validation loss not promoted;
4. ``+ regularised DPO``: TRL's ``rpo_alpha`` 1.0 (the chosen answer's NLL added to the DPO loss);
5. ``+ decoding chosen on validation``: the rules chosen among candidates on the validation documents
   (``evaluation.decoding_choice``) — the platform's recipe;
6. ``+ continued pre-training (N epochs)``: before SFT, the SFT adapter trained as a plain causal LM on the
   author's own text (the instruct dataset's corpus: every passage of the documents outside the test
   split, the validation documents left out; ``training.pretraining``), for N = 2 and 4 epochs at the SFT
   learning rate. The number to keep is the one with the lower SFT *validation* loss (reported per lever,
   on documents neither stage trained on); the test-split columns are read once, after.

Not levers here, with why: the teacher's instruction checks (repeated phrases, off-topic) are part of the
instruct dataset all levers share (switching them off would rebuild the datasets, and the test split with
them). Continued pre-training needs the instruct dataset's corpus: when the author's promoted instruct
version has none (built before corpora existed), the bench rebuilds the datasets first (the teacher's
replies are cached, so the rows and splits are the same; only the corpus is added) and says so.

Each lever is one ``llm-twin materialize --select sft_adapter,dpo_adapter,twin_evaluation`` with the
lever's settings as a one-off run config (the author's recorded settings are left alone); an evaluation
made before on the same inputs is reused. Reported per lever, for the twin on the test split (each with
its bootstrap 95% interval): perplexity and its gain over the base, style distance to the author (and the
base's), author-likeness against other writers, repeated word 4-gram share (the author's for reference),
finished within the budget, length against the author's; the gate's verdict, the decoding used and the CPU
minutes of the run (training and evaluation processes included).

Needs an author whose datasets are built: ``make demo`` builds Maya's. Then
``.venv/bin/python bench/twin_quality.py --author maya`` (about 8 CPU minutes per lever on 2 cores).
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.harness import Report

PLAIN = {"validation_ratio": 0.0, "early_stopping_patience": 0}
LEVERS: list[tuple[str, dict[str, Any], dict[str, Any], dict[str, Any]]] = [
    # (name, sft_adapter, dpo_adapter, twin_evaluation): one-off settings over the author's own
    ("baseline", PLAIN, {**PLAIN, "rpo_alpha": 0.0}, {"no_repeat_ngram_size": 0, "choose_decoding": False}),
    (
        "+ decoding rule",
        PLAIN,
        {**PLAIN, "rpo_alpha": 0.0},
        {"no_repeat_ngram_size": 3, "choose_decoding": False},
    ),
    (
        "+ early stopping",
        {"validation_ratio": 0.2, "early_stopping_patience": 2},
        {"validation_ratio": 0.2, "early_stopping_patience": 2, "rpo_alpha": 0.0},
        {"no_repeat_ngram_size": 3, "choose_decoding": False},
    ),
    (
        "+ regularised DPO",
        {"validation_ratio": 0.2, "early_stopping_patience": 2},
        {"validation_ratio": 0.2, "early_stopping_patience": 2, "rpo_alpha": 1.0},
        {"no_repeat_ngram_size": 3, "choose_decoding": False},
    ),
    (
        "+ decoding chosen on validation",
        {"validation_ratio": 0.2, "early_stopping_patience": 2},
        {"validation_ratio": 0.2, "early_stopping_patience": 2, "rpo_alpha": 1.0},
        {"no_repeat_ngram_size": 3, "choose_decoding": True},
    ),
    *[
        (
            f"+ continued pre-training ({epochs} epochs)",
            {"validation_ratio": 0.2, "early_stopping_patience": 2, "pretrain_epochs": float(epochs)},
            {"validation_ratio": 0.2, "early_stopping_patience": 2, "rpo_alpha": 1.0},
            {"no_repeat_ngram_size": 3, "choose_decoding": True},
        )
        for epochs in (2, 4)
    ],
]
LLM_TWIN = str(Path(sys.executable).with_name("llm-twin"))


def materialize(author: str, select: str, ops: dict[str, Any]) -> tuple[int, float, str]:
    """One ``llm-twin materialize`` run with one-off op configs; returns its exit code, the CPU seconds of
    it and its children, its output."""
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as handle:
        yaml.safe_dump({"ops": {op: {"config": config} for op, config in ops.items()}}, handle)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    done = subprocess.run(
        [LLM_TWIN, "materialize", "--author", author, "--select", select, "--config", handle.name],
        capture_output=True,
        text=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"},
    )
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    os.unlink(handle.name)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return done.returncode, cpu, done.stdout + done.stderr


def run_lever(
    author: str, sft: dict[str, Any], dpo: dict[str, Any], evaluation: dict[str, Any]
) -> tuple[int, float, str]:
    ops = {"sft_adapter": sft, "dpo_adapter": dpo, "twin_evaluation": evaluation}
    return materialize(author, "sft_adapter,dpo_adapter,twin_evaluation", ops)


def ensure_corpus(author: str, report: Report) -> None:
    """Rebuild the datasets when the promoted instruct version has no corpus (see the module's docstring)."""
    from llm_twin_assets.artifacts import open_store
    from llm_twin_assets.datasets.versions import latest
    from llm_twin_assets.settings import get_settings

    settings = get_settings()
    store = open_store(settings.artifacts_url, settings.home / "artifacts")
    before = latest(store, author, "instruct")
    if "corpus" in before.manifest.get("extras", {}):
        return
    code, cpu, output = materialize(author, "instruct_dataset,preference_dataset", {})
    after = latest(store, author, "instruct")
    if code or "corpus" not in after.manifest.get("extras", {}):
        raise SystemExit(f"could not add a corpus to {author}'s instruct dataset:\n{output[-2000:]}")
    report.note(
        "datasets_rebuilt",
        f"instruct {before.version} -> {after.version} (rows {before.rows} -> {after.rows}; corpus "
        f"{after.manifest['extras']['corpus']['rows']} passages), {cpu / 60:.1f} CPU minutes",
    )


def sft_validation(author: str, version: str) -> str:
    """The evaluated SFT adapter's validation loss (best, and at step 0): what the epochs are chosen on."""
    from llm_twin_assets.artifacts import open_store
    from llm_twin_assets.settings import get_settings
    from llm_twin_assets.training.adapters import get_adapter

    settings = get_settings()
    adapter = get_adapter(
        open_store(settings.artifacts_url, settings.home / "artifacts"), author, "sft", version
    )
    validation = adapter.manifest.get("metrics", {}).get("validation", {})
    if validation.get("best_loss") is None:
        return "n/a"
    return f"{validation['best_loss']:.4f} (step 0: {validation['initial_loss']:.4f})"


def latest_evaluation(author: str) -> tuple[Any, dict[str, dict[str, Any]]]:
    from llm_twin_assets.settings import get_settings
    from llm_twin_assets.store import evaluations
    from llm_twin_assets.store.database import open_database

    with open_database(get_settings()).connect() as conn:
        record = evaluations.latest(conn, author)
        return record, (evaluations.metrics(conn, record.id) if record is not None else {})


def cell(models: dict[str, dict[str, Any]], model: str, metric: str, fmt: str) -> str:
    entry = models.get(model, {})
    value = entry.get("metrics", {}).get(metric)
    if value is None:
        return "n/a"
    interval = entry.get("intervals", {}).get(metric)
    if interval and interval[0] is not None:
        return f"{fmt.format(value)} [{fmt.format(interval[0])}, {fmt.format(interval[1])}]"
    return fmt.format(value)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--author", default="maya")
    parser.add_argument("--levers", type=int, default=len(LEVERS), help="run only the first N levers")
    parser.add_argument(
        "--only", action="append", default=[], help="run only the levers whose name contains this"
    )
    args = parser.parse_args()
    # a run of some levers only is saved beside the full table, not over it
    suffix = "-only-" + "-".join(re.sub(r"\W+", "-", o).strip("-") for o in args.only) if args.only else ""
    report = Report(f"twin-quality-{args.author}{suffix}")
    report.note("author", args.author)
    chosen = [
        lever for lever in LEVERS[: args.levers] if not args.only or any(o in lever[0] for o in args.only)
    ]
    if any(lever[1].get("pretrain_epochs") for lever in chosen):
        ensure_corpus(args.author, report)
    for name, sft, dpo, evaluation in chosen:
        start, started = time.perf_counter(), datetime.now(UTC)
        code, cpu, output = run_lever(args.author, sft, dpo, evaluation)
        wall = time.perf_counter() - start
        record, models = latest_evaluation(args.author)
        # no evaluation of this lever: the run stopped before it (a check failed); say where
        if record is None or record.evaluated_at < started:
            last = [line for line in output.splitlines() if line.strip()][-3:]
            report.add(
                lever=name,
                run=f"stopped ({code}): " + " | ".join(last)[-400:],
                cpu_minutes=round(cpu / 60, 1),
            )
            continue
        gain = None
        base, twin = models.get("base", {}).get("metrics", {}), models.get("twin", {}).get("metrics", {})
        if base.get("perplexity") and twin.get("perplexity"):
            gain = 1 - twin["perplexity"] / base["perplexity"]
        report.add(
            lever=name,
            evaluation=record.id,
            sft_validation_loss=sft_validation(args.author, record.sft_version),
            examples=record.examples,
            twin_perplexity=cell(models, "twin", "perplexity", "{:.2f}"),
            base_perplexity=cell(models, "base", "perplexity", "{:.2f}"),
            perplexity_gain=f"{gain:+.1%}" if gain is not None else "n/a",
            style_distance=cell(models, "twin", "style_distance", "{:.3f}"),
            base_style_distance=cell(models, "base", "style_distance", "{:.3f}"),
            writer_likeness=cell(models, "twin", "writer_likeness", "{:.3f}"),
            base_writer_likeness=cell(models, "base", "writer_likeness", "{:.3f}"),
            repeats=cell(models, "twin", "repeated_4gram_share", "{:.1%}"),
            author_repeats=cell(models, "author", "repeated_4gram_share", "{:.1%}"),
            finished=cell(models, "twin", "finished", "{:.0%}"),
            length_ratio=cell(models, "twin", "length_ratio", "{:.2f}"),
            gate="passed" if record.gate_passed else "failed",
            decoding=record.settings.get("decoding"),
            cpu_minutes=round(cpu / 60, 1),
            wall_minutes=round(wall / 60, 1),
            run="ok"
            if code == 0
            else f"exit {code} (the gate failed)"
            if not record.gate_passed
            else f"exit {code}",
        )
    report.save()


if __name__ == "__main__":
    main()
