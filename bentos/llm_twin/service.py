"""The LLM Twin service: retrieval over each author's own writing and their released twin, over HTTP.

Routes: ``POST /rag``, ``/retrieve``, ``/generate`` (BentoML APIs, OpenAPI at ``/docs.json``), the
OpenAI-compatible ``/v1/chat/completions`` and ``/v1/models``, the chat page at ``/``, and BentoML's
``/readyz``, ``/livez`` and ``/metrics`` (Prometheus). The logic lives in ``llm_twin_assets.serving``; this
file only wires it to BentoML. Read-only on the warehouse, except for its request traces.

    bentoml serve bentos.llm_twin.service:LLMTwin     (from the repository root; or: llm-twin serve)
"""

from __future__ import annotations

import logging
import os

import bentoml

from llm_twin_assets.serving import ServingError
from llm_twin_assets.serving.schemas import (
    GenerateRequest,
    GenerateResponse,
    RagRequest,
    RagResponse,
    RetrieveRequest,
    RetrieveResponse,
)
from llm_twin_assets.serving.server import TwinServer
from llm_twin_assets.serving.web import error_response, openai_app, page_app, sse
from llm_twin_assets.settings import get_settings

log = logging.getLogger("llm_twin.service")


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
        torch.set_num_threads(settings.torch_threads or max(1, os.cpu_count() or 1))
        self.server = TwinServer(settings)
        released = ", ".join(f"{r.author} (release {r.release})" for r in self.server.released_authors())
        log.info("serving %s", released or "no released twin yet")

    @bentoml.api(route="/rag", input_spec=RagRequest)
    async def rag(self, **fields: object) -> RagResponse:
        """Answer as the author's released twin, grounded in passages of their own writing."""
        request = RagRequest.model_validate(fields)
        try:
            if request.stream:
                return sse(self.server.events(await self.server.prepare_rag(request)))  # type: ignore[return-value]
            return await self.server.rag(request)
        except ServingError as exc:
            return error_response(exc)  # type: ignore[return-value]

    @bentoml.api(route="/retrieve", input_spec=RetrieveRequest)
    async def retrieve(self, **fields: object) -> RetrieveResponse:
        """The passages of the author's writing that best answer the query (no generation)."""
        try:
            return await self.server.retrieve(RetrieveRequest.model_validate(fields))
        except ServingError as exc:
            return error_response(exc)  # type: ignore[return-value]

    @bentoml.api(route="/generate", input_spec=GenerateRequest)
    async def generate(self, **fields: object) -> GenerateResponse:
        """The author's released twin (or the base model) answering without retrieval."""
        request = GenerateRequest.model_validate(fields)
        try:
            if request.stream:
                return sse(self.server.events(await self.server.prepare_generate(request)))  # type: ignore[return-value]
            return await self.server.generate(request)
        except ServingError as exc:
            return error_response(exc)  # type: ignore[return-value]

    @bentoml.on_shutdown
    def shutdown(self) -> None:
        self.server.close()
