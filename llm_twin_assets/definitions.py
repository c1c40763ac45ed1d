"""The code location: assembles assets, checks, sensors and resources. No logic lives here."""

import dagster as dg

from llm_twin_assets.defs.partitions import authors_partitions
from llm_twin_assets.defs.resources import ModelsResource, StoreResource

__all__ = ["authors_partitions", "defs"]

defs = dg.Definitions(
    resources={
        "store": StoreResource(),
        "models": ModelsResource(),
    },
)
