"""The code location on AWS ECS with the GPU work sent explicitly to GPU capacity: each run is one ECS
task (the instance's ``EcsRunLauncher``) whose CPU steps run inside it on the default multiprocess
executor, while training and evaluation each go out as a task of the CUDA task definition, placed on the
GPU capacity provider, through Dagster Pipes (``TrainerResource`` reads ``LLM_TWIN_TRAINER_LAUNCHER=ecs``
and ``LLM_TWIN_ECS_*``). A CPU step never waits for a GPU instance and a GPU instance never runs a crawl;
no step container overrides an image. Loading fails fast without the fleet settings and the GPU task's
(``deployments.require_fleet_settings``, ``require_ecs_gpu_settings``). See deploy/README.md."""

from llm_twin_assets.definitions import defs as one_machine
from llm_twin_assets.deployments import require_ecs_gpu_settings, require_fleet_settings

require_fleet_settings("ECS")
require_ecs_gpu_settings()

defs = one_machine
