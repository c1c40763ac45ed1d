"""The one registry of versioned artifacts (datasets and adapters): one layout, and one rule — a version
becomes ``latest`` only when its blocking checks passed, and the data version reported is the one serving."""

from __future__ import annotations

from pathlib import Path

import pytest

from llm_twin_assets.artifacts import ArtifactError, LocalArtifactStore
from llm_twin_assets.versioned import ADAPTERS, DATASETS, NONE_PASSED, promote_if_passed


@pytest.mark.parametrize("kind", [DATASETS, ADAPTERS], ids=["datasets", "adapters"])
def test_only_a_version_that_passed_becomes_latest(tmp_path: Path, kind) -> None:  # type: ignore[no-untyped-def]
    store = LocalArtifactStore(tmp_path)
    for version in ("v1", "v2", "v3"):
        kind.write_manifest(store, "ada", "sft", version, {"version": version})
    assert kind.latest_version(store, "ada", "sft") is None
    with pytest.raises(ArtifactError, match=rf"no sft {kind.noun} for author 'ada' yet"):
        kind.require_latest(store, "ada", "sft")

    assert promote_if_passed(kind, store, "ada", "sft", "v1", passed=False) == NONE_PASSED
    assert kind.latest_version(store, "ada", "sft") is None
    assert promote_if_passed(kind, store, "ada", "sft", "v2", passed=True) == "v2"
    assert promote_if_passed(kind, store, "ada", "sft", "v3", passed=False) == "v2"  # still serving
    assert kind.require_latest(store, "ada", "sft") == "v2"
    assert kind.exists(store, "ada", "sft", "v3") and not kind.exists(store, "bob", "sft", "v3")
    assert store.exists(f"{kind.root}/ada/sft/v3/manifest.json")  # one layout for both kinds
    with pytest.raises(ArtifactError, match=r"sft .*v9 of author 'ada' does not exist"):
        kind.manifest(store, "ada", "sft", "v9")
