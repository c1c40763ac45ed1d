"""Adapters in the artifact store: ``adapters/<author>/<stage>/<version>/`` (files, manifest last) and
``adapters/<author>/<stage>/latest.json``. The version comes from the dataset version, the base model,
the parent adapter and the hyper-parameters, so the same inputs name the same adapter."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from llm_twin_assets.artifacts import ArtifactStore, LocalArtifactStore, read_json, write_json


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
    write_json(store, f"{_prefix(author, stage)}/latest.json", {"version": version})
    return AdapterVersion(author, stage, version, manifest)


def point_latest(store: ArtifactStore, author: str, stage: str, version: str) -> AdapterVersion:
    write_json(store, f"{_prefix(author, stage)}/latest.json", {"version": version})
    return get_adapter(store, author, stage, version)


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


def adapter_folder(store: ArtifactStore, adapter: AdapterVersion, cache: Path) -> Path:
    """A local folder holding the adapter: the store's own folder when local, else a download."""
    base = f"{_prefix(adapter.author, adapter.stage)}/{adapter.version}"
    if isinstance(store, LocalArtifactStore):
        return store.root / base
    target = cache / adapter.author / adapter.stage / adapter.version
    if not (target / "adapter_config.json").exists():
        for name in adapter.manifest["files"]:
            path = target / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(store.get(f"{base}/{name}"))
    return target
