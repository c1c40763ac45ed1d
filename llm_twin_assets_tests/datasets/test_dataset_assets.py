"""instruct_dataset and preference_dataset through Dagster on the real store, with their checks."""

from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from llm_twin_assets.artifacts import LocalArtifactStore
from llm_twin_assets.datasets.loading import load_dataset
from llm_twin_assets.datasets.versions import latest, read_splits
from llm_twin_assets.defs.datasets.assets import instruct_dataset, preference_dataset
from llm_twin_assets.defs.features.assets import cleaned_documents
from llm_twin_assets.defs.resources import ArtifactsResource, ModelsResource, StoreResource, TeacherResource
from llm_twin_assets.defs.runner import materialize_for_author
from llm_twin_assets.store.database import Database
from llm_twin_assets_tests.store.helpers import add_author, raw_row, upsert_raw

TOPICS = [
    "why I keep choosing Postgres",
    "retries and backoff",
    "baking sourdough on weekends",
    "running a marathon",
    "testing with real databases",
    "vector search with HNSW",
    "writing idempotent jobs",
    "reading old code",
]


def essay(topic: str, n: int) -> str:
    return "\n\n".join(
        f"On {topic}, part {i}: I have changed my mind about this {i + 1} times, and each time the reason was a "
        f"measurement, not an argument. The lesson I keep relearning is to write it down, test it for real, "
        f"and only then tell anyone else that {topic} matters as much as I think it does."
        for i in range(n)
    )


def seed(db: Database, author: str, documents: int = 8, paragraphs: int = 3) -> None:
    with db.connect() as conn:
        add_author(conn, author)
        upsert_raw(
            conn,
            [
                raw_row(
                    author,
                    f"https://{author}.example/{i}",
                    essay(TOPICS[i % len(TOPICS)], paragraphs),
                    kind="article",
                )
                for i in range(documents)
            ],
        )


def run(
    author: str, artifacts: Path, teacher: TeacherResource, models: ModelsResource, config: dict[str, object]
) -> dg.ExecuteInProcessResult:
    return materialize_for_author(
        [cleaned_documents, instruct_dataset, preference_dataset],
        author,
        {
            "store": StoreResource(),
            "models": models,
            "teacher": teacher,
            "artifacts": ArtifactsResource(url=str(artifacts)),
        },
        run_config={"ops": config},
    )


def metadata(result: dg.ExecuteInProcessResult, asset: str) -> dict[str, object]:
    [event] = result.asset_materializations_for_node(asset)
    return {k: v.value for k, v in event.metadata.items()}


SMALL = {
    "instruct_dataset": {
        "config": {
            "style": "topic",
            "max_passages": 8,
            "max_new_tokens": 32,
            "min_examples": 4,
            "test_ratio": 0.25,
        }
    },
    "preference_dataset": {"config": {"max_new_tokens": 128, "min_examples": 2}},
}
BUNDLED = (TeacherResource(backend="local", model="bundled", device="cpu"), ModelsResource(device="cpu"))


@pytest.mark.slow
@pytest.mark.heavy
def test_both_datasets_from_the_bundled_model_pass_their_checks_and_are_stable(
    db: Database, tmp_path: Path
) -> None:
    seed(db, "ada")
    result = run("ada", tmp_path, *BUNDLED, SMALL)
    assert result.success, [e.message for e in result.all_events if e.is_failure]
    checks = {e.asset_check_key.name: e.passed for e in result.get_asset_check_evaluations()}
    assert len(checks) == 8 and all(checks.values()), checks

    store = LocalArtifactStore(tmp_path)
    instruct = read_splits(store, latest(store, "ada", "instruct"))
    rows = pl.concat(instruct.values())
    documents = seed_texts("ada")
    assert rows.height >= 4
    assert all(any(answer in d for d in documents) for answer in rows["answer"])  # verbatim, the author's
    assert rows["instruction"].str.contains("{", literal=True).not_().all()
    assert set(instruct["train"]["document_id"]).isdisjoint(instruct["test"]["document_id"])

    pairs = pl.concat(read_splits(store, latest(store, "ada", "preference")).values())
    assert pairs.height >= 2 and set(pairs["prompt"]) <= set(rows["instruction"])
    assert (pairs["chosen"] != pairs["rejected"]).all()
    meta = metadata(result, "preference_dataset")
    assert (
        float(meta["mean_chosen_tokens"]) > 0 and float(meta["mean_rejected_tokens"]) > 0
    )  # length bias shown
    assert meta["instruct_version"] == latest(store, "ada", "instruct").version
    assert str(meta["rejected_by"]).startswith("base:bundled")

    trl = load_dataset(store, "ada", "preference")
    assert trl["train"][0]["chosen"][0]["role"] == "assistant"

    with db.connect() as conn:  # no kept replies: a fresh rebuild must reproduce both versions exactly
        conn.execute("TRUNCATE teacher_replies")
    again = run(
        "ada",
        tmp_path,
        *BUNDLED,
        {k: v for k, v in SMALL.items() if k == "instruct_dataset"}
        | {"preference_dataset": SMALL["preference_dataset"]},
    )
    assert again.success
    for asset in ("instruct_dataset", "preference_dataset"):
        assert metadata(again, asset)["version"] == metadata(result, asset)["version"]
        assert metadata(again, asset)["new_version"] is False


def seed_texts(author: str, documents: int = 8, paragraphs: int = 3) -> list[str]:
    return [essay(TOPICS[i % len(TOPICS)], paragraphs) for i in range(documents)]


def test_a_teacher_with_no_usable_replies_fails_clearly_and_publishes_nothing(
    db: Database, tiny_model_path: Path, tmp_path: Path
) -> None:
    seed(db, "ada")
    # The tiny random model's greedy replies are empty: every one is dropped, counted and named.
    teacher = TeacherResource(backend="local", model=str(tiny_model_path), device="cpu")
    result = run(
        "ada",
        tmp_path,
        teacher,
        ModelsResource(device="cpu"),
        {"instruct_dataset": {"config": {"max_new_tokens": 8, "min_examples": 3}}},
    )
    assert not result.success
    [failure] = [e for e in result.all_events if e.is_step_failure]
    message = failure.step_failure_data.error.message
    assert "author 'ada': only 0 of 16 passages got a usable instruction" in message
    assert "'empty': 16" in message and "tiny-llama" in message
    assert not (tmp_path / "datasets" / "ada").exists()


def test_too_little_text_says_how_much_more_is_needed(
    db: Database, tmp_path: Path, tiny_model_path: Path
) -> None:
    seed(db, "bo", documents=2, paragraphs=1)
    teacher = TeacherResource(backend="local", model=str(tiny_model_path), device="cpu")
    result = run(
        "bo",
        tmp_path,
        teacher,
        ModelsResource(device="cpu"),
        {"instruct_dataset": {"config": {"min_examples": 10}}},
    )
    [failure] = [e for e in result.all_events if e.is_step_failure]
    message = failure.step_failure_data.error.message
    assert "author 'bo' has 2 usable passages" in message
    assert "at least 10 are needed: about 1,280 more words" in message


@pytest.mark.slow
def test_the_openai_backend_builds_the_dataset_over_http(db: Database, tmp_path: Path, settings) -> None:  # type: ignore[no-untyped-def]
    """The instruct dataset written through a local OpenAI-compatible server that runs SmolLM2."""
    from llm_twin_assets.llm import load_causal_lm
    from llm_twin_assets.models.registry import base_model
    from llm_twin_assets_tests.datasets.openai_server import openai_server

    seed(db, "ada")
    lm = load_causal_lm(base_model(settings))
    with openai_server(lm) as (url, seen):
        teacher = TeacherResource(backend="openai", model="smollm2", base_url=url)
        config = {"instruct_dataset": SMALL["instruct_dataset"]}
        with dg.DagsterInstance.ephemeral() as instance:  # entered: no stale defs state
            result = materialize_for_author(
                [cleaned_documents, instruct_dataset],
                "ada",
                {
                    "store": StoreResource(),
                    "teacher": teacher,
                    "artifacts": ArtifactsResource(url=str(tmp_path)),
                },
                instance=instance,
                run_config={"ops": config},
            )
    assert result.success, [e.message for e in result.all_events if e.is_failure]
    assert all(e.passed for e in result.get_asset_check_evaluations())
    assert seen.requests == 8  # one request per passage (max_passages), none retried
    meta = metadata(result, "instruct_dataset")
    assert meta["teacher"] == f"openai:smollm2@{url}" and meta["style"] == "topic"
    assert int(meta["rows_train"]) + int(meta["rows_test"]) >= 4
