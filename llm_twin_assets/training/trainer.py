"""The shared trainer: one stage from job to published adapter — its inputs (``training.inputs``), the TRL
trainer (``training.trl_trainer``), resume from checkpoints, the validation curve, metrics, publishing.

DPO starts from the SFT adapter *merged* into the base weights: the merged model is the policy's
starting point and, with the DPO adapter disabled, the reference, as DPO wants (the SFT policy is the
reference), with one copy of the weights in memory. Stacking the adapters instead would make the
reference the raw base model, which the SFT stage had already moved away from.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from llm_twin_assets.training.checkpoints import (
    CheckpointMirror,
    last_complete_checkpoint,
    mirror_callback,
    step_of,
)
from llm_twin_assets.training.config import TrainingConfigError, TrainJob
from llm_twin_assets.training.inputs import (
    artifact_store,
    base_model_folder,
    load_rows,
    parent_adapter_folder,
    within_max_length,
)
from llm_twin_assets.training.memory import plan_memory
from llm_twin_assets.training.reporting import Reporter
from llm_twin_assets.training.speedups import choose_speedups
from llm_twin_assets.training.trl_trainer import continued_pretraining, make_trainer
from llm_twin_assets.training.validation import (
    ValidationReport,
    eval_point,
    split_by_document,
    without_documents,
)


def _peak_memory(device: str) -> int:
    if device == "cuda":
        import torch

        return int(torch.cuda.max_memory_allocated())
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def train(job: TrainJob, pipes: Any = None) -> dict[str, Any]:
    """Train one stage; returns the metrics (also written to ``output_dir/metrics.json``).

    ``pipes`` is an open Dagster Pipes context when Dagster launched this process."""
    out = Path(job.output_dir)
    with Reporter(out / "train.log", pipes) as reporter:
        metrics = _train(job, out, reporter)
        reporter.materialized(
            {k: v for k, v in metrics.items() if isinstance(v, (int, float, str)) and not isinstance(v, bool)}
            | {"losses": metrics["losses"]}
        )
    return metrics


@dataclass
class _Inputs:
    """What a stage trains on, prepared: the device, the base model and (DPO) its SFT adapter, the
    tokenizer, the rows split by document, the memory plan and the speed-ups."""

    device: str
    model_dir: Path
    sft_dir: Path | None
    tokenizer: Any
    rows: list[dict[str, Any]]
    validation_rows: list[dict[str, Any]]
    split: Any
    over_length: int
    memory: Any
    speedups: Any


def _inputs(job: TrainJob, reporter: Reporter) -> _Inputs:
    hyper = job.hyper
    device = _device(job)
    model_dir = base_model_folder(job)
    if not (model_dir / "config.json").exists():
        raise TrainingConfigError(f"base model {model_dir}: not a model folder (no config.json)")
    sft_dir = parent_adapter_folder(job) if job.stage == "dpo" else None
    rows = load_rows(job)
    speedups = choose_speedups(device, job.stage, job.liger, job.padding_free)
    # Liger's fused linear + cross-entropy never holds the logits (SFT; DPO is planned with them)
    memory = plan_memory(
        model_dir, device, hyper, job.stage, fused_loss=speedups.liger and job.stage == "sft"
    )

    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    rows, over_length = within_max_length(job, rows, tokenizer)
    reporter.info(
        f"{job.stage} on {device}: {len(rows)} examples of {job.dataset_name} {job.dataset_version}, base {model_dir}"
        + (
            f"; {over_length} longer than max_length {hyper.max_length} left out (never truncated)"
            if over_length
            else ""
        )
    )
    split = split_by_document(rows, hyper.validation_ratio, hyper.seed)
    if split.validation:
        reporter.info(
            f"validation: {len(split.validation)} examples of {len(split.documents)} documents held out of "
            f"training; the best checkpoint by validation loss is kept"
        )
    elif hyper.validation_ratio > 0:
        reporter.info(f"no validation split: {split.reason}")
    reporter.info(memory.summary)
    reporter.info(speedups.summary)
    return _Inputs(
        device,
        model_dir,
        sft_dir,
        tokenizer,
        without_documents(split.train),
        without_documents(split.validation),
        split,
        over_length,
        memory,
        speedups,
    )


def _train(job: TrainJob, out: Path, reporter: Reporter) -> dict[str, Any]:
    """Prepare (device, base model, rows, memory plan), build the TRL trainer, resume, train, save the
    adapter and its metrics, publish it when the job names a version."""
    i = _inputs(job, reporter)
    start_from, pretraining = i.sft_dir, None
    if job.stage == "sft" and job.hyper.pretrain_epochs > 0:
        start_from, pretraining = continued_pretraining(
            job,
            out,
            i.device,
            i.model_dir,
            i.tokenizer,
            set(i.split.documents),
            i.memory,
            i.speedups,
            reporter,
        )
    losses: list[dict[str, float]] = []
    trainer = make_trainer(
        job,
        out,
        i.device,
        i.model_dir,
        start_from,
        i.tokenizer,
        i.rows,
        i.validation_rows,
        i.memory,
        i.speedups,
        losses,
        reporter,
    )
    last, mirror = _resume_point(job, out, trainer, reporter)
    seconds, report = _fit(trainer, i, last, reporter, keep_start=job.stage == "sft")
    # The whole curve, from the trainer's state: a run resumed from a checkpoint (even its last one, when
    # the process died after training but before publishing) keeps the losses logged before it.
    history = [
        {"step": int(e["step"]), "loss": float(e["loss"])} for e in trainer.state.log_history if "loss" in e
    ]
    metrics = _metrics(
        job,
        i.device,
        i.model_dir,
        trainer,
        history or losses,
        last,
        i.memory,
        i.speedups,
        seconds,
        report,
        i.split.reason,
    )
    metrics |= {"examples": len(i.rows), "examples_over_max_length": i.over_length}
    if pretraining is not None:
        metrics["pretraining"] = pretraining
    _save(job, out, trainer, i, metrics, mirror)
    reporter.info(
        f"done: {metrics['steps']} steps, final loss {metrics['final_loss']:.4f}, {metrics['tokens_per_s']} tokens/s"
    )
    return metrics


def _fit(
    trainer: Any, i: _Inputs, last: str | None, reporter: Reporter, *, keep_start: bool = False
) -> tuple[float, ValidationReport | None]:
    """Train (from checkpoint ``last`` when resuming): the seconds it took, and the validation report
    (loss at step 0, the bar the stage must beat, against the best checkpoint) when there are rows for it.
    With ``keep_start`` (SFT), step 0 is a candidate too: when no checkpoint beats it on validation, the
    weights the stage started from (continued pre-training's, or the untrained adapter's) are kept."""
    import torch
    from peft import get_peft_model_state_dict, set_peft_model_state_dict

    if i.device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    initial: dict[str, float] = {}
    start_weights = None
    if i.validation_rows:  # step 0, before any checkpoint is loaded
        initial = trainer.evaluate()
        reporter.info(f"validation loss at step 0: {initial['eval_loss']:.4f}")
        if keep_start:
            start_weights = {
                k: v.detach().cpu().clone() for k, v in get_peft_model_state_dict(trainer.model).items()
            }
    trainer.train(resume_from_checkpoint=last)
    seconds = time.perf_counter() - start
    if not i.validation_rows:
        return seconds, None
    report = _validation_report(trainer, initial, len(i.validation_rows), i.split.documents, reporter)
    if start_weights is not None and not report.as_dict()["improved"]:
        set_peft_model_state_dict(trainer.model, start_weights)
        report.kept_start = True
        reporter.info("validation: no checkpoint beat step 0; the weights the stage started from are kept")
    return seconds, report


def _save(job: TrainJob, out: Path, trainer: Any, i: _Inputs, metrics: dict[str, Any], mirror: Any) -> None:
    """The adapter, its tokenizer, job and metrics under ``out/adapter``; published (and its mirrored
    checkpoints cleared) when the job names a version."""
    adapter = out / "adapter"
    trainer.model.save_pretrained(adapter)
    i.tokenizer.save_pretrained(adapter)
    job.to_file(adapter / "training_job.yaml")
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2, default=str))
    (adapter / "metrics.json").write_text(json.dumps(metrics, indent=2, default=str))
    if job.adapter_version:
        metrics["adapter_version"] = _publish(job, adapter, i.model_dir, metrics)
        if mirror is not None:  # the adapter is published: its checkpoints are no longer needed
            mirror.clear()


def _metrics(
    job: TrainJob,
    device: str,
    model_dir: Path,
    trainer: Any,
    losses: list[dict[str, float]],
    last: str | None,
    memory: Any,
    speedups: Any,
    seconds: float,
    report: ValidationReport | None,
    no_validation_reason: str,
) -> dict[str, Any]:
    """What the run measured: steps, the loss curve, tokens/s, memory against the plan, the speed-ups
    taken, the validation curve; written beside the adapter and published in its manifest."""
    hyper = job.hyper
    tokens = int(trainer.state.num_input_tokens_seen)
    peak, planned = _peak_memory(device), memory.weights + memory.activations
    return {
        "stage": job.stage,
        "profile": job.profile,
        "device": device,
        "base_model": str(model_dir),
        "dataset_version": job.dataset_version,
        "steps": int(trainer.state.global_step),
        "resumed_from": last or "",
        "final_loss": losses[-1]["loss"] if losses else float("nan"),
        "losses": losses,
        "tokens": tokens,
        "tokens_per_s": round(tokens / seconds, 1) if seconds else 0.0,
        "peak_memory_mb": round(peak / 2**20, 1),
        "gradient_checkpointing": memory.checkpointing,
        "activation_estimate_mb": round(memory.activations / 2**20, 1),
        # The plan (weights + activations) against what CUDA really allocated at the peak (optimizer
        # state, LoRA weights and workspaces come on top: a ratio near 1 means the plan holds).
        "memory_plan_mb": round(planned / 2**20, 1),
        **({"peak_over_plan": round(peak / max(1, planned), 3)} if device == "cuda" else {}),
        "liger": speedups.liger,
        "padding_free": speedups.padding_free,
        "attention": speedups.attention,
        "train_seconds": round(seconds, 2),
        "validation": report.as_dict() if report else {"reason": no_validation_reason},
        "hyper": asdict(hyper),
    }


def _device(job: TrainJob) -> str:
    """Where this job trains; a GPU asked for and missing, or bf16 on a CPU, is refused by name."""
    import torch

    device = ("cuda" if torch.cuda.is_available() else "cpu") if job.device == "auto" else job.device
    asked = job.device if job.device != "auto" else os.environ.get("LLM_TWIN_DEVICE", "auto")
    if asked == "cuda" and not torch.cuda.is_available():  # a GPU step never falls back to the CPU
        raise TrainingConfigError(
            f"a GPU was asked for (job device {job.device!r}, LLM_TWIN_DEVICE="
            f"{os.environ.get('LLM_TWIN_DEVICE', '')!r}) but torch {torch.__version__} sees no CUDA device "
            "here: run this step on GPU capacity with the CUDA image"
        )
    if job.threads:
        torch.set_num_threads(job.threads)
    if job.hyper.bf16 and device == "cpu":
        raise TrainingConfigError("bf16 is set but the device is the CPU: use the demo or tiny profile")
    return device


def _resume_point(
    job: TrainJob, out: Path, trainer: Any, reporter: Reporter
) -> tuple[str | None, CheckpointMirror | None]:
    """The checkpoint to resume from (torn ones removed; with an S3 store, the mirrored ones downloaded
    when newer than this disk's), and the mirror that keeps copying new ones (None: a folder store)."""
    last, torn = last_complete_checkpoint(out / "checkpoints")
    for path in torn:
        reporter.info(f"removing {path}: left half-written by a run killed while saving it")
        shutil.rmtree(path)
    mirror = CheckpointMirror.for_job(
        artifact_store(job.artifacts_url), job.author, job.stage, job.adapter_version
    )
    if mirror is not None:
        if max(mirror.synced(), default=-1) > step_of(last):  # a retry on a machine that lost the disk
            restored = mirror.restore(out / "checkpoints")
            reporter.info(f"restored {', '.join(p.name for p in restored)} from {mirror.where()}")
            last = str(restored[-1])
        trainer.add_callback(mirror_callback(mirror, reporter.info))
    if last:
        reporter.info(f"resuming from {last}")
    return last, mirror


def _validation_report(
    trainer: Any, initial: dict[str, float], examples: int, documents: Any, reporter: Reporter
) -> ValidationReport:
    """The validation curve: step 0 (measured before training) and every evaluation the trainer logged."""
    points = {0: eval_point(0, initial)}  # train() starts a new state: step 0 is not in its history
    points |= {
        int(e["step"]): eval_point(int(e["step"]), e)
        for e in trainer.state.log_history
        if "eval_loss" in e and int(e["step"]) > 0
    }
    report = ValidationReport(examples, documents, [points[k] for k in sorted(points)])
    summary = report.as_dict()
    reporter.info(
        f"validation: best loss {summary['best_loss']} at step {summary['best_step']} (step 0: "
        f"{summary['initial_loss']}); {'improved' if summary['improved'] else 'NOT improved'}"
    )
    return report


def _publish(job: TrainJob, adapter: Path, model_dir: Path, metrics: dict[str, Any]) -> str:
    """Publish the trained adapter under the job's version (not promoted: its checks decide); its id."""
    from llm_twin_assets.training.adapters import publish_adapter

    published = publish_adapter(
        artifact_store(job.artifacts_url),
        job.author,
        job.stage,
        job.adapter_version,
        adapter,
        {
            "base_model": job.base_label or str(model_dir),
            "dataset_version": job.dataset_version,
            "profile": job.profile,
            "parent_adapter": job.parent_adapter,
            "metrics": {k: v for k, v in metrics.items() if k != "hyper"},
            "hyper": metrics["hyper"],
        },
    )
    return published.version


def main(stage: str, argv: list[str] | None = None) -> int:
    """The entry point: exit 0 when trained, 2 for a problem named in one line (also in train.log)."""
    from llm_twin_assets.training.config import job_from_dict, load_job
    from llm_twin_assets.training.reporting import entry_point

    def run(job: TrainJob, pipes: Any) -> None:
        if job.stage != stage:
            raise TrainingConfigError(f"stage is {job.stage!r}; this entry point trains {stage!r}")
        train(job, pipes)

    return entry_point(
        f"python -m llm_twin_assets.training.{stage}",
        argv,
        load_job,
        lambda extra: job_from_dict(extra, "the Pipes extra 'job'"),
        lambda job: Path(job.output_dir) / "train.log",
        run,
    )
