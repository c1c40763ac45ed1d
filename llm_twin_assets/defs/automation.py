"""Declarative automation: datasets, training (and later evaluation) follow their inputs' data versions.

The sensor and the schedule run ingestion and features only. Every asset reports a data version (a
digest of its rows, a dataset or adapter version); the assets below run, per author, only when the
author is new or an input's data version changed, so an unchanged nightly re-crawl calls no teacher and
trains nothing, and a changed links file re-runs exactly what it affects.
"""

import dagster as dg


def follows_changed_inputs() -> dg.AutomationCondition:
    """New partition, or an input's data version changed since the last tick (not merely re-materialized
    with the same data, and not by a run that already included this asset); nothing upstream missing,
    running or failing its blocking checks; not running already."""
    changed_input = dg.AutomationCondition.any_deps_match(
        dg.AutomationCondition.data_version_changed() & ~dg.AutomationCondition.executed_with_root_target()
    ).with_label("an input's data version changed")
    return (
        (dg.AutomationCondition.newly_missing() | changed_input).since_last_handled()
        & ~dg.AutomationCondition.any_deps_missing()
        & ~dg.AutomationCondition.any_deps_in_progress()
        & ~dg.AutomationCondition.in_progress()
        & dg.AutomationCondition.all_deps_blocking_checks_passed()
    ).with_label("follows changed inputs")


automation_sensor = dg.AutomationConditionSensorDefinition(
    "llm_twin_automation",
    target=dg.AssetSelection.all(),
    default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=30,
    description="Runs datasets and training for an author when their inputs' data versions changed.",
)
