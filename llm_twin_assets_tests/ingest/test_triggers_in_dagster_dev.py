"""The measured defect, replayed in ``dagster dev``: a links file copied by hand into the authors folder
(its relative links then resolve elsewhere) must start no run and remove nothing stored."""

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest

from llm_twin_assets.store import embedded
from llm_twin_assets_tests.conftest import fresh_home
from llm_twin_assets_tests.servers import free_port, stop_process_group, wait_for_dagster
from llm_twin_assets_tests.training.test_training_from_ui import LOCATION, UI, _start

TICKS = """query($selector: SensorSelector!) { sensorOrError(sensorSelector: $selector) {
  __typename ... on Sensor { sensorState { ticks(limit: 10) { status runIds skipReason
    logEvents { events { message } } } } } } }"""
RUNS = "{ runsOrError { ... on Runs { results { runId jobName status } } } }"
ESSAY = (
    "Measure first, then scale. I keep a notebook of every benchmark I run on a small machine, and the "
    "notebook has changed my mind more often than any talk. {n} times this year the boring answer won."
)


def counts(pgdata: Path) -> tuple[int, int, int]:
    state = embedded.status(pgdata)
    assert state.running and state.url
    with psycopg.connect(state.url) as conn:
        row = conn.execute(
            "SELECT (SELECT count(*) FROM raw_documents), (SELECT count(*) FROM cleaned_documents),"
            " (SELECT count(*) FROM chunks)"
        ).fetchone()
    assert row is not None
    return int(row[0]), int(row[1]), int(row[2])


@pytest.mark.slow
def test_a_hand_copied_links_file_starts_no_run_and_removes_nothing() -> None:
    home = fresh_home("llm-twin-test-copied-") / "home"
    authors = home / "authors"
    drafts = authors / "drafts"
    drafts.mkdir(parents=True)
    for n in range(5):
        (drafts / f"note-{n}.md").write_text(f"# Note {n}\n\n" + "\n\n".join([ESSAY.format(n=n)] * 3))
    (authors / "maya.yaml").write_text("name: Maya Okafor\nlinks:\n  - url: ./drafts\n    kind: article\n")
    env = {
        **os.environ,
        "LLM_TWIN_HOME": str(home),
        "DAGSTER_HOME": str(home / "dagster"),
        "LLM_TWIN_AUTHORS_DIR": str(authors),
    }
    env.pop("LLM_TWIN_DATABASE_URL", None)
    cli = Path(sys.executable).with_name("llm-twin")
    built = subprocess.run(
        [str(cli), "materialize", "--author", "maya", "--select", "raw_documents,cleaned_documents,chunks"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    proc = None
    try:
        assert built.returncode == 0, built.stdout + built.stderr
        before = counts(home / "pgdata")
        assert before[0] == 5 and before[2] >= 5

        # The demo's links file, copied by hand: its ./maya/... links name nothing here.
        (authors / "maya.yaml").write_text(
            "name: Maya Okafor\nlinks:\n  - url: ./maya/linkedin-Shares.csv\n    kind: post\n"
            "  - url: ./maya/tinyvec.git\n    kind: repository\n"
        )
        port = free_port()
        ui = UI(port)
        proc = _start(home, port)
        wait_for_dagster(proc, port)
        selector = {**LOCATION, "sensorName": "authors_folder_sensor"}
        deadline = time.monotonic() + 150
        while True:
            ticks = ui(TICKS, selector=selector)["sensorOrError"]["sensorState"]["ticks"]
            done = [t for t in ticks if t["status"] in ("SKIPPED", "SUCCESS", "FAILURE")]
            if done:
                break
            assert time.monotonic() < deadline, "the authors sensor never ticked"
            time.sleep(2)
        time.sleep(10)  # the automation sensor ticks too: it must not start anything either
        [tick] = done[-1:]
        assert tick["status"] == "SKIPPED" and tick["runIds"] == [], tick
        logged = " ".join(e["message"] for e in tick["logEvents"]["events"])
        assert "refused links file (no run" in logged and "./maya/linkedin-Shares.csv: no such file" in logged
        runs = ui(RUNS)["runsOrError"]["results"]  # only the three the CLI ran in-process above
        assert [r["jobName"] for r in runs] == ["__ephemeral_asset_job__"] * 3, runs
        assert counts(home / "pgdata") == before  # not one row removed
    finally:
        if proc is not None:
            stop_process_group(proc)
        embedded.stop(home / "pgdata")
        shutil.rmtree(home.parent, ignore_errors=True)
