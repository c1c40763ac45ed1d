"""The OpenAI-compatible API (mounted at /v1): chat completions (streamed or not) and the models list, over
a :class:`TwinServer`, with errors in OpenAI's field names."""

import json
import logging
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from llm_twin_assets.retrieval import MAX_QUERY_CHARS
from llm_twin_assets.serving import ServingError
from llm_twin_assets.serving.schemas import (
    MAX_SEED,
    SEED_HELP,
    SLUG,
    TEMPERATURE_HELP,
    check_temperature,
)
from llm_twin_assets.serving.server import Call, Event, TwinServer
from llm_twin_assets.serving.web import (
    GONE,
    MAX_STOP,
    ClientGone,
    ServerOf,
    describe,
    error_response,
    sse,
    unless_gone,
)

log = logging.getLogger("llm_twin.http")


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
            call = await _prepare(server, chat)
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
        return JSONResponse(_completion(ident, created, chat.model, done, sources))

    return Starlette(
        routes=[
            Route("/models", models, methods=["GET"]),
            Route("/chat/completions", chat_completions, methods=["POST"]),
        ]
    )


async def _prepare(server: TwinServer, chat: ChatRequest) -> Call:
    """The server's call for a chat request that passed its schema (developer messages read as system)."""
    messages = [
        {"role": "system" if m.role == "developer" else m.role, "content": m.text()} for m in chat.messages
    ]
    if sum(len(m["content"]) for m in messages) > 8 * MAX_QUERY_CHARS:
        raise ServingError(f"messages: the conversation is longer than {8 * MAX_QUERY_CHARS:,} characters")
    max_tokens, tokens_field = chat.tokens()
    return await server.prepare_chat(
        chat.model,
        messages,
        max_tokens,
        chat.temperature,
        chat.seed,
        chat.top_k,
        stop=chat.stops(),
        tokens_field=tokens_field,
    )


def _completion(
    ident: str, created: int, model: str, done: dict[str, Any], sources: list[dict[str, Any]]
) -> dict[str, Any]:
    """A finished answer as OpenAI's ``chat.completion`` (the sources and the release added)."""
    message = {"role": "assistant", "content": done["answer"], "sources": sources}
    return {
        "id": ident,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [
            {"index": 0, "message": message, "finish_reason": _finish(done["usage"]["finish_reason"])}
        ],
        "usage": _usage(done["usage"]),
        "sources": sources,
        "release": done["release"],
    }


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
