"""The HTTP pieces beside BentoML's own routes: the OpenAI-compatible API (mounted at /v1), the chat page
(mounted at /), server-sent events, error responses, the edge guard every request passes, and the
OpenAPI additions. Starlette apps over a :class:`TwinServer`.

The edge guard (:class:`EdgeGuard`, an ASGI middleware) reads a JSON request's body before any route
does: at most ``MAX_BODY_BYTES``, UTF-8, nested at most ``MAX_DEPTH`` deep, no NUL characters or lone
surrogates in any string, no unknown fields where the route forbids them, then the route's own schema;
anything else is a short 4xx naming the field (never the input echoed back), logged as one INFO line.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import json
import logging
import re
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from importlib import resources
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from llm_twin_assets.retrieval import MAX_QUERY_CHARS
from llm_twin_assets.serving import ServingError
from llm_twin_assets.serving.schemas import (
    MAX_SEED,
    SEED_HELP,
    SLUG,
    TEMPERATURE_HELP,
    GenerateRequest,
    RagRequest,
    RetrieveRequest,
    check_temperature,
)
from llm_twin_assets.serving.server import Event, TwinServer

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


# OpenAI-compatible API


class _Part(BaseModel):
    type: Literal["text"]
    text: str


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="ignore")
    role: Literal["system", "developer", "user", "assistant"]
    content: str | list[_Part]

    def text(self) -> str:
        return self.content if isinstance(self.content, str) else "".join(p.text for p in self.content)


class ChatRequest(BaseModel):
    """What tools send. Fields this service cannot honour are refused by name when set to anything but
    their neutral value; other unknown fields are ignored, as OpenAI's own server ignores what it does
    not use."""

    model_config = ConfigDict(extra="ignore")
    model: str = Field(pattern=SLUG, description="The author's slug.")
    messages: list[ChatMessage] = Field(min_length=1, max_length=64)
    max_tokens: int | None = Field(
        default=None, ge=1, description="The answer's token cap (deprecated by OpenAI; same as below)."
    )
    max_completion_tokens: int | None = Field(
        default=None, ge=1, description="The answer's token cap; the service's cap is the maximum."
    )
    temperature: float = Field(default=0.0, ge=0.0, le=2.0, description=TEMPERATURE_HELP)
    seed: int | None = Field(default=None, ge=0, le=MAX_SEED, description=SEED_HELP)
    stop: str | list[str] | None = Field(
        default=None, description=f"Up to {MAX_STOP} strings that end the answer (not included in it)."
    )
    n: int = Field(default=1, description="Only 1.")
    stream: bool = False
    stream_options: dict[str, Any] | None = None
    user: str | None = Field(default=None, max_length=256, description="Accepted and ignored.")
    top_p: float | None = Field(default=None, description="Only 1 or omitted (the twin samples top-p 0.95).")
    presence_penalty: float | None = Field(default=None, description="Only 0 or omitted.")
    frequency_penalty: float | None = Field(default=None, description="Only 0 or omitted.")
    logit_bias: dict[str, float] | None = Field(default=None, description="Only empty or omitted.")
    logprobs: bool | None = Field(default=None, description="Only false or omitted.")
    tools: list[Any] | None = Field(default=None, description="Only empty or omitted: no tool calls.")
    response_format: dict[str, Any] | None = Field(default=None, description="Only type 'text'.")
    top_k: int = Field(default=3, ge=1, description="Extension: passages quoted to the twin.")

    @field_validator("temperature")
    @classmethod
    def _temperature(cls, value: float) -> float:
        return check_temperature(value)

    @field_validator("stop")
    @classmethod
    def _stop(cls, value: str | list[str] | None) -> str | list[str] | None:
        stops = [value] if isinstance(value, str) else value or []
        if len(stops) > MAX_STOP or any(not s or len(s) > 64 for s in stops):
            raise ValueError(f"at most {MAX_STOP} strings, each of 1 to 64 characters")
        return value

    @field_validator("n")
    @classmethod
    def _n(cls, value: int) -> int:
        if value != 1:
            raise ValueError("this service returns one choice: send n=1 or omit it")
        return value

    def unsupported(self) -> str | None:
        """The first field set to something this service cannot do, with why."""
        neutral: dict[str, tuple[Any, ...]] = {
            "top_p": (None, 1, 1.0),
            "presence_penalty": (None, 0, 0.0),
            "frequency_penalty": (None, 0, 0.0),
            "logit_bias": (None, {}),
            "logprobs": (None, False),
            "tools": (None, []),
        }
        for name, allowed in neutral.items():
            if getattr(self, name) not in allowed:
                return f"{name}: not supported by this service; omit it (or send {allowed[1]!r})"
        if self.response_format and self.response_format.get("type") != "text":
            return "response_format: only {'type': 'text'} is supported"
        return None

    def stops(self) -> tuple[str, ...]:
        return (self.stop,) if isinstance(self.stop, str) else tuple(self.stop or ())

    def tokens(self) -> tuple[int | None, str]:
        """The token cap and the name the client gave it."""
        if self.max_completion_tokens is not None:
            return self.max_completion_tokens, "max_completion_tokens"
        return self.max_tokens, "max_tokens"


def openai_app(server_of: ServerOf) -> Starlette:
    async def models(request: Request) -> Response:
        server = server_of()
        data = [
            {
                "id": r.author,
                "object": "model",
                "created": int(r.released_at.timestamp()),
                "owned_by": "llm-twin",
                "release": r.release,
                "dpo_version": r.dpo_version,
            }
            for r in server.released_authors()
        ]
        return JSONResponse({"object": "list", "data": data})

    async def chat_completions(request: Request) -> Response:
        server = server_of()
        try:
            chat = _read(ChatRequest, await _json(request))
            problem = chat.unsupported()
            if problem:
                raise _Refused(problem)
            messages = [
                {"role": "system" if m.role == "developer" else m.role, "content": m.text()}
                for m in chat.messages
            ]
            if sum(len(m["content"]) for m in messages) > 8 * MAX_QUERY_CHARS:
                raise ServingError(
                    f"messages: the conversation is longer than {8 * MAX_QUERY_CHARS:,} characters"
                )
            max_tokens, tokens_field = chat.tokens()
            call = await server.prepare_chat(
                chat.model,
                messages,
                max_tokens,
                chat.temperature,
                chat.seed,
                chat.top_k,
                stop=chat.stops(),
                tokens_field=tokens_field,
            )
        except _Refused as exc:
            server.trace_refusal("/v1/chat/completions", exc.status, str(exc))
            return error_response(exc)
        except ServingError as exc:
            return error_response(exc)
        ident, created = f"chatcmpl-{uuid.uuid4().hex[:24]}", int(time.time())
        sources = [s.model_dump() for s in call.sources]
        if chat.stream:
            usage = bool((chat.stream_options or {}).get("include_usage"))
            return sse(_chunks(server.events(call), ident, created, chat.model, usage), done_marker=True)
        try:
            done = await unless_gone(request.receive, server.complete(call))
        except ClientGone:
            return Response(status_code=GONE)
        except ServingError as exc:
            return error_response(exc)
        return JSONResponse(
            {
                "id": ident,
                "object": "chat.completion",
                "created": created,
                "model": chat.model,
                "choices": [
                    {
                        "index": 0,
                        "message": {
                            "role": "assistant",
                            "content": done["answer"],
                            "sources": sources,
                        },
                        "finish_reason": _finish(done["usage"]["finish_reason"]),
                    }
                ],
                "usage": _usage(done["usage"]),
                "sources": sources,
                "release": done["release"],
            }
        )

    return Starlette(
        routes=[
            Route("/models", models, methods=["GET"]),
            Route("/chat/completions", chat_completions, methods=["POST"]),
        ]
    )


async def _chunks(
    events: AsyncIterator[Event], ident: str, created: int, model: str, include_usage: bool
) -> AsyncIterator[dict[str, Any]]:
    def chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> dict[str, Any]:
        return {
            "id": ident,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
            **extra,
        }

    async for event in events:
        if event["type"] == "sources":
            yield chunk(
                {"role": "assistant", "content": ""}, sources=event["sources"], release=event["release"]
            )
        elif event["type"] == "token":
            yield chunk({"content": event["text"]})
        elif event["type"] == "done":
            yield chunk({}, _finish(event["usage"]["finish_reason"]))
            if include_usage:
                yield {**chunk({}), "choices": [], "usage": _usage(event["usage"])}
        elif event["type"] == "error":
            yield {"error": {"message": event["message"], "code": event["status"]}}


def _finish(reason: str | None) -> str:
    return "length" if reason == "length" else "stop"


def _usage(usage: dict[str, Any]) -> dict[str, int]:
    prompt, completion = int(usage["prompt_tokens"]), int(usage["completion_tokens"])
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


class _Refused(ServingError):
    """Refused before it reached the server (unreadable JSON, a schema error): traced here."""


async def _json(request: Request) -> Any:
    try:
        return await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise _Refused(f"the request body is not JSON: {exc}") from None


def _read(model: type[BaseModel], data: Any) -> Any:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise _Refused(f"invalid request: {describe(exc)}") from None


def describe(exc: ValidationError, most: int = 3) -> str:
    """A validation error in a line: the fields and what is wrong with them, never the input itself."""
    problems = [
        f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg'].removeprefix('Value error, ')}"
        for e in exc.errors(include_url=False, include_context=False, include_input=False)[:most]
    ]
    more = exc.error_count() - len(problems)
    return "; ".join(problems) + (f" (and {more} more)" if more > 0 else "")


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


# OpenAPI: the document BentoML generates, completed with what it cannot see


ERROR_SCHEMA = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["message", "type", "code"],
            "properties": {
                "message": {"type": "string"},
                "type": {"type": "string", "description": "OpenAI's error type, e.g. invalid_request_error"},
                "code": {"type": "integer", "description": "The HTTP status."},
            },
        }
    },
}
_ERRORS = {
    "400": "Invalid request (the message names the field)",
    "404": "Unknown author, or no released twin",
    "413": "Request body too large",
    "503": "At capacity (Retry-After says when to retry)",
    "500": "The service failed",
}


def _error_responses() -> dict[str, Any]:
    return {
        code: {
            "description": text,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
        }
        for code, text in _ERRORS.items()
    }


def complete_openapi(spec: dict[str, Any], settings: Any) -> dict[str, Any]:
    """BentoML's OpenAPI document with the enforced caps, the error body as it is, the event streams,
    and the routes it does not know: /v1/chat/completions, /v1/models and the page at /."""
    caps = {
        "top_k": settings.serve_max_top_k,
        "max_new_tokens": settings.serve_max_new_tokens,
        "max_tokens": settings.serve_max_new_tokens,
        "max_completion_tokens": settings.serve_max_new_tokens,
    }
    schemas = spec.setdefault("components", {}).setdefault("schemas", {})
    schemas["Error"] = ERROR_SCHEMA
    for name in ("InvalidArgument", "NotFound", "InternalServerError"):
        schemas[name] = {**ERROR_SCHEMA, "title": name}
    chat_schema = ChatRequest.model_json_schema(ref_template="#/components/schemas/{model}")
    for name, definition in chat_schema.pop("$defs", {}).items():
        schemas.setdefault(name, definition)
    schemas["ChatRequest"] = chat_schema

    def cap(node: Any) -> None:
        if isinstance(node, dict):
            props = node.get("properties")
            if isinstance(props, dict):
                for field, limit in caps.items():
                    if isinstance(props.get(field), dict):
                        _set_maximum(props[field], limit)
            for child in node.values():
                cap(child)
        elif isinstance(node, list):
            for child in node:
                cap(child)

    cap(spec)
    paths = spec.setdefault("paths", {})
    stream = {"schema": {"type": "string", "description": "Server-sent events: data: {JSON}\\n\\n"}}
    for route in ("/rag", "/generate"):
        post = paths.get(route, {}).get("post")
        if post:
            post["responses"].setdefault("200", {}).setdefault("content", {})["text/event-stream"] = stream
            post["responses"].update({k: v for k, v in _error_responses().items() if k not in ("500",)})
    for route in ("/retrieve", "/rag_stream", "/generate_stream"):
        post = paths.get(route, {}).get("post")
        if post:
            post["responses"].update({k: v for k, v in _error_responses().items() if k not in ("500",)})
    paths["/v1/chat/completions"] = {
        "post": {
            "tags": ["OpenAI-compatible"],
            "summary": "Chat with an author's released twin (model: the author's slug)",
            "description": "OpenAI's chat completions. The answer's passages: `sources` in the message "
            "and at the top level (streaming: in the first chunk).",
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ChatRequest"}}},
            },
            "responses": {
                "200": {
                    "description": "A chat.completion, or with stream: chat.completion.chunk events then [DONE]",
                    "content": {
                        "application/json": {"schema": {"type": "object"}},
                        "text/event-stream": stream,
                    },
                },
                **_error_responses(),
            },
        }
    }
    paths["/v1/models"] = {
        "get": {
            "tags": ["OpenAI-compatible"],
            "summary": "The released twins (one model per author)",
            "responses": {
                "200": {
                    "description": "OpenAI's model list",
                    "content": {"application/json": {"schema": {"type": "object"}}},
                }
            },
        }
    }
    paths["/"] = {
        "get": {
            "tags": ["Page"],
            "summary": "The chat page",
            "responses": {
                "200": {"description": "HTML", "content": {"text/html": {"schema": {"type": "string"}}}}
            },
        }
    }
    return spec


def _set_maximum(prop: dict[str, Any], limit: int) -> None:
    if "anyOf" in prop:
        for option in prop["anyOf"]:
            if option.get("type") == "integer":
                option["maximum"] = limit
    prop["maximum"] = limit
    prop.pop("exclusiveMaximum", None)


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
