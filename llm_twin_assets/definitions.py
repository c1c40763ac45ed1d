"""The code location: assembles each stage's definitions and the shared resources. No logic here."""

import dagster as dg

from llm_twin_assets.defs.automation import automation_sensor
from llm_twin_assets.defs.datasets import definitions as datasets
from llm_twin_assets.defs.evaluation import definitions as evaluation
from llm_twin_assets.defs.features import definitions as features
from llm_twin_assets.defs.ingest import definitions as ingest
from llm_twin_assets.defs.partitions import authors_partitions
from llm_twin_assets.defs.release import definitions as release
from llm_twin_assets.defs.resources import (
    ArtifactsResource,
    AuthorsResource,
    ModelsResource,
    StoreResource,
    TeacherResource,
    TrainerResource,
)
from llm_twin_assets.defs.serving import definitions as serving
from llm_twin_assets.defs.training import definitions as training

__all__ = ["authors_partitions", "defs"]

defs = dg.Definitions.merge(
    ingest.defs,
    features.defs,
    datasets.defs,
    training.defs,
    evaluation.defs,
    release.defs,
    serving.defs,
    dg.Definitions(
        sensors=[automation_sensor],
        resources={
            "store": StoreResource(),
            "models": ModelsResource(),
            "authors": AuthorsResource(),
            "teacher": TeacherResource(),
            "artifacts": ArtifactsResource(),
            "trainer": TrainerResource(),
        },
    ),
)
