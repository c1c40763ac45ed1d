"""Real parts for tests: an embedded PostgreSQL + pgvector, the bundled models, a tiny Llama."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import psycopg
import pytest
from psycopg.conninfo import make_conninfo

from llm_twin_assets.settings import TwinSettings, get_settings
from llm_twin_assets.store import embedded
from llm_twin_assets.store.database import Database, open_database

if TYPE_CHECKING:
    from llm_twin_assets_tests.ingest.site import SiteState

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


DB_FIXTURES = frozenset({"database", "db", "fresh_database_url"})
MODEL_FIXTURES = frozenset({"tiny_model_path", "embedder"})
PROCESS_FIXTURES = frozenset({"site", "s3_endpoint", "s3_client", "service", "sample_repo"})
PROCESS_NAMES = ("subprocess", "serve_http", "serve_site", "dagster_dev", "openai_server", "CliRunner")
MODEL_NAMES = ("load_causal_lm", "load_embedder", "load_twin", "tiny_llama")


def tiers(item: pytest.Item) -> list[str]:
    """What a test needs, as markers set on it: ``db`` (the session's PostgreSQL), ``models`` (a real model
    loaded), ``process`` (a server, a subprocess or a CLI run), or ``pure`` (none of them). Read from its
    fixtures and from the names its module imports; ``-m pure``, ``-m "db and not process"`` select them."""
    fixtures = set(getattr(item, "fixturenames", ()))
    module = vars(item.module) if getattr(item, "module", None) is not None else {}  # type: ignore[attr-defined]
    found = []
    if fixtures & DB_FIXTURES:
        found.append("db")
    if fixtures & MODEL_FIXTURES or any(name in module for name in MODEL_NAMES):
        found.append("models")
    if fixtures & PROCESS_FIXTURES or any(name in module for name in PROCESS_NAMES):
        found.append("process")
    return found or ["pure"]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Each test's tier markers (:func:`tiers`). Files with heavy tests first, then files with slow ones
    (`make test` hands whole files to two workers in this order: the long ones start at once and the
    quick ones fill in, instead of a long file ending the run alone), each file's tests in their own
    order. GPU tests are the only ones that may skip, and only when no GPU is present."""
    import torch

    for item in items:
        for tier in tiers(item):
            item.add_marker(getattr(pytest.mark, tier))

    heavy_files = {item.path for item in items if "heavy" in item.keywords}
    slow_files = {item.path for item in items if "slow" in item.keywords}
    # stable: files and tests keep their order within each group
    items.sort(key=lambda item: (item.path not in heavy_files, item.path not in slow_files))
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


TEST_HOMES: list[Path] = []
"""Data homes this session made outside pytest's temporary root; the end-of-session guard watches them."""


def fresh_home(prefix: str) -> Path:
    """A fresh folder for a data home whose embedded server the tests start. Outside pytest's own
    temporary root on purpose: every pytest session resets that root to 0700, which would lock the
    embedded server (its own system user) out of its data, and `pg_ctl stop` with it."""
    home = Path(tempfile.mkdtemp(prefix=prefix))
    TEST_HOMES.append(home)
    return home


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """The suite leaves no process behind: an embedded PostgreSQL still running on a data home this
    session made, or any other process still running for one (a Dagster code server, a service: found by
    its ``DAGSTER_HOME``/``LLM_TWIN_HOME``), is stopped here and named as a failure."""
    roots = list(TEST_HOMES)
    with contextlib.suppress(Exception):
        roots.append(session.config._tmp_path_factory.getbasetemp())  # type: ignore[attr-defined]
    left = _stop_leftovers(roots)
    if left:
        print(f"\nerror: the suite left processes running (now stopped): {left}")
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def _stop_leftovers(roots: list[Path]) -> list[str]:
    """Stop what still runs on a test home under ``roots``; name each: a PostgreSQL by its data folder,
    any other process by its command line. PostgreSQL gets its fast shutdown (SIGINT); the rest get
    5 seconds to end on their own (Dagster's orphan watcher ends a killed run's log tails within about
    one), then SIGKILL."""
    import signal

    import psutil

    def under_roots(path: str) -> bool:
        return bool(path) and any(Path(path).is_relative_to(r) for r in roots)

    mine = {os.getpid(), *(p.pid for p in psutil.Process().parents())}
    left, others = [], []
    for proc in psutil.process_iter(attrs=("pid", "name", "cmdline")):
        if proc.info["pid"] in mine:
            continue
        cmd = proc.info["cmdline"] or []
        with contextlib.suppress(psutil.Error):
            if proc.info["name"] == "postgres":
                data = cmd[cmd.index("-D") + 1] if "-D" in cmd[:-1] else ""
                if under_roots(data):
                    left.append(data)
                    proc.send_signal(signal.SIGINT)  # PostgreSQL's fast shutdown
                continue
            env = proc.environ()
            if under_roots(env.get("DAGSTER_HOME", "")) or under_roots(env.get("LLM_TWIN_HOME", "")):
                others.append(proc)
    _, alive = psutil.wait_procs(others, timeout=5)
    for proc in alive:
        with contextlib.suppress(psutil.Error):
            left.append(" ".join(proc.info["cmdline"] or [])[:200])
            proc.kill()
    return left


@pytest.fixture(scope="session")
def data_home() -> Iterator[Path]:
    home = fresh_home("llm-twin-test-home-")
    yield home
    shutil.rmtree(home, ignore_errors=True)


@pytest.fixture(scope="session")
def settings(data_home: Path) -> Iterator[TwinSettings]:
    """Settings on a private data home; the machine-wide model cache is shared on purpose."""
    previous = os.environ.get("LLM_TWIN_HOME")
    os.environ["LLM_TWIN_HOME"] = str(data_home)
    os.environ.pop("LLM_TWIN_DATABASE_URL", None)
    try:
        yield get_settings()
    finally:
        if previous is None:
            os.environ.pop("LLM_TWIN_HOME", None)
        else:
            os.environ["LLM_TWIN_HOME"] = previous


@pytest.fixture(scope="session")
def database(settings: TwinSettings) -> Iterator[Database]:
    """The embedded server on the test data home, schema applied; stopped at the end."""
    db = open_database(settings)
    yield db
    embedded.stop(settings.pgdata)


@pytest.fixture
def db(database: Database) -> Database:
    """The shared test database, emptied before the test."""
    with database.connect() as conn:
        conn.execute("TRUNCATE authors, raw_documents, cleaned_documents, chunks CASCADE")
    return database


@pytest.fixture
def fresh_database_url(database: Database) -> Iterator[str]:
    """A brand-new, empty database on the test server (no extensions, no schema); dropped after."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(database.url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield make_conninfo(database.url, dbname=name)
    with psycopg.connect(database.url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def tiny_model_path(settings: TwinSettings) -> Path:
    from llm_twin_assets.models.registry import tiny_llama

    return tiny_llama(settings)


@pytest.fixture(scope="session")
def embedder(settings: TwinSettings):  # type: ignore[no-untyped-def]
    from llm_twin_assets.embeddings import load_embedder

    return load_embedder(settings)


@pytest.fixture
def site() -> Iterator[tuple[str, SiteState]]:
    """The fixture web site on 127.0.0.1 (a fresh server and state per test)."""
    from llm_twin_assets_tests.ingest.site import serve_site

    with serve_site() as served:
        yield served


@pytest.fixture
def fast_policy():  # type: ignore[no-untyped-def]
    """Polite, but with test-sized delays; loopback allowed (the fixture site lives there)."""
    from llm_twin_assets.crawling.http import CrawlPolicy

    return CrawlPolicy(
        min_delay_s=0.05,
        backoff_base_s=0.05,
        allow_private_networks=True,
        max_page_bytes=200_000,
        read_timeout_s=10,
    )


@pytest.fixture(scope="session")
def sample_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo author's repository as a bare git repo, plus files a crawler must skip."""
    import shutil
    import subprocess

    from llm_twin_assets.demo import SAMPLES, build_git_repo

    work = tmp_path_factory.mktemp("repo-src") / "tinyvec"
    shutil.copytree(SAMPLES / "maya" / "tinyvec", work)
    (work / "poetry.lock").write_text("# lock file\n" * 100)
    (work / "node_modules" / "left-pad").mkdir(parents=True)
    (work / "node_modules" / "left-pad" / "index.js").write_text("module.exports = 1;\n")
    (work / "logo.png").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00binary")
    (work / "tinyvec" / "_generated.py").write_text("# Code generated by protoc. DO NOT EDIT.\nx = 1\n")
    (work / "big.py").write_text("x = 1\n" * 60_000)
    target = build_git_repo(work, tmp_path_factory.mktemp("repos") / "tinyvec.git")
    assert (
        subprocess.run(["git", "-C", str(target), "rev-parse", "HEAD"], capture_output=True).returncode == 0
    )
    return target


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """A real S3 API (moto's server) on 127.0.0.1 with a bucket ``twins``; its endpoint URL."""
    import boto3
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", **S3_KEYS).create_bucket(
        Bucket="twins"
    )
    try:
        yield endpoint
    finally:
        server.stop()


S3_KEYS = {"aws_access_key_id": "test", "aws_secret_access_key": "test"}


@pytest.fixture(scope="session")
def s3_client(s3_endpoint: str):  # type: ignore[no-untyped-def]
    """boto3's S3 client on the local server, as dagster-aws's S3Resource would make it."""
    import boto3

    return boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1", **S3_KEYS)
