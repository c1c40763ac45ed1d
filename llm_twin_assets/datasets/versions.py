"""Dataset versions in the artifact store: Parquet per split, a manifest, and a ``latest`` pointer.

    datasets/<author>/<name>/<version>/<split>.parquet
    datasets/<author>/<name>/<version>/<extra>.parquet      (optional: e.g. the instruct dataset's corpus)
    datasets/<author>/<name>/<version>/manifest.json
    datasets/<author>/<name>/latest.json            {"version": ...}

The version id is derived from the rows alone, so identical inputs give the identical version, and a
version that already exists is not rewritten. :func:`publish` writes a version but does not make it
``latest``: :func:`promote_if_passed` does, once the version's blocking checks passed (the dataset assets
run them on the version they built), so a version that fails them never serves. The layout and the rule
are ``versioned.py``'s, shared with the adapters.
"""

from __future__ import annotations

import hashlib
import io
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import polars as pl

from llm_twin_assets import versioned
from llm_twin_assets.artifacts import ArtifactStore
from llm_twin_assets.versioned import DATASETS


@dataclass(frozen=True)
class DatasetVersion:
    author: str
    name: str
    version: str
    manifest: dict[str, Any]

    @property
    def rows(self) -> dict[str, int]:
        return {split: info["rows"] for split, info in self.manifest["splits"].items()}


def version_id(
    name: str, splits: dict[str, pl.DataFrame], extras: dict[str, pl.DataFrame] | None = None
) -> str:
    """From the rows alone (splits, then any extras under their own names)."""
    digest = hashlib.sha256(name.encode())
    parts = [(split, splits[split]) for split in sorted(splits)]
    parts += [(f"extra:{extra}", (extras or {})[extra]) for extra in sorted(extras or {})]
    for part, frame in parts:
        digest.update(f"\x1e{part}\x1e".encode())
        for row in frame.sort("id").iter_rows(named=True):
            digest.update(json.dumps(row, sort_keys=True, ensure_ascii=False).encode())
            digest.update(b"\n")
    return digest.hexdigest()[:16]


def publish(
    store: ArtifactStore,
    author: str,
    name: str,
    splits: dict[str, pl.DataFrame],
    details: dict[str, Any],
    extras: dict[str, pl.DataFrame] | None = None,
) -> tuple[DatasetVersion, bool]:
    """Write the version (unless it exists); returns it and whether it is new. ``latest`` is not moved.

    ``extras`` are tables that travel with the version but are not splits (each with an ``id`` column,
    part of the version id): the instruct dataset's ``corpus``, say."""
    version = version_id(name, splits, extras)
    base = f"{DATASETS.prefix(author, name)}/{version}"
    new = not DATASETS.exists(store, author, name, version)
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
        for extra, frame in (extras or {}).items():
            if extra in splits:
                raise ValueError(f"extra {extra!r} has the name of a split")
            buffer = io.BytesIO()
            frame.sort("id").write_parquet(buffer, compression="zstd")
            store.put(f"{base}/{extra}.parquet", buffer.getvalue())
            manifest.setdefault("extras", {})[extra] = {
                "key": f"{base}/{extra}.parquet",
                "rows": frame.height,
            }
        DATASETS.write_manifest(store, author, name, version, manifest)
    else:
        manifest = DATASETS.manifest(store, author, name, version)
    return DatasetVersion(author, name, version, manifest), new


def promote_if_passed(store: ArtifactStore, version: DatasetVersion, passed: bool) -> str:
    """``version`` becomes ``latest`` only if its blocking checks ``passed``; the data version to report
    (``versioned.promote_if_passed``)."""
    return versioned.promote_if_passed(DATASETS, store, version.author, version.name, version.version, passed)


def promote(store: ArtifactStore, version: DatasetVersion) -> None:
    """Make ``version`` the one readers get, unconditionally (tests, imports of checked data)."""
    DATASETS.promote(store, version.author, version.name, version.version)


def latest(store: ArtifactStore, author: str, name: str) -> DatasetVersion:
    return get_version(store, author, name, DATASETS.require_latest(store, author, name))


def get_version(store: ArtifactStore, author: str, name: str, version: str) -> DatasetVersion:
    return DatasetVersion(author, name, version, DATASETS.manifest(store, author, name, version))


def read_splits(store: ArtifactStore, version: DatasetVersion) -> dict[str, pl.DataFrame]:
    return {
        split: pl.read_parquet(io.BytesIO(store.get(info["key"])))
        for split, info in version.manifest["splits"].items()
    }


def read_extra(store: ArtifactStore, version: DatasetVersion, name: str) -> pl.DataFrame | None:
    """The version's extra table ``name``; ``None`` when the version has none (built before it existed)."""
    info = version.manifest.get("extras", {}).get(name)
    return pl.read_parquet(io.BytesIO(store.get(info["key"]))) if info else None
