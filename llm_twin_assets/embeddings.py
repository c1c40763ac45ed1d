"""Loading the sentence-transformers embedding model, offline, with its dimension checked."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from llm_twin_assets.errors import ConfigError, ModelError
from llm_twin_assets.models.registry import ModelRef, embedding_model
from llm_twin_assets.settings import TwinSettings

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer


def load_embedder(settings: TwinSettings) -> SentenceTransformer:
    """The configured embedding model, refusing one whose dimension differs from the store's."""
    ref = embedding_model(settings)
    model = _load(ref, settings.resolved_device())
    dim = model.get_embedding_dimension()
    if dim != settings.embedding_dim:
        raise ConfigError(
            "LLM_TWIN_EMBEDDING_MODEL",
            f"{ref.name_or_path} makes {dim}-d embeddings but the store holds {settings.embedding_dim}-d",
            "use a model of that dimension, or set LLM_TWIN_EMBEDDING_DIM and re-create the chunks table",
        )
    return model


def _load(ref: ModelRef, device: str) -> SentenceTransformer:
    if ref.is_local:
        # A local folder never needs the hub; make sure nothing tries to reach it.
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from sentence_transformers import SentenceTransformer
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()  # "Loading weights" bars clutter logs and the CLI
    try:
        return SentenceTransformer(ref.name_or_path, device=device, local_files_only=ref.is_local)
    except (OSError, ValueError) as exc:
        raise ModelError(
            f"LLM_TWIN_EMBEDDING_MODEL: cannot load {ref.name_or_path} ({exc}). Fix: use a local "
            "sentence-transformers folder, 'bundled', or a hub id already in the local hub cache"
        ) from exc


def model_label(settings: TwinSettings) -> str:
    """What ``chunks.embedding_model`` records: a model change is visible (and re-embeds)."""
    ref = embedding_model(settings)
    name = "all-MiniLM-L6-v2" if ref.source == "bundled" else ref.name_or_path.rstrip("/").rsplit("/", 1)[-1]
    return f"{ref.source}:{name}"


def load_encoder(settings: TwinSettings, model: SentenceTransformer | None = None):
    """The fast chunk encoder for the configured model, device, backend and threads."""
    from llm_twin_assets.features.encoding import Encoder

    return Encoder(
        model or load_embedder(settings),
        device=settings.resolved_device(),
        backend=settings.embedding_backend,
        batch_size=settings.embedding_batch_size,
        threads=settings.torch_threads,
        cache_dir=settings.model_cache,
        model_path=embedding_model(settings).name_or_path,
    )
