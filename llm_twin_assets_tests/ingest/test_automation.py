"""Only the work that changed: the nightly re-crawl runs ingestion and features, and datasets and training
follow through declarative automation only when an input's data version changed."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import pytest

from llm_twin_assets.defs.ingest.sensors import daily_recrawl_schedule
from llm_twin_assets.defs.partitions import register_authors
from llm_twin_assets.store.database import Database
from llm_twin_assets_tests.ingest.site import SiteState, write_links

FOLLOWERS = ("instruct_dataset", "preference_dataset", "sft_adapter", "dpo_adapter")
FAST = {"ops": {"raw_documents": {"config": {"min_delay_s": 0.05}}}}


def requested(result) -> dict[str, list[str]]:  # type: ignore[no-untyped-def]
    return {
        name: sorted(result.get_requested_partitions(dg.AssetKey(name)))
        for name in FOLLOWERS
        if result.get_requested_partitions(dg.AssetKey(name))
    }


@pytest.mark.slow
def test_the_nightly_recrawl_of_an_unchanged_author_runs_no_dataset_and_no_training(
    db: Database, site: tuple[str, SiteState], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from llm_twin_assets.definitions import defs

    base, state = site
    authors = tmp_path / "authors"
    write_links(authors, "maya", [f"{base}/blog/small-machines.html", f"{base}/changing.html"])
    monkeypatch.setenv("LLM_TWIN_AUTHORS_DIR", str(authors))
    monkeypatch.setenv("LLM_TWIN_ALLOW_PRIVATE_NETWORKS", "1")
    pipeline = defs.resolve_job_def("author_pipeline")
    assert {k.to_user_string() for k in pipeline.asset_layer.selected_asset_keys} == {
        "build_settings",
        "raw_documents",
        "cleaned_documents",
        "chunks",
        "chunk_embeddings",
    }

    with dg.instance_for_test() as instance:
        register_authors(instance, ["maya"])
        tick = dg.evaluate_automation_conditions(defs=defs, instance=instance)  # before anything exists
        assert requested(tick) == {}

        def nightly(day: int) -> None:
            context = dg.build_schedule_context(
                instance=instance, scheduled_execution_time=datetime(2026, 11, day, 3, tzinfo=UTC)
            )
            [request] = daily_recrawl_schedule(context)  # type: ignore[misc]
            assert pipeline.execute_in_process(
                partition_key=request.partition_key, instance=instance, run_config=FAST, tags=request.tags
            ).success

        nightly(1)  # the author's first crawl records her build settings too: what follows them is
        # requested in this one tick, as one run (each step waits in it for its inputs and checks)
        tick = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=tick.cursor)
        assert requested(tick) == {name: ["maya"] for name in FOLLOWERS}

        nightly(2)  # nothing changed on the site: same data versions, nothing follows
        tick = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=tick.cursor)
        assert requested(tick) == {}

        state.changing_text = "The second version says something new about retries and patience, at length."
        nightly(3)  # one page changed: the instruct dataset follows, and only it
        tick = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=tick.cursor)
        assert requested(tick) == {"instruct_dataset": ["maya"]}
