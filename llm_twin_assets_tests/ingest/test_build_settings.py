"""An author's build settings: validated like the links, recorded by ``build_settings``, and used by every
trigger — the sensor, the schedule, an automation tick and a run launched without config — while a
run's own config is a one-off, shown as such."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import pytest
from typer.testing import CliRunner

from llm_twin_assets.crawling.links import LinksFileError, load, parse
from llm_twin_assets.defs.build_settings import validate_build
from llm_twin_assets.defs.ingest.sensors import BUILD_TAG, authors_folder_sensor, daily_recrawl_schedule
from llm_twin_assets.defs.partitions import register_authors
from llm_twin_assets.store.build_settings import recorded, settings_digest
from llm_twin_assets.store.database import Database

ESSAY = (
    "I have changed my mind about {topic} more than once, and each time the reason was a measurement, not "
    "an argument. The lesson I keep relearning is to write it down, test it for real, and only then tell "
    "anyone else that {topic} matters as much as I think it does. Small machines teach patience."
)
TOPICS = [
    "retries",
    "Postgres",
    "sourdough",
    "marathons",
    "real tests",
    "HNSW",
    "idempotent jobs",
    "old code",
]
SETTINGS = {
    # "topic" style: the teacher names a topic and a template asks the question. The teacher here is
    # scripted (see ``scripted_teacher``): the bundled model's replies differ between CPUs, and on CI once
    # none of 3 was usable (2 described the passage, 1 ran long) — not what this test is about.
    "instruct_dataset": {
        "style": "topic",
        "max_passages": 3,
        "max_new_tokens": 40,
        "min_examples": 1,
        "test_ratio": 0.34,
    },
    "sft_adapter": {"profile": "tiny", "learning_rate": 0.002},
}


def topic_of(messages: list[dict[str, str]]) -> str:
    """The scripted teacher's reply to "what is the main topic of this text?": the essay's own topic."""
    found = re.search(r"changed my mind about (.+?) more than once", messages[-1]["content"])
    assert found, "the teacher was asked about something other than one of Ada's essays"
    return f"changing my mind about {found.group(1)}"


@pytest.fixture
def scripted_teacher() -> Iterator[str]:
    """An OpenAI-compatible teacher on 127.0.0.1 that names each essay's topic; yields its base URL."""
    from llm_twin_assets_tests.datasets.openai_server import Behaviour, openai_server

    with openai_server(None, Behaviour(answer=topic_of)) as (url, _):
        yield url


def links_text(build: dict[str, object] | None, link: str = "./drafts") -> str:
    text = f"name: Ada Lovelace\nlinks:\n  - url: {link}\n    kind: article\n"
    if build:
        text += "build:\n" + "".join(
            f"  {asset}:\n" + "".join(f"    {k}: {json.dumps(v)}\n" for k, v in fields.items())  # type: ignore[attr-defined]
            for asset, fields in build.items()
        )
    return text


@pytest.fixture
def authors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An authors folder holding Ada's drafts (readable: inside the authors folder) and her links file."""
    folder = tmp_path / "authors"
    drafts = folder / "drafts"
    drafts.mkdir(parents=True)
    for i, topic in enumerate(TOPICS):
        (drafts / f"{i}.md").write_text(f"# On {topic}\n\n" + "\n\n".join([ESSAY.format(topic=topic)] * 3))
    (folder / "ada.yaml").write_text(links_text(SETTINGS))
    monkeypatch.setenv("LLM_TWIN_AUTHORS_DIR", str(folder))
    monkeypatch.delenv("LLM_TWIN_LOCAL_ROOTS", raising=False)
    return folder


def test_build_settings_are_checked_against_each_assets_config_with_lines(tmp_path: Path) -> None:
    good = parse(links_text(SETTINGS), tmp_path / "ada.yaml")
    assert validate_build(good) == SETTINGS

    with pytest.raises(
        LinksFileError, match=r"ada.yaml, line 6: build: Value error, no build settings for raw_documents "
    ):
        parse(links_text({"raw_documents": {"min_delay_s": 0}}), tmp_path / "ada.yaml")

    typo = parse(
        links_text({"instruct_dataset": {"max_pasages": 3, "max_new_tokens": "many"}}), tmp_path / "ada.yaml"
    )
    with pytest.raises(LinksFileError) as error:
        validate_build(typo)
    lines = str(error.value).splitlines()
    assert "line 7: build.instruct_dataset.max_pasages: no such setting" in lines[0]
    assert "line 8: build.instruct_dataset.max_new_tokens: Input should be a valid integer" in lines[1]


def test_a_links_file_copied_away_from_its_relative_links_is_refused_by_add_and_the_sensor(
    authors: Path, tmp_path: Path, capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from llm_twin_assets.cli import app

    copied = tmp_path / "elsewhere"
    copied.mkdir()
    monkeypatch.setenv("LLM_TWIN_LOCAL_ROOTS", str(copied))  # readable, but the file is not there
    (copied / "ada.yaml").write_text(links_text(None, "./maya/linkedin-Shares.csv"))
    result = CliRunner().invoke(app, ["author", "add", str(copied / "ada.yaml")])
    assert result.exit_code == 2, result.output
    assert "line 3: links.0: ./maya/linkedin-Shares.csv: no such file or folder" in result.output

    (authors / "ada.yaml").write_text(links_text(None, "./maya/linkedin-Shares.csv"))  # copied by hand
    with dg.instance_for_test() as instance:
        tick = authors_folder_sensor(dg.build_sensor_context(instance=instance))
        assert isinstance(tick, dg.SensorResult)
        assert tick.run_requests == [] and tick.dynamic_partitions_requests == []
    assert "refused links file (no run" in capfd.readouterr().err


@pytest.mark.slow
def test_every_trigger_builds_the_author_with_their_settings_and_a_change_is_acted_on_once(
    db: Database, authors: Path, tmp_path: Path, scripted_teacher: str
) -> None:
    """The sensor records the settings; automation requests the dataset with no run config, and the run
    uses the author's settings; a change to the settings is a new data version, acted on exactly once;
    a run's own config is a one-off."""
    from llm_twin_assets.definitions import defs as full
    from llm_twin_assets.defs.build_settings import build_settings
    from llm_twin_assets.defs.datasets.assets import instruct_dataset
    from llm_twin_assets.defs.features.assets import cleaned_documents
    from llm_twin_assets.defs.ingest.assets import raw_documents
    from llm_twin_assets.defs.resources import ArtifactsResource, ModelsResource, TeacherResource

    # The graph up to the instruct dataset: what follows it (the base model's answers, training) is
    # requested in the same tick for a new author, and is not what this test is about.
    defs = dg.Definitions(
        assets=[build_settings, raw_documents, cleaned_documents, instruct_dataset], resources=full.resources
    )

    resources = {
        **(full.resources or {}),
        "artifacts": ArtifactsResource(url=str(tmp_path / "artifacts")),
        "teacher": TeacherResource(backend="openai", model="scripted", base_url=scripted_teacher),
        "models": ModelsResource(device="cpu"),
    }
    pipeline = full.resolve_job_def("author_pipeline")

    def sensor_run(instance: dg.DagsterInstance, cursor: str | None) -> str | None:
        tick = authors_folder_sensor(dg.build_sensor_context(instance=instance, cursor=cursor))
        assert isinstance(tick, dg.SensorResult)
        [request] = tick.run_requests
        assert request.tags[BUILD_TAG] == settings_digest(validate_build(load(authors / "ada.yaml")))
        if not instance.has_dynamic_partition("authors", "ada"):
            register_authors(instance, ["ada"])
        selection = [dg.AssetKey(n) for n in ("build_settings", "raw_documents", "cleaned_documents")]
        assert pipeline.execute_in_process(
            partition_key="ada", instance=instance, tags=request.tags, asset_selection=selection
        ).success
        return tick.cursor

    def requested(tick: dg.EvaluateAutomationConditionsResult) -> dict[str, list[str | None]]:
        return {
            key.to_user_string(): sorted(tick.get_requested_partitions(key))  # type: ignore[type-var]
            for key in defs.resolve_asset_graph().get_all_asset_keys()
            if tick.get_num_requested(key)
        }

    def automation_run(instance: dg.DagsterInstance, cursor: object) -> tuple[dict[str, object], object]:
        """One automation tick; its request run as the daemon runs it: without run config (an automation
        sensor has none to give)."""
        tick = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=cursor)
        assert requested(tick) == {"instruct_dataset": ["ada"]}
        result = dg.materialize(
            [*(defs.assets or [])],  # type: ignore[list-item]
            selection=[dg.AssetKey("instruct_dataset")],
            partition_key="ada",
            instance=instance,
            resources=resources,
            run_config={},
        )
        [event] = result.asset_materializations_for_node("instruct_dataset")
        again = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=tick.cursor)
        assert requested(again) == {}, "acted on more than once"
        return {k: v.value for k, v in event.metadata.items()}, again.cursor

    with dg.instance_for_test() as instance:
        register_authors(instance, ["ada"])
        start = dg.evaluate_automation_conditions(defs=defs, instance=instance)  # before anything exists
        cursor = sensor_run(instance, None)
        with db.connect() as conn:
            stored = recorded(conn, "ada")
        assert stored is not None and stored.settings == SETTINGS

        meta, automation = automation_run(instance, start.cursor)
        used = meta["build_settings"]
        assert isinstance(used, dict)
        assert {k: used[k] for k in SETTINGS["instruct_dataset"]} == SETTINGS["instruct_dataset"]
        assert meta["build_settings_source"] == {k: "author" for k in SETTINGS["instruct_dataset"]}
        assert meta["one_off_settings"] is False and meta["considered"] == 3

        changed = {**SETTINGS, "instruct_dataset": {**SETTINGS["instruct_dataset"], "max_passages": 4}}
        (authors / "ada.yaml").write_text(links_text(changed))
        sensor_run(instance, cursor)
        meta, _ = automation_run(instance, automation)
        assert meta["considered"] == 4 and meta["build_settings"]["max_passages"] == 4  # type: ignore[index]

        one_off = dg.materialize(
            [*(defs.assets or [])],  # type: ignore[list-item]
            selection=[dg.AssetKey("instruct_dataset")],
            partition_key="ada",
            instance=instance,
            resources=resources,
            run_config={"ops": {"instruct_dataset": {"config": {"max_passages": 5, "min_examples": 1}}}},
        )
        [event] = one_off.asset_materializations_for_node("instruct_dataset")
        assert event.metadata["one_off_settings"].value is True
        assert event.metadata["build_settings_source"].value["max_passages"] == "run config (one-off)"
        assert event.metadata["build_settings_source"].value["max_new_tokens"] == "author"
        with db.connect() as conn:
            still = recorded(conn, "ada")
        assert still is not None and still.settings == changed  # the one-off is not recorded


def test_the_schedule_is_on_and_skips_an_author_it_cannot_see(authors: Path) -> None:
    assert daily_recrawl_schedule.default_status == dg.DefaultScheduleStatus.RUNNING
    with dg.instance_for_test() as instance:
        register_authors(instance, ["ada", "gone"])
        context = dg.build_schedule_context(
            instance=instance, scheduled_execution_time=datetime(2026, 12, 4, 3, tzinfo=UTC)
        )
        requests = daily_recrawl_schedule(context)
    assert isinstance(requests, list)
    assert [(r.partition_key, r.tags[BUILD_TAG]) for r in requests] == [("ada", settings_digest(SETTINGS))]


def test_author_show_prints_the_recorded_and_effective_settings(db: Database, authors: Path) -> None:
    from llm_twin_assets.cli import app
    from llm_twin_assets.store.build_settings import record

    runner = CliRunner()
    shown = runner.invoke(app, ["author", "show", "ada", "--json"])
    assert shown.exit_code == 0, shown.output
    report = json.loads(shown.output)
    assert report["recorded"] is None and report["pending_change"] is True
    assert report["effective"]["sft_adapter"]["profile"] == {"value": "tiny", "source": "author"}
    assert report["effective"]["dpo_adapter"]["profile"] == {"value": "demo", "source": "default"}

    with db.connect() as conn:
        record(conn, "ada", "Ada Lovelace", SETTINGS, str(authors / "ada.yaml"))
    report = json.loads(runner.invoke(app, ["author", "show", "ada", "--json"]).output)
    assert report["recorded"]["digest"] == settings_digest(SETTINGS) and report["pending_change"] is False
    text = runner.invoke(app, ["author", "show", "ada"]).output
    assert 'sft_adapter: profile="tiny" (author)' in text and "learning_rate=0.002 (author)" in text
