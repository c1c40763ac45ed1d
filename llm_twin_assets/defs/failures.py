"""Our own errors become Dagster failures whose description is the one clear line a person needs."""

from collections.abc import Iterator
from contextlib import contextmanager

import dagster as dg

from llm_twin_assets.errors import TwinError


@contextmanager
def clear_failures() -> Iterator[None]:
    try:
        yield
    except TwinError as exc:
        raise dg.Failure(description=str(exc), allow_retries=False) from exc
