"""The deployment examples in deploy/, where they can run here: the production instance (storage on
PostgreSQL) runs a real materialization; the fleet instance configs are valid for their launchers; the
fleet code locations load with their executors; a training step's Kubernetes job requests a GPU; a
training step launched on ECS (a local AWS API) asks for a GPU and carries no path of this machine."""

from __future__ import annotations

import base64
import json
import shutil
import threading
import time
import zlib
from pathlib import Path

import dagster as dg
import psycopg
import pytest
import yaml
from psycopg.conninfo import conninfo_to_dict

from llm_twin_assets.artifacts import LocalArtifactStore, S3ArtifactStore
from llm_twin_assets.defs.gpu import GPU_STEP_TAGS
from llm_twin_assets.defs.resources import ArtifactsResource, ModelsResource, StoreResource, TrainerResource
from llm_twin_assets.defs.runner import materialize_for_author
from llm_twin_assets.defs.serving.assets import serving_report
from llm_twin_assets.defs.training.assets import sft_adapter
from llm_twin_assets.store.database import Database
from llm_twin_assets_tests.conftest import S3_KEYS
from llm_twin_assets_tests.store.helpers import add_author
from llm_twin_assets_tests.training.helpers import publish_small
from llm_twin_assets_tests.waiting import wait_until

DEPLOY = Path(__file__).resolve().parents[1] / "deploy"


def sqlalchemy_url(conninfo: str) -> str:
    parts = conninfo_to_dict(conninfo)
    return f"postgresql+psycopg2://{parts.get('user', 'postgres')}@/{parts['dbname']}?host={parts['host']}&port={parts.get('port', 5432)}"


def test_the_production_instance_stores_a_real_run_in_postgresql(
    db: Database, fresh_database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "dagster"
    home.mkdir()
    shutil.copy(DEPLOY / "dagster" / "dagster.yaml", home / "dagster.yaml")
    monkeypatch.setenv("DAGSTER_PG_URL", sqlalchemy_url(fresh_database_url))
    with dg.DagsterInstance.from_config(str(home)) as instance:
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        assert type(instance.event_log_storage).__name__ == "PostgresEventLogStorage"
        assert instance.run_retries_enabled and instance.run_monitoring_enabled
        queue = instance.get_concurrency_config().run_queue_config
        assert queue is not None and queue.tag_concurrency_limits[0]["key"] == "dagster/partition"
        result = dg.materialize([serving_report], instance=instance, resources={"store": StoreResource()})
        assert result.success
        [run] = instance.get_runs()
        assert run.run_id == result.run_id and run.is_success
    with psycopg.connect(fresh_database_url) as conn:
        assert conn.execute("SELECT count(*) FROM runs").fetchone() == (1,)
        materialized = conn.execute(
            "SELECT count(*) FROM event_logs WHERE dagster_event_type = 'ASSET_MATERIALIZATION'"
        ).fetchone()
        assert materialized == (1,)


@pytest.mark.parametrize(
    ("file", "launcher"),
    [
        ("dagster-ecs.yaml", "dagster_aws.ecs.EcsRunLauncher"),
        ("dagster-k8s.yaml", "dagster_k8s.K8sRunLauncher"),
    ],
)
def test_the_fleet_instance_configs_are_valid_for_their_launchers(
    file: str, launcher: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dagster._config import process_config

    monkeypatch.setenv("DAGSTER_PG_URL", "postgresql+psycopg2://dagster@db.internal/dagster")
    from dagster._core.instance.config import dagster_instance_config_schema

    config = yaml.safe_load((DEPLOY / "dagster" / file).read_text())
    assert process_config(dagster_instance_config_schema(), config).success
    module, name = launcher.rsplit(".", 1)
    assert f"{config['run_launcher']['module']}.{config['run_launcher']['class']}" == launcher
    cls = getattr(__import__(module, fromlist=[name]), name)
    checked = process_config(cls.config_type(), config["run_launcher"]["config"])
    assert checked.success, checked.errors


def test_the_fleet_code_locations_load_with_their_executors(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLM_TWIN_DATABASE_URL", "postgresql://llm_twin@db.internal/llm_twin")
    monkeypatch.setenv("LLM_TWIN_ARTIFACTS_URL", "s3://twins/llm-twin")
    monkeypatch.setenv("LLM_TWIN_AUTHORS_URL", "s3://twins/authors")
    from llm_twin_assets.deployments.ecs import defs as ecs
    from llm_twin_assets.deployments.k8s import defs as k8s

    assert ecs.executor is not None and ecs.executor.name == "ecs"
    assert k8s.executor is not None and k8s.executor.name == "k8s"
    from llm_twin_assets.definitions import defs as one_machine

    assert list(ecs.assets or []) == list(one_machine.assets or []) == list(k8s.assets or [])
    by_name = {
        a.key.to_user_string(): a for a in one_machine.assets or [] if isinstance(a, dg.AssetsDefinition)
    }
    for gpu_step in ("sft_adapter", "dpo_adapter", "twin_evaluation"):
        tags = by_name[gpu_step].op.tags
        assert "GPU" in tags["ecs/container_overrides"] and "nvidia.com/gpu" in tags["dagster-k8s/config"]
    for cpu_step in ("raw_documents", "chunks", "chunk_embeddings", "instruct_dataset", "twin_release"):
        assert "ecs/container_overrides" not in by_name[cpu_step].op.tags


def test_a_training_step_kubernetes_job_requests_a_gpu() -> None:
    from dagster_k8s.job import DagsterK8sJobConfig, construct_dagster_k8s_job, get_user_defined_k8s_config

    tags = {k: v if isinstance(v, str) else json.dumps(v) for k, v in sft_adapter.op.tags.items()}
    job = construct_dagster_k8s_job(
        DagsterK8sJobConfig(job_image="llm-twin:latest", dagster_home="/opt/dagster/home"),
        ["dagster", "api", "execute_step"],
        "dagster-step-sft-adapter",
        user_defined_k8s_config=get_user_defined_k8s_config(tags),
    )
    pod = job.spec.template.spec
    resources = pod.containers[0].resources
    assert resources.limits["nvidia.com/gpu"] == "1" and resources.requests["nvidia.com/gpu"] == "1"
    assert any(t.key == "nvidia.com/gpu" for t in pod.tolerations)
    assert pod.node_selector == {"nvidia.com/gpu.present": "true"}  # scheduled on GPU nodes only
    assert GPU_STEP_TAGS["dagster-k8s/config"]


class LocalEcs:
    """A cluster with one GPU container instance on the local AWS API (moto's server), and the trainer's
    task definition; AWS settings pointed there."""

    def __init__(self, endpoint: str, monkeypatch: pytest.MonkeyPatch) -> None:
        import boto3

        for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
            monkeypatch.setenv(name, "test")
        monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
        monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)  # ECS and CloudWatch Logs on the local AWS API
        self.endpoint = endpoint
        self.ecs = boto3.client("ecs", endpoint_url=endpoint, region_name="us-east-1", **S3_KEYS)
        self.cluster = f"gpu-{time.monotonic_ns()}"
        self.ecs.create_cluster(clusterName=self.cluster)
        ec2 = boto3.client("ec2", endpoint_url=endpoint, region_name="us-east-1", **S3_KEYS)
        instance = ec2.run_instances(ImageId="ami-12c6146b", MinCount=1, MaxCount=1, InstanceType="g6.xlarge")
        document = json.dumps({"instanceId": instance["Instances"][0]["InstanceId"]})
        self.ecs.register_container_instance(cluster=self.cluster, instanceIdentityDocument=document)

    def task_definition(self, family: str, image: str) -> None:
        self.ecs.register_task_definition(
            family=family,
            requiresCompatibilities=["EC2"],
            networkMode="bridge",
            containerDefinitions=[
                {"name": "trainer", "image": image, "essential": True, "memory": 4096, "cpu": 1024}
            ],
        )

    def first_task_of(self, db: Database, tmp_path: Path, trainer: TrainerResource) -> dict:  # type: ignore[type-arg]
        """Materialize sft_adapter with ``trainer``; the ECS task it asked for (stopped at once)."""
        import boto3

        local = LocalArtifactStore(tmp_path / "local")
        publish_small(local.root, "ada")
        client = boto3.client("s3", endpoint_url=self.endpoint, region_name="us-east-1", **S3_KEYS)
        s3 = S3ArtifactStore(client, "twins", "ecs-test")
        for key in local.list_keys():
            s3.put(key, local.get(key))
        with db.connect() as conn:
            add_author(conn, "ada")

        def launch() -> None:
            with dg.DagsterInstance.ephemeral() as instance:
                materialize_for_author(
                    [sft_adapter],
                    "ada",
                    instance=instance,
                    resources={
                        "store": StoreResource(),
                        "models": ModelsResource(device="cpu"),
                        "trainer": trainer,
                        "artifacts": ArtifactsResource(
                            url="s3://twins/ecs-test", s3_endpoint_url=self.endpoint, s3_region="us-east-1"
                        ),
                    },
                    run_config={"ops": {"sft_adapter": {"config": {"profile": "tiny"}}}},
                )

        thread = threading.Thread(target=launch, daemon=True)
        thread.start()
        arns = wait_until(
            lambda: self.ecs.list_tasks(cluster=self.cluster)["taskArns"], "an ECS task", 60, 0.2
        )
        task = self.ecs.describe_tasks(cluster=self.cluster, tasks=arns)["tasks"][0]
        self.ecs.stop_task(cluster=self.cluster, task=task["taskArn"], reason="test")
        thread.join(timeout=120)
        return task


@pytest.mark.slow
def test_a_training_step_on_ecs_asks_for_a_gpu_and_carries_no_local_path(
    db: Database, s3_endpoint: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ecs = LocalEcs(s3_endpoint, monkeypatch)
    ecs.task_definition("llm-twin-trainer", "llm-twin:cuda")
    trainer = TrainerResource(launcher="ecs", ecs_cluster=ecs.cluster, ecs_task_definition="llm-twin-trainer")
    task = ecs.first_task_of(db, tmp_path, trainer)

    assert task["launchType"] == "EC2"
    [overrides] = task["overrides"]["containerOverrides"]
    assert overrides["name"] == "trainer"
    assert overrides["command"] == ["python", "-m", "llm_twin_assets.training.sft"]
    assert overrides["resourceRequirements"] == [{"type": "GPU", "value": "1"}]
    env = {e["name"]: e["value"] for e in overrides.get("environment", [])}
    context = json.loads(zlib.decompress(base64.b64decode(env["DAGSTER_PIPES_CONTEXT"])))
    job = context["data"]["extras"]["job"]
    assert job["artifacts_url"] == "s3://twins/ecs-test" and job["base_model"] == "tiny"
    flat = json.dumps(job)
    for local_path in (str(tmp_path), str(Path.home()), "/tmp/", "/work/"):
        assert local_path not in flat, f"{local_path} in the task's job"


@pytest.mark.slow
def test_settings_alone_send_training_to_the_cuda_task_on_the_gpu_capacity_provider(
    db: Database, s3_endpoint: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import importlib

    ecs = LocalEcs(s3_endpoint, monkeypatch)
    ecs.task_definition("llm-twin-cpu", "llm-twin:cpu")
    ecs.task_definition("llm-twin-trainer-cuda", "llm-twin:cuda")
    ecs.ecs.create_capacity_provider(
        name="gpu-g6",
        autoScalingGroupProvider={
            "autoScalingGroupArn": "arn:aws:autoscaling:us-east-1:123456789012:autoScalingGroup:x:"
            "autoScalingGroupName/gpu-g6",
            "managedScaling": {"status": "ENABLED", "minimumScalingStepSize": 1, "maximumScalingStepSize": 2},
        },
    )
    ecs.ecs.put_cluster_capacity_providers(
        cluster=ecs.cluster, capacityProviders=["gpu-g6"], defaultCapacityProviderStrategy=[]
    )
    for name, value in {
        "LLM_TWIN_DATABASE_URL": "postgresql://llm_twin@db.internal/llm_twin",
        "LLM_TWIN_ARTIFACTS_URL": "s3://twins/ecs-test",
        "LLM_TWIN_AUTHORS_URL": "s3://twins/authors",
        "LLM_TWIN_ECS_CLUSTER": ecs.cluster,
        "LLM_TWIN_ECS_GPU_TASK_DEFINITION": "llm-twin-trainer-cuda",
        "LLM_TWIN_ECS_CAPACITY_PROVIDER": "gpu-g6",
    }.items():
        monkeypatch.setenv(name, value)
    from llm_twin_assets.errors import ConfigError

    with pytest.raises(ConfigError, match="^LLM_TWIN_TRAINER_LAUNCHER: "):  # still the subprocess launcher
        importlib.reload(importlib.import_module("llm_twin_assets.deployments.ecs_pipes"))
    monkeypatch.setenv("LLM_TWIN_TRAINER_LAUNCHER", "ecs")
    location = importlib.reload(importlib.import_module("llm_twin_assets.deployments.ecs_pipes"))
    assert location.defs.executor is None  # CPU steps stay in the run's own task

    monkeypatch.delenv("LLM_TWIN_DATABASE_URL")  # the test's store, not the fleet's
    task = ecs.first_task_of(db, tmp_path, TrainerResource())  # every field from the settings
    assert task["taskDefinitionArn"].endswith(":task-definition/llm-twin-trainer-cuda:1")
    assert task.get("capacityProviderName") == "gpu-g6" and not task.get(
        "launchType"
    )  # ECS: one or the other
    [overrides] = task["overrides"]["containerOverrides"]
    assert overrides["resourceRequirements"] == [{"type": "GPU", "value": "1"}]


@pytest.mark.parametrize("location", ["ecs", "k8s"])
@pytest.mark.parametrize(
    ("unset", "env"),
    [
        ("LLM_TWIN_DATABASE_URL", {"LLM_TWIN_DATABASE_URL": None}),
        ("LLM_TWIN_ARTIFACTS_URL", {"LLM_TWIN_ARTIFACTS_URL": None}),
        ("LLM_TWIN_ARTIFACTS_URL", {"LLM_TWIN_ARTIFACTS_URL": "artifacts"}),
        ("LLM_TWIN_AUTHORS_URL", {"LLM_TWIN_AUTHORS_URL": None}),
        ("LLM_TWIN_AUTHORS_URL", {"LLM_TWIN_AUTHORS_URL": None, "LLM_TWIN_AUTHORS_DIR": "authors"}),
    ],
    ids=["no-database-url", "no-artifacts-url", "relative-artifacts", "no-authors-url", "relative-authors"],
)
def test_a_fleet_code_location_refuses_laptop_defaults_at_load(
    location: str, unset: str, env: dict[str, str | None], monkeypatch: pytest.MonkeyPatch
) -> None:
    import importlib

    from llm_twin_assets.errors import ConfigError

    fleet = {
        "LLM_TWIN_DATABASE_URL": "postgresql://llm_twin@db.internal/llm_twin",
        "LLM_TWIN_ARTIFACTS_URL": "s3://twins/x",
        "LLM_TWIN_AUTHORS_URL": "s3://twins/authors",
        "LLM_TWIN_AUTHORS_DIR": None,
    }
    for name, value in (fleet | env).items():
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, value)
    module = importlib.import_module("llm_twin_assets.deployments")
    with pytest.raises(ConfigError, match=f"^{unset}: ") as refused:
        importlib.reload(importlib.import_module(f"llm_twin_assets.deployments.{location}"))
    assert refused.value.setting == unset and module.require_fleet_settings


def test_a_fleet_may_read_authors_from_a_shared_volume(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib

    monkeypatch.setenv("LLM_TWIN_DATABASE_URL", "postgresql://llm_twin@db.internal/llm_twin")
    monkeypatch.setenv("LLM_TWIN_ARTIFACTS_URL", "s3://twins/x")
    monkeypatch.delenv("LLM_TWIN_AUTHORS_URL", raising=False)
    monkeypatch.setenv("LLM_TWIN_AUTHORS_DIR", "/mnt/shared/authors")
    module = importlib.reload(importlib.import_module("llm_twin_assets.deployments.k8s"))
    assert module.defs.executor is not None and module.defs.executor.name == "k8s"


def test_the_workspaces_point_at_code_servers() -> None:
    for target in ("ecs", "k8s"):
        [entry] = yaml.safe_load((DEPLOY / "dagster" / f"workspace-{target}.yaml").read_text())["load_from"]
        assert set(entry) == {"grpc_server"} and entry["grpc_server"]["port"] == 4000


def test_the_image_names_itself_and_bakes_the_targets_instance() -> None:
    dockerfile = (DEPLOY / "docker" / "Dockerfile").read_text()
    assert "ENV DAGSTER_CURRENT_IMAGE=${IMAGE}" in dockerfile
    assert "COPY deploy/dagster/${DAGSTER_INSTANCE} /opt/dagster/home/dagster.yaml" in dockerfile


def _secret_free(text: str) -> None:
    import re

    # a placeholder (":password@", ":$VAR@") is documentation; anything else is a leaked password
    assert not re.search(r"postgres(ql)?(\+\w+)?://[^@\s/]*:(?!password@|\$)[^@\s]+@", text), "a password"
    assert not re.search(r"(?i)(password|secret_access_key|api_key)\s*[:=]\s*[\"']?[A-Za-z0-9/+]{6,}", text)


def test_the_fleet_instances_take_secrets_from_the_secret_stores_and_keep_step_logs() -> None:
    ecs = yaml.safe_load((DEPLOY / "dagster" / "dagster-ecs.yaml").read_text())
    k8s = yaml.safe_load((DEPLOY / "dagster" / "dagster-k8s.yaml").read_text())
    secrets = {s["name"]: s["valueFrom"] for s in ecs["run_launcher"]["config"]["secrets"]}
    assert set(secrets) == {"LLM_TWIN_DATABASE_URL", "DAGSTER_PG_URL"}
    assert all(v.startswith("arn:aws:secretsmanager:") for v in secrets.values())
    for config in (ecs, k8s):
        assert not set(config["run_launcher"]["config"]["env_vars"]) & {
            "LLM_TWIN_DATABASE_URL",
            "DAGSTER_PG_URL",
        }
        assert config["compute_logs"]["class"] == "S3ComputeLogManager"
        assert config["concurrency"]["pools"]["default_limit"] >= 1
    assert k8s["run_launcher"]["config"]["env_secrets"] == ["llm-twin-secrets"]
    for path in DEPLOY.rglob("*"):
        if (path.is_file() and path.suffix in (".yaml", ".json", ".md")) or path.name == "Dockerfile":
            _secret_free(path.read_text())


def test_the_helm_values_pin_the_image_and_take_the_password_from_a_secret() -> None:
    text = (DEPLOY / "k8s" / "values.yaml").read_text()
    values = yaml.safe_load(text)
    assert "--version 1.13.27" in text  # the chart pinned to the image's dagster
    [location] = values["dagster-user-deployments"]["deployments"]
    assert location["image"]["tag"] not in ("latest", "", None)
    assert values["global"]["postgresqlSecretName"] and values["generatePostgresqlPasswordSecret"] is False
    assert "postgresqlPassword" not in values["postgresql"]
    assert values["computeLogManager"]["type"] == "S3ComputeLogManager"
    assert values["concurrency"]["enabled"] and values["concurrency"]["pools"]["defaultLimit"] >= 1
    assert values["migrate"]["enabled"]
    assert "queuedRunCoordinator" not in values["dagsterDaemon"]["runCoordinator"].get("config", {})


def test_the_service_fits_one_gpu_and_survives_a_slow_start() -> None:
    deployment = next(
        d
        for d in yaml.safe_load_all((DEPLOY / "k8s" / "llm-twin-service.yaml").read_text())
        if d["kind"] == "Deployment"
    )
    assert deployment["spec"]["strategy"]["rollingUpdate"] == {"maxSurge": 0, "maxUnavailable": 1}
    pod = deployment["spec"]["template"]["spec"]
    assert pod["nodeSelector"] and any(t["key"] == "nvidia.com/gpu" for t in pod["tolerations"])
    [container] = pod["containers"]
    assert not container["image"].endswith(":latest")
    startup = container["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 300
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"


def test_the_iam_policy_covers_what_the_launchers_call() -> None:
    policy = json.loads((DEPLOY / "ecs" / "iam-policy.json").read_text())
    actions = {
        a
        for s in policy["Statement"]
        for a in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])
    }
    for needed in (
        "ecs:RunTask",
        "ecs:DescribeTasks",
        "ecs:StopTask",
        "ecs:RegisterTaskDefinition",
        "iam:PassRole",
        "secretsmanager:GetSecretValue",
        "logs:GetLogEvents",
        "s3:PutObject",
    ):
        assert needed in actions


def test_without_helm_the_service_account_and_its_role_exist_for_the_run_launcher() -> None:
    instance = yaml.safe_load((DEPLOY / "dagster" / "dagster-k8s.yaml").read_text())["run_launcher"]["config"]
    docs = list(yaml.safe_load_all((DEPLOY / "k8s" / "dagster-rbac.yaml").read_text()))
    by_kind = {d["kind"]: d for d in docs}
    account, role, binding = by_kind["ServiceAccount"], by_kind["Role"], by_kind["RoleBinding"]
    namespace = instance["job_namespace"]
    assert account["metadata"] == {"name": instance["service_account_name"], "namespace": namespace}
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": account["metadata"]["name"], "namespace": namespace}
    ]
    assert (
        binding["roleRef"]["name"] == role["metadata"]["name"] and role["metadata"]["namespace"] == namespace
    )
    granted = {
        (group, resource, verb)
        for rule in role["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }
    # what K8sRunLauncher and k8s_job_executor call: create/watch/delete jobs, read their pods and logs
    needed = {("batch", "jobs", v) for v in ("create", "get", "list", "watch", "delete")}
    needed |= {("", "pods", v) for v in ("get", "list", "watch")} | {
        ("", "pods/log", "get"),
        ("", "events", "list"),
    }
    assert needed <= granted, needed - granted
    readme = (DEPLOY / "README.md").read_text()
    config_map = instance["instance_config_map"]
    assert f"create configmap {config_map}" in readme.replace("\n   ", " ") and "dagster-rbac.yaml" in readme
