"""`llm-twin author add` and `llm-twin materialize`, run as a person runs them."""

import os
import subprocess
from pathlib import Path

import pytest

from llm_twin_assets.store.database import Database
from llm_twin_assets_tests.ingest.site import write_links
from llm_twin_assets_tests.test_cli import LLM_TWIN


@pytest.mark.slow
def test_add_an_author_then_materialize_raw_documents(db: Database, site, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    base, _ = site
    source = write_links(
        tmp_path / "mine",
        "maya",
        [
            f"{base}/blog/small-machines.html",
            f"{base}/blog/boring-postgres.html",
            "{url: ./posts.csv, kind: post}",
        ],
    )
    (tmp_path / "mine" / "posts.csv").write_text(
        'ShareLink,ShareCommentary\n,"Measure first, scale second."\n'
    )
    env = {
        **os.environ,
        "LLM_TWIN_AUTHORS_DIR": str(tmp_path / "authors"),
        "DAGSTER_HOME": str(tmp_path / "dagster"),
        "LLM_TWIN_ALLOW_PRIVATE_NETWORKS": "1",
        "LLM_TWIN_LOCAL_ROOTS": str(tmp_path / "mine"),  # the export lies outside the authors folder
    }

    added = subprocess.run([LLM_TWIN, "author", "add", str(source)], capture_output=True, text=True, env=env)
    assert added.returncode == 0, added.stderr
    assert added.stdout.startswith("added maya (Maya Okafor): 3 links")
    copied = (tmp_path / "authors" / "maya.yaml").read_text()
    assert str(tmp_path / "mine" / "posts.csv") in copied  # the relative path still points at the export
    listed = subprocess.run([LLM_TWIN, "author", "list"], capture_output=True, text=True, env=env)
    assert listed.stdout.startswith("maya\tMaya Okafor\t3 links")
    code = "import dagster as dg; print(dg.DagsterInstance.get().get_dynamic_partitions('authors'))"
    partitions = subprocess.run(
        [str(Path(LLM_TWIN).with_name("python")), "-c", code], capture_output=True, text=True, env=env
    )
    assert partitions.stdout.strip() == "['maya']"  # registered in the instance the UI reads

    run = subprocess.run(
        [LLM_TWIN, "materialize", "--author", "maya", "--select", "raw_documents"],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    lines = run.stdout.splitlines()
    assert lines[0] == "-> raw_documents [maya] ..."
    assert "done raw_documents" in lines[1] and "new=3" in lines[1] and "failed=0" in lines[1]
    assert "checks: raw_documents_have_content=ok, raw_documents_unique_content=ok" in lines[1]
    with db.connect() as conn:
        assert conn.execute("SELECT count(*) FROM raw_documents WHERE author = 'maya'").fetchone() == (3,)


@pytest.mark.slow
def test_bad_input_is_one_clear_line(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "LLM_TWIN_AUTHORS_DIR": str(tmp_path / "authors"),
        "DAGSTER_HOME": str(tmp_path / "dagster"),
    }
    bad = tmp_path / "jane.yaml"
    bad.write_text("name: Jane\nlinks:\n  - url: https://a.org\n    kind: tweet\n")
    result = subprocess.run([LLM_TWIN, "author", "add", str(bad)], capture_output=True, text=True, env=env)
    assert result.returncode == 2 and f"{bad}, line 4: links.0.kind" in result.stderr
    assert not (tmp_path / "authors" / "jane.yaml").exists()

    result = subprocess.run(
        [LLM_TWIN, "materialize", "--author", "nobody"], capture_output=True, text=True, env=env
    )
    assert result.returncode == 2 and "no links file for author 'nobody'" in result.stderr

    write_links(tmp_path / "authors", "jane", ["https://a.org"])
    result = subprocess.run(
        [LLM_TWIN, "materialize", "--author", "jane", "--select", "no_such_asset"],
        capture_output=True,
        text=True,
        env=env,
    )
    assert result.returncode == 2 and "no_such_asset" in result.stderr and "Traceback" not in result.stderr

    for text, complaint in [
        ("ops: {instruct_datset: {config: {}}}\n", "no asset named instruct_datset"),
        ("resources: {}\n", "expected a mapping with only an 'ops' section"),
        ("ops: [1, 2\n", "--config"),
    ]:
        config = tmp_path / "run.yaml"
        config.write_text(text)
        result = subprocess.run(
            [
                LLM_TWIN,
                "materialize",
                "--author",
                "jane",
                "--select",
                "instruct_dataset",
                "--config",
                str(config),
            ],
            capture_output=True,
            text=True,
            env=env,
        )
        assert result.returncode == 2 and complaint in result.stderr and "Traceback" not in result.stderr
