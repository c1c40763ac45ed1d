"""Our own errors become Dagster failures whose description is the one clear line a person needs; the
database going away mid-step (a restart, a failover, a dropped connection) is retried instead."""

from collections.abc import Iterator
from contextlib import contextmanager

import dagster as dg

from llm_twin_assets.errors import TwinError
from llm_twin_assets.store.outages import DatabaseUnavailable, is_transient, scrub

DATABASE_RETRIES = 3
"""Attempts after the first when the database went away; every step is safe to re-run (upserts on
content-derived ids, one transaction per write), so a retry finishes exactly what the first began."""
DATABASE_RETRY_WAIT_S = 1.0
"""The wait before the first retry, doubled for each next one (1, 2, 4 s): a local server is back well
within it; a longer outage fails with one line that says so."""


@contextmanager
def clear_failures() -> Iterator[None]:
    try:
        yield
    except Exception as exc:
        if is_transient(exc):
            explained = _explained(exc)
            raise _retry(explained) from explained
        if isinstance(exc, TwinError):
            description = scrub(str(exc), _database_url())
            # the cause Dagster records (and shows) must not hold the password either
            cause = exc if description == str(exc) else TwinError(description)
            raise dg.Failure(description=description, allow_retries=False) from cause
        raise


def _database_url() -> str | None:
    """The configured database URL, whose password a description must never show."""
    import os

    return os.environ.get("LLM_TWIN_DATABASE_URL") or None


def _explained(exc: Exception) -> Exception:
    if isinstance(exc, DatabaseUnavailable):
        return exc
    text = scrub(str(exc).strip(), _database_url())
    reason = text.splitlines()[0] if text else type(exc).__name__
    explained = DatabaseUnavailable(
        f"the database connection was lost mid-step ({reason}): the server restarted or went away"
    )
    explained.__cause__ = exc
    return explained


def _retry(explained: Exception) -> Exception:
    """A retry after a wait, or when the retries are spent, the failure that says why in one line."""
    try:
        attempt = dg.OpExecutionContext.get().retry_number
    except dg.DagsterInvariantViolationError:  # not inside a Dagster step
        attempt = 0
    if attempt >= DATABASE_RETRIES:
        waited = sum(DATABASE_RETRY_WAIT_S * 2**n for n in range(DATABASE_RETRIES))
        return dg.Failure(
            description=f"{explained}; still so after {DATABASE_RETRIES} retries over {waited:g} s",
            allow_retries=False,
        )
    return dg.RetryRequested(max_retries=DATABASE_RETRIES, seconds_to_wait=DATABASE_RETRY_WAIT_S * 2**attempt)
