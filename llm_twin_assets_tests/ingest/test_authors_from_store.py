"""Links files on a fleet (issue 23): with LLM_TWIN_AUTHORS_URL the authors live under an S3 prefix (a real
S3 API on 127.0.0.1), not in a folder no step container has. `author add` uploads there; the sensor, the
daily re-crawl and every crawl read a fresh copy; a file removed from S3 is gone for them too."""

from __future__ import annotations

import uuid
from pathlib import Path

import dagster as dg
import pytest

from llm_twin_assets.artifacts import S3ArtifactStore
from llm_twin_assets.authors import add_author, authors_folder, load_author
from llm_twin_assets.crawling.links import MAX_LINKS_FILE_BYTES, LinksFileError
from llm_twin_assets.defs.ingest.sensors import authors_folder_sensor
from llm_twin_assets.defs.partitions import register_authors
from llm_twin_assets.errors import ConfigError
from llm_twin_assets.settings import TwinSettings, get_settings
from llm_twin_assets_tests.conftest import S3_KEYS


@pytest.fixture
def in_s3(
    tmp_path: Path, s3_endpoint: str, s3_client, monkeypatch: pytest.MonkeyPatch
) -> tuple[TwinSettings, S3ArtifactStore]:  # type: ignore[no-untyped-def]
    prefix = f"authors-{uuid.uuid4().hex}"
    monkeypatch.setenv("LLM_TWIN_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("LLM_TWIN_AUTHORS_URL", f"s3://twins/{prefix}")
    monkeypatch.setenv("LLM_TWIN_AUTHORS_DIR", str(tmp_path / "not-used"))
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_endpoint)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", S3_KEYS["aws_access_key_id"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", S3_KEYS["aws_secret_access_key"])
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    return get_settings(), S3ArtifactStore(s3_client, "twins", prefix)


def links(name: str, *urls: str) -> bytes:
    return (f"name: {name}\nlinks:\n" + "".join(f"  - {url}\n" for url in urls)).encode()


def test_author_add_uploads_and_every_read_is_fresh(tmp_path: Path, in_s3) -> None:  # type: ignore[no-untyped-def]
    settings, store = in_s3
    draft = tmp_path / "maya.yaml"
    draft.write_bytes(links("Maya", "https://example.org/a"))
    added = add_author(settings, draft)
    assert store.list_keys() == ["maya.yaml"] and store.get("maya.yaml") == draft.read_bytes()
    assert added.slug == "maya" and not (tmp_path / "not-used").exists()

    # Another machine (a step container) has only the URL: it reads what is in S3 now.
    store.put("maya.yaml", links("Maya", "https://example.org/a", "https://example.org/b"))
    assert [link.url for link in load_author(settings, "maya").author.links] == [
        "https://example.org/a",
        "https://example.org/b",
    ]
    store.delete("maya.yaml")
    with pytest.raises(LinksFileError, match=r"no links file for author 'maya' in s3://twins/authors-"):
        load_author(settings, "maya")
    assert not (authors_folder(settings) / "maya.yaml").exists()  # the stale copy is gone too


def test_the_sensor_runs_authors_found_in_s3(in_s3, capfd: pytest.CaptureFixture[str]) -> None:  # type: ignore[no-untyped-def]
    settings, store = in_s3
    store.put("sam.yaml", links("Sam", "https://example.org/sam"))
    store.put(
        "big.yaml", b"name: Big\nlinks:\n" + b"  - https://example.org/x\n" * (MAX_LINKS_FILE_BYTES // 20)
    )
    store.put("notes/ignored.yaml", links("Nested", "https://example.org/n"))
    store.put("readme.txt", b"not a links file")
    instance = dg.DagsterInstance.ephemeral()
    first = authors_folder_sensor(dg.build_sensor_context(instance=instance))
    assert isinstance(first, dg.SensorResult)
    assert [r.partition_key for r in first.run_requests] == ["sam"]
    assert "over the" in capfd.readouterr().err  # the oversized one is skipped by name, never parsed
    assert sorted(p.name for p in authors_folder(settings).iterdir()) == ["big.yaml", "sam.yaml"]

    store.put("sam.yaml", links("Sam", "https://example.org/sam", "https://example.org/sam2"))
    register_authors(instance, ["sam"])
    changed = authors_folder_sensor(dg.build_sensor_context(instance=instance, cursor=first.cursor))
    assert isinstance(changed, dg.SensorResult) and [r.partition_key for r in changed.run_requests] == ["sam"]


def test_a_links_file_url_that_is_not_s3_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLM_TWIN_AUTHORS_URL", "/srv/authors")
    with pytest.raises(ConfigError, match="not s3://bucket") as refused:
        get_settings()
    assert refused.value.setting == "LLM_TWIN_AUTHORS_URL"
