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
