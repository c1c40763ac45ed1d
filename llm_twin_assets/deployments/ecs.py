"""The code location on AWS ECS: ``dagster-aws``'s ``ecs_executor`` runs each step as its own task (its
defaults come from the instance's ``EcsRunLauncher``); training and evaluation carry GPU_STEP_TAGS, so
their tasks request a GPU (``resourceRequirements``) and more memory. See deploy/README.md."""

import dagster as dg
from dagster_aws.ecs import ecs_executor

from llm_twin_assets.definitions import defs as one_machine

defs = dg.Definitions.merge(one_machine, dg.Definitions(executor=ecs_executor))
