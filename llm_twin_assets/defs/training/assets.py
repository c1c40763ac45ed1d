"""sft_adapter -> dpo_adapter: LoRA fine-tuning launched out of process through Dagster Pipes.

The code location never imports torch: each asset writes a job file and runs the trainer entry point
as a subprocess (``PipesSubprocessClient``; on AWS an ECS task, see README). Only paths and keys travel
as extras. Both use the ``gpu`` pool, so one machine never trains twice at once. A retry of a killed or
failed run resumes from the trainer's last checkpoint: the work folder is named by the adapter version.
"""

import time
import warnings
from dataclasses import replace
from typing import Any

import dagster as dg

from llm_twin_assets.defs.authoring import author_asset
from llm_twin_assets.defs.automation import follows_changed_inputs
from llm_twin_assets.defs.build_settings import build_settings, with_author_settings
from llm_twin_assets.defs.check_results import check_result
from llm_twin_assets.defs.datasets.assets import instruct_dataset, preference_dataset
from llm_twin_assets.defs.gpu import GPU_STEP_TAGS
from llm_twin_assets.defs.partitions import authors_partitions
from llm_twin_assets.defs.resources import ArtifactsResource, ModelsResource, StoreResource, TrainerResource
from llm_twin_assets.verdicts import Verdict

# Partitioned asset checks are marked preview in Dagster 1.13; we rely on them knowingly.
warnings.filterwarnings("ignore", message="Specifying a partitions_def on an AssetCheckSpec")


class TrainingConfig(dg.Config):
    """A profile (tiny, demo or full) and optional overrides of its settings."""

    profile: str = "demo"
    """tiny: the tiny random Llama (tests); demo: the bundled SmolLM2 on a CPU; full: a GPU in bf16."""
    max_steps: int | None = None
    epochs: float | None = None
    learning_rate: float | None = None
    lora_r: int | None = None
    lora_alpha: int | None = None
    target_modules: list[str] | None = None
    batch_size: int | None = None
    max_length: int | None = None
    validation_ratio: float | None = None
    """Share of the training documents held out to pick the best checkpoint (0 = none)."""
    early_stopping_patience: int | None = None
    """Stop after this many validation checks without improvement (0 = never)."""
    rpo_alpha: float | None = None
    """DPO: weight of the NLL term on the author's answers (RPO; 0 = plain DPO)."""
    pretrain_epochs: float | None = None
    """SFT: epochs of continued pre-training on the author's own text before SFT (0 = none)."""
    pretrain_learning_rate: float | None = None
    """SFT: the continued pre-training's learning rate (0 = the SFT learning rate)."""

    def overrides(self) -> dict[str, Any]:
        return {k: v for k, v in self.model_dump().items() if k != "profile" and v is not None}


def _train(
    context: dg.AssetExecutionContext,
    config: TrainingConfig,
    stage: str,
    store_resource: StoreResource,
    models: ModelsResource,
    artifacts: ArtifactsResource,
    trainer: TrainerResource,
) -> dg.MaterializeResult:
    from llm_twin_assets.charts import line_chart_markdown
    from llm_twin_assets.datasets.versions import latest
    from llm_twin_assets.training import adapters
    from llm_twin_assets.training.config import TrainJob, hyper_for

    author = context.partition_key
    start = time.perf_counter()
    config, build_meta = with_author_settings(context, config, store_resource.database())
    settings = models.settings()
    store = artifacts.store()
    dataset = latest(store, author, "instruct" if stage == "sft" else "preference")
    base_spec, base_label = trainer.base_model(config.profile, models)
    parent = adapters.latest_adapter(store, author, "sft") if stage == "dpo" else None
    job = TrainJob(
        stage=stage,
        profile=config.profile,
        author=author,
        base_model=base_spec,
        artifacts_url=artifacts.trainer_url(),
        dataset_version=dataset.version,
        output_dir="",
        device=settings.device,
        threads=settings.torch_threads,
        base_label=base_label,
        parent_adapter=parent.version if parent else None,
        hyper=hyper_for(stage, config.profile, config.overrides()),
    )
    version = job.version(base_label, job.parent_adapter)
    job = replace(
        job,
        adapter_version=version,
        output_dir=str(settings.home / "training" / author / stage / version),
    )
    reused = adapters.exists(store, author, stage, version)
    if reused:
        context.log.info(f"{stage} adapter {version} was already trained from these inputs: not retraining")
    else:
        trainer.launch(context, job)
    published = adapters.get_adapter(store, author, stage, version)
    results, data_version = _check_and_promote(store, published)
    metrics = dict(published.manifest.get("metrics", {}))
    metadata = _metadata(published, store, metrics, reused, time.perf_counter() - start)
    metadata["promoted"] = data_version.value == version
    if metrics.get("validation"):
        metadata["validation"] = dg.MetadataValue.json(
            {k: v for k, v in metrics["validation"].items() if k != "curve"}
        )
    metadata.update(build_meta)
    losses = metrics.get("losses") or []
    if losses:
        chart = line_chart_markdown(
            [p["step"] for p in losses], [p["loss"] for p in losses], f"{stage} training loss", "step", "loss"
        )
        metadata["loss_curve"] = dg.MetadataValue.md(chart)
    return dg.MaterializeResult(metadata=metadata, data_version=data_version, check_results=results)


def _check_specs(stage: str) -> list[dg.AssetCheckSpec]:
    specs = [
        dg.AssetCheckSpec(
            f"{stage}_adapter_complete",
            asset=f"{stage}_adapter",
            blocking=True,
            partitions_def=authors_partitions,
            description="Every file of the adapter is in the artifact store and training ended with a finite loss.",
        )
    ]
    if stage == "dpo":
        specs.append(
            dg.AssetCheckSpec(
                "dpo_adapter_validation",
                asset="dpo_adapter",
                blocking=True,
                partitions_def=authors_partitions,
                description="With a validation split, DPO lowered the validation loss below where it started "
                "(a DPO that made validation worse is not promoted).",
            )
        )
        specs.append(
            dg.AssetCheckSpec(
                "dpo_adapter_lineage",
                asset="dpo_adapter",
                blocking=True,
                partitions_def=authors_partitions,
                description="The DPO adapter names its parent SFT adapter, which exists, on the same base model.",
            )
        )
    return specs


def _check_and_promote(store: Any, adapter: Any) -> tuple[list[dg.AssetCheckResult], dg.DataVersion]:
    """The blocking checks on the version this run trained (or reused); ``latest`` moves only when they
    pass, and the data version reported is the one serving."""
    from llm_twin_assets.training import adapters

    verdicts = {f"{adapter.stage}_adapter_complete": adapters.completeness(store, adapter)}
    if adapter.stage == "dpo":
        verdicts["dpo_adapter_lineage"] = adapters.lineage(store, adapter)
        verdicts["dpo_adapter_validation"] = _validation_verdict(adapter)
    results = [check_result(verdict, name, f"{adapter.stage}_adapter") for name, verdict in verdicts.items()]
    return results, dg.DataVersion(adapters.promote_if_passed(store, adapter, all(r.passed for r in results)))


def _validation_verdict(adapter: Any) -> Verdict:
    """Passed unless a validation split showed the stage never beat its step-0 loss."""
    validation = dict(adapter.manifest.get("metrics", {}).get("validation") or {})
    if "improved" not in validation:
        return Verdict(True, {"note": f"no validation split: {validation.get('reason', 'not measured')}"})
    shown = {k: validation.get(k) for k in ("initial_loss", "best_loss", "best_step")}
    return Verdict(bool(validation["improved"]), {k: v for k, v in shown.items() if v is not None})


def _metadata(
    published: Any, store: Any, metrics: dict[str, Any], reused: bool, seconds: float
) -> dict[str, Any]:
    manifest = published.manifest
    shown = (
        "steps",
        "final_loss",
        "tokens",
        "tokens_per_s",
        "peak_memory_mb",
        "train_seconds",
        "examples",
        "examples_over_max_length",
        "device",
        "gradient_checkpointing",
        "activation_estimate_mb",
    )
    return {
        "version": published.version,
        "uri": store.uri(f"adapters/{published.author}/{published.stage}/{published.version}/manifest.json"),
        "base_model": manifest.get("base_model"),
        "dataset_version": manifest.get("dataset_version"),
        "parent_adapter": manifest.get("parent_adapter") or "",
        "profile": manifest.get("profile"),
        "resumed_from": metrics.get("resumed_from") or "",
        "reused": reused,
        "wall_seconds": round(seconds, 2),
        **{k: metrics[k] for k in shown if k in metrics},
        **{
            f"validation_{k}": v
            for k, v in (metrics.get("validation") or {}).items()
            if k in ("initial_loss", "best_loss", "improved", "kept") and v is not None
        },
    }


@author_asset(
    deps=[instruct_dataset, build_settings],
    group_name="training",
    kinds={"pytorch", "peft"},
    pool="gpu",
    op_tags=GPU_STEP_TAGS,
    retry_policy=dg.RetryPolicy(max_retries=1),
    check_specs=_check_specs("sft"),
    automation_condition=follows_changed_inputs(),
    description="LoRA SFT of the base model on the author's instruct dataset (TRL SFTTrainer, via Pipes).",
)
def sft_adapter(
    context: dg.AssetExecutionContext,
    config: TrainingConfig,
    store: StoreResource,
    models: ModelsResource,
    artifacts: ArtifactsResource,
    trainer: TrainerResource,
) -> dg.MaterializeResult:
    return _train(context, config, "sft", store, models, artifacts, trainer)


@author_asset(
    deps=[sft_adapter, preference_dataset, build_settings],
    group_name="training",
    kinds={"pytorch", "peft"},
    pool="gpu",
    op_tags=GPU_STEP_TAGS,
    retry_policy=dg.RetryPolicy(max_retries=1),
    check_specs=_check_specs("dpo"),
    automation_condition=follows_changed_inputs(),
    description="LoRA DPO on the preference dataset, from the SFT adapter merged into the base (via Pipes).",
)
def dpo_adapter(
    context: dg.AssetExecutionContext,
    config: TrainingConfig,
    store: StoreResource,
    models: ModelsResource,
    artifacts: ArtifactsResource,
    trainer: TrainerResource,
) -> dg.MaterializeResult:
    return _train(context, config, "dpo", store, models, artifacts, trainer)
