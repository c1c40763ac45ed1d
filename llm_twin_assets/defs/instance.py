"""The Dagster instance config for one machine (``$DAGSTER_HOME/dagster.yaml``), written by
``llm-twin instance init`` (``make install`` runs it) and by the CLI when the file is missing.

- One run per author at a time: a run-queue limit of 1 per value of the ``dagster/partition`` tag, so
  the sensor, the schedule, declarative automation and launches from the UI queue behind each other.
  ``llm-twin materialize`` runs in-process, outside the queue: it refuses to start while a run for that
  author is queued or going, and its own run (tagged with the partition) holds the queue back.
- The ``gpu`` pool (the training steps) takes one step at a time on this machine.
- Run monitoring (the daemon of ``make dagster``): a run whose process died is failed, and the pool slot
  of a run that ended is freed (``llm-twin materialize`` frees those itself before it starts).
"""

from __future__ import annotations

from pathlib import Path

_QUEUE_AND_POOLS = """\
# Written by llm-twin (`llm-twin instance init`); edit freely, it is not overwritten once changed.
telemetry:
  enabled: false
concurrency:
  runs:
    max_concurrent_runs: 4
    tag_concurrency_limits:
      # One run per author (partition) at a time: the sensor, the schedule, automation and a person
      # launching by hand queue behind each other instead of racing on the same rows.
      - key: dagster/partition
        value:
          applyLimitPerUniqueValue: true
        limit: 1
  pools:
    default_limit: 1  # the `gpu` pool: one training step at a time on this machine
"""
_RUN_MONITORING = """\
run_monitoring:
  # `make dagster` (its daemon): a run whose process died is marked failed, and a pool slot held by a
  # run that ended is freed (else every later training step would wait for it)
  enabled: true
  poll_interval_seconds: 30
  free_slots_after_run_end_seconds: 30
"""
INSTANCE_YAML = _QUEUE_AND_POOLS + _RUN_MONITORING
# What earlier versions wrote; replaced by the current file.
_PREVIOUS = ("telemetry:\n  enabled: false\n", _QUEUE_AND_POOLS)


def ensure_instance_config(dagster_home: Path) -> Path:
    """Write ``dagster.yaml`` unless the user has their own; returns its path."""
    dagster_home.mkdir(parents=True, exist_ok=True)
    path = dagster_home / "dagster.yaml"
    if not path.exists() or path.read_text() in _PREVIOUS:
        path.write_text(INSTANCE_YAML)
    return path
