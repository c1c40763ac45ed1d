"""The service's traces (written by bentos/llm_twin, outside Dagster) and the report over them."""
