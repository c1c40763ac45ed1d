"""Helpers for tests that start real servers on 127.0.0.1."""

import http.server
import socket
import subprocess
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from llm_twin_assets_tests.waiting import answers, exited, wait_until


def free_port() -> int:
    """A port nobody listens on (free when this returns)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def serve_http(
    handler: type[http.server.BaseHTTPRequestHandler], stop: Callable[[], None] = lambda: None
) -> Iterator[str]:
    """``handler`` served on 127.0.0.1 (a thread per request) while the block runs; yields the base URL.
    ``stop`` runs first on the way out (to release requests a test holds), then the server shuts down."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        stop()
        server.shutdown()
        server.server_close()


def wait_for_dagster(
    proc: subprocess.Popen[bytes],
    port: int,
    ready: Callable[[], bool] = lambda: True,
    timeout_s: float = 180,
) -> None:
    """Until the Dagster webserver on ``port`` answers ``/server_info`` and ``ready()`` holds."""
    up = answers(f"http://127.0.0.1:{port}/server_info")
    wait_until(lambda: up() and ready(), "the Dagster webserver", timeout_s, 0.5, exited(proc))


def stop_process_group(proc: subprocess.Popen[bytes], grace_s: float = 60) -> None:
    """SIGTERM to the process group ``proc`` leads (``dagster dev``: webserver, daemon, code servers),
    SIGKILL after ``grace_s``."""
    import os
    import signal

    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
