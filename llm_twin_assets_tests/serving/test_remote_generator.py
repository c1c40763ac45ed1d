"""LLM_TWIN_GENERATOR=openai: the same routes answered by an OpenAI-compatible server that serves each
release as a named LoRA adapter (vLLM with --enable-lora), here a local server with a real small model."""

from __future__ import annotations

import asyncio

import pytest

from llm_twin_assets.llm import load_causal_lm
from llm_twin_assets.models.registry import ModelRef
from llm_twin_assets.prompting import RAG_OPENING
from llm_twin_assets.serving import ServingError
from llm_twin_assets.serving.schemas import GenerateRequest, RagRequest
from llm_twin_assets.serving.server import TwinServer
from llm_twin_assets.settings import get_settings
from llm_twin_assets_tests.datasets.openai_server import Behaviour, openai_server
from llm_twin_assets_tests.serving.conftest import Service


def test_an_openai_compatible_generator_serves_each_release_by_adapter_name(
    service: Service, tiny_model_path
) -> None:  # type: ignore[no-untyped-def]
    lm = load_causal_lm(ModelRef(str(tiny_model_path), True, "path"))
    with openai_server(lm, Behaviour(answer=lambda messages: "Scale flakes off like snow.")) as (url, seen):
        settings = get_settings(
            generator="openai",
            generator_base_url=url,
            artifacts_url=str(service.artifacts),
            base_model="tiny",
        )
        server = TwinServer(settings)
        try:
            answer = asyncio.run(server.rag(RagRequest(query="How do you descale a kettle?", author="bob")))
            assert answer.answer == "Scale flakes off like snow." and answer.release == 1
            assert answer.usage.completion_tokens == 5 and answer.usage.finish_reason == "stop"
            assert answer.sources and all("bob.example" in s.document_url for s in answer.sources)
            assert seen.bodies[-1]["model"] == "bob-r1" and seen.bodies[-1]["stream"] is True
            prompt = seen.bodies[-1]["messages"]
            assert prompt[-1]["content"] == "How do you descale a kettle?"  # type: ignore[index]
            assert prompt[0]["content"].startswith(RAG_OPENING)  # type: ignore[index]
            base = asyncio.run(server.generate(GenerateRequest(prompt="hello")))
            assert base.release is None and seen.bodies[-1]["model"] == "base"
        finally:
            server.close()
    with openai_server(lm, Behaviour(always_status=404)) as (url, _):
        server = TwinServer(
            get_settings(generator="openai", generator_base_url=url, artifacts_url=str(service.artifacts))
        )
        try:
            with pytest.raises(ServingError, match="answered 404 for model 'bob-r1'") as failed:
                asyncio.run(server.generate(GenerateRequest(prompt="hello", author="bob")))
            assert failed.value.status == 502
        finally:
            server.close()
