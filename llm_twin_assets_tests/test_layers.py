"""The layers of DESIGN.md, enforced: import-linter's contracts (setup.cfg) hold for the package."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_import_contracts_hold() -> None:
    lint = Path(sys.executable).with_name("lint-imports")
    out = subprocess.run([str(lint), "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-2000:]
    assert "3 kept, 0 broken" in out.stdout


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
