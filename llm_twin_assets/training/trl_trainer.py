"""The TRL trainer for a job's stage: the base model (DPO: with its SFT parent merged; SFT after continued
pre-training: that adapter, trained on), LoRA, the profile's arguments, early stopping, one progress line
per logged step."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from llm_twin_assets.training.config import TrainingConfigError, TrainJob
from llm_twin_assets.training.inputs import artifact_store
from llm_twin_assets.training.reporting import Reporter


def check_targets(model: Any, targets: tuple[str, ...]) -> None:
    import torch

    linear = {
        name.rsplit(".", 1)[-1]
        for name, module in model.named_modules()
        if isinstance(module, torch.nn.Linear)
    }
    unknown = sorted(set(targets) - linear)
    if unknown:
        raise TrainingConfigError(
            f"target module(s) {unknown} are not linear layers of this model; it has {sorted(linear)}"
        )


def make_trainer(
    job: TrainJob,
    out: Path,
    device: str,
    model_dir: Path,
    start_from: Path | None,
    tokenizer: Any,
    rows: list[dict[str, Any]],
    validation_rows: list[dict[str, Any]],
    memory: Any,
    speedups: Any,
    losses: list[dict[str, float]],
    reporter: Reporter,
) -> Any:
    """The TRL trainer for the job's stage: the base model with a new LoRA adapter (DPO: on the base with
    the SFT adapter ``start_from`` merged; SFT after continued pre-training: that adapter, ``start_from``,
    trained on), the profile's arguments; one progress line per logged step (appended to ``losses``)."""
    from datasets import Dataset
    from peft import PeftModel
    from transformers.trainer_callback import PrinterCallback

    model = base_model(model_dir, job, speedups)
    if start_from is not None and job.stage == "dpo":
        model = PeftModel.from_pretrained(model, str(start_from)).merge_and_unload()
    elif start_from is not None:
        model = PeftModel.from_pretrained(model, str(start_from), is_trainable=True)
    data: dict[str, Any] = {
        "train_dataset": Dataset.from_list(rows),
        "eval_dataset": Dataset.from_list(validation_rows) if validation_rows else None,
        "processing_class": tokenizer,
        "peft_config": None if isinstance(model, PeftModel) else job.hyper.lora_config(),
        "callbacks": _callbacks(job, bool(validation_rows), losses, reporter),
    }
    common = training_arguments(job, out, device, memory, speedups, validating=bool(validation_rows))
    trainer = _stage_trainer(job, model, common, speedups, data)
    trainer.remove_callback(PrinterCallback)  # its raw log dicts; Progress reports one line per step
    return trainer


def _callbacks(
    job: TrainJob, validating: bool, losses: list[dict[str, float]], reporter: Reporter
) -> list[Any]:
    """One progress line per logged step (appended to ``losses``), and early stopping when validating."""
    from transformers.trainer_callback import TrainerCallback

    class Progress(TrainerCallback):
        def on_log(
            self, args: Any, state: Any, control: Any, logs: dict[str, float] | None = None, **kw: Any
        ) -> None:
            if logs and "loss" in logs:
                losses.append({"step": state.global_step, "loss": float(logs["loss"])})
                reporter.info(f"step {state.global_step}/{state.max_steps} loss {logs['loss']:.4f}")

    callbacks: list[Any] = [Progress()]
    if validating and job.hyper.early_stopping_patience > 0:
        from transformers import EarlyStoppingCallback

        callbacks.append(EarlyStoppingCallback(early_stopping_patience=job.hyper.early_stopping_patience))
    return callbacks


def _stage_trainer(
    job: TrainJob, model: Any, common: dict[str, Any], speedups: Any, data: dict[str, Any]
) -> Any:
    """TRL's trainer for the stage: SFT on the completions only, or DPO (with RPO's NLL term when set)."""
    hyper = job.hyper
    if job.stage == "sft":
        from trl import SFTConfig, SFTTrainer

        return SFTTrainer(
            model=model,
            args=SFTConfig(
                **common,
                completion_only_loss=True,
                padding_free=speedups.padding_free,
                train_sampling_strategy="group_by_length" if hyper.group_by_length else "random",
            ),
            **data,
        )
    from trl import DPOConfig, DPOTrainer

    # RPO: the DPO loss plus an NLL term on the author's answers, which keeps the policy from
    # collapsing when the pairs are few (TRL 1.x names it loss_type ["sigmoid", "sft"]).
    rpo: dict[str, Any] = (
        {"loss_type": ["sigmoid", "sft"], "loss_weights": [1.0, hyper.rpo_alpha]} if hyper.rpo_alpha else {}
    )
    return DPOTrainer(
        model=model,
        ref_model=None,  # the adapter-disabled model: the merged SFT policy
        args=DPOConfig(**common, beta=hyper.beta, **rpo),
        **data,
    )


def base_model(model_dir: Path, job: TrainJob, speedups: Any) -> Any:
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(
        model_dir,
        dtype=torch.bfloat16 if job.hyper.bf16 else torch.float32,
        attn_implementation=speedups.attention,
    )
    check_targets(model, job.hyper.target_modules)
    return model


def continued_pretraining(
    job: TrainJob,
    out: Path,
    device: str,
    model_dir: Path,
    tokenizer: Any,
    validation_documents: set[str],
    memory: Any,
    speedups: Any,
    reporter: Reporter,
) -> tuple[Path, dict[str, Any]]:
    """The adapter after continued pre-training (``training.pretraining``), and what it measured."""
    from llm_twin_assets.training.pretraining import corpus_rows, pretrain

    rows, source = corpus_rows(artifact_store(job.artifacts_url), job, validation_documents)
    arguments = training_arguments(job, out, device, memory, speedups, validating=False)
    return pretrain(
        lambda: base_model(model_dir, job, speedups), tokenizer, rows, source, job, out, arguments, reporter
    )


def training_arguments(
    job: TrainJob, out: Path, device: str, memory: Any, speedups: Any, *, validating: bool
) -> dict[str, Any]:
    """The arguments SFTConfig and DPOConfig share: the profile's hyper-parameters, checkpoints every
    ``save_steps`` (two kept), and with a validation split an evaluation at each save, the best kept."""
    hyper = job.hyper
    common: dict[str, Any] = {
        "output_dir": str(out / "checkpoints"),
        "learning_rate": hyper.learning_rate,
        "num_train_epochs": hyper.epochs,
        "max_steps": hyper.max_steps,
        "per_device_train_batch_size": hyper.batch_size,
        "gradient_accumulation_steps": hyper.gradient_accumulation,
        "max_length": hyper.max_length,
        "bf16": hyper.bf16,
        "use_cpu": device == "cpu",
        "gradient_checkpointing": memory.checkpointing,
        "logging_steps": hyper.logging_steps,
        "save_steps": hyper.save_steps,
        "save_total_limit": 2,
        "seed": hyper.seed,
        "report_to": "none",
        "include_num_input_tokens_seen": "non_padding",
        "dataloader_num_workers": 0,
        "disable_tqdm": True,
        "use_liger_kernel": speedups.liger,
    }
    if validating:
        common.update(
            eval_strategy="steps",
            eval_steps=hyper.save_steps,
            per_device_eval_batch_size=hyper.batch_size,
            load_best_model_at_end=True,
            metric_for_best_model="eval_loss",
            greater_is_better=False,
        )
    return common
