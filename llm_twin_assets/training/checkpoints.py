"""Training checkpoints: the newest whole one on this disk, and a mirror in the artifact store.

A trainer killed mid-run (OOM, a lost spot instance, a node drained) resumes from its last checkpoint.
On one machine that checkpoint is on the work folder's disk. On a fleet the retried step runs in another
container whose disk starts empty, so with an S3 artifact store every checkpoint the trainer saves is
also copied to ``checkpoints/<author>/<stage>/<adapter version>/checkpoint-N/`` there, and a trainer that
finds no newer checkpoint on its own disk downloads the mirrored ones first. A folder artifact store sits
on the machine that trains: nothing is copied.

Whole or invisible: a checkpoint's files are uploaded first and its manifest (``synced.json``: every file
with its size and SHA-256) last; pruning deletes the manifest first. A download is checked against the
manifest and renamed into place only when complete. Once the adapter is published the mirror is deleted.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llm_twin_assets.artifacts import ArtifactError, ArtifactStore, LocalArtifactStore

MANIFEST = "synced.json"
_NAME = re.compile(r"checkpoint-(\d+)")


def last_complete_checkpoint(checkpoints: Path) -> tuple[str | None, list[Path]]:
    """The newest checkpoint a killed run left whole, and the torn ones newer than it.

    A run killed while saving leaves a ``checkpoint-N`` folder without all its files; resuming from it
    would fail on every retry. The trainer writes ``trainer_state.json`` last, so a checkpoint whose
    state is there, reads, and names its own step is whole."""
    if not checkpoints.is_dir():
        return None, []
    found = sorted(
        (
            (int(match[1]), path)
            for path in checkpoints.iterdir()
            if path.is_dir() and (match := _NAME.fullmatch(path.name))
        ),
        reverse=True,
    )
    torn: list[Path] = []
    for step, path in found:
        if _state_step(path) == step:
            return str(path), torn
        torn.append(path)
    return None, torn


def _state_step(checkpoint: Path) -> int | None:
    try:
        step = json.loads((checkpoint / "trainer_state.json").read_text()).get("global_step")
    except (OSError, ValueError, AttributeError):
        return None
    return step if isinstance(step, int) else None


def step_of(checkpoint: str | Path | None) -> int:
    """The step in a ``checkpoint-N`` path (-1 for none)."""
    match = _NAME.fullmatch(Path(checkpoint).name) if checkpoint else None
    return int(match[1]) if match else -1


@dataclass(frozen=True)
class CheckpointMirror:
    """The checkpoints of one training job (author, stage, adapter version) in an artifact store."""

    store: ArtifactStore
    prefix: str  # checkpoints/<author>/<stage>/<adapter version>

    @classmethod
    def for_job(
        cls, store: ArtifactStore, author: str, stage: str, adapter_version: str
    ) -> CheckpointMirror | None:
        """The mirror for a job whose adapter is published to ``store``; None when there is nothing to
        mirror to (a folder store is on this machine's disk) or the job publishes nothing."""
        if isinstance(store, LocalArtifactStore) or not adapter_version:
            return None
        return cls(store, f"checkpoints/{author}/{stage}/{adapter_version}")

    def where(self) -> str:
        return self.store.uri(self.prefix)

    # what is there

    def synced(self) -> dict[int, dict[str, Any]]:
        """The whole mirrored checkpoints: step -> manifest (one without a readable manifest is not)."""
        found: dict[int, dict[str, Any]] = {}
        for key in self.store.list_keys(self.prefix + "/"):
            parts = key[len(self.prefix) + 1 :].split("/")
            if len(parts) != 2 or parts[1] != MANIFEST or not (match := _NAME.fullmatch(parts[0])):
                continue
            try:
                manifest = json.loads(self.store.get(key))
                files = manifest["files"]
                if manifest["step"] != int(match[1]) or not isinstance(files, dict) or not files:
                    continue
            except (ArtifactError, ValueError, KeyError, TypeError):
                continue
            found[int(match[1])] = manifest
        return found

    # writing

    def upload(self, checkpoint: Path) -> dict[str, Any]:
        """Copy a whole local checkpoint (its files first, its manifest last); returns the manifest."""
        step = _state_step(checkpoint)
        if step is None or step != step_of(checkpoint):
            raise ArtifactError(
                f"checkpoint {checkpoint} is not whole (its trainer_state.json does not name it)"
            )
        files: dict[str, dict[str, Any]] = {}
        for path in sorted(p for p in checkpoint.rglob("*") if p.is_file()):
            name = path.relative_to(checkpoint).as_posix()
            data = path.read_bytes()
            self.store.put(f"{self.prefix}/{checkpoint.name}/{name}", data)
            files[name] = {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
        manifest = {"step": step, "files": files}
        self.store.put(f"{self.prefix}/{checkpoint.name}/{MANIFEST}", json.dumps(manifest, indent=1).encode())
        return manifest

    def prune(self, keep: set[int]) -> list[int]:
        """Delete the mirrored checkpoints whose step is not in ``keep`` (the manifest first); returns them."""
        dropped = sorted(set(self.synced()) - keep)
        for step in dropped:
            folder = f"{self.prefix}/checkpoint-{step}/"
            self.store.delete(folder + MANIFEST)
            for key in self.store.list_keys(folder):
                self.store.delete(key)
        return dropped

    def clear(self) -> None:
        """Delete everything mirrored for this job (its adapter is published)."""
        for key in sorted(self.store.list_keys(self.prefix + "/"), key=lambda k: not k.endswith(MANIFEST)):
            self.store.delete(key)

    # reading

    def restore(self, checkpoints: Path) -> list[Path]:
        """Download every whole mirrored checkpoint into ``checkpoints`` (each checked against its manifest,
        renamed into place only when complete); returns them, oldest first. The trainer state's
        ``best_model_checkpoint`` is pointed at this folder, so the best one is found and kept here."""
        restored: list[Path] = []
        for step, manifest in sorted(self.synced().items()):
            target = checkpoints / f"checkpoint-{step}"
            partial = checkpoints / f".checkpoint-{step}.partial"
            shutil.rmtree(partial, ignore_errors=True)
            for name, expected in manifest["files"].items():
                data = self.store.get(f"{self.prefix}/checkpoint-{step}/{name}")
                if len(data) != expected["bytes"] or hashlib.sha256(data).hexdigest() != expected["sha256"]:
                    shutil.rmtree(partial, ignore_errors=True)
                    raise ArtifactError(
                        f"mirrored checkpoint {self.where()}/checkpoint-{step}/{name} does not match its "
                        f"manifest ({len(data)} bytes, expected {expected['bytes']}); delete "
                        f"{self.where()}/checkpoint-{step}/ to train that stretch again"
                    )
                path = partial / name
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(data)
            shutil.rmtree(target, ignore_errors=True)
            partial.rename(target)
            restored.append(target)
        for target in restored:
            _repoint_best(target, checkpoints)
        return restored


def _repoint_best(checkpoint: Path, checkpoints: Path) -> None:
    """The trainer state names the best checkpoint by the path it had where it was saved; here it is
    ``checkpoints/<same name>`` (when that came along), else the name is dropped rather than left dangling."""
    state_file = checkpoint / "trainer_state.json"
    state = json.loads(state_file.read_text())
    best = state.get("best_model_checkpoint")
    if not best:
        return
    local = checkpoints / Path(best).name
    state["best_model_checkpoint"] = str(local) if local.is_dir() else None
    state_file.write_text(json.dumps(state, indent=2, sort_keys=True) + "\n")


def mirror_callback(mirror: CheckpointMirror, report: Any) -> Any:
    """A transformers callback that mirrors each checkpoint as soon as the trainer has saved it (and
    rotated the old ones out), then drops the mirrored ones no longer on the local disk."""
    from transformers.trainer_callback import TrainerCallback

    class MirrorCheckpoints(TrainerCallback):
        def on_save(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            if not state.is_world_process_zero:
                return
            local = Path(args.output_dir)
            checkpoint = local / f"checkpoint-{state.global_step}"
            mirror.upload(checkpoint)
            kept = {step_of(p) for p in local.iterdir() if _NAME.fullmatch(p.name)}
            with contextlib.suppress(ArtifactError):  # a stale copy left behind costs only space
                mirror.prune(kept)
            report(f"checkpoint-{state.global_step} mirrored to {mirror.where()}")

    return MirrorCheckpoints()
