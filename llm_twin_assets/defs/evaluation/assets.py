"""dpo_adapter -> twin_evaluation: measure the twin against its base model on held-out text, and gate it.

``twin_evaluation`` builds the job here (held-out examples, their retrieved context, the retrieval's own
quality) and runs the models out of process on the training launcher (``gpu`` pool), then records the
metrics in PostgreSQL. An evaluation of the same model versions, test data and metric code is reused.
Its blocking check ``twin_beats_base`` is the quality gate: when it fails, ``twin_release`` (defs/release)
does not run in that run, and on its own it refuses to release an evaluation that failed.
"""

import time
import warnings
from typing import Any

import dagster as dg

from llm_twin_assets.defs.automation import follows_changed_inputs
from llm_twin_assets.defs.build_settings import build_settings, with_author_settings
from llm_twin_assets.defs.failures import clear_failures
from llm_twin_assets.defs.features.assets import chunk_embeddings
from llm_twin_assets.defs.gpu import GPU_STEP_TAGS
from llm_twin_assets.defs.partitions import authors_partitions
from llm_twin_assets.defs.resources import ArtifactsResource, ModelsResource, StoreResource, TrainerResource
from llm_twin_assets.defs.training.assets import dpo_adapter

warnings.filterwarnings("ignore", message="Specifying a partitions_def on an AssetCheckSpec")


class EvaluationConfig(dg.Config):
    """What to evaluate on, how to generate, and the gate's margins (defaults: README, "Evaluation")."""

    max_examples: int | None = None
    """At most this many held-out examples (the first by id); unset = the whole test split."""
    max_new_tokens: int = 128
    batch_size: int = 8
    rag_k: int = 3
    seed: int = 0
    perplexity_margin: float = 0.05
    likeness_margin: float = 0.05
    min_classifier_auc: float = 0.75
    judge_backend: str | None = None
    """Unset: no LLM judge. ``local`` or ``openai``: judge every answer through that teacher backend."""
    judge_model: str = ""
    judge_base_url: str | None = None
    judge_api_key_env: str | None = None


def _options(config: EvaluationConfig) -> Any:
    from llm_twin_assets.evaluation.job import JudgeSettings
    from llm_twin_assets.evaluation.prepare import JobOptions

    judge = None
    if config.judge_backend:
        judge = JudgeSettings(
            backend=config.judge_backend,
            model=config.judge_model,
            base_url=config.judge_base_url,
            api_key_env=config.judge_api_key_env,
        )
    return JobOptions(
        max_examples=config.max_examples,
        max_new_tokens=config.max_new_tokens,
        batch_size=config.batch_size,
        rag_k=config.rag_k,
        seed=config.seed,
        judge=judge,
    )


@dg.asset(
    partitions_def=authors_partitions,
    deps=[dpo_adapter, chunk_embeddings, build_settings],
    group_name="evaluation",
    kinds={"pytorch", "scikitlearn"},
    pool="gpu",
    op_tags=GPU_STEP_TAGS,
    retry_policy=dg.RetryPolicy(max_retries=1),
    check_specs=[
        dg.AssetCheckSpec(
            "twin_beats_base",
            asset="twin_evaluation",
            blocking=True,
            partitions_def=authors_partitions,
            description="The quality gate: on held-out text the twin beats the base model on perplexity and "
            "author-likeness by the configured margins, with a classifier that can tell the voices apart.",
        )
    ],
    automation_condition=follows_changed_inputs(),
    description="The base model, the SFT adapter and the twin, with and without retrieval, on the held-out "
    "test split: perplexity, author-likeness, style distance, content similarity; retrieval hit@k.",
)
def twin_evaluation(
    context: dg.AssetExecutionContext,
    config: EvaluationConfig,
    store: StoreResource,
    models: ModelsResource,
    artifacts: ArtifactsResource,
    trainer: TrainerResource,
) -> dg.MaterializeResult:
    from llm_twin_assets.evaluation.gate import GateSettings, decide
    from llm_twin_assets.evaluation.prepare import build_job
    from llm_twin_assets.evaluation.run import examples_key, read_examples, stored_results
    from llm_twin_assets.retrieval import search
    from llm_twin_assets.settings import get_settings
    from llm_twin_assets.store import evaluations

    author = context.partition_key
    start = time.perf_counter()
    with clear_failures():
        config, build_meta = with_author_settings(context, config, store.database())
        stored = store.settings()
        model_settings = models.settings()
        settings = get_settings(
            database_url=stored.database_url,
            home=str(stored.home),
            embedding_model=model_settings.embedding_model,
            device=model_settings.device,
        )
        artifact_store = artifacts.store()
        job, retrieval = build_job(
            artifact_store,
            lambda query, slug, k: search(query, author=slug, k=k, settings=settings),
            author,
            artifacts_url=artifacts.trainer_url(),
            work_root=str(settings.home / "evaluation"),
            embedding_model=settings.embedding_model,
            options=_options(config),
            device=settings.device,
            threads=settings.torch_threads,
        )
        results = stored_results(artifact_store, author, job.evaluation_id)
        reused = results is not None
        if reused:
            context.log.info(f"evaluation {job.evaluation_id} was already made on these inputs: reusing it")
        else:
            context.log.info(f"evaluating {author}'s twin on {len(job.examples)} held-out examples")
            trainer.launch(context, job)
            results = stored_results(artifact_store, author, job.evaluation_id)
        if results is None:
            raise dg.Failure(f"evaluation {job.evaluation_id} finished without writing its results")
        results["models"]["retrieval"] = {"version": settings.embedding_model, "metrics": retrieval}
        decision = decide(
            results,
            GateSettings(config.perplexity_margin, config.likeness_margin, config.min_classifier_auc),
        )
        record = evaluations.EvaluationRecord(
            id=job.evaluation_id,
            author=author,
            base_model=job.base_model,
            sft_version=job.sft_version,
            dpo_version=job.dpo_version,
            instruct_version=job.instruct_version,
            preference_version=job.preference_version,
            examples=len(job.examples),
            examples_key=examples_key(author, job.evaluation_id),
            settings={
                **_options(config).__dict__,
                "judge": config.judge_backend,
                "embedding_model": job.embedding_model,
                "timings": results.get("timings", {}),
                "device": results.get("device"),
            },
            classifier=results["classifier"],
            gate=decision.as_dict(),
            gate_passed=decision.passed,
        )
        with store.database().connect() as conn:
            evaluations.save(conn, record, results["models"])
        frame = read_examples(artifact_store, author, job.evaluation_id)
    context.log.info(f"quality gate {decision.summary()}")
    metadata = _metadata(results, decision, frame, reused, time.perf_counter() - start)
    metadata["uri"] = artifact_store.uri(examples_key(author, job.evaluation_id))
    metadata.update(build_meta)
    check = dg.AssetCheckResult(
        check_name="twin_beats_base",
        asset_key="twin_evaluation",
        passed=decision.passed,
        description=decision.summary(),
        metadata={
            "evaluation_id": job.evaluation_id,
            **{f"{name}_passed": bool(c["passed"]) for name, c in decision.checks.items()},
            **{f"{name}_missed_by": float(c.get("missed_by", 0.0)) for name, c in decision.checks.items()},
            "reasons": dg.MetadataValue.json(decision.reasons),
            "margins": dg.MetadataValue.json(decision.settings),
        },
    )
    return dg.MaterializeResult(
        metadata=metadata,
        data_version=dg.DataVersion(f"{job.evaluation_id}-{'pass' if decision.passed else 'fail'}"),
        check_results=[check],
    )


def _metadata(
    results: dict[str, Any], decision: Any, frame: Any, reused: bool, seconds: float
) -> dict[str, Any]:
    from llm_twin_assets.charts import bar_chart_markdown
    from llm_twin_assets.evaluation.report import examples_preview, markdown_table

    models = results["models"]
    chart_models = [m for m in models if m not in ("author", "retrieval")]
    groups = {
        metric: {
            m: models[m]["metrics"][metric]
            for m in chart_models
            if models[m]["metrics"].get(metric) is not None
        }
        for metric in ("perplexity", "author_likeness", "style_distance", "content_similarity")
    }
    auc = results["classifier"].get("held_out_auc")
    return {
        "evaluation_id": results["evaluation_id"],
        "reused": reused,
        "gate": decision.summary(),
        "gate_passed": decision.passed,
        "examples": results["examples"],
        "classifier_auc": float(auc) if auc is not None else "not measurable",
        "base_perplexity": float(models["base"]["metrics"]["perplexity"]),
        "twin_perplexity": float(models["twin"]["metrics"]["perplexity"]),
        "base_author_likeness": float(models["base"]["metrics"]["author_likeness"]),
        "twin_author_likeness": float(models["twin"]["metrics"]["author_likeness"]),
        "comparison": dg.MetadataValue.md(markdown_table(models)),
        "chart": dg.MetadataValue.md(bar_chart_markdown(groups, "held-out evaluation")),
        "examples_preview": dg.MetadataValue.md(examples_preview(frame)),
        "wall_seconds": round(seconds, 2),
    }
