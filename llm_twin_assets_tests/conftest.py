"""Real parts for tests: an embedded PostgreSQL + pgvector, the bundled models, a tiny Llama."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg.conninfo import make_conninfo

from llm_twin_assets.settings import TwinSettings, get_settings
from llm_twin_assets.store import embedded
from llm_twin_assets.store.database import Database, open_database

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """GPU tests are the only ones that may skip, and only when no GPU is present."""
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def data_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("llm_twin_home")


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
