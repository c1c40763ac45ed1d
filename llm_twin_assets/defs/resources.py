"""Resources: the store and the models, configured from settings (``LLM_TWIN_*``) at run time.

Each field left unset falls back to the environment through :func:`get_settings`, so the same
definitions run on the embedded defaults and against external services with no code change.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import dagster as dg
from pydantic import PrivateAttr

from llm_twin_assets.errors import ConfigError
from llm_twin_assets.settings import TwinSettings, get_settings
from llm_twin_assets.store.database import Database, open_database

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

    from llm_twin_assets.evaluation.job import EvalJob
    from llm_twin_assets.models.registry import ModelRef
    from llm_twin_assets.training.config import TrainJob


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

    def encoder(self):
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

    def teacher(self):
        from llm_twin_assets.datasets.teachers import teacher_from_settings

        return teacher_from_settings(self.settings())


class ArtifactsResource(dg.ConfigurableResource):
    """Where datasets and adapters are stored: the data home, another folder, or S3 (through dagster-aws)."""

    url: str | None = None
    """Unset = ``LLM_TWIN_ARTIFACTS_URL`` or ``<home>/artifacts``; a folder; or ``s3://bucket/prefix``."""
    s3_endpoint_url: str | None = None
    """An S3-compatible endpoint (MinIO, LocalStack); unset = AWS."""
    s3_region: str | None = None

    def store(self):
        from llm_twin_assets.artifacts import open_store

        settings = get_settings(artifacts_url=self.url)
        client = None
        if settings.artifacts_url and settings.artifacts_url.startswith("s3://"):
            from dagster_aws.s3 import S3Resource

            client = S3Resource(endpoint_url=self.s3_endpoint_url, region_name=self.s3_region).get_client()
        return open_store(settings.artifacts_url, settings.artifacts_dir, client)

    def trainer_url(self) -> str:
        """The store as a trainer process names it: ``s3://...`` or an absolute folder."""
        from llm_twin_assets.artifacts import local_store

        settings = get_settings(artifacts_url=self.url)
        if settings.artifacts_url and settings.artifacts_url.startswith("s3://"):
            return settings.artifacts_url
        return str(local_store(settings.artifacts_dir, settings.artifacts_url).root)


class TrainerResource(dg.ConfigurableResource):
    """How training (and evaluation, which runs the same models) runs: a local subprocess (default), or an
    ECS task on AWS, both through Dagster Pipes. A field left unset comes from the settings
    (``LLM_TWIN_TRAINER_LAUNCHER``, ``LLM_TWIN_ECS_*``): a deployment chooses without a code edit."""

    launcher: str | None = None
    """``subprocess`` (this machine's GPU or CPU) or ``ecs`` (a GPU task; artifacts must be in S3)."""
    python: str | None = None
    """subprocess: the interpreter to run the trainer with; unset = this one."""
    forward_output: bool = True
    """subprocess: echo the trainer's own log lines (also in its train.log) to this process's output."""
    ecs_cluster: str | None = None
    ecs_task_definition: str | None = None
    """ecs: a task definition whose container has this package installed (the CUDA image) and a GPU."""
    ecs_container: str = "trainer"
    ecs_capacity_provider: str | None = None
    """ecs: the capacity provider the task is placed on (no launch type is sent then: ECS refuses both)."""
    ecs_subnets: list[str] | None = None
    """ecs (awsvpc networking): the subnets, and the security groups below."""
    ecs_security_groups: list[str] | None = None
    ecs_launch_type: str = "EC2"
    """ecs without a capacity provider: the launch type (EC2: the cluster's GPU instances)."""
    ecs_gpus: int = 1
    """ecs: GPUs the task's trainer container asks for (``resourceRequirements``; 0 for a CPU task)."""

    @property
    def resolved_launcher(self) -> str:
        return self.launcher or get_settings().trainer_launcher

    def base_model(self, profile: str, models: ModelsResource) -> tuple[str, str]:
        """The base model as the trainer names it (a spec any machine can resolve: 'tiny', 'bundled', a
        hub id, or a local folder for a trainer on this machine), and how manifests name it."""
        from llm_twin_assets.models.registry import TINY, base_model

        if profile == "tiny":
            return TINY, "tiny-llama"
        ref = base_model(models.settings())
        if ref.source == "path" and self.resolved_launcher != "subprocess":
            raise ConfigError(
                "LLM_TWIN_BASE_MODEL",
                f"{ref.name_or_path} is a folder on this machine, which a {self.resolved_launcher} task cannot read",
                "use 'bundled' or a hub id the task can fetch",
            )
        spec = ref.source if ref.source == "bundled" else ref.name_or_path
        return spec, f"{ref.source}:{Path(ref.name_or_path).name if ref.is_local else ref.name_or_path}"

    def launch(self, context: dg.AssetExecutionContext, job: TrainJob | EvalJob) -> dict[str, Any]:
        """Run the trainer (or the evaluation) for ``job`` and return what it reported (losses, tokens/s,
        peak memory, timings...)."""
        work = Path(job.output_dir)
        try:
            launcher = self.resolved_launcher
            if launcher == "ecs":
                invocation = self._ecs(context, job)
            elif launcher == "subprocess":
                work.mkdir(parents=True, exist_ok=True)
                job_file = work / "job.yaml"
                job.to_file(job_file)
                invocation = dg.PipesSubprocessClient(forward_stdio=self.forward_output).run(
                    context=context,
                    command=[self.python or sys.executable, "-m", job.module, "--config", str(job_file)],
                    extras={"job_file": str(job_file), "stage": job.stage},
                )
            else:
                raise ConfigError(
                    "TrainerResource.launcher", f"{launcher!r} is unknown", "use subprocess or ecs"
                )
        except dg.Failure:
            raise
        except Exception as exc:  # Dagster's DagsterPipesExecutionError, or the launcher's own error
            log = work / job.log_name
            tail = "\n".join(log.read_text().splitlines()[-25:]) if log.exists() else f"(no {job.log_name})"
            # Exit code 2 is a problem named before the work began (retrying cannot help); a crash may resume.
            named = re.search(r"failed with code 2\b", str(exc)) is not None
            what = "trainer" if job.stage in ("sft", "dpo") else "step"
            raise dg.Failure(
                description=f"the {job.stage} {what} failed: {exc}\nlast lines of {log}:\n{tail}",
                allow_retries=not named,
            ) from exc
        materialization = invocation.get_materialize_result()
        return {k: v.value for k, v in (materialization.metadata or {}).items()}

    def _ecs(self, context: dg.AssetExecutionContext, job: TrainJob | EvalJob):
        from dagster_aws.pipes import PipesECSClient

        if not job.artifacts_url.startswith("s3://"):
            raise ConfigError(
                "LLM_TWIN_ARTIFACTS_URL",
                f"must be s3://... when the {job.stage} step runs on ECS",
                "set it to a bucket the task can read and write",
            )
        return PipesECSClient().run(
            context=context, run_task_params=self.ecs_params(job), extras={"job": job.remote()}
        )

    def ecs_params(self, job: TrainJob | EvalJob) -> dict[str, Any]:
        """``RunTask``'s parameters for ``job``: this resource's fields, else the settings."""
        settings = get_settings()
        cluster = self.ecs_cluster or settings.ecs_cluster
        definition = self.ecs_task_definition or settings.ecs_gpu_task_definition
        if not (cluster and definition):
            raise ConfigError(
                "LLM_TWIN_ECS_CLUSTER/LLM_TWIN_ECS_GPU_TASK_DEFINITION",
                "are unset",
                "set both (or TrainerResource.ecs_cluster/ecs_task_definition) to train on ECS",
            )
        params: dict[str, Any] = {
            "cluster": cluster,
            "taskDefinition": definition,
            "count": 1,
            "overrides": {"containerOverrides": [self._ecs_container_overrides(job)]},
        }
        provider = self.ecs_capacity_provider or settings.ecs_capacity_provider
        if provider:
            params["capacityProviderStrategy"] = [{"capacityProvider": provider, "weight": 1}]
        else:
            params["launchType"] = self.ecs_launch_type
        subnets = self.ecs_subnets or _ids(settings.ecs_subnets)
        groups = self.ecs_security_groups or _ids(settings.ecs_security_groups)
        if subnets:
            params["networkConfiguration"] = {
                "awsvpcConfiguration": {"subnets": subnets, **({"securityGroups": groups} if groups else {})}
            }
        return params

    def _ecs_container_overrides(self, job: TrainJob | EvalJob) -> dict[str, Any]:
        overrides: dict[str, Any] = {"name": self.ecs_container, "command": ["python", "-m", job.module]}
        if self.ecs_gpus:
            overrides["resourceRequirements"] = [{"type": "GPU", "value": str(self.ecs_gpus)}]
        return overrides


def _ids(value: str | None) -> list[str]:
    return [part.strip() for part in (value or "").split(",") if part.strip()]


def remote_job(job: TrainJob) -> dict[str, Any]:
    """The job as a remote task gets it: model specs, versions and the artifact store's URL, nothing of
    this machine's file system (its work folder is relative: on the task's own disk, where it runs)."""
    return job.remote()
