"""Helpers for tests that start real servers on 127.0.0.1."""

import socket
import subprocess
import time
from collections.abc import Callable

import httpx


def free_port() -> int:
    """A port nobody listens on (free when this returns)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_dagster(
    proc: subprocess.Popen[bytes],
    port: int,
    ready: Callable[[], bool] = lambda: True,
    timeout_s: float = 180,
) -> None:
    """Until the Dagster webserver on ``port`` answers ``/server_info`` and ``ready()`` holds."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/server_info", timeout=2).status_code == 200 and ready():
                return
        except httpx.TransportError:
            pass
        assert proc.poll() is None and time.monotonic() < deadline, "the Dagster webserver did not start"
        time.sleep(0.5)
