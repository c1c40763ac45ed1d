"""Adapters in the artifact store: ``adapters/<author>/<stage>/<version>/`` (files, manifest last) and
``adapters/<author>/<stage>/latest.json``. The version comes from the dataset version, the base model,
the parent adapter and the hyper-parameters, so the same inputs name the same adapter.

The trainer publishes a version; the training asset checks it and only then promotes it to ``latest``.
The twin is always resolved from the DPO adapter's recorded parent SFT version, never by pairing two
``latest`` pointers that may belong to different lineages.
"""

from __future__ import annotations

import math
import shutil
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from llm_twin_assets.artifacts import ArtifactStore, LocalArtifactStore, read_json, write_json
from llm_twin_assets.errors import TwinError

REQUIRED_FILES = ("adapter_config.json", "adapter_model.safetensors", "training_job.yaml")


class LineageError(TwinError):
    """An SFT and a DPO adapter that do not belong together; the message names both versions."""


@dataclass(frozen=True)
class AdapterVersion:
    author: str
    stage: str
    version: str
    manifest: dict[str, Any]


def _prefix(author: str, stage: str) -> str:
    return f"adapters/{author}/{stage}"


def exists(store: ArtifactStore, author: str, stage: str, version: str) -> bool:
    return store.exists(f"{_prefix(author, stage)}/{version}/manifest.json")


def publish_adapter(
    store: ArtifactStore, author: str, stage: str, version: str, folder: Path, details: dict[str, Any]
) -> AdapterVersion:
    """Write the adapter's files, then its manifest (a reader never sees half a version). ``latest`` is
    not moved: :func:`promote` does, once the version passed its checks."""
    base = f"{_prefix(author, stage)}/{version}"
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    for path in files:
        store.put(f"{base}/{path.relative_to(folder).as_posix()}", path.read_bytes())
    manifest = {
        "author": author,
        "stage": stage,
        "version": version,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "files": [p.relative_to(folder).as_posix() for p in files],
        **details,
    }
    write_json(store, f"{base}/manifest.json", manifest)
    return AdapterVersion(author, stage, version, manifest)


def promote(store: ArtifactStore, adapter: AdapterVersion) -> None:
    """Make ``adapter`` the stage's ``latest``; only after its checks passed."""
    write_json(store, f"{_prefix(adapter.author, adapter.stage)}/latest.json", {"version": adapter.version})


def get_adapter(store: ArtifactStore, author: str, stage: str, version: str) -> AdapterVersion:
    manifest = read_json(
        store,
        f"{_prefix(author, stage)}/{version}/manifest.json",
        f"{stage} adapter {version} of author {author!r} does not exist",
    )
    return AdapterVersion(author, stage, version, manifest)


def latest_adapter(store: ArtifactStore, author: str, stage: str) -> AdapterVersion:
    pointer = read_json(
        store,
        f"{_prefix(author, stage)}/latest.json",
        f"no {stage} adapter for author {author!r} yet: materialize it first",
    )
    return get_adapter(store, author, stage, pointer["version"])


def latest_or_none(store: ArtifactStore, author: str, stage: str) -> AdapterVersion | None:
    if not store.exists(f"{_prefix(author, stage)}/latest.json"):
        return None
    return latest_adapter(store, author, stage)


# -- checks -----------------------------------------------------------------------------------------


def completeness(store: ArtifactStore, adapter: AdapterVersion) -> tuple[bool, dict[str, Any]]:
    """Every file the manifest lists is in the store, the ones a twin needs among them, and training
    ended with a finite loss."""
    base = f"{_prefix(adapter.author, adapter.stage)}/{adapter.version}"
    listed = list(adapter.manifest.get("files", []))
    missing = sorted(set(REQUIRED_FILES) - set(listed)) + [
        f for f in listed if not store.exists(f"{base}/{f}")
    ]
    loss = adapter.manifest.get("metrics", {}).get("final_loss")
    finite = isinstance(loss, (int, float)) and math.isfinite(loss)
    return not missing and finite, {"version": adapter.version, "missing": missing, "final_loss": str(loss)}


def check_lineage(sft: AdapterVersion, dpo: AdapterVersion) -> None:
    """Raise LineageError unless ``dpo`` was trained on ``sft`` (its recorded parent) and the same base."""
    parent = dpo.manifest.get("parent_adapter")
    if parent != sft.version:
        raise LineageError(
            f"dpo adapter {dpo.version} of {dpo.author!r} was trained on sft adapter {parent or '(none recorded)'}, "
            f"not on sft adapter {sft.version}: use its own parent (or retrain dpo on {sft.version})"
        )
    if sft.manifest.get("base_model") != dpo.manifest.get("base_model"):
        raise LineageError(
            f"sft adapter {sft.version} was trained on {sft.manifest.get('base_model')!r} but dpo adapter "
            f"{dpo.version} on {dpo.manifest.get('base_model')!r}"
        )


def lineage(store: ArtifactStore, dpo: AdapterVersion) -> tuple[bool, dict[str, Any]]:
    """The check form of :func:`resolve_twin` for one DPO version."""
    try:
        sft = parent_of(store, dpo)
        check_lineage(sft, dpo)
    except TwinError as exc:
        return False, {"version": dpo.version, "problem": str(exc)}
    return True, {"version": dpo.version, "parent_adapter": sft.version}


# -- the twin ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Twin:
    sft: AdapterVersion
    dpo: AdapterVersion | None


def parent_of(store: ArtifactStore, dpo: AdapterVersion) -> AdapterVersion:
    parent = dpo.manifest.get("parent_adapter")
    if not parent:
        raise LineageError(f"dpo adapter {dpo.version} of {dpo.author!r} records no parent sft adapter")
    if not exists(store, dpo.author, "sft", parent):
        raise LineageError(
            f"dpo adapter {dpo.version} of {dpo.author!r} was trained on sft adapter {parent}, which the "
            f"artifact store no longer holds ({store.uri(_prefix(dpo.author, 'sft') + '/' + parent)})"
        )
    return get_adapter(store, dpo.author, "sft", parent)


def resolve_twin(
    store: ArtifactStore, author: str, stage: str = "dpo", dpo_version: str | None = None
) -> Twin:
    """The adapters of the author's twin: the DPO adapter (latest, or ``dpo_version``) on the SFT version
    it was trained on; ``stage="sft"`` gives the latest SFT adapter alone."""
    if stage == "sft":
        return Twin(latest_adapter(store, author, "sft"), None)
    dpo = (
        latest_adapter(store, author, "dpo")
        if dpo_version is None
        else get_adapter(store, author, "dpo", dpo_version)
    )
    sft = parent_of(store, dpo)
    check_lineage(sft, dpo)
    return Twin(sft, dpo)


def adapter_folder(store: ArtifactStore, adapter: AdapterVersion, cache: Path) -> Path:
    """A local folder holding the adapter: the store's own folder when local, else a download.

    A download lands in a temporary folder renamed into place when every file is there, so a download
    cut half-way is never taken for a complete adapter later."""
    base = f"{_prefix(adapter.author, adapter.stage)}/{adapter.version}"
    if isinstance(store, LocalArtifactStore):
        return store.root / base
    target = cache / adapter.author / adapter.stage / adapter.version
    if target.is_dir():
        if all((target / name).is_file() for name in adapter.manifest["files"]):
            return target
        shutil.rmtree(target)  # left half-way by an older, non-atomic download
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{adapter.version}-", dir=target.parent))
    try:
        for name in adapter.manifest["files"]:
            path = staging / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(store.get(f"{base}/{name}"))
        try:
            staging.rename(target)
        except OSError:  # another process finished the same download first
            if not target.is_dir():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target
