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

    try:
        return SentenceTransformer(ref.name_or_path, device=device, local_files_only=ref.is_local)
    except (OSError, ValueError) as exc:
        raise ModelError(
            f"LLM_TWIN_EMBEDDING_MODEL: cannot load {ref.name_or_path} ({exc}). Fix: use a local "
            "sentence-transformers folder, 'bundled', or a hub id already in the local hub cache"
        ) from exc
