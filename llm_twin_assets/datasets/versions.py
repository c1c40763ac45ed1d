"""Dataset versions in the artifact store: Parquet per split, a manifest, and a ``latest`` pointer.

    datasets/<author>/<name>/<version>/<split>.parquet
    datasets/<author>/<name>/<version>/manifest.json
    datasets/<author>/<name>/latest.json            {"version": ...}

The version id is derived from the rows alone, so identical inputs give the identical version, and a
version that already exists is not rewritten. :func:`publish` writes a version but does not make it
``latest``: :func:`promote` does, once the version's blocking checks passed (the dataset assets run them
on the version they built), so a version that fails them never serves.
"""

from __future__ import annotations

import hashlib
import io
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import polars as pl

from llm_twin_assets.artifacts import ArtifactStore, read_json, write_json


@dataclass(frozen=True)
class DatasetVersion:
    author: str
    name: str
    version: str
    manifest: dict[str, Any]

    @property
    def rows(self) -> dict[str, int]:
        return {split: info["rows"] for split, info in self.manifest["splits"].items()}


def _prefix(author: str, name: str) -> str:
    return f"datasets/{author}/{name}"


def version_id(name: str, splits: dict[str, pl.DataFrame]) -> str:
    digest = hashlib.sha256(name.encode())
    for split in sorted(splits):
        digest.update(f"\x1e{split}\x1e".encode())
        for row in splits[split].sort("id").iter_rows(named=True):
            digest.update(json.dumps(row, sort_keys=True, ensure_ascii=False).encode())
            digest.update(b"\n")
    return digest.hexdigest()[:16]


def publish(
    store: ArtifactStore,
    author: str,
    name: str,
    splits: dict[str, pl.DataFrame],
    details: dict[str, Any],
) -> tuple[DatasetVersion, bool]:
    """Write the version (unless it exists); returns it and whether it is new. ``latest`` is not moved."""
    version = version_id(name, splits)
    base = f"{_prefix(author, name)}/{version}"
    new = not store.exists(f"{base}/manifest.json")
    if new:
        manifest: dict[str, Any] = {
            "author": author,
            "name": name,
            "version": version,
            "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "schema": {c: str(t) for c, t in next(iter(splits.values())).schema.items()},
            "splits": {},
            **details,
        }
        for split, frame in splits.items():
            buffer = io.BytesIO()
            frame.sort("id").write_parquet(buffer, compression="zstd")
            store.put(f"{base}/{split}.parquet", buffer.getvalue())
            manifest["splits"][split] = {"key": f"{base}/{split}.parquet", "rows": frame.height}
        write_json(store, f"{base}/manifest.json", manifest)
    else:
        manifest = json.loads(store.get(f"{base}/manifest.json"))
    return DatasetVersion(author, name, version, manifest), new


def promote(store: ArtifactStore, version: DatasetVersion) -> None:
    """Make ``version`` the one readers get (``latest.json``); call it only after its checks passed."""
    write_json(store, f"{_prefix(version.author, version.name)}/latest.json", {"version": version.version})


def latest_or_none(store: ArtifactStore, author: str, name: str) -> DatasetVersion | None:
    """The promoted version, or ``None`` before the first one."""
    if not store.exists(f"{_prefix(author, name)}/latest.json"):
        return None
    return latest(store, author, name)


def latest(store: ArtifactStore, author: str, name: str) -> DatasetVersion:
    pointer = read_json(
        store,
        f"{_prefix(author, name)}/latest.json",
        f"no {name} dataset for author {author!r} yet: materialize it first",
    )
    return get_version(store, author, name, pointer["version"])


def get_version(store: ArtifactStore, author: str, name: str, version: str) -> DatasetVersion:
    manifest = read_json(
        store,
        f"{_prefix(author, name)}/{version}/manifest.json",
        f"{name} dataset version {version} of author {author!r} does not exist",
    )
    return DatasetVersion(author, name, version, manifest)


def read_splits(store: ArtifactStore, version: DatasetVersion) -> dict[str, pl.DataFrame]:
    return {
        split: pl.read_parquet(io.BytesIO(store.get(info["key"])))
        for split, info in version.manifest["splits"].items()
    }
