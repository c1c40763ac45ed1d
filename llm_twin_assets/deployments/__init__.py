"""Code locations for fleets: the same definitions with another executor, chosen by pointing the
deployment at a module (workspace.yaml, `dagster code-server start -m ...`), never by editing code.

- ``llm_twin_assets.definitions``: one machine (the default executor; GPU work in a Pipes subprocess).
- ``llm_twin_assets.deployments.ecs``: every step its own ECS task; the GPU steps ask for a GPU.
- ``llm_twin_assets.deployments.k8s``: every step its own Kubernetes job; the GPU steps ask for one.
"""
