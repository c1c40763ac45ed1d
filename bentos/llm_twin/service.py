"""The LLM Twin service: retrieval over each author's own writing and their released twin, over HTTP.

Routes: ``POST /rag``, ``/retrieve``, ``/generate`` (BentoML APIs, OpenAPI at ``/docs.json``), their
event streams ``/rag_stream`` and ``/generate_stream`` (what ``bentoml.SyncHTTPClient`` streams), the
OpenAI-compatible ``/v1/chat/completions`` and ``/v1/models``, the chat page at ``/``, and BentoML's
``/readyz``, ``/livez`` and ``/metrics`` (Prometheus). Every JSON body passes the edge guard first
(``serving.edge.EdgeGuard``). The logic lives in ``llm_twin_assets.serving``; this file only wires it to
BentoML. Read-only on the warehouse, except for its request traces.

    bentoml serve bentos.llm_twin.service:LLMTwin     (from the repository root; or: llm-twin serve)
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable

import bentoml
from starlette.responses import Response

from llm_twin_assets.serving import ServingError
from llm_twin_assets.serving.adapters_cache import serving_generator
from llm_twin_assets.serving.edge import EdgeGuard
from llm_twin_assets.serving.openai_api import openai_app
from llm_twin_assets.serving.schemas import (
    GenerateRequest,
    GenerateResponse,
    RagRequest,
    RagResponse,
    RetrieveRequest,
    RetrieveResponse,
)
from llm_twin_assets.serving.server import Call, TwinServer
from llm_twin_assets.serving.web import GONE, ClientGone, error_response, page_app, sse, unless_gone
from llm_twin_assets.settings import get_settings

log = logging.getLogger("llm_twin.service")

SWITCH_INTERVAL_S = 0.001

# Read by OpenMP when torch loads (in __init__, after this): the generation thread and the query encoder
# run torch thread teams side by side on the same cores, and waiting threads that spin (OpenMP's default)
# take the cores the other team needs: passive waiting measured 5-20x faster query encoding beside a
# busy CPU (bench/serve.py). `llm-twin serve` sets it too; an explicit setting wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def _log_to_stderr() -> None:
    """BentoML configures its own loggers only: ours (refusals in one INFO line, releases, failures) go
    to stderr beside them, once."""
    for name in ("llm_twin", "llm_twin_assets"):
        logger = logging.getLogger(name)
        if not logger.handlers:
            handler = logging.StreamHandler()
            handler.setFormatter(
                logging.Formatter("%(asctime)s [%(levelname)s] [%(name)s] %(message)s", "%Y-%m-%dT%H:%M:%S%z")
            )
            logger.addHandler(handler)
            logger.setLevel(logging.INFO)
            logger.propagate = False


_log_to_stderr()


def _server() -> TwinServer:
    return bentoml.get_current_service().server  # type: ignore[no-any-return]


@bentoml.asgi_app(openai_app(_server), path="/v1")
@bentoml.asgi_app(page_app(), path="/")
@bentoml.service(
    name="llm_twin",
    workers=1,  # one base model in memory; requests are batched inside the worker
    traffic={"timeout": 600, "max_concurrency": 1000},  # our own limits answer 503 + Retry-After first
    metrics={"enabled": True},
)
class LLMTwin:
    def __init__(self) -> None:
        import torch

        settings = get_settings()
        # The generation thread holds the GIL through most of a decoding step (the model's Python): every
        # other thread (the event loop, retrieval) waits up to one switch interval for it at each hand-off,
        # and a request makes several. 5 ms (Python's default) a hand-off is what /retrieve paid under
        # generation; 1 ms costs generation little (bench/serve.py).
        sys.setswitchinterval(SWITCH_INTERVAL_S)
        torch.set_num_threads(settings.torch_threads or max(1, os.cpu_count() or 1))
        # ready once the base model is loaded: each author's adapter loads on its first request (LRU-capped)
        self.server = TwinServer(settings, generator=serving_generator(settings))
        released = ", ".join(f"{r.author} (release {r.release})" for r in self.server.released_authors())
        log.info("serving %s", released or "no released twin yet")

    @bentoml.api(route="/rag", input_spec=RagRequest)
    async def rag(self, ctx: bentoml.Context, **fields: object) -> RagResponse:
        """Answer as the author's released twin, grounded in passages of their own writing (stream:
        server-sent events; BentoML's client gets the whole answer: it streams from /rag_stream)."""
        request = RagRequest.model_validate(fields)
        try:
            if request.stream and not _bentoml_client(ctx):
                return sse(self.server.events(await self.server.prepare_rag(request)))  # type: ignore[return-value]
            return await unless_gone(ctx.request.receive, self.server.rag(request))
        except ServingError as exc:
            return _answer(ctx, error_response(exc))  # type: ignore[return-value]
        except ClientGone:
            return _answer(ctx, Response(status_code=GONE))  # type: ignore[return-value]

    @bentoml.api(route="/rag_stream", input_spec=RagRequest)
    async def rag_stream(self, **fields: object) -> AsyncGenerator[str, None]:
        """/rag as server-sent events: 'sources', 'token' pieces, then 'done' (or one 'error' event)."""
        request = RagRequest.model_validate(fields)
        async for line in _event_lines(self.server, lambda: self.server.prepare_rag(request)):
            yield line

    @bentoml.api(route="/retrieve", input_spec=RetrieveRequest)
    async def retrieve(self, **fields: object) -> RetrieveResponse:
        """The passages of the author's writing that best answer the query (no generation)."""
        try:
            return await self.server.retrieve(RetrieveRequest.model_validate(fields))
        except ServingError as exc:
            return error_response(exc)  # type: ignore[return-value]

    @bentoml.api(route="/generate", input_spec=GenerateRequest)
    async def generate(self, ctx: bentoml.Context, **fields: object) -> GenerateResponse:
        """The author's released twin (or the base model) answering without retrieval (stream: as /rag)."""
        request = GenerateRequest.model_validate(fields)
        try:
            if request.stream and not _bentoml_client(ctx):
                return sse(self.server.events(await self.server.prepare_generate(request)))  # type: ignore[return-value]
            return await unless_gone(ctx.request.receive, self.server.generate(request))
        except ServingError as exc:
            return _answer(ctx, error_response(exc))  # type: ignore[return-value]
        except ClientGone:
            return _answer(ctx, Response(status_code=GONE))  # type: ignore[return-value]

    @bentoml.api(route="/generate_stream", input_spec=GenerateRequest)
    async def generate_stream(self, **fields: object) -> AsyncGenerator[str, None]:
        """/generate as server-sent events: 'token' pieces, then 'done' (or one 'error' event)."""
        request = GenerateRequest.model_validate(fields)
        async for line in _event_lines(self.server, lambda: self.server.prepare_generate(request)):
            yield line

    @bentoml.on_shutdown
    def shutdown(self) -> None:
        self.server.close()


LLMTwin.add_asgi_middleware(EdgeGuard, server_of=_server)


def _answer(ctx: bentoml.Context, response: Response) -> Response:
    """``response`` as it is: an API that takes ``ctx`` gets ``ctx.response``'s status otherwise."""
    ctx.response.status_code = response.status_code
    return response


def _bentoml_client(ctx: bentoml.Context) -> bool:
    """BentoML's client reads /rag and /generate as JSON whatever ``stream`` says: it gets the whole answer
    (its streaming calls are ``rag_stream`` and ``generate_stream``)."""
    return ctx.request.headers.get("user-agent", "").startswith("BentoML HTTP Client")


async def _event_lines(server: TwinServer, prepare: Callable[[], Awaitable[Call]]) -> AsyncIterator[str]:
    try:
        call = await prepare()
    except ServingError as exc:
        event = {"type": "error", "status": exc.status, "message": str(exc), "retry_after": exc.retry_after}
        yield f"data: {json.dumps(event)}\n\n"
        return
    async for event in server.events(call):
        yield f"data: {json.dumps(event)}\n\n"
