"""When the database is not there: a restart or failover (worth retrying), or a full disk (to say so).

Both are told apart from a setting to fix (a wrong URL, user or password), which fails at once.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import psycopg

from llm_twin_assets.errors import ConfigError, StoreError


class DatabaseUnavailable(StoreError):
    """The server is not there right now (restarting, failing over, coming back): the work is worth
    retrying. ``config_error`` is what the failure means when this process never reached the server."""

    def __init__(self, message: str, config_error: ConfigError | None = None) -> None:
        super().__init__(message)
        self.config_error = config_error


# How libpq and the server word a connection attempt that met no server, and one that met a server
# starting, stopping or recovering. Anything else (a refused user or password, an unknown database or
# host) is a setting to fix, never retried.
NO_SERVER = re.compile(
    r"No such file or directory|Connection refused|timeout expired|server closed the connection unexpectedly",
    re.IGNORECASE,
)
SERVER_CHANGING = re.compile(
    r"the database system is (starting up|shutting down|in recovery mode|not (yet )?accepting connections)",
    re.IGNORECASE,
)
# A connection lost mid-work because the server shut down (fast, or after a crash) or is starting.
_LOST_STATES = {"57P01", "57P02", "57P03"}


def is_transient(exc: BaseException) -> bool:
    """Whether ``exc`` is the database going away or coming back (a restart, a failover, a dropped
    connection) rather than a problem to fix: retrying the work once it is back is the right answer."""
    if isinstance(exc, DatabaseUnavailable):
        return True
    if not isinstance(exc, psycopg.OperationalError):
        return False
    state = exc.sqlstate
    # No SQLSTATE on an established connection: libpq lost it ("server closed the connection
    # unexpectedly", "the connection is lost").
    return state is None or state in _LOST_STATES or state.startswith("08")


class DiskFullError(StoreError):
    """The disk under the database is full. The transaction in progress was rolled back; what was
    committed before is intact, and a run after space is freed carries on."""


NEARLY_FULL = 32 << 20
"""Less room than this (two WAL segments) under the embedded server's data: a lost connection or a failed
start is the full disk's doing (PostgreSQL stops when it cannot create a WAL segment, and its recovery
cannot finish until there is room)."""

# Besides 53100 (disk full): how a connection ends when the server crashed or stopped.
_SERVER_GONE = {None, "57P01", "57P02", "57P03", "58030"}


def free_bytes(path: Path) -> int | None:
    for candidate in (path, *path.parents):
        try:
            return shutil.disk_usage(candidate).free
        except OSError:
            continue
    return None


def disk_full_error(
    what: str, pgdata: Path, free: int | None, reason: str, *, writing: bool = True
) -> DiskFullError:
    room = f"{free / 2**20:.1f} MiB free" if free is not None else "free space unknown"
    kept = "the write in progress was rolled back; " if writing else ""
    return DiskFullError(
        f"LLM_TWIN_HOME: {what}: the disk holding the data home {pgdata.parent} is full ({room}; {reason}); "
        f"{kept}what was stored before is intact. Fix: free space on that disk (or move LLM_TWIN_HOME to "
        "a bigger one), then run it again: the embedded server recovers on its next start"
    )


def _first_line(exc: BaseException | str) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def disk_full_cause(
    exc: Exception, where: str, pgdata: Path | None, *, stopped: bool
) -> DiskFullError | None:
    """The clear error for ``exc`` when a full disk caused it, else None. ``where``: the server's URL,
    password redacted; ``pgdata``: the embedded
    server's data folder (None for a server elsewhere); ``stopped``: the server went away (PostgreSQL
    PANICs when it cannot create a WAL segment)."""
    if isinstance(exc, psycopg.errors.DiskFull):
        reason = _first_line(exc.diag.message_primary or exc)
        if pgdata is None:
            return DiskFullError(
                f"the database at {where} is out of disk space ({reason}); the write in "
                "progress was rolled back. Fix: free space on the database server's disk (or grow "
                "its volume), then run it again"
            )
        what = "the embedded PostgreSQL server could not write" + (" and stopped" if stopped else "")
        return disk_full_error(what, pgdata, free_bytes(pgdata), reason)
    if pgdata is None:
        return None
    if isinstance(exc, psycopg.Error) and exc.sqlstate not in _SERVER_GONE:
        return None
    free = free_bytes(pgdata)
    if free is None or free >= NEARLY_FULL:
        return None
    return disk_full_error(
        "the embedded PostgreSQL server stopped", pgdata, free, f"PostgreSQL: {_first_line(exc)}"
    )
