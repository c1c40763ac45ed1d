"""The Dagster UI serves our code location: the asset graph, the sensor and the schedule."""

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
QUERY = """{ assetNodes { assetKey { path } groupName }
  repositoriesOrError { ... on RepositoryConnection { nodes { sensors { name } schedules { name } } } } }"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_the_ui_loads_the_asset_graph_sensor_and_schedule(tmp_path: Path) -> None:
    port = _free_port()
    env = {**os.environ, "DAGSTER_HOME": str(tmp_path)}
    webserver = Path(sys.executable).with_name("dagster-webserver")
    proc = subprocess.Popen(
        [str(webserver), "-h", "127.0.0.1", "-p", str(port), "-w", "workspace.yaml"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/server_info", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert proc.poll() is None and time.monotonic() < deadline, "webserver did not start"
            time.sleep(0.5)
        data = httpx.post(f"http://127.0.0.1:{port}/graphql", json={"query": QUERY}, timeout=60).json()[
            "data"
        ]
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    assets = {tuple(n["assetKey"]["path"]): n for n in data["assetNodes"]}
    assert assets[("raw_documents",)]["groupName"] == "ingest"
    [repo] = data["repositoriesOrError"]["nodes"]
    assert {s["name"] for s in repo["sensors"]} == {"authors_folder_sensor"}
    assert {s["name"] for s in repo["schedules"]} == {"daily_recrawl_schedule"}
