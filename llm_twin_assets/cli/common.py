"""What every command shares."""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import typer

from llm_twin_assets.errors import TwinError

F = TypeVar("F", bound=Callable[..., Any])


def friendly_errors(func: F) -> F:
    """Our own errors, and a full disk under the data home, print one clear line and exit 2, instead of
    a traceback. No line — and no traceback — ever shows the database password."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except TwinError as exc:
            _fail(str(exc))
        except Exception as exc:
            full = full_disk(exc)
            if full is not None:
                _fail(full)
            if _holds_secret(exc):  # a traceback would show it: one scrubbed line instead
                _fail(f"{type(exc).__name__}: {str(exc).strip().splitlines()[0]}")
            raise

    return wrapper  # type: ignore[return-value]


def _fail(message: str) -> NoReturn:
    typer.secho(f"error: {_scrubbed(message)}", fg=typer.colors.RED, err=True)
    raise typer.Exit(2) from None


def _database_url() -> str | None:
    """The configured database URL (read from the environment as settings read it), if any."""
    import os

    return os.environ.get("LLM_TWIN_DATABASE_URL") or None


def _scrubbed(message: str) -> str:
    from llm_twin_assets.store.outages import scrub

    return scrub(message, _database_url())


def _holds_secret(exc: BaseException) -> bool:
    seen: BaseException | None = exc
    chain: list[BaseException] = []
    while seen is not None and seen not in chain:
        chain.append(seen)
        seen = seen.__cause__ or seen.__context__
    return any(_scrubbed(str(e)) != str(e) for e in chain)


NEARLY_FULL = 32 << 20
"""Less room than this where the data home or DAGSTER_HOME lies: an I/O error there is the full disk's."""


def full_disk(exc: BaseException) -> str | None:
    """The one line for an error a full disk caused (e.g. the Dagster instance's SQLite under the data
    home cannot write), naming the folder and the fix; None for anything else."""
    import errno
    import os
    import shutil
    from pathlib import Path

    causes: list[BaseException] = []
    seen: BaseException | None = exc
    while seen is not None and seen not in causes:
        causes.append(seen)
        seen = seen.__cause__ or seen.__context__
    root = causes[-1]
    text = " ".join(str(c).lower() for c in causes)
    sure = "disk is full" in text or any(
        isinstance(c, OSError) and c.errno in (errno.ENOSPC, errno.EDQUOT) for c in causes
    )
    if not sure and "disk i/o error" not in text:
        return None
    folders: list[Path] = []
    with contextlib.suppress(Exception):
        from llm_twin_assets.settings import get_settings

        folders.append(get_settings().home)
    if os.environ.get("DAGSTER_HOME"):
        folders.append(Path(os.environ["DAGSTER_HOME"]))
    room: list[tuple[int, Path]] = []
    for folder in folders:
        for candidate in (folder.absolute(), *folder.absolute().parents):
            with contextlib.suppress(OSError):
                room.append((shutil.disk_usage(candidate).free, folder))
                break
    fullest = min(room, key=lambda r: r[0], default=None)
    what = str(root).strip().splitlines()[0] if str(root).strip() else type(root).__name__
    if fullest is not None and fullest[0] < NEARLY_FULL:
        free, folder = fullest
        return (
            f"the disk holding {folder} is full ({free / 2**20:.1f} MiB free; {type(root).__name__}: "
            f"{what}). Fix: free space on that disk (or move LLM_TWIN_HOME and DAGSTER_HOME to a bigger "
            "one), then run it again"
        )
    if sure:
        return f"a disk is full ({type(root).__name__}: {what}). Fix: free space on it, then run it again"
    return None


def dagster_home() -> Path:
    """DAGSTER_HOME (default: <data home>/dagster), with the instance config in place."""
    import os

    from llm_twin_assets.defs.instance import ensure_instance_config
    from llm_twin_assets.settings import get_settings

    if not os.environ.get("DAGSTER_HOME"):
        os.environ["DAGSTER_HOME"] = str(get_settings().home / "dagster")
    home = Path(os.environ["DAGSTER_HOME"])
    ensure_instance_config(home)
    return home


def dagster_instance():
    """The Dagster instance under DAGSTER_HOME, shared with the UI."""
    import dagster as dg

    dagster_home()
    return dg.DagsterInstance.get()
