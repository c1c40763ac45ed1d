"""The service's requests and responses (pydantic: validated on the way in, described in the OpenAPI)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from llm_twin_assets.retrieval import MAX_QUERY_CHARS

SLUG = r"^[a-z0-9][a-z0-9_-]{0,62}$"
MAX_NEW_TOKENS = (
    4096  # the schema's bound; the service's own cap (LLM_TWIN_SERVE_MAX_NEW_TOKENS) is checked too
)
MAX_TOP_K = 100


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RetrieveRequest(_Request):
    query: str = Field(min_length=1, max_length=MAX_QUERY_CHARS, description="The question.")
    author: str | None = Field(
        default=None,
        pattern=SLUG,
        description="Whose writing to search; omitted: the author the query names.",
    )
    top_k: int = Field(default=5, ge=1, le=MAX_TOP_K, description="How many passages.")


class GenerateRequest(_Request):
    prompt: str = Field(min_length=1, max_length=MAX_QUERY_CHARS, description="What to ask.")
    author: str | None = Field(
        default=None, pattern=SLUG, description="Whose released twin answers; omitted: the base model."
    )
    max_new_tokens: int | None = Field(
        default=None, ge=1, le=MAX_NEW_TOKENS, description="Omitted: 128, or the service's cap if lower."
    )
    temperature: float = Field(default=0.0, ge=0.0, le=2.0, description="0: greedy.")
    seed: int | None = Field(default=None, description="Makes sampling repeatable.")
    stream: bool = Field(default=False, description="Server-sent events: token pieces, then a 'done' event.")


class RagRequest(_Request):
    query: str = Field(min_length=1, max_length=MAX_QUERY_CHARS, description="The question.")
    author: str | None = Field(
        default=None,
        pattern=SLUG,
        description="Whose twin answers, from whose writing; omitted: the author the query names, or the only "
        "released one.",
    )
    top_k: int = Field(default=3, ge=1, le=MAX_TOP_K, description="Passages quoted to the twin.")
    max_new_tokens: int | None = Field(
        default=None, ge=1, le=MAX_NEW_TOKENS, description="Omitted: 128, or the service's cap if lower."
    )
    temperature: float = Field(default=0.0, ge=0.0, le=2.0, description="0: greedy.")
    seed: int | None = Field(default=None, description="Makes sampling repeatable.")
    stream: bool = Field(
        default=False, description="Server-sent events: 'sources', then token pieces, then 'done'."
    )


class Source(BaseModel):
    chunk_id: str
    document_url: str
    title: str | None
    kind: str
    score: float
    similarity: float | None
    text: str


class Usage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str | None = Field(description="stop (end of turn), length (the cap) or cancelled.")


class RetrieveResponse(BaseModel):
    author: str | None
    sources: list[Source]
    timings: dict[str, float] = Field(description="Milliseconds per stage.")


class GenerateResponse(BaseModel):
    answer: str
    author: str | None
    release: int | None = Field(description="The release that answered; null: the base model.")
    usage: Usage
    timings: dict[str, float]
    batch_size: int | None = Field(
        default=None, description="How many requests were generated together with this one (local generator)."
    )


class RagResponse(GenerateResponse):
    sources: list[Source]
