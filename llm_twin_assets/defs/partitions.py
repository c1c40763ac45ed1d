"""One dynamic partition per author; the key is the slug of ``authors/<slug>.yaml``."""

import dagster as dg

AUTHORS = "authors"
authors_partitions = dg.DynamicPartitionsDefinition(name=AUTHORS)


def register_authors(instance: dg.DagsterInstance, slugs: list[str]) -> None:
    """Make each author a partition of the instance (those already there are left as they are)."""
    new = [s for s in slugs if not instance.has_dynamic_partition(AUTHORS, s)]
    if new:
        instance.add_dynamic_partitions(AUTHORS, new)
