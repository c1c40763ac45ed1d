"""The OpenAI-compatible API through the official ``openai`` client: models, answers, streaming."""

from __future__ import annotations

import openai

from llm_twin_assets_tests.serving.conftest import Service


def test_the_official_client_lists_the_twins_and_chats_streaming_or_not(service: Service) -> None:
    client = openai.OpenAI(base_url=f"{service.url}/v1", api_key="unused", timeout=120)
    assert {m.id for m in client.models.list().data} == {"ada", "bob"}  # carol has no release
    messages = [{"role": "user", "content": "How do you descale a kettle?"}]
    reply = client.chat.completions.create(model="ada", messages=messages, max_tokens=10)  # type: ignore[arg-type]
    assert reply.choices[0].message.content and reply.choices[0].finish_reason in {"stop", "length"}
    assert reply.usage is not None and 0 < reply.usage.completion_tokens <= 10
    assert (
        reply.model_extra and reply.model_extra["sources"][0]["document_url"] == "https://ada.example/kettles"
    )
    stream = client.chat.completions.create(
        model="ada",
        messages=messages,
        max_tokens=10,
        stream=True,
        stream_options={"include_usage": True},  # type: ignore[arg-type]
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text.strip() == reply.choices[0].message.content
    assert [c.usage.completion_tokens for c in chunks if c.usage] == [reply.usage.completion_tokens]
    try:
        client.chat.completions.create(model="carol", messages=messages)  # type: ignore[arg-type]
        raise AssertionError("carol has no release")
    except openai.NotFoundError as exc:
        assert "carol" in str(exc)
