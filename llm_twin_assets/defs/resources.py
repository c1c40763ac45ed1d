"""Resources: the store and the models, configured from settings (``LLM_TWIN_*``) at run time.

Each field left unset falls back to the environment through :func:`get_settings`, so the same
definitions run on the embedded defaults and against external services with no code change.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import dagster as dg
from pydantic import PrivateAttr

from llm_twin_assets.settings import TwinSettings, get_settings
from llm_twin_assets.store.database import Database, open_database

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

    from llm_twin_assets.models.registry import ModelRef


class StoreResource(dg.ConfigurableResource):
    """PostgreSQL + pgvector: the embedded server under the data home unless a URL is given."""

    database_url: str | None = None
    """A PostgreSQL URL with pgvector (e.g. ``dg.EnvVar("LLM_TWIN_DATABASE_URL")``); unset = embedded."""
    home: str | None = None
    """The data home; unset = ``LLM_TWIN_HOME`` or ``./.llm_twin``."""

    _database: Database | None = PrivateAttr(default=None)

    def settings(self) -> TwinSettings:
        return get_settings(database_url=self.database_url, home=self.home)

    def database(self) -> Database:
        """The store, started and migrated on first use in this process."""
        if self._database is None:
            self._database = open_database(self.settings())
        return self._database


class ModelsResource(dg.ConfigurableResource):
    """The embedding model and the base LLM (paths or hub ids; unset = the bundled ones)."""

    embedding_model: str | None = None
    base_model: str | None = None
    device: str | None = None
    """``auto``, ``cpu`` or ``cuda``; unset = ``LLM_TWIN_DEVICE``."""

    _embedder: SentenceTransformer | None = PrivateAttr(default=None)
    _encoder: object | None = PrivateAttr(default=None)

    def settings(self) -> TwinSettings:
        return get_settings(
            embedding_model=self.embedding_model, base_model=self.base_model, device=self.device
        )

    def embedder(self) -> SentenceTransformer:
        if self._embedder is None:
            from llm_twin_assets.embeddings import load_embedder

            self._embedder = load_embedder(self.settings())
        return self._embedder

    def encoder(self):  # type: ignore[no-untyped-def]
        """The fast chunk encoder (OpenVINO on CPU when available, else torch), built on first use."""
        if self._encoder is None:
            from llm_twin_assets.embeddings import load_encoder

            self._encoder = load_encoder(self.settings(), self.embedder())
        return self._encoder

    def base_model_ref(self) -> ModelRef:
        from llm_twin_assets.models.registry import base_model

        return base_model(self.settings())


class AuthorsResource(dg.ConfigurableResource):
    """Where the links files live, and whether crawlers may reach private networks."""

    authors_dir: str | None = None
    """Folder of ``<slug>.yaml`` links files; unset = ``LLM_TWIN_AUTHORS_DIR`` or ``./authors``."""
    allow_private_networks: bool | None = None
    """Let crawlers reach loopback/private addresses (local tests and demos only)."""

    def settings(self) -> TwinSettings:
        return get_settings(authors_dir=self.authors_dir, allow_private_networks=self.allow_private_networks)


class TeacherResource(dg.ConfigurableResource):
    """Who writes instructions for the datasets: a local model or an OpenAI-compatible endpoint."""

    backend: str | None = None
    """``local`` or ``openai``; unset = ``LLM_TWIN_TEACHER_BACKEND`` (default ``local``)."""
    model: str | None = None
    """local: 'bundled', a path or a hub id; openai: the served model's name."""
    base_url: str | None = None
    """openai: the endpoint, up to and including ``/v1``."""
    api_key_env: str | None = None
    """openai: the name of the environment variable holding the key (the key itself never goes in config)."""
    device: str | None = None

    def settings(self) -> TwinSettings:
        return get_settings(
            teacher_backend=self.backend,
            teacher_model=self.model,
            teacher_base_url=self.base_url,
            teacher_api_key_env=self.api_key_env,
            device=self.device,
        )

    def teacher(self):  # type: ignore[no-untyped-def]
        from llm_twin_assets.datasets.teachers import teacher_from_settings

        return teacher_from_settings(self.settings())


class ArtifactsResource(dg.ConfigurableResource):
    """Where datasets and adapters are stored: the data home, another folder, or S3 (through dagster-aws)."""

    url: str | None = None
    """Unset = ``LLM_TWIN_ARTIFACTS_URL`` or ``<home>/artifacts``; a folder; or ``s3://bucket/prefix``."""
    s3_endpoint_url: str | None = None
    """An S3-compatible endpoint (MinIO, LocalStack); unset = AWS."""
    s3_region: str | None = None

    def store(self):  # type: ignore[no-untyped-def]
        from llm_twin_assets.artifacts import S3ArtifactStore, local_store, parse_s3_url

        settings = get_settings(artifacts_url=self.url)
        url = settings.artifacts_url
        if url and url.startswith("s3://"):
            from dagster_aws.s3 import S3Resource

            bucket, prefix = parse_s3_url(url)
            client = S3Resource(endpoint_url=self.s3_endpoint_url, region_name=self.s3_region).get_client()
            return S3ArtifactStore(client, bucket, prefix)
        return local_store(settings.artifacts_dir, url)
