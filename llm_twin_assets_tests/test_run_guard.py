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

from llm_twin_assets.definitions import defs
from llm_twin_assets.defs.instance import ensure_instance_config
from llm_twin_assets.defs.runner import (
    OWNER_TAG,
    owner_gone,
    pool_holders,
    process_owner,
    refuse_while_running,
)
from llm_twin_assets.errors import TwinError
from llm_twin_assets_tests.waiting import exited, wait_until

# One asset of the `gpu` pool for an author, run in-process on the instance at $DAGSTER_HOME (its pool
# limit: 1, as `make install` writes it); it sleeps as many seconds as its first argument says.
GPU_RUN = textwrap.dedent(
    """
    import sys, time
    import dagster as dg
    from llm_twin_assets.defs.partitions import authors_partitions
    from llm_twin_assets.defs.runner import materialize_for_author

    @dg.asset(partitions_def=authors_partitions, pool="gpu")
    def train() -> None:
        time.sleep(float(sys.argv[1]))

    with dg.DagsterInstance.get() as instance:
        assert materialize_for_author([train], sys.argv[2], {}, instance=instance).success
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
    """A real in-process run (the CLI's runner) killed with SIGKILL while its step holds the `gpu` pool's one
    slot: the next run of that author finds it started, sees its process gone, marks it failed, frees the
    slot, and a training step of any author runs again (before, it waited for that slot forever)."""
    ensure_instance_config(tmp_path)
    env = {**os.environ, "DAGSTER_HOME": str(tmp_path)}
    proc = subprocess.Popen([sys.executable, "-c", GPU_RUN, "120", "ada"], env=env, stderr=subprocess.DEVNULL)
    try:
        with dg.DagsterInstance.from_config(str(tmp_path)) as instance:

            def holding_the_slot() -> list[str]:
                return [
                    s.run_id for s in instance.event_log_storage.get_concurrency_info("gpu").claimed_slots
                ]

            [run_id] = wait_until(
                holding_the_slot, "the run to hold the gpu slot", timeout_s=120, dead=exited(proc)
            )
            run = instance.get_run_by_id(run_id)
            assert run is not None and run.tags[OWNER_TAG] == process_owner(proc.pid)
            with pytest.raises(TwinError, match="one run per author"):
                refuse_while_running(instance, "ada")
            # another author's training step would wait: the CLI says for whom
            [waiting] = pool_holders(instance, defs, "sft_adapter")
            assert f"held by run {run_id} (author ada, step train)" in waiting
            assert pool_holders(instance, defs, "chunks") == []  # no pool: never waits
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=30)
            assert holding_the_slot() == [run_id]  # nothing else gives it back
            [released] = refuse_while_running(instance, "ada")
            assert released.run_id == run_id
            assert instance.get_run_by_id(run_id).status == dg.DagsterRunStatus.FAILURE  # type: ignore[union-attr]
            assert holding_the_slot() == []
            assert pool_holders(instance, defs, "sft_adapter") == []
        # Dagster's own watcher ends the compute-log tails the killed run left (it polls every second)
        wait_until(
            lambda: not _running_on(tmp_path), "the killed run's helper processes to end", timeout_s=30
        )
        after = subprocess.run(
            [sys.executable, "-c", GPU_RUN, "0", "bob"], env=env, capture_output=True, timeout=120
        )
        assert after.returncode == 0, after.stderr[-3000:]
    finally:
        proc.kill()
        proc.wait()


def test_the_instance_file_gains_run_monitoring_and_a_users_own_file_is_left_alone(tmp_path: Path) -> None:
    from llm_twin_assets.defs import instance as instance_config

    older = tmp_path / "older"
    older.mkdir()
    (older / "dagster.yaml").write_text(instance_config._QUEUE_AND_POOLS)  # what the last version wrote
    ensure_instance_config(older)
    with dg.DagsterInstance.from_config(str(older)) as upgraded:
        assert upgraded.run_monitoring_enabled
        assert upgraded.run_monitoring_settings["free_slots_after_run_end_seconds"] > 0
    own = tmp_path / "own"
    own.mkdir()
    (own / "dagster.yaml").write_text("telemetry:\n  enabled: true\n")
    ensure_instance_config(own)
    assert (own / "dagster.yaml").read_text() == "telemetry:\n  enabled: true\n"
