"""Rebuilding a dataset costs only what changed (teacher replies are kept), and a version that fails its
blocking checks never becomes ``latest``: the checks judge the version the run built."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pytest

from llm_twin_assets.artifacts import LocalArtifactStore
from llm_twin_assets.datasets.versions import latest
from llm_twin_assets.defs.datasets.assets import instruct_dataset
from llm_twin_assets.defs.features.assets import cleaned_documents
from llm_twin_assets.defs.resources import ArtifactsResource, StoreResource, TeacherResource
from llm_twin_assets.defs.runner import materialize_for_author
from llm_twin_assets.store.database import Database
from llm_twin_assets_tests.datasets.test_dataset_assets import TOPICS, essay
from llm_twin_assets_tests.store.helpers import add_author, raw_row, upsert_raw

CONFIG = {
    "instruct_dataset": {
        "config": {"style": "topic", "max_new_tokens": 32, "min_examples": 4, "test_ratio": 0.25}
    }
}


def add_documents(db: Database, texts: dict[str, str]) -> None:
    with db.connect() as conn:
        add_author(conn, "ada")
        upsert_raw(
            conn, [raw_row("ada", f"https://ada.example/{n}", t, kind="article") for n, t in texts.items()]
        )


def build(artifacts: Path, teacher: TeacherResource) -> dg.ExecuteInProcessResult:
    return materialize_for_author(
        [cleaned_documents, instruct_dataset],
        "ada",
        {"store": StoreResource(), "teacher": teacher, "artifacts": ArtifactsResource(url=str(artifacts))},
        run_config={"ops": CONFIG},
    )


def materialization(result: dg.ExecuteInProcessResult) -> tuple[dict[str, object], str]:
    [event] = result.asset_materializations_for_node("instruct_dataset")
    return {k: v.value for k, v in event.metadata.items()}, event.tags["dagster/data_version"]


@pytest.mark.slow
def test_teacher_replies_are_reused_and_a_version_failing_its_checks_never_serves(
    db: Database, tmp_path: Path, settings
) -> None:  # type: ignore[no-untyped-def]
    from llm_twin_assets.llm import load_causal_lm
    from llm_twin_assets.models.registry import base_model
    from llm_twin_assets_tests.datasets.openai_server import openai_server

    add_documents(db, {str(i): essay(TOPICS[i], 1) for i in range(8)})  # one passage each
    store = LocalArtifactStore(tmp_path)
    lm = load_causal_lm(base_model(settings))
    with openai_server(lm) as (url, seen):
        teacher = TeacherResource(backend="openai", model="smollm2", base_url=url)
        first = build(tmp_path, teacher)
        assert first.success, [e.message for e in first.all_events if e.is_failure]
        meta, version = materialization(first)
        assert seen.requests == 8 and meta["teacher_calls"] == 8 and meta["promoted"] is True
        assert version == latest(store, "ada", "instruct").version == meta["version"]

        again = build(tmp_path, teacher)  # nothing changed: no request at all, the same version
        meta, _ = materialization(again)
        assert seen.requests == 8 and (meta["teacher_calls"], meta["teacher_replies_reused"]) == (0, 8)
        assert meta["version"] == version and meta["new_version"] is False

        add_documents(
            db,
            {
                "new": "Last winter I rewrote our config parser by hand. It took one long weekend, two pots of "
                "coffee and a notebook full of grammar rules, and it taught me more about error messages "
                "than any library ever did."
            },
        )
        grown = build(tmp_path, teacher)  # one new passage: one request
        meta, grown_version = materialization(grown)
        assert seen.requests == 9 and meta["teacher_calls"] == 1 and meta["promoted"] is True
        assert grown_version != version and latest(store, "ada", "instruct").version == grown_version

        # Passages that stop on a dash: the built version fails `texts_complete` and does not serve.
        add_documents(
            db,
            {
                "cut": "On retries: my client waits as long as the Retry-After header says, tries again, and "
                "gives up after three attempts, because hammering a server that asked for patience is rude and —",
                "cut-too": "Postgres taught me that boring tools win. Every year I try something shinier, and "
                "every year I come back to the same old database, because —",
            },
        )
        failed = build(tmp_path, teacher)
        assert seen.requests == 11
    assert not failed.success
    meta, data_version = materialization(failed)
    assert meta["promoted"] is False and meta["version"] != grown_version
    assert data_version == grown_version  # what downstream sees is the version still serving
    assert latest(store, "ada", "instruct").version == grown_version
    verdicts = {e.asset_check_key.name: e for e in failed.get_asset_check_evaluations()}
    assert not verdicts["instruct_texts_complete"].passed
    assert verdicts["instruct_texts_complete"].metadata["version"].value == meta["version"]  # the built one
    assert all(v.passed for name, v in verdicts.items() if name != "instruct_texts_complete")


@pytest.mark.slow
def test_rejected_answers_that_run_out_of_budget_are_cut_at_a_sentence_end_or_asked_again_then_dropped(
    settings,
) -> None:  # type: ignore[no-untyped-def]
    import polars as pl
    import pytest

    from llm_twin_assets.datasets.building import (
        INSTRUCT_SCHEMA,
        NotEnoughText,
        PreferenceOptions,
        build_preference,
    )
    from llm_twin_assets.datasets.teachers import LocalTeacher
    from llm_twin_assets.llm import load_causal_lm
    from llm_twin_assets.models.registry import base_model

    lm = load_causal_lm(base_model(settings))
    rows = [
        {
            "id": f"r{i}",
            "author": "ada",
            "document_id": f"d{i}",
            "document_url": "u",
            "kind": "post",
            "source": "author",
            "instruction": question,
            "answer": "My own answer, which ends where I meant it to end.",
        }
        for i, question in enumerate(["In one short sentence, what is a hash map?", "Say hello in one word."])
    ]
    instruct = {
        "train": pl.DataFrame(rows, schema=INSTRUCT_SCHEMA),
        "test": pl.DataFrame(schema=INSTRUCT_SCHEMA),
    }
    base = LocalTeacher(lm, "base:bundled:SmolLM2-135M-Instruct")
    # 4 tokens, then 8: never enough for these questions, so no pair gets a cut-off rejected answer.
    with pytest.raises(NotEnoughText, match=r"'unfinished': 2"):
        build_preference(instruct, base, PreferenceOptions(max_new_tokens=4, min_examples=1))

    def count(texts: list[str]) -> list[int]:
        return [len(ids) for ids in lm.tokenizer(texts, add_special_tokens=False)["input_ids"]]

    built = build_preference(
        instruct, base, PreferenceOptions(max_new_tokens=48, min_examples=1), count_tokens=count
    )
    pairs = pl.concat(built.splits.values())
    assert pairs.height >= 1 and built.stats["mean_chosen_tokens"] == count([rows[0]["answer"]])[0]
    assert built.stats["mean_rejected_tokens"] > 0
