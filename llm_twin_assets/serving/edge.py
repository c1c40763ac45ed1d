"""The edge guard (:class:`EdgeGuard`, an ASGI middleware over the whole service) reads a JSON request's
body before any route does: at most ``MAX_BODY_BYTES``, UTF-8, nested at most ``MAX_DEPTH`` deep, no NUL
characters or lone surrogates in any string, no unknown fields where the route forbids them, then the
route's own schema; anything else is a short 4xx naming the field (never the input echoed back), logged
as one INFO line. A body that is not JSON is a 415. It also completes the OpenAPI document (``/docs.json``)."""

import json
import logging
import re
from typing import Any

from pydantic import BaseModel, ValidationError
from starlette.responses import JSONResponse

from llm_twin_assets.serving import ServingError
from llm_twin_assets.serving.openapi import complete_openapi
from llm_twin_assets.serving.schemas import (
    GenerateRequest,
    RagRequest,
    RetrieveRequest,
)
from llm_twin_assets.serving.web import GONE, MAX_BODY_BYTES, MAX_DEPTH, ServerOf, describe, error_response

log = logging.getLogger("llm_twin.http")


# the edge guard

GUARDED: dict[str, type[BaseModel] | None] = {
    "/rag": RagRequest,
    "/retrieve": RetrieveRequest,
    "/generate": GenerateRequest,
    "/rag_stream": RagRequest,
    "/generate_stream": GenerateRequest,
    "/v1/chat/completions": None,  # read by its own route (after the same checks)
}


class Refusal(Exception):
    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def check_body(body: bytes, model: type[BaseModel] | None) -> Any:
    """The JSON of ``body`` when it passes the edge checks (then ``model``'s, when given); else Refusal."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise Refusal(
            f"the request body is not UTF-8: byte 0x{body[exc.start]:02x} at position {exc.start}"
        ) from None
    try:
        data = json.loads(text)
    except RecursionError:
        raise Refusal(f"the request body is nested deeper than {MAX_DEPTH} levels") from None
    except json.JSONDecodeError as exc:
        raise Refusal(f"the request body is not JSON: {exc.msg} at position {exc.pos}") from None
    if model is not None and isinstance(data, dict) and model.model_config.get("extra") == "forbid":
        unknown = [k for k in data if k not in model.model_fields]
        if unknown:
            shown = ", ".join(repr(_printable(k)[:40]) for k in unknown[:3])
            more = f" and {len(unknown) - 3:,} more" if len(unknown) > 3 else ""
            raise Refusal(f"unknown field(s) {shown}{more}; the fields are: {', '.join(model.model_fields)}")
    _check_values(data)
    if model is not None:
        try:
            model.model_validate(data)
        except ValidationError as exc:
            raise Refusal(f"invalid request: {describe(exc)}") from None
    return data


_SURROGATE = re.compile("[\ud800-\udfff]")


def _check_values(data: Any) -> None:
    """Depth, NUL characters and lone surrogates anywhere in ``data`` (keys too), named by path."""
    stack: list[tuple[Any, str, int]] = [(data, "", 0)]
    while stack:
        value, path, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise Refusal(f"{path or 'body'}: nested deeper than {MAX_DEPTH} levels")
        if isinstance(value, str):
            _check_text(value, path or "body")
        elif isinstance(value, dict):
            for key, item in value.items():
                _check_text(key, f"{path}: a key" if path else "a key")
                stack.append(
                    (item, f"{path}.{_printable(key)[:40]}" if path else _printable(key)[:40], depth + 1)
                )
        elif isinstance(value, list):
            stack.extend((item, f"{path}.{i}" if path else str(i), depth + 1) for i, item in enumerate(value))


def _check_text(text: str, where: str) -> None:
    if "\x00" in text:
        raise Refusal(f"{where}: contains a NUL character (U+0000); text may not")
    if _SURROGATE.search(text):
        raise Refusal(f"{where}: contains a lone surrogate (\\uD800-\\uDFFF escape); send Unicode text")


def _printable(text: str) -> str:
    return "".join(ch if ch.isprintable() and not _SURROGATE.match(ch) else "?" for ch in text)


class EdgeGuard:
    """ASGI middleware over the whole service: the body checks above on the JSON routes, and the OpenAPI
    document completed (``/docs.json``). A refusal is traced and logged as one INFO line."""

    def __init__(self, app: Any, server_of: ServerOf | None = None) -> None:
        self.app = app
        self.server_of = server_of

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        path, method = scope.get("path", ""), scope.get("method", "GET")
        if method == "GET" and path == "/docs.json":
            return await self._docs(scope, receive, send)
        if method != "POST" or path not in GUARDED:
            return await self.app(scope, receive, send)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        kind = headers.get("content-type", "application/json").split(";")[0].strip().lower()
        try:
            if kind not in ("application/json", "", "text/plain"):
                # every guarded route takes JSON; BentoML's form and file decoders would log a traceback
                raise Refusal(
                    f"the request body is {_printable(kind)[:60]!r}; this route takes application/json",
                    status=415,
                )
            body = await _read_body(receive, headers.get("content-length"))
            check_body(body, GUARDED[path])
        except Refusal as exc:
            message = str(exc)[:600]
            log.info("%s %s refused (%d): %s", method, path, exc.status, message)
            self._trace(path, exc.status, message)
            response = error_response(ServingError(message, status=exc.status))
            return await response(scope, receive, send)
        sent = False

        async def replay() -> dict[str, Any]:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()  # from here on: the disconnect, when the client leaves

        await self.app(scope, replay, send)

    def _trace(self, path: str, status: int, message: str) -> None:
        try:
            server = self.server_of() if self.server_of is not None else None
        except Exception:
            server = None
        if server is not None:
            server.trace_refusal(path, status, message)

    async def _docs(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        start: dict[str, Any] = {}
        chunks: list[bytes] = []

        async def capture(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                start.update(message)
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))

        await self.app(scope, receive, capture)
        if start.get("status") != 200:
            await send(start)
            await send({"type": "http.response.body", "body": b"".join(chunks)})
            return
        from llm_twin_assets.settings import get_settings

        spec = complete_openapi(json.loads(b"".join(chunks)), get_settings())
        await JSONResponse(spec)(scope, receive, send)


async def _read_body(receive: Any, length: str | None) -> bytes:
    if length is not None and length.isdigit() and int(length) > MAX_BODY_BYTES:
        raise Refusal(f"the request body is {int(length):,} bytes; at most {MAX_BODY_BYTES:,} are read", 413)
    body = bytearray()
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise Refusal("the client went away", GONE)
        body += message.get("body", b"")
        if len(body) > MAX_BODY_BYTES:
            raise Refusal(f"the request body is over {MAX_BODY_BYTES:,} bytes; at most that is read", 413)
        if not message.get("more_body", False):
            return bytes(body)
