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

from llm_twin_assets.defs.authoring import author_asset
from llm_twin_assets.defs.automation import follows_changed_inputs
from llm_twin_assets.defs.build_settings import build_settings, with_author_settings
from llm_twin_assets.defs.check_results import check_result
from llm_twin_assets.defs.features.assets import chunk_embeddings
from llm_twin_assets.defs.gpu import GPU_STEP_TAGS
from llm_twin_assets.defs.partitions import authors_partitions
from llm_twin_assets.defs.resources import ArtifactsResource, ModelsResource, StoreResource, TrainerResource
from llm_twin_assets.defs.training.assets import dpo_adapter

warnings.filterwarnings("ignore", message="Specifying a partitions_def on an AssetCheckSpec")


class EvaluationConfig(dg.Config):
    """What to evaluate on, how to generate, and the gate's margins (defaults: README, "Evaluation").
    Every gate check is decided on a bootstrap 95% interval over the held-out examples."""

    max_examples: int | None = None
    """At most this many held-out examples (the first by id); unset = the whole test split."""
    max_new_tokens: int | None = None
    """A fixed generation budget per answer; unset = ``budget_factor`` x the author's 90th-percentile
    held-out answer length in tokens, within [``budget_min_tokens``, ``budget_max_tokens``]: ``finished``
    is judged against the author's own lengths."""
    budget_factor: float = 2.0
    """The derived budget is this many times the author's p90 answer length (tokens)."""
    budget_min_tokens: int = 32
    """The derived budget is at least this many tokens."""
    budget_max_tokens: int = 512
    """The derived budget is at most this many tokens."""
    batch_size: int = 8
    rag_k: int = 3
    seed: int = 0
    """Seeds generation, the classifiers and the bootstrap."""
    bootstrap_resamples: int = 1000
    """Resamples of the held-out examples for each metric's 95% interval."""
    other_writers: int = 200
    """At most this many passages of other authors in the store for likeness against other writers
    (with the Python documentation's prose, which ships with Python); 0 = the reference text only."""
    perplexity_margin: float = 0.05
    """Gate: the twin's perplexity gain over the base (1 - twin/base) at least this, at the interval's
    lower end."""
    likeness_margin: float = 0.05
    """Gate: twin - base mean P(author), against the base model's voice and against other writers, at
    least this at the interval's lower end."""
    min_classifier_auc: float = 0.75
    """Gate: a classifier whose grouped cross-validated AUC is below this is not believed (a failed check)."""
    min_examples: int = 10
    """Gate: fewer held-out examples fail (intervals too wide to decide); the evaluation says why and how
    to get more."""
    style_margin: float = 0.0
    """Gate: twin - base style distance at most minus this at the interval's upper end (0: the twin's style
    is shown to be no worse than the base's)."""
    max_style_distance: float = 1.0
    """Gate: the twin's style distance (Burrows' Delta) to the author's held-out answers at most this, at
    the interval's upper end."""
    max_repeat_excess: float = 0.05
    """Gate: the twin's repeated word 4-gram share at most the author's + this (upper end): no loops."""
    min_finished: float = 0.7
    """Gate: the twin's share of answers that end within the budget at least this (lower end)."""
    no_repeat_ngram_size: int = 3
    """Decoding: no n-gram of this many tokens twice in one answer (0 = off): the first candidate of the
    choice on validation, or (``choose_decoding`` off) what every model generates with. The rules used are
    stored with the evaluation and the release it passes is served with them (greedy answers of a 135M
    twin repeated 62% of their word 4-grams; with 3, none)."""
    repetition_penalty: float = 1.0
    """Decoding: penalty on tokens already in the answer (1 = off), evaluated and served alike."""
    choose_decoding: bool = True
    """Choose the decoding rules with the twin on the validation documents its training held out (never
    the test split), among the configured rules and a small grid (``evaluation.decoding_choice``): of the
    candidates that neither loop (``max_repeat_excess``) nor run out of budget (``min_finished``), the one
    closest to the author's style."""
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
        budget_factor=config.budget_factor,
        budget_min_tokens=config.budget_min_tokens,
        budget_max_tokens=config.budget_max_tokens,
        batch_size=config.batch_size,
        rag_k=config.rag_k,
        seed=config.seed,
        resamples=config.bootstrap_resamples,
        min_examples=config.min_examples,
        judge=judge,
        decoding={
            "no_repeat_ngram_size": config.no_repeat_ngram_size,
            "repetition_penalty": config.repetition_penalty,
        },
        choose_decoding=config.choose_decoding,
        max_repeat_excess=config.max_repeat_excess,
        min_finished=config.min_finished,
    )


def _gate_settings(config: EvaluationConfig) -> Any:
    from llm_twin_assets.evaluation.gate import GateSettings

    return GateSettings(
        perplexity_margin=config.perplexity_margin,
        likeness_margin=config.likeness_margin,
        min_classifier_auc=config.min_classifier_auc,
        min_examples=config.min_examples,
        style_margin=config.style_margin,
        max_style_distance=config.max_style_distance,
        max_repeat_excess=config.max_repeat_excess,
        min_finished=config.min_finished,
    )


@author_asset(
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
            description="The quality gate, decided on bootstrap 95% intervals over at least 10 held-out "
            "examples: the twin beats the base model on perplexity and author-likeness (against the base and "
            "against other writers) by the configured margins, with classifiers that can tell the voices "
            "apart; its style is no worse than the base's and close to the author's; it does not loop and "
            "finishes its answers.",
        )
    ],
    automation_condition=follows_changed_inputs(),
    description="The base model, the SFT adapter and the twin, with and without retrieval, on the held-out "
    "test split: perplexity, author-likeness (against the base and other writers), style distance, content "
    "similarity, degeneration (repeats, distinct-n, markup echoes, length, finished), each with a bootstrap "
    "95% interval; retrieval hit@k.",
)
def twin_evaluation(
    context: dg.AssetExecutionContext,
    config: EvaluationConfig,
    store: StoreResource,
    models: ModelsResource,
    artifacts: ArtifactsResource,
    trainer: TrainerResource,
) -> dg.MaterializeResult:
    from llm_twin_assets.evaluation.job import Writing
    from llm_twin_assets.evaluation.prepare import build_job
    from llm_twin_assets.evaluation.recording import decide_and_record, gate_verdict
    from llm_twin_assets.evaluation.run import examples_key, read_examples, stored_results
    from llm_twin_assets.retrieval import search
    from llm_twin_assets.store import evaluations

    author = context.partition_key
    start = time.perf_counter()
    config, build_meta = with_author_settings(context, config, store.database())
    settings = _search_settings(store, models)
    artifact_store = artifacts.store()
    with store.database().connect() as conn:
        others = [Writing(*row) for row in evaluations.other_writers(conn, author, config.other_writers)]
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
        other_writers=others,
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
    options = {**_options(config).__dict__, "judge": config.judge_backend}
    decision = decide_and_record(
        store.database(), job, results, _gate_settings(config), options=options, other_writers=len(others)
    )
    context.log.info(f"quality gate {decision.summary()}")
    frame = read_examples(artifact_store, author, job.evaluation_id)
    metadata = _metadata(results, decision, frame, reused, time.perf_counter() - start)
    metadata["uri"] = artifact_store.uri(examples_key(author, job.evaluation_id))
    metadata.update(build_meta)
    check = check_result(gate_verdict(decision, job.evaluation_id), "twin_beats_base", "twin_evaluation")
    return dg.MaterializeResult(
        metadata=metadata,
        data_version=dg.DataVersion(f"{job.evaluation_id}-{'pass' if decision.passed else 'fail'}"),
        check_results=[check],
    )


def _search_settings(store: StoreResource, models: ModelsResource) -> Any:
    """The settings retrieval runs with here: the store's database and home, the models' embedder."""
    from llm_twin_assets.settings import get_settings

    stored, model_settings = store.settings(), models.settings()
    return get_settings(
        database_url=stored.database_url,
        home=str(stored.home),
        embedding_model=model_settings.embedding_model,
        device=model_settings.device,
    )


def _metadata(
    results: dict[str, Any], decision: Any, frame: Any, reused: bool, seconds: float
) -> dict[str, Any]:
    from llm_twin_assets.charts import bar_chart_markdown
    from llm_twin_assets.evaluation.metrics import REGISTRY
    from llm_twin_assets.evaluation.report import examples_preview, markdown_table, rag_effect_line

    models = results["models"]
    chart_models = [m for m in models if m not in ("author", "retrieval")]
    groups = {
        metric: {
            m: models[m]["metrics"][metric]
            for m in chart_models
            if models[m]["metrics"].get(metric) is not None
        }
        for metric in (m.name for m in REGISTRY if m.charted)
    }
    auc = results["classifier"].get("held_out_auc")
    writer_auc = results.get("writer_classifier", {}).get("held_out_auc")

    def interval(model: str, metric: str) -> Any:
        found = models[model].get("intervals", {}).get(metric)
        return dg.MetadataValue.json(found) if found else "no interval"

    return {
        "evaluation_id": results["evaluation_id"],
        "reused": reused,
        "gate": decision.summary(),
        "gate_passed": decision.passed,
        "examples": results["examples"],
        "held_out": results.get("held_out", {}).get("note", ""),
        "generation_budget": dg.MetadataValue.json(results.get("generation", {})),
        "decoding": dg.MetadataValue.json(results.get("decoding", {})),
        "rag_effect": rag_effect_line(models) or "not measured",
        "classifier_auc": float(auc) if auc is not None else "not measurable",
        "classifier_method": results["classifier"].get("method", ""),
        "writer_classifier_auc": float(writer_auc) if writer_auc is not None else "not measurable",
        "base_perplexity": float(models["base"]["metrics"]["perplexity"]),
        "twin_perplexity": float(models["twin"]["metrics"]["perplexity"]),
        "base_perplexity_interval": interval("base", "perplexity"),
        "base_author_likeness": float(models["base"]["metrics"]["author_likeness"]),
        "twin_author_likeness": float(models["twin"]["metrics"]["author_likeness"]),
        **{f"twin_{m.name}_interval": interval("twin", m.name) for m in REGISTRY if m.gated_by},
        "differences": dg.MetadataValue.json(results.get("differences", {})),
        "intervals": dg.MetadataValue.json(
            {m: e.get("intervals", {}) for m, e in models.items() if m != "retrieval"}
        ),
        "comparison": dg.MetadataValue.md(markdown_table(models, results.get("differences"))),
        "chart": dg.MetadataValue.md(bar_chart_markdown(groups, "held-out evaluation")),
        "examples_preview": dg.MetadataValue.md(examples_preview(frame)),
        "wall_seconds": round(seconds, 2),
    }
