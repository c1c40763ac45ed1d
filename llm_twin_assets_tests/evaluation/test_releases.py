"""Releases chosen on validation and rolled back: a twin whose evaluation chose its decoding on the
validation documents is released and served with those rules, a newer release can be rolled back, and
`llm-twin generate` serves only the current release (the helpers: test_evaluation_assets.py)."""

import json
from pathlib import Path

import dagster as dg
import pytest

from llm_twin_assets.evaluation.decoding_choice import candidates
from llm_twin_assets.store import evaluations, releases
from llm_twin_assets.store.database import Database
from llm_twin_assets_tests.evaluation.test_evaluation_assets import (
    ALL,
    ROWS,
    TINY_GATE,
    cli,
    materialize,
    metadata,
    ops,
)
from llm_twin_assets_tests.store.helpers import add_author
from llm_twin_assets_tests.training.helpers import publish_small


@pytest.mark.slow
@pytest.mark.heavy
def test_a_newer_release_can_be_rolled_back_and_generate_serves_only_the_current_release(
    db: Database, tmp_path: Path, settings
) -> None:  # type: ignore[no-untyped-def]
    artifacts = tmp_path / "artifacts"
    publish_small(artifacts, rows=ROWS)
    with db.connect() as conn:
        add_author(conn, "ada")
    nothing = cli("generate", "Hello?", "--author", "ada", "--no-compare", artifacts=artifacts)
    assert nothing.returncode == 2 and "'ada' has no released twin" in nothing.stderr

    with dg.DagsterInstance.ephemeral() as instance:
        # The first twin's training holds one of its three documents out for validation, and its
        # evaluation chooses the decoding rules there before generating on the test split.
        chosen_on_validation = ops(validation_ratio=0.25, choose_decoding=True, **TINY_GATE)
        first = materialize(artifacts, ALL, chosen_on_validation, instance)
        second = materialize(artifacts, ALL, ops(sft_steps=30, **TINY_GATE), instance)  # another, also better
    for result in (first, second):
        assert result.success, [e.message for e in result.all_events if e.is_failure]
    one, two = metadata(first, "twin_release"), metadata(second, "twin_release")
    assert (one["release"], two["release"]) == (1, 2) and one["dpo_version"] != two["dpo_version"]

    with db.connect() as conn:
        record = evaluations.get(conn, one["evaluation_id"])
        assert record is not None
        choice = record.settings["decoding_choice"]
        by_release = {r.release: r for r in releases.all_releases(conn, "ada")}
    configured = {"no_repeat_ngram_size": 0, "repetition_penalty": 1.0}
    assert choice["on"] == "validation" and choice["validation_documents"] == 1
    assert choice["validation_examples"] == 10  # the held-out document's ten rows, none of the test's
    assert [c["decoding"] for c in choice["candidates"]] == candidates(configured)
    passing = [c for c in choice["candidates"] if c["met_rules"]]
    if passing and any(c["style_distance"] is not None for c in passing):
        closest = min(
            (c for c in passing if c["style_distance"] is not None), key=lambda c: c["style_distance"]
        )
        assert choice["chosen"] == closest["decoding"], choice
    assert record.settings["decoding"] == choice["chosen"]
    assert by_release[1].decoding == choice["chosen"]  # served as evaluated
    assert by_release[2].decoding == configured  # choose_decoding off: the configured rules, recorded
    shown = cli("eval", "show", "--author", "ada", "--examples", "2", artifacts=artifacts).stdout
    assert shown.count("held-out example ") == 2 and "\n  twin:   " in shown and "\n  author: " in shown
    assert (
        "decoding: no_repeat_ngram_size 0, repetition_penalty 1.0 (as configured: choose_decoding is off)"
        in shown
    )
    assert "twin+rag against twin: " in shown

    listed = json.loads(cli("release", "list", "--json", artifacts=artifacts).stdout)
    assert [(r["release"], r["current"]) for r in listed] == [(1, False), (2, True)]
    served = cli("generate", "Tell me about topic 3.", "--author", "ada", "--no-compare", artifacts=artifacts)
    assert served.returncode == 0, served.stderr
    assert f"release 2 (sft {two['sft_version']}, dpo {two['dpo_version']})" in served.stdout

    rolled = cli("release", "rollback", "ada", "1", artifacts=artifacts)
    assert rolled.returncode == 0 and "now serves release 1" in rolled.stdout
    served = cli("generate", "Tell me about topic 3.", "--author", "ada", "--no-compare", artifacts=artifacts)
    assert f"release 1 (sft {one['sft_version']}" in served.stdout
    by_version = cli("release", "rollback", "ada", two["dpo_version"], artifacts=artifacts)  # by DPO version
    assert by_version.returncode == 0 and "now serves release 2" in by_version.stdout
    unknown = cli("release", "rollback", "ada", "7", artifacts=artifacts)
    assert unknown.returncode == 2 and "'ada' has no release '7'; its releases: 1 (dpo" in unknown.stderr
    with db.connect() as conn:
        current = releases.current(conn, "ada")
        assert current is not None and current.release == 2
