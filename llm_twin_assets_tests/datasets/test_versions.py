"""Dataset versions: content-derived ids, atomic publishing, the TRL loader; on disk and in S3."""

import uuid
from pathlib import Path

import polars as pl
import pytest

from llm_twin_assets.artifacts import ArtifactError, ArtifactStore, LocalArtifactStore, S3ArtifactStore
from llm_twin_assets.datasets.building import INSTRUCT_SCHEMA, PREFERENCE_SCHEMA, split_frame
from llm_twin_assets.datasets.loading import load_dataset
from llm_twin_assets.datasets.versions import get_version, latest, promote, publish, read_splits


def instruct_rows(n: int, docs: int = 4) -> pl.DataFrame:
    return pl.DataFrame(
        [
            {
                "id": f"row-{i:03d}",
                "author": "maya",
                "document_id": f"doc-{i % docs}",
                "document_url": f"https://maya.example/{i % docs}",
                "kind": "article",
                "source": "author",
                "instruction": f"Write about topic {i}.",
                "answer": f"This is what I think about topic {i}, in my own words.",
            }
            for i in range(n)
        ],
        schema=INSTRUCT_SCHEMA,
    )


@pytest.fixture
def s3_store(s3_client: object) -> S3ArtifactStore:
    return S3ArtifactStore(s3_client, "twins", f"prod/{uuid.uuid4().hex}/artifacts")


@pytest.fixture(params=["local", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> ArtifactStore:
    if request.param == "local":
        return LocalArtifactStore(tmp_path / "artifacts")
    return request.getfixturevalue("s3_store")


def test_identical_rows_give_the_identical_version_which_is_not_rewritten(store: ArtifactStore) -> None:
    splits = split_frame(instruct_rows(20), 0.25, seed=1)
    first, new = publish(store, "maya", "instruct", splits, {"teacher": "t"})
    assert new and first.rows == {"train": splits["train"].height, "test": splits["test"].height}
    shuffled = {k: v.sample(fraction=1.0, shuffle=True, seed=3) for k, v in splits.items()}
    again, new_again = publish(store, "maya", "instruct", shuffled, {"teacher": "t"})
    assert again.version == first.version and not new_again
    assert again.manifest["created_at"] == first.manifest["created_at"]


def test_a_changed_row_is_a_new_version_and_latest_follows_only_when_promoted(store: ArtifactStore) -> None:
    rows = instruct_rows(20)
    first, _ = publish(store, "maya", "instruct", split_frame(rows, 0.25, 1), {})
    promote(store, first)
    changed = rows.with_columns(
        pl.when(pl.col("id") == "row-005").then(pl.lit("Edited.")).otherwise(pl.col("answer")).alias("answer")
    )
    second, new = publish(store, "maya", "instruct", split_frame(changed, 0.25, 1), {})
    assert new and second.version != first.version
    assert latest(store, "maya", "instruct").version == first.version  # published, not yet checked
    promote(store, second)
    assert latest(store, "maya", "instruct").version == second.version
    assert get_version(store, "maya", "instruct", first.version).version == first.version  # old ones stay
    back = read_splits(store, latest(store, "maya", "instruct"))
    assert back["train"].schema == pl.Schema(INSTRUCT_SCHEMA)
    assert pl.concat(back.values()).sort("id").equals(changed.sort("id"))


def test_missing_versions_and_datasets_are_named(store: ArtifactStore) -> None:
    with pytest.raises(ArtifactError, match="no instruct dataset for author 'nobody' yet"):
        latest(store, "nobody", "instruct")
    with pytest.raises(ArtifactError, match="version 0000 of author 'maya' does not exist"):
        get_version(store, "maya", "instruct", "0000")


@pytest.mark.parametrize("key", ["", "/abs", "a/../b", "a//b", "./a"])
def test_keys_must_be_plain_relative_paths(tmp_path: Path, key: str) -> None:
    with pytest.raises(ArtifactError, match="not a plain relative path"):
        LocalArtifactStore(tmp_path).put(key, b"x")


def test_the_loader_gives_trl_conversational_formats(tmp_path: Path) -> None:
    store = LocalArtifactStore(tmp_path)
    promote(store, publish(store, "maya", "instruct", split_frame(instruct_rows(12), 0.25, 1), {})[0])
    instruct = load_dataset(store, "maya", "instruct")
    assert set(instruct) == {"train", "test"} and len(instruct["train"]) + len(instruct["test"]) == 12
    example = instruct["train"][0]
    assert [m["role"] for m in example["messages"]] == ["user", "assistant"]
    assert example["messages"][1]["content"].endswith("in my own words.")

    pairs = pl.DataFrame(
        [
            {
                "id": f"p{i}",
                "author": "maya",
                "document_id": f"doc-{i % 3}",
                "document_url": "u",
                "kind": "post",
                "prompt": f"Write about {i}.",
                "chosen": f"Mine {i}.",
                "rejected": f"Theirs {i}.",
            }
            for i in range(9)
        ],
        schema=PREFERENCE_SCHEMA,
    )
    promote(store, publish(store, "maya", "preference", split_frame(pairs, 0.3, 1), {})[0])
    preference = load_dataset(store, "maya", "preference")
    row = preference["train"][0]
    assert row["prompt"][0]["role"] == "user"
    assert row["chosen"][0]["role"] == row["rejected"][0]["role"] == "assistant"
    assert row["chosen"][0]["content"] != row["rejected"][0]["content"]
