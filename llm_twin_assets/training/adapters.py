"""Adapters in the artifact store: ``adapters/<author>/<stage>/<version>/`` (files, manifest last) and
``adapters/<author>/<stage>/latest.json``. The version comes from the dataset version, the base model,
the parent adapter and the hyper-parameters, so the same inputs name the same adapter.

The trainer publishes a version; the training asset checks it and only then promotes it to ``latest``.
The twin is always resolved from the DPO adapter's recorded parent SFT version, never by pairing two
``latest`` pointers that may belong to different lineages.

A version's manifest records each file's SHA-256 (``sha256``), so what serves a twin can check every byte
of it — the weights included — before anything changes (:func:`verify_twin_files`). Manifests published
before checksums were recorded are checked for every file's presence and the weights' structure.
"""

from __future__ import annotations

import hashlib
import json
import math
import shutil
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from llm_twin_assets import versioned
from llm_twin_assets.artifacts import ArtifactStore, LocalArtifactStore
from llm_twin_assets.errors import TwinError
from llm_twin_assets.verdicts import Verdict
from llm_twin_assets.versioned import ADAPTERS

REQUIRED_FILES = ("adapter_config.json", "adapter_model.safetensors", "training_job.yaml")
SERVED_FILES = ("adapter_config.json", "adapter_model.safetensors")
"""What loading the adapter onto the base model reads."""
WEIGHTS = "adapter_model.safetensors"


class LineageError(TwinError):
    """An SFT and a DPO adapter that do not belong together; the message names both versions."""


class AdapterFilesError(TwinError):
    """An adapter version whose files are not all there, or not as published; the message names the
    adapter, the file and the rule it broke."""


@dataclass(frozen=True)
class AdapterVersion:
    author: str
    stage: str
    version: str
    manifest: dict[str, Any]


def exists(store: ArtifactStore, author: str, stage: str, version: str) -> bool:
    return ADAPTERS.exists(store, author, stage, version)


def publish_adapter(
    store: ArtifactStore, author: str, stage: str, version: str, folder: Path, details: dict[str, Any]
) -> AdapterVersion:
    """Write the adapter's files, then its manifest (a reader never sees half a version). ``latest`` is
    not moved: :func:`promote` does, once the version passed its checks."""
    base = f"{ADAPTERS.prefix(author, stage)}/{version}"
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    digests: dict[str, str] = {}
    for path in files:
        data = path.read_bytes()
        name = path.relative_to(folder).as_posix()
        store.put(f"{base}/{name}", data)
        digests[name] = hashlib.sha256(data).hexdigest()
    manifest = {
        "author": author,
        "stage": stage,
        "version": version,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "files": [p.relative_to(folder).as_posix() for p in files],
        **details,
        "sha256": digests,
    }
    ADAPTERS.write_manifest(store, author, stage, version, manifest)
    return AdapterVersion(author, stage, version, manifest)


def promote_if_passed(store: ArtifactStore, adapter: AdapterVersion, passed: bool) -> str:
    """``adapter`` becomes its stage's ``latest`` only if its blocking checks ``passed``; the data version to
    report (``versioned.promote_if_passed``)."""
    return versioned.promote_if_passed(
        ADAPTERS, store, adapter.author, adapter.stage, adapter.version, passed
    )


def promote(store: ArtifactStore, adapter: AdapterVersion) -> None:
    """Make ``adapter`` the stage's ``latest``, unconditionally (tests, imports of checked adapters)."""
    ADAPTERS.promote(store, adapter.author, adapter.stage, adapter.version)


def get_adapter(store: ArtifactStore, author: str, stage: str, version: str) -> AdapterVersion:
    return AdapterVersion(author, stage, version, ADAPTERS.manifest(store, author, stage, version))


def latest_adapter(store: ArtifactStore, author: str, stage: str) -> AdapterVersion:
    return get_adapter(store, author, stage, ADAPTERS.require_latest(store, author, stage))


def latest_or_none(store: ArtifactStore, author: str, stage: str) -> AdapterVersion | None:
    version = ADAPTERS.latest_version(store, author, stage)
    return get_adapter(store, author, stage, version) if version else None


# -- checks -----------------------------------------------------------------------------------------


def completeness(store: ArtifactStore, adapter: AdapterVersion) -> Verdict:
    """Every file the manifest lists is in the store, the ones a twin needs among them, and training
    ended with a finite loss."""
    base = f"{ADAPTERS.prefix(adapter.author, adapter.stage)}/{adapter.version}"
    listed = list(adapter.manifest.get("files", []))
    missing = sorted(set(REQUIRED_FILES) - set(listed)) + [
        f for f in listed if not store.exists(f"{base}/{f}")
    ]
    loss = adapter.manifest.get("metrics", {}).get("final_loss")
    finite = isinstance(loss, (int, float)) and math.isfinite(loss)
    return Verdict(
        not missing and finite, {"version": adapter.version, "missing": missing, "final_loss": str(loss)}
    )


def verify_files(store: ArtifactStore, adapter: AdapterVersion) -> str | None:
    """Raise :class:`AdapterFilesError` unless every file the adapter needs is in the store as published:
    the files a twin loads listed, every listed file there, each matching its recorded SHA-256, and the
    weights a whole safetensors file. Returns a note when the manifest records no checksums (published
    before they were): then presence and the weights' structure are all that can be checked."""
    base = f"{ADAPTERS.prefix(adapter.author, adapter.stage)}/{adapter.version}"
    what = f"{adapter.stage} adapter {adapter.version} of {adapter.author!r}"
    listed = [f for f in adapter.manifest.get("files", []) if isinstance(f, str)]
    unlisted = [f for f in SERVED_FILES if f not in listed]
    if unlisted:
        raise AdapterFilesError(
            f"{what}: its manifest does not list {', '.join(unlisted)}, which serving it needs"
        )
    recorded = adapter.manifest.get("sha256")
    digests: dict[str, str] = recorded if isinstance(recorded, dict) else {}
    for name in listed:
        key = f"{base}/{name}"
        if not store.exists(key):
            raise AdapterFilesError(f"{what}: {name} is missing from the artifact store ({store.uri(key)})")
        if name not in digests and name != WEIGHTS:
            continue
        data = store.get(key)
        if name in digests and hashlib.sha256(data).hexdigest() != digests[name]:
            raise AdapterFilesError(
                f"{what}: {name} does not match the checksum recorded when it was published "
                f"({store.uri(key)}): the file is damaged"
            )
        if name == WEIGHTS:
            broken = safetensors_problem(data)
            if broken:
                raise AdapterFilesError(
                    f"{what}: {name} is not a whole safetensors file ({broken}; {store.uri(key)})"
                )
    if not digests:
        return f"{what} records no checksums (published before they were): its files were checked for presence only"
    return None


def safetensors_problem(data: bytes) -> str | None:
    """What is wrong with ``data`` as a safetensors file (a header that does not parse, tensors that
    end past or short of the data: a cut or padded file), or None."""
    if len(data) < 8:
        return f"{len(data)} bytes"
    size = int.from_bytes(data[:8], "little")
    if size > len(data) - 8:
        return "its header runs past the end"
    try:
        header = json.loads(data[8 : 8 + size])
        ends = [int(v["data_offsets"][1]) for k, v in header.items() if k != "__metadata__"]
    except (ValueError, TypeError, KeyError, IndexError, AttributeError):
        return "its header does not parse"
    body = len(data) - 8 - size
    if max(ends, default=0) != body:
        return f"its tensors end at byte {max(ends, default=0):,} of {body:,}"
    return None


def verify_twin_files(store: ArtifactStore, author: str, sft_version: str, dpo_version: str) -> list[str]:
    """Check every file of a twin (its SFT and DPO adapters) before it is served; raises
    :class:`AdapterFilesError` naming the first that is not as published; returns notes about adapters
    too old to have checksums."""
    notes: list[str] = []
    for stage, version in (("sft", sft_version), ("dpo", dpo_version)):
        if not exists(store, author, stage, version):
            raise AdapterFilesError(
                f"{stage} adapter {version} of {author!r}: manifest.json is missing from the artifact store "
                f"({store.uri(ADAPTERS.prefix(author, stage) + '/' + version + '/manifest.json')})"
            )
        try:
            adapter = get_adapter(store, author, stage, version)
        except (ValueError, UnicodeDecodeError) as exc:
            raise AdapterFilesError(
                f"{stage} adapter {version} of {author!r}: manifest.json does not parse ({exc})"
            ) from None
        note = verify_files(store, adapter)
        if note:
            notes.append(note)
    return notes


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


def lineage(store: ArtifactStore, dpo: AdapterVersion) -> Verdict:
    """The check form of :func:`resolve_twin` for one DPO version."""
    try:
        sft = parent_of(store, dpo)
        check_lineage(sft, dpo)
    except TwinError as exc:
        return Verdict(False, {"version": dpo.version, "problem": str(exc)})
    return Verdict(True, {"version": dpo.version, "parent_adapter": sft.version})


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
            f"artifact store no longer holds ({store.uri(ADAPTERS.prefix(dpo.author, 'sft') + '/' + parent)})"
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
    base = f"{ADAPTERS.prefix(adapter.author, adapter.stage)}/{adapter.version}"
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
