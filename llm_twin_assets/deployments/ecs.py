"""The code location on AWS ECS: ``dagster-aws``'s ``ecs_executor`` runs each step as its own task (its
defaults come from the instance's ``EcsRunLauncher``); training and evaluation carry GPU_STEP_TAGS, so
their tasks request a GPU (``resourceRequirements``) and more memory.
LLM_TWIN_DATABASE_URL and LLM_TWIN_ARTIFACTS_URL are required: loading fails fast without them
(``deployments.require_fleet_settings``). See deploy/README.md."""

import dagster as dg
from dagster_aws.ecs import ecs_executor

from llm_twin_assets.definitions import defs as one_machine
from llm_twin_assets.deployments import require_fleet_settings

require_fleet_settings("ECS")  # before anything runs: no laptop defaults on a fleet

defs = dg.Definitions.merge(one_machine, dg.Definitions(executor=ecs_executor))
