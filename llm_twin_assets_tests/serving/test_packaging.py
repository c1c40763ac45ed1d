"""`bentoml build` works offline from bentos/llm_twin, and the bento's requirements are the project's."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_bento_requirements_are_the_project_dependencies() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    lines = (ROOT / "bentos" / "llm_twin" / "requirements.txt").read_text().splitlines()
    assert [line for line in lines if line and not line.startswith("#")] == project


def test_bentoml_build_works_offline(tmp_path: Path) -> None:
    bentoml = str(Path(sys.executable).with_name("bentoml"))
    env = {**os.environ, "BENTOML_HOME": str(tmp_path / "bentoml"), "BENTOML_DO_NOT_TRACK": "true"}
    built = subprocess.run(
        [bentoml, "build", "-f", "bentos/llm_twin/bentofile.yaml", ".", "--output", "tag"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    [bento] = list((tmp_path / "bentoml" / "bentos" / "llm_twin").glob("*/src"))
    assert (bento / "bentos" / "llm_twin" / "service.py").is_file()
    assert (bento / "llm_twin_assets" / "serving" / "chat.html").is_file()
    assert (bento / "sql" / "006_serving_traces.sql").is_file()
    assert not list(bento.rglob("__pycache__"))
