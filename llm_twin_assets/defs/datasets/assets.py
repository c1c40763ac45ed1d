"""instruct_dataset and preference_dataset: versioned Parquet in the artifact store, per author."""

import time
from typing import TYPE_CHECKING, Any

import dagster as dg
import polars as pl

from llm_twin_assets.defs.authoring import author_asset
from llm_twin_assets.defs.automation import follows_changed_inputs
from llm_twin_assets.defs.build_settings import build_settings, with_author_settings
from llm_twin_assets.defs.datasets import checks
from llm_twin_assets.defs.features.assets import cleaned_documents
from llm_twin_assets.defs.resources import ArtifactsResource, ModelsResource, StoreResource, TeacherResource
from llm_twin_assets.versioned import DATASETS

if TYPE_CHECKING:
    from llm_twin_assets.datasets.building import InstructOptions


class InstructDatasetConfig(dg.Config):
    """How passages are cut and instructions written. Defaults suit a CPU and the bundled teacher."""

    window_words: int = 160
    """Prose passages pack whole paragraphs up to about this many words."""
    min_answer_words: int = 12
    """Passages shorter than this are not used as answers."""
    max_passages: int | None = None
    """Use at most this many passages, spread over the documents (unset = all)."""
    style: str = "auto"
    """'instruction' (the teacher writes it), 'topic' (it names the topic; the instruction is framed from
    it) or 'auto': topic for the bundled 135M teacher, which cannot write instructions, else instruction."""
    max_new_tokens: int = 48
    min_examples: int = 10
    """Fail (naming how much more text is needed) below this many examples."""
    test_ratio: float = 0.1
    """Share of the author's documents held out for evaluation."""
    seed: int = 42
    general_mix_path: str | None = None
    """A Parquet/JSONL file of general instructions (instruction+answer) mixed into training."""
    general_mix_rows: int = 0
    """How many general rows to mix in (0 = none)."""
    teacher_backend: str | None = None
    """Who writes this author's instructions: ``local`` or ``openai``; unset = the ``teacher`` resource
    (``LLM_TWIN_TEACHER_BACKEND``)."""
    teacher_model: str | None = None
    """local: 'bundled', a path or a hub id; openai: the served model's name; unset = the resource's."""
    teacher_base_url: str | None = None
    """openai: the endpoint up to ``/v1``; unset = the resource's."""
    teacher_api_key_env: str | None = None
    """openai: the name of the variable that holds the key; unset = the resource's."""

    def teacher_resource(self, default: TeacherResource) -> TeacherResource:
        """The teacher resource with this config's choices over its own."""
        return TeacherResource(
            backend=self.teacher_backend or default.backend,
            model=self.teacher_model or default.model,
            base_url=self.teacher_base_url or default.base_url,
            api_key_env=self.teacher_api_key_env or default.api_key_env,
            device=default.device,
        )

    def instruct_options(self, teacher: TeacherResource) -> "InstructOptions":
        """The dataset builder's options from this config; style ``auto``: ``topic`` for the bundled local
        teacher (too small to write instructions), ``instruction`` for any other."""
        from llm_twin_assets.datasets.building import InstructOptions
        from llm_twin_assets.datasets.filters import InstructionRules
        from llm_twin_assets.datasets.passages import PassageOptions

        style = self.style
        if style == "auto":
            settings = teacher.settings()
            bundled = settings.teacher_backend == "local" and settings.teacher_model == "bundled"
            style = "topic" if bundled else "instruction"
        return InstructOptions(
            passages=PassageOptions(window_words=self.window_words, min_words=self.min_answer_words),
            rules=InstructionRules(),
            style=style,
            max_new_tokens=self.max_new_tokens,
            max_passages=self.max_passages,
            min_examples=self.min_examples,
            test_ratio=self.test_ratio,
            seed=self.seed,
        )


class PreferenceDatasetConfig(dg.Config):
    """How the base model's rejected answers are written and filtered."""

    max_new_tokens: int = 256
    """The base model's budget for a rejected answer (asked for at about the author's length); one that
    runs out of it is cut back to its last sentence end (when that keeps half of it), else asked again
    with twice the budget, then dropped: never cut mid-sentence."""
    max_similarity: float = 0.5
    """Drop a pair whose rejected answer shares this much (word-trigram Jaccard) with the chosen one."""
    min_examples: int = 8


def preview(frame: pl.DataFrame, columns: list[str], rows: int = 5, width: int = 140) -> str:
    def cell(value: object) -> str:
        text = " ".join(str(value).split()).replace("|", "\\|")
        return text if len(text) <= width else text[: width - 1] + "…"

    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += [
        "| " + " | ".join(cell(r[c]) for c in columns) + " |" for r in frame.head(rows).iter_rows(named=True)
    ]
    return "\n".join(lines)


def _publish_checked(
    store: Any,
    name: str,
    splits: dict[str, pl.DataFrame],
    author: str,
    details: dict[str, Any],
    extras: dict[str, pl.DataFrame] | None = None,
) -> tuple[Any, bool, list[dg.AssetCheckResult], dg.DataVersion]:
    """Write the version, check it, and promote it to ``latest`` only when every blocking check passed.

    Returns the version, whether it is new, the check results and the data version to report: the
    version itself once promoted; otherwise the one still serving, so nothing downstream follows a
    version that failed."""
    from llm_twin_assets.datasets.versions import promote_if_passed, publish

    version, new = publish(store, author, name, splits, details, extras)
    results = checks.evaluate(name, version, splits)
    serving = promote_if_passed(store, version, all(r.passed for r in results))
    return version, new, results, dg.DataVersion(serving)


def _result(
    version: Any,
    new: bool,
    store: Any,
    built: Any,
    seconds: float,
    extra: dict[str, Any],
    check_results: list[dg.AssetCheckResult],
    data_version: dg.DataVersion,
) -> dg.MaterializeResult:
    rows = version.rows
    return dg.MaterializeResult(
        data_version=data_version,
        check_results=check_results,
        metadata={
            "version": version.version,
            "new_version": new,
            "promoted": data_version.value == version.version,
            "uri": store.uri(DATASETS.manifest_key(version.author, version.name, version.version)),
            "rows_train": rows.get("train", 0),
            "rows_test": rows.get("test", 0),
            "considered": built.considered,
            "dropped": dg.MetadataValue.json(built.dropped),
            "seconds": round(seconds, 2),
            "examples_per_s": round(built.considered / seconds, 2) if seconds else 0.0,
            **extra,
        },
    )


@author_asset(
    deps=[cleaned_documents, build_settings],
    group_name="datasets",
    kinds={"polars", "parquet"},
    check_specs=checks.check_specs("instruct"),
    automation_condition=follows_changed_inputs(),
    description="Instruction -> the author's passage, verbatim (instruction back-generation), split by document.",
)
def instruct_dataset(
    context: dg.AssetExecutionContext,
    config: InstructDatasetConfig,
    store: StoreResource,
    teacher: TeacherResource,
    artifacts: ArtifactsResource,
) -> dg.MaterializeResult:
    from llm_twin_assets.datasets.building import read_general_mix
    from llm_twin_assets.datasets.stages import instruct_stage

    author = context.partition_key
    start = time.perf_counter()
    config, build_meta = with_author_settings(context, config, store.database())
    teacher = config.teacher_resource(teacher)
    options = config.instruct_options(teacher)
    style = options.style
    general = (
        read_general_mix(config.general_mix_path, config.general_mix_rows, config.seed)
        if config.general_mix_path and config.general_mix_rows > 0
        else None
    )
    stage = instruct_stage(
        store.database(),
        author,
        teacher.teacher(),
        options,
        general=general,
        log=context.log.info,
        progress=lambda done, total: context.log.debug(f"instructions {done}/{total}"),
    )
    built, target = stage.built, artifacts.store()
    details = {
        "teacher": stage.teacher,
        "style": style,
        "min_examples": config.min_examples,
        "dropped": built.dropped,
        "config": config.model_dump(),
    }
    corpus = {"corpus": built.corpus} if built.corpus is not None else None
    version, new, results, data_version = _publish_checked(
        target, "instruct", built.splits, author, details, corpus
    )
    preview_md = preview(built.splits["train"], ["kind", "instruction", "answer"])
    extra = {"teacher": stage.teacher, "style": style, **stage.facts, **_teacher_calls(stage), **build_meta}
    return _result(
        version,
        new,
        target,
        built,
        time.perf_counter() - start,
        {**extra, "preview": dg.MetadataValue.md(preview_md)},
        results,
        data_version,
    )


def _teacher_calls(stage: Any) -> dict[str, int]:
    return {"teacher_calls": stage.asked, "teacher_replies_reused": stage.reused}


@author_asset(
    deps=[instruct_dataset, build_settings],
    group_name="datasets",
    kinds={"polars", "parquet"},
    check_specs=checks.check_specs("preference"),
    automation_condition=follows_changed_inputs(),
    description="Prompt, chosen = the author's passage, rejected = the base model's own answer; splits kept.",
)
def preference_dataset(
    context: dg.AssetExecutionContext,
    config: PreferenceDatasetConfig,
    store: StoreResource,
    models: ModelsResource,
    artifacts: ArtifactsResource,
    teacher: TeacherResource,
) -> dg.MaterializeResult:
    from llm_twin_assets.datasets.building import PreferenceOptions
    from llm_twin_assets.datasets.stages import preference_stage
    from llm_twin_assets.datasets.versions import latest, read_splits
    from llm_twin_assets.llm import load_causal_lm

    author = context.partition_key
    start = time.perf_counter()
    config, build_meta = with_author_settings(context, config, store.database())
    target = artifacts.store()
    instruct = latest(target, author, "instruct")
    device = models.settings().resolved_device()
    ref = models.base_model_ref()
    lm = load_causal_lm(ref, device=device, dtype="bfloat16" if device == "cuda" else "float32")
    stage = preference_stage(
        store.database(),
        read_splits(target, instruct),
        lm,
        f"base:{ref.source}:{ref.name}",
        teacher.settings().teacher_batch_size,
        PreferenceOptions(
            max_new_tokens=config.max_new_tokens,
            max_similarity=config.max_similarity,
            min_examples=config.min_examples,
        ),
        progress=lambda done, total: context.log.debug(f"rejected answers {done}/{total}"),
    )
    built = stage.built
    details = {
        "rejected_by": stage.teacher,
        "instruct_version": instruct.version,
        "min_examples": config.min_examples,
        "dropped": built.dropped,
        "stats": built.stats,
        "config": config.model_dump(),
    }
    version, new, results, data_version = _publish_checked(
        target, "preference", built.splits, author, details
    )
    preview_md = preview(built.splits["train"], ["prompt", "chosen", "rejected"])
    extra = {"rejected_by": stage.teacher, "instruct_version": instruct.version, **_teacher_calls(stage)}
    return _result(
        version,
        new,
        target,
        built,
        time.perf_counter() - start,
        {**extra, **built.stats, **build_meta, "preview": dg.MetadataValue.md(preview_md)},
        results,
        data_version,
    )
