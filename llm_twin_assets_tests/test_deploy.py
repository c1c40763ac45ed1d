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
from llm_twin_assets.defs.serving.assets import serving_report
from llm_twin_assets.defs.training.assets import sft_adapter
from llm_twin_assets.store.database import Database
from llm_twin_assets_tests.conftest import S3_KEYS
from llm_twin_assets_tests.store.helpers import add_author
from llm_twin_assets_tests.training.helpers import publish_small

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


def test_the_fleet_code_locations_load_with_their_executors() -> None:
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
    assert GPU_STEP_TAGS["dagster-k8s/config"]


def test_a_training_step_on_ecs_asks_for_a_gpu_and_carries_no_local_path(
    db: Database, s3_endpoint: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import boto3

    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(name, "test")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_endpoint)  # ECS and CloudWatch Logs on the local AWS API
    ecs = boto3.client("ecs", endpoint_url=s3_endpoint, region_name="us-east-1", **S3_KEYS)
    ec2 = boto3.client("ec2", endpoint_url=s3_endpoint, region_name="us-east-1", **S3_KEYS)
    ecs.create_cluster(clusterName="gpu")
    instance = ec2.run_instances(ImageId="ami-12c6146b", MinCount=1, MaxCount=1, InstanceType="g6.xlarge")
    document = json.dumps({"instanceId": instance["Instances"][0]["InstanceId"]})
    ecs.register_container_instance(cluster="gpu", instanceIdentityDocument=document)
    ecs.register_task_definition(
        family="llm-twin-trainer",
        requiresCompatibilities=["EC2"],
        networkMode="bridge",
        containerDefinitions=[
            {"name": "trainer", "image": "llm-twin:cuda", "essential": True, "memory": 4096, "cpu": 1024}
        ],
    )
    local = LocalArtifactStore(tmp_path / "local")
    publish_small(local.root, "ada")
    s3 = S3ArtifactStore(
        boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1", **S3_KEYS), "twins", "ecs-test"
    )
    for key in local.list_keys():
        s3.put(key, local.get(key))
    with db.connect() as conn:
        add_author(conn, "ada")

    trainer = TrainerResource(launcher="ecs", ecs_cluster="gpu", ecs_task_definition="llm-twin-trainer")
    result: dict[str, object] = {}

    def launch() -> None:
        with dg.DagsterInstance.ephemeral() as instance:
            instance.add_dynamic_partitions("authors", ["ada"])
            result["run"] = dg.materialize(
                [sft_adapter],
                partition_key="ada",
                instance=instance,
                raise_on_error=False,
                resources={
                    "store": StoreResource(),
                    "models": ModelsResource(device="cpu"),
                    "trainer": trainer,
                    "artifacts": ArtifactsResource(
                        url="s3://twins/ecs-test", s3_endpoint_url=s3_endpoint, s3_region="us-east-1"
                    ),
                },
                run_config={"ops": {"sft_adapter": {"config": {"profile": "tiny"}}}},
            )

    thread = threading.Thread(target=launch, daemon=True)
    thread.start()
    task = None
    for _ in range(300):
        arns = ecs.list_tasks(cluster="gpu")["taskArns"]
        if arns:
            task = ecs.describe_tasks(cluster="gpu", tasks=arns)["tasks"][0]
            break
        time.sleep(0.2)
    assert task is not None, "no ECS task was asked for"
    ecs.stop_task(cluster="gpu", task=task["taskArn"], reason="test")
    thread.join(timeout=120)

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
