"""A server that answers slowly on purpose: headers at once, then one byte every ``interval_s``.

Real crawlers meet such servers (tarpits, overloaded hosts); a per-read timeout never fires on them.
The trickle stops after ``limit_s`` or when the server stops, so a test never hangs on it.
"""

from __future__ import annotations

import http.server
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from llm_twin_assets_tests.ingest.site import article
from llm_twin_assets_tests.servers import serve_http


@contextmanager
def serve_trickle(
    slow_paths: tuple[str, ...] | None = None, interval_s: float = 0.5, limit_s: float = 30.0
) -> Iterator[str]:
    """A server on 127.0.0.1: the paths in ``slow_paths`` (every path when None) trickle, the others
    answer with an article at once, and /robots.txt is 404 (no rules). Yields the base URL."""
    stopping = threading.Event()

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path == "/robots.txt":
                self._answer(404, b"no rules")
            elif slow_paths is None or path in slow_paths:
                self._trickle()
            else:
                self._answer(
                    200, article("A quick page", "This host answers its other pages at once.").encode()
                )

        def _answer(self, status: int, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _trickle(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", "100000")
            self.end_headers()
            start = time.monotonic()
            try:
                while not stopping.is_set() and time.monotonic() - start < limit_s:
                    self.wfile.write(b"x")
                    self.wfile.flush()
                    stopping.wait(interval_s)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up: what a deadline is for
            self.close_connection = True

    with serve_http(Handler, stop=stopping.set) as url:
        yield url


def processes_naming(text: str) -> list[str]:
    """Command lines of the live (not zombie) processes, other than this one, that contain ``text``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue  # ended while we looked
        if text in command and state != "Z":
            found.append(command.strip())
    return found
