"""One real service for the module: `llm-twin serve` (bentoml serve) as its own process, on the test
store, with two authors' writing embedded by the real feature assets and a tiny released twin each, and a
third author with writing but no release."""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from llm_twin_assets.artifacts import LocalArtifactStore
from llm_twin_assets.settings import TwinSettings
from llm_twin_assets.store.database import Database
from llm_twin_assets_tests.features.test_feature_assets import run, seed
from llm_twin_assets_tests.servers import free_port
from llm_twin_assets_tests.serving.helpers import Adapters, publish_twin, release
from llm_twin_assets_tests.test_cli import LLM_TWIN
from llm_twin_assets_tests.waiting import answers, exited, wait_until

ADA = {
    "kettles": "I descale my kettle every Sunday with citric acid; the scale flakes off like snow and the tea "
    "tastes of tea again.",
    "bikes": "My bicycle chain gets a drop of oil every two hundred kilometres, wiped back off at once.",
    # a list: its items are retrieval units, and a source names the item that matched
    "plants": "The houseplants I keep alive, one line each.\n\n"
    "- The fern sits in the bathroom, where the steam of the shower keeps it green\n"
    "- The cactus gets water once a month and not a drop more\n"
    "- The fig hates draughts and sulks whenever the front door opens\n"
    "- The pothos trails off the bookshelf towards the window\n"
    "- The orchid flowers once a year, but only if it is left alone",
}
FERN = "- The fern sits in the bathroom, where the steam of the shower keeps it green"
BOB = {
    # matches the isolation question far better than anything Ada wrote
    "compilers": "A register allocator colours the interference graph; spilling to the stack is what "
    "happens when the graph needs more colours than the machine has registers.",
    "kettles": "Bob never descales anything; his kettle is a geological record.",
}
CAROL = {"gardens": "Carol grows tomatoes against the south wall and waters them at dusk."}

SERVICE_ENV = {
    "LLM_TWIN_BASE_MODEL": "tiny",
    "LLM_TWIN_DEVICE": "cpu",
    "LLM_TWIN_TORCH_THREADS": "2",
    "LLM_TWIN_SERVE_MAX_BATCH": "4",
    "LLM_TWIN_SERVE_MAX_PENDING": "4",
    "LLM_TWIN_SERVE_BATCH_WAIT_MS": "300",  # concurrent test requests reliably share a batch
    "LLM_TWIN_SERVE_MAX_NEW_TOKENS": "64",
    "LLM_TWIN_SERVE_RELEASE_POLL_S": "600",  # releases must arrive by LISTEN/NOTIFY, not by the poll
}


@dataclass
class Service:
    url: str
    artifacts: Path
    store: LocalArtifactStore
    database: Database
    twins: dict[str, Adapters]
    work: Path
    log: Path


@pytest.fixture(scope="package")
def service(
    database: Database, settings: TwinSettings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Service]:
    from llm_twin_assets.models.registry import tiny_llama

    with database.connect() as conn:
        conn.execute("TRUNCATE authors, raw_documents, cleaned_documents, chunks, serving_traces CASCADE")
    for author, docs in (("ada", ADA), ("bob", BOB), ("carol", CAROL)):
        seed(database, author, docs)
        assert run(author).success
    work = tmp_path_factory.mktemp("serving")
    artifacts = work / "artifacts"
    store = LocalArtifactStore(artifacts)
    base = tiny_llama(settings)
    twins = {
        author: publish_twin(store, base, work, author, seed) for author, seed in (("ada", 1), ("bob", 2))
    }
    with database.connect() as conn:
        for author, adapters in twins.items():
            release(conn, author, adapters)
    port = free_port()
    log = work / "service.log"
    proc = start_service(port, artifacts, log)
    try:
        yield Service(f"http://127.0.0.1:{port}", artifacts, store, database, twins, work, log)
    finally:
        stop_service(proc)


def start_service(port: int, artifacts: Path, log: Path) -> subprocess.Popen[bytes]:
    """`llm-twin serve` on ``port`` with the test settings; returns once /readyz answers."""
    env = {**os.environ, **SERVICE_ENV, "LLM_TWIN_ARTIFACTS_URL": str(artifacts)}
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [LLM_TWIN, "serve", "--port", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
    try:
        _wait_ready(proc, f"http://127.0.0.1:{port}", log)
    except BaseException:
        stop_service(proc)
        raise
    return proc


def stop_service(proc: subprocess.Popen[bytes], grace_s: float = 30) -> None:
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def _wait_ready(proc: subprocess.Popen[bytes], url: str, log: Path, timeout_s: float = 180) -> None:
    wait_until(answers(f"{url}/readyz"), "the service to be ready", timeout_s, 0.5, exited(proc, log))
