"""Serving the released twins: one base model with each author's released adapter switched per request,
batched generation that streams token by token, the release watcher, request traces, and the HTTP layer
the BentoML service in ``bentos/llm_twin`` mounts. Plain Python: no Dagster import (import-linter)."""

from llm_twin_assets.errors import TwinError


class ServingError(TwinError):
    """A request the service refuses; ``status`` is the HTTP status it answers with."""

    status = 400

    def __init__(self, message: str, status: int | None = None, retry_after: float | None = None) -> None:
        super().__init__(message)
        if status is not None:
            self.status = status
        self.retry_after = retry_after


class NotReleased(ServingError):
    status = 404


class Overloaded(ServingError):
    status = 503
