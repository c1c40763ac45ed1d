import os
import subprocess
import sys
from pathlib import Path

import dagster as dg

from llm_twin_assets.defs.resources import ModelsResource, StoreResource
from llm_twin_assets.settings import TwinSettings
from llm_twin_assets.store.migrations import default_sql_dir, discover

ROOT = Path(__file__).resolve().parents[1]


def test_code_location_loads_without_importing_torch() -> None:
    code = (
        "import sys, llm_twin_assets.definitions as d;"
        "heavy = [m for m in ('torch', 'transformers', 'sentence_transformers') if m in sys.modules];"
        "print(heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == "[]"


def test_dagster_validates_the_workspace(tmp_path: Path) -> None:
    dagster = Path(sys.executable).with_name("dagster")
    env = {**os.environ, "DAGSTER_HOME": str(tmp_path)}
    result = subprocess.run(
        [str(dagster), "definitions", "validate", "-w", "workspace.yaml"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
        env=env,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "All code locations passed validation" in result.stderr + result.stdout


def test_definitions_carry_the_resources_and_the_authors_partitions() -> None:
    from llm_twin_assets.definitions import authors_partitions, defs

    assert isinstance(defs.resources["store"], StoreResource)
    assert isinstance(defs.resources["models"], ModelsResource)
    assert isinstance(authors_partitions, dg.DynamicPartitionsDefinition)
    assert authors_partitions.name == "authors"


def test_store_resource_reaches_the_store_from_settings(settings: TwinSettings, database) -> None:  # type: ignore[no-untyped-def]
    resource = StoreResource()
    assert resource.settings().home == settings.home  # read from LLM_TWIN_HOME at run time
    with resource.database().connect() as conn:
        assert conn.execute("SELECT count(*) FROM schema_migrations").fetchone() == (
            len(discover(default_sql_dir())),
        )
