"""The service's requests and responses (pydantic: validated on the way in, described in the OpenAPI)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator

from llm_twin_assets.retrieval import MAX_QUERY_CHARS

SLUG = r"^[a-z0-9][a-z0-9_-]{0,62}$"
MAX_NEW_TOKENS = (
    4096  # the schema's bound; the service's own cap (LLM_TWIN_SERVE_MAX_NEW_TOKENS) is checked too
)
MAX_TOP_K = 100
MAX_SEED = 2**63 - 1
"""torch's generators take a seed below 2**64; OpenAI's clients send signed 64-bit integers."""
MIN_TEMPERATURE = 0.01
"""Below this, logits / temperature overflows: 0 (greedy) or at least this."""
TEMPERATURE_HELP = f"0: greedy; otherwise {MIN_TEMPERATURE} to 2 (nucleus sampling, top-p 0.95)."
SEED_HELP = f"0 to {MAX_SEED}: makes sampling repeatable."


def check_temperature(value: float) -> float:
    """0 or MIN_TEMPERATURE..2: a tiny positive temperature overflows the logits (inf/nan)."""
    if value != 0 and value < MIN_TEMPERATURE:
        raise ValueError(f"use 0 (greedy) or at least {MIN_TEMPERATURE}")
    return value


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _Sampled(_Request):
    @field_validator("temperature", check_fields=False)
    @classmethod
    def _temperature(cls, value: float) -> float:
        return check_temperature(value)


class RetrieveRequest(_Request):
    query: str = Field(min_length=1, max_length=MAX_QUERY_CHARS, description="The question.")
    author: str | None = Field(
        default=None,
        pattern=SLUG,
        description="Whose writing to search; omitted: the author the query names.",
    )
    top_k: int = Field(default=5, ge=1, le=MAX_TOP_K, description="How many passages.")


class GenerateRequest(_Sampled):
    prompt: str = Field(min_length=1, max_length=MAX_QUERY_CHARS, description="What to ask.")
    author: str | None = Field(
        default=None, pattern=SLUG, description="Whose released twin answers; omitted: the base model."
    )
    max_new_tokens: int | None = Field(
        default=None, ge=1, le=MAX_NEW_TOKENS, description="Omitted: 128, or the service's cap if lower."
    )
    temperature: float = Field(default=0.0, ge=0.0, le=2.0, description=TEMPERATURE_HELP)
    seed: int | None = Field(default=None, ge=0, le=MAX_SEED, description=SEED_HELP)
    stream: bool = Field(default=False, description="Server-sent events: token pieces, then a 'done' event.")


class RagRequest(_Sampled):
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
    temperature: float = Field(default=0.0, ge=0.0, le=2.0, description=TEMPERATURE_HELP)
    seed: int | None = Field(default=None, ge=0, le=MAX_SEED, description=SEED_HELP)
    stream: bool = Field(
        default=False, description="Server-sent events: 'sources', then token pieces, then 'done'."
    )


LINK_SCHEMES = ("http", "https")


def link_of(url: str) -> str | None:
    """``url`` when a page may show it as a link (http or https), else None: a stored URL is data, and a
    ``javascript:``/``data:``/``vbscript:``/``file:`` one is never clickable, however it is spelled."""
    from urllib.parse import urlsplit

    cleaned = "".join(ch for ch in url if ch > " " and ch != "\x7f")  # as browsers strip them
    try:
        parts = urlsplit(cleaned)
    except ValueError:
        return None
    if parts.scheme.lower() in LINK_SCHEMES and parts.netloc and cleaned == url.strip():
        return url.strip()
    return None


class MatchedUnit(BaseModel):
    """The item of a passage that matched the question (a list item, a table row, a sentence group)."""

    text: str
    start: int = Field(ge=0, description="Where the item starts in the passage's `text` (characters).")
    end: int = Field(ge=0, description="Where it ends in the passage's `text` (exclusive).")
    similarity: float | None = Field(description="Its cosine similarity to the question (null: text match).")


class Source(BaseModel):
    chunk_id: str
    document_url: str = Field(description="Where the passage was crawled from (data: show it as text).")
    link: str | None = Field(
        default=None, description="document_url when it is an http(s) URL a page may link to; else null."
    )
    title: str | None
    kind: str
    score: float
    similarity: float | None
    text: str
    unit: MatchedUnit | None = Field(
        default=None,
        description="The item of this passage that matched the question, when the passage has items "
        "(small-to-big retrieval: items are searched, whole passages returned).",
    )


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
