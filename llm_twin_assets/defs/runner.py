"""Running assets for one author in-process: the one runner the CLI (``llm-twin materialize``) and the tests
use. The author's partition is registered first; a run never starts while another run of that author is
queued or going (the daemon's included); ``run_in_order`` runs a selection one asset at a time, in the
graph's order, with its checks, and stops at the first failure or failed blocking check."""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dagster as dg

from llm_twin_assets.defs.partitions import register_authors
from llm_twin_assets.errors import TwinError

QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
"""Run config that keeps Dagster's own console log to warnings (a CLI prints one line per step)."""

OWNER_TAG = "llm_twin/owner"
"""Tag on each in-process run: ``host/pid/start`` of the process running it (see :func:`process_owner`)."""

ENDED = [dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED]
BUSY = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
    dg.DagsterRunStatus.CANCELING,
]


def materialize_for_author(
    assets: Sequence[Any],
    author: str,
    resources: Mapping[str, Any],
    *,
    instance: dg.DagsterInstance | None = None,
    run_config: Mapping[str, Any] | None = None,
    selection: Any = None,
) -> dg.ExecuteInProcessResult:
    """``assets`` (and asset checks) materialized for ``author``'s partition, in-process; failures are in
    the result (never raised). Without an ``instance``, a fresh ephemeral one."""
    if instance is None:
        with dg.DagsterInstance.ephemeral() as ephemeral:  # entered: no stale definitions state
            return materialize_for_author(
                assets, author, resources, instance=ephemeral, run_config=run_config, selection=selection
            )
    register_authors(instance, [author])
    return dg.materialize(
        list(assets),
        selection=selection,
        partition_key=author,
        instance=instance,
        resources=dict(resources),
        run_config=dict(run_config or {}),
        raise_on_error=False,
        tags={OWNER_TAG: process_owner(os.getpid())},
    )


def _start_time(pid: int) -> str | None:
    """When process ``pid`` started (clock ticks since boot, from /proc), ``""`` where /proc cannot tell
    but the process exists, None when there is no such process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return None if os.path.isdir("/proc") else ("" if _exists(pid) else None)
    except OSError:
        return ""
    return stat.rsplit(")", 1)[-1].split()[19]  # field 22: starttime (the name may hold spaces)


def _exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def process_owner(pid: int) -> str:
    """``host/pid/start``: names one process on one machine, even after its pid is reused."""
    return f"{socket.gethostname()}/{pid}/{_start_time(pid) or ''}"


def owner_gone(run: dg.DagsterRun) -> bool:
    """The in-process run's process ended without finishing it (killed, the machine restarted): tagged by a
    process of this machine that no longer runs. A run of another machine, or untagged, is never judged."""
    host, _, rest = run.tags.get(OWNER_TAG, "").partition("/")
    pid, _, start = rest.partition("/")
    if host != socket.gethostname() or not pid.isdigit():
        return False
    now = _start_time(int(pid))
    if now is None:
        return True
    return bool(now and start) and now != start  # its pid now names another process


def refuse_while_running(instance: dg.DagsterInstance, author: str) -> list[dg.DagsterRun]:
    """One run per author at a time, for in-process runs too: the run queue holds back the daemon's runs
    while ours is going (its partition tag counts), and we do not start while one of theirs is. An
    in-process run whose process is gone (:func:`owner_gone`: a CLI killed mid-run) would hold the author
    forever: it is marked failed, and returned so the caller can say so."""
    runs = [
        record.dagster_run
        for record in instance.get_run_records(
            filters=dg.RunsFilter(statuses=BUSY, tags={"dagster/partition": author}), limit=20
        )
    ]
    abandoned = [run for run in runs if owner_gone(run)]
    for run in abandoned:
        pid = run.tags[OWNER_TAG].split("/")[1]
        instance.report_run_failed(run, f"its process (pid {pid}) ended without finishing the run")
    free_slots_of_ended_runs(instance)
    busy = [run for run in runs if run not in abandoned]
    if busy:
        run = busy[0]
        raise TwinError(
            f"a run for author {author!r} is {run.status.value.lower()} (run {run.run_id}, job "
            f"{run.job_name}): one run per author at a time; wait for it or cancel it in the Dagster UI"
        )
    return abandoned


def free_slots_of_ended_runs(instance: dg.DagsterInstance) -> int:
    """Pool slots (the ``gpu`` pool) still held or awaited by runs that have ended, freed; returns how many
    runs held some. A run killed mid-step keeps its slot, and every later step of that pool would wait for
    it forever; the daemon frees such slots (``run_monitoring.free_slots_after_run_end_seconds``), but an
    in-process run cannot wait for a daemon that may not be running."""
    storage = instance.event_log_storage
    if not storage.supports_global_concurrency_limits:
        return 0
    run_ids = storage.get_concurrency_run_ids()
    if not run_ids:
        return 0
    ended = instance.get_run_records(filters=dg.RunsFilter(run_ids=list(run_ids), statuses=ENDED))
    for record in ended:
        storage.free_concurrency_slots_for_run(record.dagster_run.run_id)
    return len(ended)


def pool_holders(instance: dg.DagsterInstance, definitions: dg.Definitions, asset: str) -> list[str]:
    """When the pool ``asset``'s step runs in (the ``gpu`` pool: training, evaluation) has no free slot: a
    line per slot, naming the run that holds it, its author and its step; else nothing. The step waits
    for a slot silently otherwise."""
    key = dg.AssetKey.from_user_string(asset)
    pool = definitions.resolve_asset_graph().assets_def_for_key(key).op.pool
    storage = instance.event_log_storage
    if not pool or not storage.supports_global_concurrency_limits:
        return []
    info = storage.get_concurrency_info(pool)
    if info.slot_count == 0 or len(info.claimed_slots) < info.slot_count:
        return []
    held = []
    for slot in info.claimed_slots:
        run = instance.get_run_by_id(slot.run_id)
        author = run.tags.get("dagster/partition", "?") if run else "?"
        held.append(f"run {slot.run_id} (author {author}, step {slot.step_key})")
    return [f"waiting for a slot of the {pool!r} pool ({info.slot_count} in all), held by {h}" for h in held]


def select_assets(definitions: dg.Definitions, select: str) -> list[dg.AssetKey]:
    """The assets a selection string names (comma-separated parts unioned, as ``dagster asset
    materialize --select a,b`` does), in the graph's order; a bad or empty selection is a named error."""
    graph = definitions.resolve_asset_graph()
    try:
        keys = set().union(
            *(
                dg.AssetSelection.from_string(part.strip()).resolve(graph)
                for part in select.split(",")
                if part.strip()
            )
        )
    except Exception as exc:  # Dagster raises several types for a bad selection string
        raise TwinError(f"--select {select!r}: {str(exc).splitlines()[0]}") from None
    if not keys:
        raise TwinError(f"--select {select!r} matches no asset")
    return [key for key in graph.toposorted_asset_keys if key in keys]


@dataclass
class Step:
    """One asset run by :func:`run_in_order`: how it went, what it reported, its checks."""

    asset: str
    seconds: float
    success: bool
    failure: str = ""
    """One line on why the step failed (see :func:`failure_reason`)."""
    metadata: dict[str, Any] = field(default_factory=dict)
    checks: list[Any] = field(default_factory=list)

    @property
    def blocked(self) -> bool:
        """A blocking check failed: what follows must not run."""
        return any(not c.passed and c.severity == dg.AssetCheckSeverity.ERROR for c in self.checks)


def run_in_order(
    definitions: dg.Definitions,
    keys: Sequence[dg.AssetKey],
    author: str,
    instance: dg.DagsterInstance,
    *,
    resources: Mapping[str, Any] | None = None,
    op_config: Mapping[str, Any] | None = None,
    on_start: Callable[[str], None] = lambda asset: None,
) -> Iterator[Step]:
    """Each asset of ``keys`` in turn (with every check of the graph on it), yielded once run; stops after
    a failed step or a failed blocking check. ``op_config``: ``{asset: {"config": {...}}}``;
    ``on_start(asset)`` is called as each step starts."""
    assets: list[Any] = [*(definitions.assets or []), *(definitions.asset_checks or [])]
    resources = dict(definitions.resources or {}) if resources is None else dict(resources)
    for key in keys:
        name = key.to_user_string()
        on_start(name)
        start = time.perf_counter()
        result = materialize_for_author(
            assets,
            author,
            resources,
            instance=instance,
            selection=dg.AssetSelection.assets(key),
            run_config={**QUIET, "ops": {k: v for k, v in (op_config or {}).items() if k == key.path[-1]}},
        )
        step = Step(name, time.perf_counter() - start, result.success)
        if not result.success:
            failure = next((e for e in result.all_events if e.is_step_failure), None)
            error = failure.step_failure_data.error if failure and failure.step_failure_data else None
            step.failure = failure_reason(error) if error else "see the run's logs"
            yield step
            return
        step.metadata = next(
            (
                {k: v.value for k, v in m.metadata.items()}
                for m in result.asset_materializations_for_node(key.path[-1])
            ),
            {},
        )
        step.checks = list(result.get_asset_check_evaluations())
        yield step
        if step.blocked:
            return


def failure_reason(error: Any) -> str:
    """One line for a failed step: our own errors as they said it (a ``dg.Failure``'s description);
    anything else as its root cause (``AdminShutdown: terminating connection ...``), never Dagster's
    wrapper ("Error occurred while executing op ...")."""
    if error.cls_name != "Failure":
        while error.cause is not None:
            error = error.cause
    message = str(error.message).strip()
    prefix, sep, rest = message.partition(": ")
    if sep and "." in prefix and " " not in prefix:  # "module.Class: text" -> the text, named by class
        message = rest if error.cls_name == "Failure" else f"{error.cls_name}: {rest}"
    return message
