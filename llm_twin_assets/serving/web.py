"""The HTTP pieces shared by the service's routes (error responses in OpenAI's shape, server-sent events,
a client that leaves) and the chat page (mounted at /). The OpenAI-compatible API is ``openai_api``, the
edge guard every request passes ``edge``, the OpenAPI additions ``openapi``."""

import asyncio
import base64
import contextlib
import hashlib
import json
import logging
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from importlib import resources
from typing import Any, TypeVar

from pydantic import ValidationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from llm_twin_assets.serving import ServingError
from llm_twin_assets.serving.server import TwinServer

log = logging.getLogger("llm_twin.http")

ServerOf = Callable[[], TwinServer]

T = TypeVar("T")

MAX_BODY_BYTES = 1 << 20
"""The largest request body read (a chat of 64 messages fits many times over)."""
MAX_DEPTH = 8
"""The deepest nesting a request needs is 4 (a chat message's content parts)."""
MAX_STOP = 4


def error_response(exc: ServingError) -> JSONResponse:
    """OpenAI's error shape (which our own routes use too), with Retry-After when retrying helps."""
    headers = {"Retry-After": str(max(1, round(exc.retry_after)))} if exc.retry_after is not None else None
    kind = {404: "not_found_error", 429: "rate_limit_error", 503: "overloaded_error"}.get(exc.status)
    return JSONResponse(
        {
            "error": {
                "message": str(exc),
                "type": kind or ("invalid_request_error" if exc.status < 500 else "server_error"),
                "code": exc.status,
            }
        },
        status_code=exc.status,
        headers=headers,
    )


def sse(events: AsyncIterator[dict[str, Any]], done_marker: bool = False) -> StreamingResponse:
    async def body() -> AsyncIterator[str]:
        async for event in events:
            yield f"data: {json.dumps(event)}\n\n"
        if done_marker:
            yield "data: [DONE]\n\n"

    return StreamingResponse(
        body(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


class ClientGone(Exception):
    """The client disconnected before its answer was ready."""


async def unless_gone(receive: Callable[[], Awaitable[Any]], work: Coroutine[Any, Any, T]) -> T:
    """``work``'s result, or ClientGone once the client disconnects first (``work`` is cancelled then:
    its generation stops at the next token). For requests whose body was read already."""
    task = asyncio.ensure_future(work)

    async def gone() -> None:
        while (await receive())["type"] != "http.disconnect":
            pass

    watcher = asyncio.ensure_future(gone())
    try:
        done, _ = await asyncio.wait({task, watcher}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        watcher.cancel()
        if not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
    if task in done:
        return task.result()
    raise ClientGone()


GONE = 499  # nginx's "client closed request": what a trace of a request nobody waited for says


def describe(exc: ValidationError, most: int = 3) -> str:
    """A validation error in a line: the fields and what is wrong with them, never the input itself."""
    problems = [
        f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg'].removeprefix('Value error, ')}"
        for e in exc.errors(include_url=False, include_context=False, include_input=False)[:most]
    ]
    more = exc.error_count() - len(problems)
    return "; ".join(problems) + (f" (and {more} more)" if more > 0 else "")


# the chat page


def page_app() -> Starlette:
    """The chat page, under a strict Content-Security-Policy: its one script and its one style are
    allowed by hash, nothing else runs; it talks to this origin only and cannot be framed."""
    html = resources.files("llm_twin_assets.serving").joinpath("chat.html").read_text(encoding="utf-8")
    headers = {
        "Content-Security-Policy": content_security_policy(html),
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        "X-Frame-Options": "DENY",
    }

    async def page(request: Request) -> Response:
        return HTMLResponse(html, headers=headers)

    return Starlette(routes=[Route("/", page, methods=["GET"])])


def content_security_policy(html: str) -> str:
    def hashes(tag: str) -> str:
        found = re.findall(rf"<{tag}>(.*?)</{tag}>", html, re.DOTALL)
        return " ".join(
            f"'sha256-{base64.b64encode(hashlib.sha256(body.encode()).digest()).decode()}'" for body in found
        )

    return (
        f"default-src 'none'; script-src {hashes('script')}; style-src {hashes('style')}; "
        "connect-src 'self'; img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    )
