"""The demo author's world on one machine: a static site on 127.0.0.1 and a local git repository.

``make demo`` and the tests use the same pieces, so the demo shows what the tests check.
"""

from __future__ import annotations

import http.server
import os
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path

SAMPLES = Path(__file__).resolve().parents[1] / "samples"
_FIXED_DATE = "2025-10-01T12:00:00+00:00"


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    extensions_map = {  # noqa: RUF012 (the base class declares it on instances)
        **http.server.SimpleHTTPRequestHandler.extensions_map,
        ".xml": "application/rss+xml",
        ".json": "application/json",
        ".js": "text/javascript",
    }

    def log_message(self, format: str, *args: object) -> None:
        pass


@contextmanager
def serve_directory(root: Path, host: str = "127.0.0.1", port: int = 0) -> Iterator[str]:
    """Serve ``root`` over HTTP in a background thread; yields the base URL."""
    server = http.server.ThreadingHTTPServer((host, port), partial(_QuietHandler, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://{host}:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def build_git_repo(source: Path, bare_target: Path) -> Path:
    """A bare git repository holding ``source`` as one commit (fixed author and date: stable hash)."""
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "Maya Okafor",
        "GIT_AUTHOR_EMAIL": "maya@example.org",
        "GIT_COMMITTER_NAME": "Maya Okafor",
        "GIT_COMMITTER_EMAIL": "maya@example.org",
        "GIT_AUTHOR_DATE": _FIXED_DATE,
        "GIT_COMMITTER_DATE": _FIXED_DATE,
        "GIT_CONFIG_NOSYSTEM": "1",
        "HOME": tempfile.gettempdir(),
    }
    with tempfile.TemporaryDirectory(prefix="llm-twin-repo-") as tmp:
        work = Path(tmp) / "work"
        shutil.copytree(source, work, ignore=shutil.ignore_patterns(".git", "__pycache__"))
        for args in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-q", "-m", "tinyvec 0.2.0"]):
            subprocess.run(["git", *args], cwd=work, env=env, check=True, capture_output=True)
        if bare_target.exists():
            shutil.rmtree(bare_target)
        subprocess.run(
            ["git", "clone", "-q", "--bare", str(work), str(bare_target)],
            env=env,
            check=True,
            capture_output=True,
        )
    return bare_target
