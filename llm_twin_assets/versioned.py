"""Versioned artifacts: datasets and adapters share one layout in the artifact store and one rule.

``<root>/<author>/<name>/<version>/…`` holds a version's files and its ``manifest.json``, written last (a
reader never sees half a version); ``<root>/<author>/<name>/latest.json`` names the version readers get,
and only :func:`promote_if_passed` moves it: a version whose blocking checks failed stays published (to
look at) but never becomes ``latest``, and the data version an asset reports is the one still serving.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from llm_twin_assets.artifacts import ArtifactStore, read_json, write_json

NONE_PASSED = "none-passed"
"""The data version reported while no version of an artifact has passed its checks."""


@dataclass(frozen=True)
class Kind:
    """One kind of versioned artifact: where it lives and how messages name it."""

    root: str  # "datasets" | "adapters"
    noun: str  # "dataset" | "adapter"
    missing: str  # message for a version that is not there: {name}, {version}, {author}

    def prefix(self, author: str, name: str) -> str:
        return f"{self.root}/{author}/{name}"

    def manifest_key(self, author: str, name: str, version: str) -> str:
        return f"{self.prefix(author, name)}/{version}/manifest.json"

    def exists(self, store: ArtifactStore, author: str, name: str, version: str) -> bool:
        return store.exists(self.manifest_key(author, name, version))

    def write_manifest(
        self, store: ArtifactStore, author: str, name: str, version: str, manifest: Any
    ) -> None:
        """The version's manifest: write it after every file it names."""
        write_json(store, self.manifest_key(author, name, version), manifest)

    def manifest(self, store: ArtifactStore, author: str, name: str, version: str) -> dict[str, Any]:
        found = read_json(
            store,
            self.manifest_key(author, name, version),
            self.missing.format(name=name, version=version, author=author),
        )
        return dict(found)

    def latest_version(self, store: ArtifactStore, author: str, name: str) -> str | None:
        """The promoted version's id, or None before the first one passed its checks."""
        key = f"{self.prefix(author, name)}/latest.json"
        return str(read_json(store, key, "")["version"]) if store.exists(key) else None

    def require_latest(self, store: ArtifactStore, author: str, name: str) -> str:
        pointer = read_json(
            store,
            f"{self.prefix(author, name)}/latest.json",
            f"no {name} {self.noun} for author {author!r} yet: materialize it first",
        )
        return str(pointer["version"])

    def promote(self, store: ArtifactStore, author: str, name: str, version: str) -> None:
        """Make ``version`` the one readers get. Call it through :func:`promote_if_passed`."""
        write_json(store, f"{self.prefix(author, name)}/latest.json", {"version": version})


DATASETS = Kind("datasets", "dataset", "{name} dataset version {version} of author {author!r} does not exist")
ADAPTERS = Kind("adapters", "adapter", "{name} adapter {version} of author {author!r} does not exist")


def promote_if_passed(
    kind: Kind, store: ArtifactStore, author: str, name: str, version: str, passed: bool
) -> str:
    """The one rule: ``version`` becomes ``latest`` only when every blocking check ``passed``. Returns the
    data version to report: ``version`` once promoted, else the version still serving (or
    :data:`NONE_PASSED`), so nothing downstream follows a version that failed."""
    if passed:
        kind.promote(store, author, name, version)
        return version
    return kind.latest_version(store, author, name) or NONE_PASSED
