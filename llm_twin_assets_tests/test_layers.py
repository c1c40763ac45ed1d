"""The layers of DESIGN.md, enforced: import-linter's contracts (setup.cfg) hold for the package."""

import configparser
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _contracts() -> configparser.ConfigParser:
    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg")
    return config


def test_import_contracts_hold() -> None:
    config = _contracts()
    names = [config[s]["name"] for s in config.sections() if s.startswith("importlinter:contract:")]
    assert len(names) >= 5
    lint = Path(sys.executable).with_name("lint-imports")
    out = subprocess.run([str(lint), "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-2000:]
    flat = " ".join(out.stdout.split())  # import-linter wraps long contract names
    assert all(f"{name} KEPT" in flat for name in names), flat[-2000:]
    assert f"Contracts: {len(names)} kept, 0 broken." in flat


def test_every_top_level_module_is_in_exactly_one_layer() -> None:
    """A new module cannot escape the layers: it must be placed in the contract (and DESIGN.md)."""
    layers = _contracts()["importlinter:contract:layers"]["layers"]
    placed = [
        m.strip() for line in layers.split("\n") for m in line.replace("|", ":").split(":") if m.strip()
    ]
    package = ROOT / "llm_twin_assets"
    modules = {
        f"llm_twin_assets.{p.stem}"
        for p in package.iterdir()
        if (p.suffix == ".py" and p.stem != "__init__") or (p.is_dir() and (p / "__init__.py").exists())
    }
    assert sorted(placed) == sorted(modules)


def test_the_service_imports_only_the_plain_libraries() -> None:
    """bentos/llm_twin is outside the package, so import-linter cannot see it: its imports are read here,
    and the serving library it uses is under the libraries contract above."""
    import ast

    tree = ast.parse((ROOT / "bentos" / "llm_twin" / "service.py").read_text())
    imported = {n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    imported |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    ours = {m for m in imported if m.startswith("llm_twin_assets")}
    assert ours and all(
        m.startswith(("llm_twin_assets.serving", "llm_twin_assets.settings")) for m in ours
    ), ours
