"""A trainer killed mid-run under Dagster: the asset's retry resumes from the trainer's last checkpoint.

The real sft_adapter asset runs the real trainer (a tiny random Llama) through Pipes. A watcher thread
SIGKILLs that subprocess once its first checkpoint is complete, as the kernel's OOM killer or a lost spot
instance would, and leaves beside it the torn folder a kill during the next checkpoint's save leaves.
Dagster's retry policy runs the step again; the trainer must pick up from the last complete checkpoint:
no step trained twice, the loss curve whole and once, the adapter published and promoted.
"""

from __future__ import annotations

import json
import re
import shutil
import signal
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import psutil
import pytest

from llm_twin_assets.artifacts import LocalArtifactStore
from llm_twin_assets.defs.resources import ArtifactsResource, ModelsResource, StoreResource, TrainerResource
from llm_twin_assets.defs.runner import materialize_for_author
from llm_twin_assets.defs.training.assets import sft_adapter
from llm_twin_assets.store.database import Database
from llm_twin_assets.training.adapters import latest_adapter
from llm_twin_assets_tests.training.helpers import publish_small
from llm_twin_assets_tests.waiting import wait_until

KILL_AT = 8  # the tiny profile saves a checkpoint every 8 steps
STEPS = 16
TORN = f"checkpoint-{STEPS}"  # what a kill in the middle of the next save leaves


class TrainerKiller(threading.Thread):
    """Watches this process's children for the SFT trainer and SIGKILLs it (once) as soon as its
    checkpoint-``KILL_AT`` is complete (trainer_state.json, which the trainer writes last, is whole);
    then leaves a torn ``TORN`` beside it: weights and a cut-off optimizer state, no trainer state."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.done = threading.Event()
        self.killed: dict[str, Any] = {}

    def run(self) -> None:
        me = psutil.Process()
        while not self.done.is_set():
            for child in me.children(recursive=True):
                try:
                    command = child.cmdline()
                except psutil.Error:
                    continue
                if "llm_twin_assets.training.sft" in command and "--config" in command:
                    work = Path(command[command.index("--config") + 1]).parent
                    if self._complete(work / "checkpoints" / f"checkpoint-{KILL_AT}"):
                        child.send_signal(signal.SIGKILL)
                        gone(child)  # never reaped here: Dagster must see the kill in its exit status
                        self._tear(work / "checkpoints")
                        self.killed = {
                            "pid": child.pid,
                            "work": work,
                            "finished": (work / "metrics.json").exists(),
                        }
                        return
            self.done.wait(0.02)

    @staticmethod
    def _complete(checkpoint: Path) -> bool:
        try:
            return json.loads((checkpoint / "trainer_state.json").read_text())["global_step"] == KILL_AT
        except (OSError, ValueError, KeyError):
            return False

    @staticmethod
    def _tear(checkpoints: Path) -> None:
        torn = checkpoints / TORN
        shutil.copytree(
            checkpoints / f"checkpoint-{KILL_AT}",
            torn,
            ignore=shutil.ignore_patterns("trainer_state.json", "scheduler.pt", "rng_state*"),
        )
        optimizer = torn / "optimizer.pt"
        optimizer.write_bytes(optimizer.read_bytes()[: optimizer.stat().st_size // 2])


def gone(process: psutil.Process, timeout_s: float = 30) -> None:
    """Wait until ``process`` is dead (a zombie until its parent reaps it, or already reaped)."""

    def dead() -> bool:
        try:
            return process.status() == psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            return True

    wait_until(dead, f"process {process.pid} to die of SIGKILL", timeout_s, 0.01)


@pytest.fixture
def killer() -> Iterator[TrainerKiller]:
    watcher = TrainerKiller()
    watcher.start()
    yield watcher
    watcher.done.set()
    watcher.join(30)


def error_chain(error: Any) -> str:
    lines = []
    while error is not None:
        lines.append(str(error.message))
        error = error.cause
    return "\n".join(lines)


@pytest.mark.slow
def test_a_killed_trainer_is_retried_by_dagster_and_resumes_from_its_checkpoint(
    tmp_path: Path,
    tiny_model_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    killer: TrainerKiller,
    database: Database,
) -> None:
    monkeypatch.setenv("LLM_TWIN_HOME", str(tmp_path / "home"))  # a work folder no other test trained in
    instruct, _ = publish_small(tmp_path / "artifacts")
    with dg.DagsterInstance.ephemeral() as instance:
        result = materialize_for_author(
            [sft_adapter],
            "ada",
            {
                "store": StoreResource(database_url=database.url),  # the session's (no build settings)
                "models": ModelsResource(device="cpu"),
                "artifacts": ArtifactsResource(url=str(tmp_path / "artifacts")),
                "trainer": TrainerResource(forward_output=False),
            },
            instance=instance,
            run_config={"ops": {"sft_adapter": {"config": {"profile": "tiny", "max_steps": STEPS}}}},
        )
        logs = [entry.user_message for entry in instance.all_logs(result.run_id)]

    # The trainer really was killed mid-run: after its checkpoint, before its end; nothing of it is left.
    assert killer.killed, "the trainer was never seen with a complete checkpoint"
    assert killer.killed["finished"] is False
    assert not psutil.pid_exists(killer.killed["pid"])
    work = killer.killed["work"]
    assert work.parent == tmp_path / "home" / "training" / "ada" / "sft"

    # Dagster failed the step (the kill, by name), retried it once, and the retry materialized the asset.
    assert result.success, [e.message for e in result.all_events if e.is_failure]
    events = [e for e in result.all_events if e.step_key == "sft_adapter"]
    retries = [e for e in events if e.event_type == dg.DagsterEventType.STEP_UP_FOR_RETRY]
    assert len(retries) == 1 and not [e for e in events if e.is_step_failure]
    assert [e.event_type for e in events].count(dg.DagsterEventType.STEP_RESTARTED) == 1
    why = error_chain(retries[0].event_specific_data.error)
    assert "the sft trainer failed" in why and "code -9" in why, why

    # The retry resumed in the same work folder from the last complete checkpoint, not the torn one.
    [event] = result.asset_materializations_for_node("sft_adapter")
    meta = {k: v.value for k, v in event.metadata.items()}
    assert meta["resumed_from"] == str(work / "checkpoints" / f"checkpoint-{KILL_AT}")
    assert meta["steps"] == STEPS and meta["reused"] is False and meta["promoted"] is True
    assert meta["dataset_version"] == instruct.version
    torn = work / "checkpoints" / TORN
    assert any(m.startswith(f"removing {torn}: left half-written") for m in logs)
    assert json.loads((torn / "trainer_state.json").read_text())["global_step"] == STEPS  # saved again, whole

    # No step was trained twice: the first attempt reached the checkpoint, the retry only went on from it.
    resumed = next(i for i, m in enumerate(logs) if f"resuming from {meta['resumed_from']}" in m)
    pattern = re.compile(rf"^step (\d+)/{STEPS} loss")
    first = [int(m[1]) for line in logs[:resumed] if (m := pattern.match(line))]
    second = [int(m[1]) for line in logs[resumed:] if (m := pattern.match(line))]
    assert first[:KILL_AT] == list(range(1, KILL_AT + 1)) and max(first) < STEPS
    assert second == list(range(KILL_AT + 1, STEPS + 1))

    # The published adapter carries the whole loss curve, each step once.
    adapter = latest_adapter(LocalArtifactStore(tmp_path / "artifacts"), "ada", "sft")
    assert adapter.version == meta["version"]
    metrics = adapter.manifest["metrics"]
    assert metrics["resumed_from"] == meta["resumed_from"]
    assert [p["step"] for p in metrics["losses"]] == list(range(1, STEPS + 1))
    assert metrics["final_loss"] == metrics["losses"][-1]["loss"] > 0
