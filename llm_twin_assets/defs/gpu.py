"""What the GPU steps (training and evaluation) ask of a fleet executor. Locally these tags change
nothing; under ``ecs_executor`` each such step is its own ECS task with a GPU, under
``k8s_job_executor`` its own Kubernetes job with an ``nvidia.com/gpu`` limit, while every other step runs
on the executor's default (CPU) task. The sizes are deployment defaults: override them per run with the
same tags in run config, or in the executor's own config."""

GPU_STEP_TAGS: dict[str, object] = {
    "ecs/cpu": "8192",
    "ecs/memory": "57344",  # fits a g6.4xlarge (16 vCPU, 64 GiB; ECS keeps some for its agent)
    "ecs/container_overrides": {"resourceRequirements": [{"type": "GPU", "value": "1"}]},
    "dagster-k8s/config": {
        "container_config": {
            "resources": {
                "requests": {"cpu": "4", "memory": "32Gi", "nvidia.com/gpu": "1"},
                "limits": {"memory": "60Gi", "nvidia.com/gpu": "1"},
            }
        },
        "pod_spec_config": {
            "node_selector": {"nvidia.com/gpu.present": "true"},  # GPU Feature Discovery's node label
            "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
        },
    },
}
