"""The HTTP pieces beside BentoML's own routes: the OpenAI-compatible API (mounted at /v1), the chat page
(mounted at /), server-sent events and error responses. Starlette apps over a :class:`TwinServer`."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator, Callable
from importlib import resources
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from llm_twin_assets.retrieval import MAX_QUERY_CHARS
from llm_twin_assets.serving import ServingError
from llm_twin_assets.serving.schemas import MAX_NEW_TOKENS, MAX_TOP_K, SLUG
from llm_twin_assets.serving.server import Event, TwinServer

ServerOf = Callable[[], TwinServer]


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
    """What tools send; unknown fields are ignored as OpenAI's own server ignores what it does not use."""

    model_config = ConfigDict(extra="ignore")
    model: str = Field(pattern=SLUG, description="The author's slug.")
    messages: list[ChatMessage] = Field(min_length=1, max_length=64)
    max_tokens: int | None = Field(default=None, ge=1, le=MAX_NEW_TOKENS)
    max_completion_tokens: int | None = Field(default=None, ge=1, le=MAX_NEW_TOKENS)
    temperature: float = Field(default=0.0, ge=0.0, le=2.0)
    seed: int | None = None
    n: int = Field(default=1, ge=1, le=1)
    stream: bool = False
    stream_options: dict[str, Any] | None = None
    top_k: int = Field(default=3, ge=1, le=MAX_TOP_K, description="Extension: passages quoted to the twin.")


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
            messages = [
                {"role": "system" if m.role == "developer" else m.role, "content": m.text()}
                for m in chat.messages
            ]
            if sum(len(m["content"]) for m in messages) > 8 * MAX_QUERY_CHARS:
                raise ServingError(
                    f"messages: the conversation is longer than {8 * MAX_QUERY_CHARS:,} characters"
                )
            call = await server.prepare_chat(
                chat.model,
                messages,
                chat.max_completion_tokens or chat.max_tokens,
                chat.temperature,
                chat.seed,
                chat.top_k,
            )
        except _Refused as exc:
            server.trace_refusal("/v1/chat/completions", exc.status, str(exc))
            return error_response(exc)
        except ServingError as exc:
            return error_response(exc)
        ident, created = f"chatcmpl-{uuid.uuid4().hex[:24]}", int(time.time())
        if chat.stream:
            usage = bool((chat.stream_options or {}).get("include_usage"))
            return sse(_chunks(server.events(call), ident, created, chat.model, usage), done_marker=True)
        try:
            done = await server.complete(call)
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
                        "message": {"role": "assistant", "content": done["answer"]},
                        "finish_reason": _finish(done["usage"]["finish_reason"]),
                    }
                ],
                "usage": _usage(done["usage"]),
                "sources": [s.model_dump() for s in call.sources],
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
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']}" for e in exc.errors()[:5]
        )
        raise _Refused(f"invalid request: {problems}") from None


# the chat page


def page_app() -> Starlette:
    html = resources.files("llm_twin_assets.serving").joinpath("chat.html").read_text(encoding="utf-8")

    async def page(request: Request) -> Response:
        return HTMLResponse(html)

    return Starlette(routes=[Route("/", page, methods=["GET"])])
