"""OpenAPI: the document BentoML generates, completed with what it cannot see (the enforced caps, the
error body, the event streams, the OpenAI routes and the page)."""

from __future__ import annotations

from typing import Any

from llm_twin_assets.serving.openai_api import ChatRequest

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
    _add_schemas(spec.setdefault("components", {}).setdefault("schemas", {}))
    _cap_fields(
        spec,
        {
            "top_k": settings.serve_max_top_k,
            "max_new_tokens": settings.serve_max_new_tokens,
            "max_tokens": settings.serve_max_new_tokens,
            "max_completion_tokens": settings.serve_max_new_tokens,
        },
    )
    paths = spec.setdefault("paths", {})
    client_errors = {k: v for k, v in _error_responses().items() if k != "500"}
    for route in ("/rag", "/generate", "/retrieve", "/rag_stream", "/generate_stream"):
        post = paths.get(route, {}).get("post")
        if post:
            post["responses"].update(client_errors)
            if route in ("/rag", "/generate"):  # they answer with an event stream when asked to
                content = post["responses"].setdefault("200", {}).setdefault("content", {})
                content["text/event-stream"] = _stream()
    paths.update(_routes_outside_bentoml())
    return spec


def _stream() -> dict[str, Any]:
    """An event stream's content entry (a fresh one each time: the document is the caller's to change)."""
    return {"schema": {"type": "string", "description": "Server-sent events: data: {JSON}\\n\\n"}}


def _add_schemas(schemas: dict[str, Any]) -> None:
    """The error body (under BentoML's error names too) and the chat request with its parts."""
    schemas["Error"] = ERROR_SCHEMA
    for name in ("InvalidArgument", "NotFound", "InternalServerError"):
        schemas[name] = {**ERROR_SCHEMA, "title": name}
    chat_schema = ChatRequest.model_json_schema(ref_template="#/components/schemas/{model}")
    for name, definition in chat_schema.pop("$defs", {}).items():
        schemas.setdefault(name, definition)
    schemas["ChatRequest"] = chat_schema


def _cap_fields(node: Any, caps: dict[str, int]) -> None:
    """Every property named in ``caps``, anywhere in the document, gets its enforced maximum."""
    if isinstance(node, dict):
        props = node.get("properties")
        if isinstance(props, dict):
            for field, limit in caps.items():
                if isinstance(props.get(field), dict):
                    _set_maximum(props[field], limit)
        for child in node.values():
            _cap_fields(child, caps)
    elif isinstance(node, list):
        for child in node:
            _cap_fields(child, caps)


def _routes_outside_bentoml() -> dict[str, Any]:
    """/v1/chat/completions, /v1/models and the chat page, which BentoML's document does not know."""
    json_object = {"application/json": {"schema": {"type": "object"}}}
    chat = {
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
                "content": {**json_object, "text/event-stream": _stream()},
            },
            **_error_responses(),
        },
    }
    models = {
        "tags": ["OpenAI-compatible"],
        "summary": "The released twins (one model per author)",
        "responses": {"200": {"description": "OpenAI's model list", "content": json_object}},
    }
    page = {
        "tags": ["Page"],
        "summary": "The chat page",
        "responses": {
            "200": {"description": "HTML", "content": {"text/html": {"schema": {"type": "string"}}}}
        },
    }
    return {"/v1/chat/completions": {"post": chat}, "/v1/models": {"get": models}, "/": {"get": page}}


def _set_maximum(prop: dict[str, Any], limit: int) -> None:
    if "anyOf" in prop:
        for option in prop["anyOf"]:
            if option.get("type") == "integer":
                option["maximum"] = limit
    prop["maximum"] = limit
    prop.pop("exclusiveMaximum", None)
