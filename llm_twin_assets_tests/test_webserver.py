"""The Dagster UI serves our code location: the asset graph, the sensor and the schedule."""

import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from llm_twin_assets_tests.servers import free_port, stop_process_group, wait_for_dagster

ROOT = Path(__file__).resolve().parents[1]
QUERY = """{ assetNodes { assetKey { path } groupName }
  repositoriesOrError { ... on RepositoryConnection { nodes { sensors { name } schedules { name } } } } }"""


@pytest.mark.slow
def test_the_ui_loads_the_asset_graph_sensor_and_schedule(tmp_path: Path) -> None:
    port = free_port()
    env = {**os.environ, "DAGSTER_HOME": str(tmp_path)}
    webserver = Path(sys.executable).with_name("dagster-webserver")
    proc = subprocess.Popen(
        [str(webserver), "-h", "127.0.0.1", "-p", str(port), "-w", "workspace.yaml"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,  # its own process group: the code server it starts stops with it
    )
    try:
        wait_for_dagster(proc, port)
        data = httpx.post(f"http://127.0.0.1:{port}/graphql", json={"query": QUERY}, timeout=60).json()[
            "data"
        ]
    finally:
        stop_process_group(proc, grace_s=30)
    assets = {tuple(n["assetKey"]["path"]): n for n in data["assetNodes"]}
    assert assets[("raw_documents",)]["groupName"] == "ingest"
    [repo] = data["repositoriesOrError"]["nodes"]
    assert {s["name"] for s in repo["sensors"]} == {"authors_folder_sensor", "llm_twin_automation"}
    assert {s["name"] for s in repo["schedules"]} == {"daily_recrawl_schedule"}
