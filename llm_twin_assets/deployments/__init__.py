"""Code locations for fleets: the same definitions with another executor, chosen by pointing the
deployment at a module (workspace.yaml, `dagster code-server start -m ...`), never by editing code.

- ``llm_twin_assets.definitions``: one machine (the default executor; GPU work in a Pipes subprocess).
- ``llm_twin_assets.deployments.ecs``: every step its own ECS task; the GPU steps ask for a GPU.
- ``llm_twin_assets.deployments.ecs_pipes``: CPU steps inside the run's ECS task; training and evaluation as
  tasks of a CUDA task definition on a GPU capacity provider, through Pipes.
- ``llm_twin_assets.deployments.k8s``: every step its own Kubernetes job; the GPU steps ask for one.

A fleet location refuses to load on a laptop's defaults (:func:`require_fleet_settings`): with no
database URL every step container would start its own embedded PostgreSQL, and with no artifacts URL
every step would write datasets, adapters and checkpoints to its own disk, which the next step (another
container) never sees; with no authors URL (or an absolute authors folder on a shared volume) the sensor
and every crawl would read links files from a folder no container has.
"""

from __future__ import annotations

import os

from llm_twin_assets.errors import ConfigError

DATABASE_URL = "LLM_TWIN_DATABASE_URL"
ARTIFACTS_URL = "LLM_TWIN_ARTIFACTS_URL"
AUTHORS_URL = "LLM_TWIN_AUTHORS_URL"


def require_fleet_settings(location: str) -> None:
    """Raise a ConfigError naming the variable when ``location`` would run on one machine's defaults."""
    if not os.environ.get(DATABASE_URL, "").strip():
        raise ConfigError(
            DATABASE_URL,
            f"unset, so every {location} step would start an embedded PostgreSQL inside its own container",
            "set it to the shared PostgreSQL (with pgvector) every step reaches, e.g. "
            "postgresql://llm_twin@db.internal:5432/llm_twin (password from a secret: PGPASSWORD), "
            "through a session-mode pooler where one is used",
        )
    artifacts = os.environ.get(ARTIFACTS_URL, "").strip()
    if not artifacts:
        raise ConfigError(
            ARTIFACTS_URL,
            f"unset, so every {location} step would keep datasets, adapters and checkpoints on its own disk",
            "set it to the artifact store every step shares, e.g. s3://bucket/llm-twin",
        )
    if "://" not in artifacts and not os.path.isabs(artifacts):
        raise ConfigError(
            ARTIFACTS_URL,
            f"{artifacts!r} is a relative folder, inside each step's own container",
            "use s3://bucket/prefix (or an absolute path on a volume every step mounts)",
        )
    folder = os.environ.get("LLM_TWIN_AUTHORS_DIR", "").strip()
    if not os.environ.get(AUTHORS_URL, "").strip() and not os.path.isabs(folder):
        raise ConfigError(
            AUTHORS_URL,
            f"unset, so the sensor and every {location} crawl would read links files from "
            f"{repr(folder) + ' (relative)' if folder else 'the default ./authors'} inside its own container",
            "set it to s3://bucket/prefix holding the <slug>.yaml links files (`llm-twin author add` uploads "
            "there), or LLM_TWIN_AUTHORS_DIR to an absolute path on a volume every container mounts",
        )


def require_ecs_gpu_settings() -> None:
    """Raise a ConfigError naming the variable when GPU work could not be sent to ECS as configured."""
    from llm_twin_assets.settings import get_settings

    settings = get_settings()
    if settings.trainer_launcher != "ecs":
        raise ConfigError(
            "LLM_TWIN_TRAINER_LAUNCHER",
            f"is {settings.trainer_launcher!r}, so training would run inside the run's own (CPU) task",
            "set it to ecs",
        )
    for name, value in (
        ("LLM_TWIN_ECS_CLUSTER", settings.ecs_cluster),
        ("LLM_TWIN_ECS_GPU_TASK_DEFINITION", settings.ecs_gpu_task_definition),
        ("LLM_TWIN_ECS_CAPACITY_PROVIDER", settings.ecs_capacity_provider),
    ):
        if not value:
            raise ConfigError(
                name,
                "unset, so GPU tasks have nowhere to go",
                "set it (deploy/README.md: the CUDA task definition and the GPU capacity provider)",
            )
