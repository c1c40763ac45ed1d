"""The code location on Kubernetes: ``dagster-k8s``'s ``k8s_job_executor`` runs each step as its own job
(image, namespace and env from the instance's ``K8sRunLauncher``); training and evaluation carry
GPU_STEP_TAGS, so their pods request ``nvidia.com/gpu`` and tolerate GPU nodes.
LLM_TWIN_DATABASE_URL and LLM_TWIN_ARTIFACTS_URL are required: loading fails fast without them
(``deployments.require_fleet_settings``). See deploy/README.md."""

import dagster as dg
from dagster_k8s import k8s_job_executor

from llm_twin_assets.definitions import defs as one_machine
from llm_twin_assets.deployments import require_fleet_settings

require_fleet_settings("Kubernetes")  # before anything runs: no laptop defaults on a fleet

defs = dg.Definitions.merge(one_machine, dg.Definitions(executor=k8s_job_executor))
