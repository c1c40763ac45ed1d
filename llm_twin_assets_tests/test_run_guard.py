"""One run per author at a time, and a run left 'started' by a killed process does not hold the author forever."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import dagster as dg
import pytest

from llm_twin_assets.defs.runner import OWNER_TAG, owner_gone, process_owner, refuse_while_running
from llm_twin_assets.errors import TwinError
from llm_twin_assets_tests.waiting import exited, wait_until

# A run of one slow asset for author "ada", in-process, on the instance at $DAGSTER_HOME.
SLOW_RUN = textwrap.dedent(
    """
    import time
    import dagster as dg
    from llm_twin_assets.defs.partitions import authors_partitions
    from llm_twin_assets.defs.runner import materialize_for_author

    @dg.asset(partitions_def=authors_partitions)
    def slow() -> None:
        time.sleep(120)

    with dg.DagsterInstance.get() as instance:
        materialize_for_author([slow], "ada", {}, instance=instance)
    """
)


def _busy_run(instance: dg.DagsterInstance, author: str, owner: str | None) -> dg.DagsterRun:
    tags = {"dagster/partition": author, **({OWNER_TAG: owner} if owner is not None else {})}
    run = instance.create_run_for_job(dg.GraphDefinition(name="job", node_defs=[]).to_job(), tags=tags)
    instance.handle_run_event(
        run.run_id, dg.DagsterEvent("PIPELINE_START", job_name=run.job_name, message="started")
    )
    return instance.get_run_by_id(run.run_id)  # type: ignore[return-value]


def _running_on(dagster_home: Path) -> list[str]:
    """Command lines of the processes running with ``dagster_home`` as their DAGSTER_HOME."""
    import psutil

    found = []
    for proc in psutil.process_iter(attrs=("cmdline",)):
        with contextlib.suppress(psutil.Error):
            if proc.environ().get("DAGSTER_HOME") == str(dagster_home):
                found.append(" ".join(proc.info["cmdline"] or []))
    return found


def _ended_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_a_run_of_a_living_process_refuses_a_second_run_for_that_author() -> None:
    with dg.DagsterInstance.ephemeral() as instance:
        run = _busy_run(instance, "ada", process_owner(os.getpid()))
        assert run.status == dg.DagsterRunStatus.STARTED
        with pytest.raises(TwinError, match=f"run {run.run_id}.*one run per author at a time"):
            refuse_while_running(instance, "ada")
        assert refuse_while_running(instance, "bob") == []  # another author is not held


def test_a_run_whose_process_ended_is_marked_failed_and_no_longer_holds_the_author() -> None:
    with dg.DagsterInstance.ephemeral() as instance:
        pid = _ended_pid()
        run = _busy_run(instance, "ada", f"{socket.gethostname()}/{pid}/123")
        assert owner_gone(run)
        [released] = refuse_while_running(instance, "ada")
        assert released.run_id == run.run_id
        assert instance.get_run_by_id(run.run_id).status == dg.DagsterRunStatus.FAILURE  # type: ignore[union-attr]
        assert refuse_while_running(instance, "ada") == []


@pytest.mark.parametrize(
    "owner",
    [None, "another-host/1/1", "garbage"],
    ids=["untagged (the daemon's or the UI's)", "another machine's", "unreadable"],
)
def test_a_run_this_machine_cannot_judge_keeps_holding_the_author(owner: str | None) -> None:
    with dg.DagsterInstance.ephemeral() as instance:
        run = _busy_run(instance, "ada", owner)
        assert not owner_gone(run)
        with pytest.raises(TwinError, match=run.run_id):
            refuse_while_running(instance, "ada")


def test_a_reused_pid_is_not_mistaken_for_the_run_s_process() -> None:
    mine = process_owner(os.getpid())
    host, pid, start = mine.split("/")
    assert start, "this machine tells a process's start time (/proc)"
    with dg.DagsterInstance.ephemeral() as instance:
        assert not owner_gone(_busy_run(instance, "ada", mine))
        assert owner_gone(_busy_run(instance, "bob", f"{host}/{pid}/{int(start) + 1}"))


@pytest.mark.slow
def test_a_killed_in_process_run_is_released_for_the_next_one(tmp_path: Path) -> None:
    """A real in-process run (the CLI's runner) killed with SIGKILL mid-step: the next run of that author
    finds it started, sees its process gone, marks it failed and goes ahead."""
    env = {**os.environ, "DAGSTER_HOME": str(tmp_path)}
    proc = subprocess.Popen([sys.executable, "-c", SLOW_RUN], env=env, stderr=subprocess.DEVNULL)
    try:
        with dg.DagsterInstance.from_config(str(tmp_path)) as instance:

            def started() -> list[dg.DagsterRun]:
                return [
                    r.dagster_run
                    for r in instance.get_run_records(
                        filters=dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTED])
                    )
                ]

            [run] = wait_until(started, "the slow run to start", timeout_s=120, dead=exited(proc))
            assert run.tags[OWNER_TAG] == process_owner(proc.pid)
            with pytest.raises(TwinError, match="one run per author"):
                refuse_while_running(instance, "ada")
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=30)
            [released] = refuse_while_running(instance, "ada")
            assert released.run_id == run.run_id
            assert instance.get_run_by_id(run.run_id).status == dg.DagsterRunStatus.FAILURE  # type: ignore[union-attr]
        # Dagster's own watcher ends the compute-log tails the killed run left (it polls every second)
        wait_until(
            lambda: not _running_on(tmp_path), "the killed run's helper processes to end", timeout_s=30
        )
    finally:
        proc.kill()
        proc.wait()
