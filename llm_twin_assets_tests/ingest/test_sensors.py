"""The authors-folder sensor and the daily re-crawl, evaluated as Dagster evaluates them."""

import json
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import pytest

from llm_twin_assets.defs.ingest.sensors import authors_folder_sensor, daily_recrawl_schedule
from llm_twin_assets.defs.partitions import register_authors
from llm_twin_assets_tests.ingest.site import write_links


@pytest.fixture
def authors_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "authors"
    folder.mkdir()
    monkeypatch.setenv("LLM_TWIN_AUTHORS_DIR", str(folder))
    return folder


def tick(instance: dg.DagsterInstance, cursor: str | None) -> dg.SensorResult:
    context = dg.build_sensor_context(instance=instance, cursor=cursor)
    result = authors_folder_sensor(context)
    assert isinstance(result, dg.SensorResult)
    return result


def test_new_changed_and_invalid_links_files(authors_dir: Path, capfd: pytest.CaptureFixture[str]) -> None:
    instance = dg.DagsterInstance.ephemeral()
    assert tick(instance, None).run_requests == []  # an empty folder requests nothing

    write_links(authors_dir, "maya", ["https://example.org/a"])
    first = tick(instance, None)
    [request] = first.run_requests
    assert request.partition_key == "maya" and request.run_key and request.run_key.startswith("maya:")
    [added] = first.dynamic_partitions_requests
    assert list(added.partition_keys) == ["maya"] and added.partitions_def_name == "authors"
    assert set(json.loads(first.cursor)) == {"maya"}  # type: ignore[arg-type]
    register_authors(instance, ["maya"])

    # Nothing changed: no run, no partition request.
    again = tick(instance, first.cursor)
    assert again.run_requests == [] and again.dynamic_partitions_requests == []

    # The file changes: one new run for that author, its partition already exists.
    write_links(authors_dir, "maya", ["https://example.org/a", "https://example.org/b"])
    changed = tick(instance, again.cursor)
    assert [r.partition_key for r in changed.run_requests] == ["maya"]
    assert changed.run_requests[0].run_key != request.run_key
    assert changed.dynamic_partitions_requests == []

    # An invalid file is skipped with its reason logged; the others still run.
    (authors_dir / "broken.yaml").write_text("name: Broken\nlinks:\n  - url: ftp://nope\n")
    write_links(authors_dir, "sam", ["https://example.org/sam"], name="Sam")
    mixed = tick(instance, changed.cursor)
    assert [r.partition_key for r in mixed.run_requests] == ["sam"]
    logged = capfd.readouterr().err
    assert "broken.yaml, line 3" in logged and "scheme 'ftp' is not allowed" in logged


def test_the_daily_schedule_recrawls_every_author(authors_dir: Path) -> None:
    write_links(authors_dir, "maya", ["https://example.org/a"])
    write_links(authors_dir, "sam", ["https://example.org/sam"], name="Sam")
    with dg.instance_for_test() as instance:
        register_authors(instance, ["maya", "sam"])
        context = dg.build_schedule_context(
            instance=instance, scheduled_execution_time=datetime(2026, 11, 28, 3, tzinfo=UTC)
        )
        requests = daily_recrawl_schedule(context)
    assert sorted((r.partition_key, r.run_key) for r in requests) == [  # type: ignore[union-attr]
        ("maya", "recrawl:maya:2026-11-28"),
        ("sam", "recrawl:sam:2026-11-28"),
    ]
