"""Waiting in tests: one polling helper instead of a hand-written loop per test. A wait fails with what it
waited for, how long, and (when the thing it waits on died) why waiting further is pointless."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import httpx

T = TypeVar("T")


def wait_until(
    condition: Callable[[], T],
    what: str,
    timeout_s: float = 30,
    interval_s: float = 0.1,
    dead: Callable[[], str | None] = lambda: None,
) -> T:
    """Poll ``condition`` until it returns a true value, and return that value. Fails after ``timeout_s``
    naming ``what``, or at once when ``dead`` returns a reason (a process it waits on has exited)."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = condition()
        if value:
            return value
        reason = dead()
        if reason is not None:
            raise AssertionError(f"gave up waiting for {what}: {reason}")
        if time.monotonic() >= deadline:
            raise AssertionError(f"waited {timeout_s:g} s for {what}")
        time.sleep(interval_s)


def exited(
    proc: subprocess.Popen[bytes] | subprocess.Popen[str], log: Path | None = None
) -> Callable[[], str | None]:
    """For ``dead=``: the process's exit (and the end of its log) once it has exited."""

    def reason() -> str | None:
        if proc.poll() is None:
            return None
        tail = f":\n{log.read_text()[-4000:]}" if log is not None and log.exists() else ""
        return f"the process exited ({proc.returncode}){tail}"

    return reason


def answers(url: str, status: int = 200) -> Callable[[], bool]:
    """For ``condition=``: ``url`` answers a GET with ``status`` (a refused connection is a no)."""

    def check() -> bool:
        try:
            return httpx.get(url, timeout=2).status_code == status
        except httpx.TransportError:
            return False

    return check
