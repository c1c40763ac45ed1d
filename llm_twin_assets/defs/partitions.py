"""One dynamic partition per author; the key is the slug of ``authors/<slug>.yaml``."""

import dagster as dg

AUTHORS = "authors"
authors_partitions = dg.DynamicPartitionsDefinition(name=AUTHORS)
