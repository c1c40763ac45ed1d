"""What the service does for each route, apart from HTTP: resolve the author and their current release,
retrieve through ``retrieval.search``, prompt with the retrieved text quoted as untrusted material, generate
(streaming), and trace every request — refused ones included.

A streamed request is checked (author, release, caps) and retrieved before its first byte is sent, so a
bad request is a 4xx with a clear message, never a broken stream.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

from llm_twin_assets import retrieval
from llm_twin_assets.llm import Message
from llm_twin_assets.prompting import neutralise_messages, plain_messages, rag_messages
from llm_twin_assets.serving import NotReleased, ServingError
from llm_twin_assets.serving.background import ReleaseWatcher, TraceWriter
from llm_twin_assets.serving.generators import Generator, Usage, make_generator
from llm_twin_assets.serving.retrieving import ServiceRetrieval
from llm_twin_assets.serving.schemas import (
    GenerateRequest,
    GenerateResponse,
    RagRequest,
    RagResponse,
    RetrieveRequest,
    RetrieveResponse,
    Source,
)
from llm_twin_assets.serving.schemas import Usage as UsageModel
from llm_twin_assets.settings import TwinSettings
from llm_twin_assets.store import releases
from llm_twin_assets.store.documents import author_exists
from llm_twin_assets.store.releases import Release
from llm_twin_assets.store.traces import Trace

log = logging.getLogger(__name__)

Event = dict[str, Any]


@dataclass
class Call:
    """One request on its way: what was resolved, retrieved and measured, and its trace."""

    route: str
    trace: Trace
    author: str | None = None
    release: Release | None = None
    sources: list[Source] = field(default_factory=list)
    messages: list[Message] = field(default_factory=list)
    max_new_tokens: int = 128
    temperature: float = 0.0
    seed: int | None = None
    stop: tuple[str, ...] = ()
    started: float = field(default_factory=time.perf_counter)


class TwinServer:
    def __init__(self, settings: TwinSettings, generator: Generator | None = None) -> None:
        from llm_twin_assets.artifacts import open_store
        from llm_twin_assets.store.database import open_database

        self.settings = settings
        self.database = open_database(settings)
        self.store = open_store(settings.artifacts_url, settings.artifacts_dir)
        self.retrieval = ServiceRetrieval(settings)
        self.generator = generator or make_generator(settings, self.database, self.store)
        self.current: dict[str, Release] = {}
        self.problems: dict[str, str] = {}
        self.traces = TraceWriter(self.database)
        self.refresh()
        self.watcher = ReleaseWatcher(self.database, self.refresh, settings.serve_release_poll_s)

    # releases

    def refresh(self) -> None:
        """Serve every author's current release (new ones loaded, rolled-back ones swapped, gone ones dropped)."""
        with self.database.connect() as conn:
            current = releases.all_current(conn)
        problems = self.generator.sync(current)
        self.current = {a: r for a, r in current.items() if a not in problems}
        self.problems = problems

    def released_authors(self) -> list[Release]:
        return sorted(self.current.values(), key=lambda r: r.author)

    def release_of(self, author: str) -> Release:
        if author in self.current:
            return self.current[author]
        if author in self.problems:
            raise ServingError(
                f"{author!r}'s current release cannot be served: {self.problems[author]}",
                status=503,
                retry_after=30,
            )
        self.require_known(author)
        raise NotReleased(
            f"author {author!r} has no released twin: materialize twin_evaluation and twin_release for "
            f"{author!r} (the quality gate must pass)"
        )

    def require_known(self, author: str) -> None:
        with self.database.connect() as conn:
            known = author_exists(conn, author)
        if not known:
            raise NotReleased(f"unknown author {author!r}: no such author in this twin's store")

    def _author_for_query(self, query: str) -> str:
        """No author given: the one the question names, else the only released one."""
        with self.database.connect() as conn:
            named = retrieval.named_author(conn, query)
        if named is not None:
            return named
        if len(self.current) == 1:
            return next(iter(self.current))
        choices = ", ".join(sorted(self.current)) or "none released yet"
        raise ServingError(f"name the author (field 'author'): the question names none; released: {choices}")

    # the steps

    def _default_tokens(self) -> int:
        return min(128, self.settings.serve_max_new_tokens)

    def _check_caps(
        self,
        max_new_tokens: int | None = None,
        top_k: int | None = None,
        tokens_field: str = "max_new_tokens",
    ) -> None:
        """``tokens_field``: the name the client gave the token cap (OpenAI's ``max_tokens``…)."""
        s = self.settings
        if max_new_tokens is not None and max_new_tokens > s.serve_max_new_tokens:
            raise ServingError(
                f"{tokens_field} is {max_new_tokens}; this service generates at most {s.serve_max_new_tokens}"
            )
        if top_k is not None and top_k > s.serve_max_top_k:
            raise ServingError(f"top_k is {top_k}; this service returns at most {s.serve_max_top_k} passages")

    async def _retrieve(self, call: Call, query: str, author: str | None, top_k: int) -> None:
        call.sources, call.trace.timings["retrieve"] = await self.retrieval.sources(query, author, top_k)
        call.trace.chunk_ids = [s.chunk_id for s in call.sources]
        call.trace.scores = [s.score for s in call.sources]
        similarities = [s.similarity for s in call.sources if s.similarity is not None]
        call.trace.best_similarity = max(similarities) if similarities else None

    def _call(self, route: str, query: str, author: str | None) -> Call:
        return Call(
            route=route, trace=Trace(route=route, status=200, latency_ms=0.0, author=author, query=query)
        )

    async def retrieve(self, request: RetrieveRequest) -> RetrieveResponse:
        call = self._call("/retrieve", request.query, request.author)
        try:
            self._check_caps(top_k=request.top_k)
            author = request.author
            if author is not None and author not in self.current:
                self.require_known(author)  # retrieval needs the author's writing, not a release
            await self._retrieve(call, request.query, author, request.top_k)
            return RetrieveResponse(author=author, sources=call.sources, timings=dict(call.trace.timings))
        except ServingError as exc:
            self._fail(call, exc)
            raise
        finally:
            self._finish(call)

    async def prepare_rag(self, request: RagRequest) -> Call:
        """Everything before the first token: author, release, caps, passages, the prompt."""
        return await self._prepare(
            self._call("/rag", request.query, request.author),
            author=request.author or (lambda: self._author_for_query(request.query)),
            query=request.query,
            top_k=request.top_k,
            build=lambda passages: rag_messages(request.query, passages),
            sampling=(request.max_new_tokens, request.temperature, request.seed),
        )

    async def prepare_chat(
        self,
        author: str,
        messages: list[Message],
        max_new_tokens: int | None,
        temperature: float,
        seed: int | None,
        top_k: int,
        stop: tuple[str, ...] = (),
        tokens_field: str = "max_tokens",
    ) -> Call:
        """An OpenAI chat: the last user message retrieves; earlier turns stay as the conversation."""
        question = next((m["content"] for m in reversed(messages) if m["role"] == "user"), "")
        call = self._call("/v1/chat/completions", question, author)
        if not question.strip():
            refused = _refuse("messages: the conversation needs a user message")
            return await self._prepare(call, author=refused, build=lambda _: [])
        return await self._prepare(
            call,
            author=author,
            query=question,
            top_k=top_k,
            build=lambda passages: chat_messages(messages, passages),
            sampling=(max_new_tokens, temperature, seed),
            stop=stop,
            tokens_field=tokens_field,
        )

    async def prepare_generate(self, request: GenerateRequest) -> Call:
        return await self._prepare(
            self._call("/generate", request.prompt, request.author),
            author=request.author,
            build=lambda _: plain_messages(request.prompt),
            sampling=(request.max_new_tokens, request.temperature, request.seed),
        )

    async def _prepare(
        self,
        call: Call,
        *,
        author: str | Callable[[], str] | None,
        build: Callable[[list[str]], list[Message]],
        query: str | None = None,
        top_k: int | None = None,
        sampling: tuple[int | None, float, int | None] = (None, 0.0, None),
        stop: tuple[str, ...] = (),
        tokens_field: str = "max_new_tokens",
    ) -> Call:
        """Caps, the author (fixed here, before any retrieved text exists: passages cannot change it) and
        their current release, the passages, the prompt, and room in the queue; a refusal is traced."""
        try:
            max_new_tokens = sampling[0] or self._default_tokens()
            self._check_caps(max_new_tokens, top_k, tokens_field)
            chosen = author() if callable(author) else author
            if chosen is not None:
                call.author = call.trace.author = chosen
                call.release = self.release_of(chosen)
                call.trace.release = call.release.release
            if query is not None and top_k is not None:
                await self._retrieve(call, query, chosen, top_k)
            # no text of a client's or a crawled page's becomes a chat-template control marker
            call.messages = neutralise_messages(build([s.text for s in call.sources]))
            call.max_new_tokens, call.temperature, call.seed = max_new_tokens, sampling[1], sampling[2]
            call.stop = stop
            self.generator.check_capacity()
            return call
        except ServingError as exc:
            self._fail(call, exc)
            self._finish(call)
            raise

    async def events(self, call: Call) -> AsyncIterator[Event]:
        """'sources' (when retrieved), 'token' pieces, then 'done' with the whole answer — or 'error'."""
        usage = Usage()
        pieces: list[str] = []
        answered = False
        try:
            if call.route != "/generate":
                yield {
                    "type": "sources",
                    "author": call.author,
                    "release": call.trace.release,
                    "sources": [s.model_dump() for s in call.sources],
                }
            async for piece in self.generator.stream(
                call.messages,
                call.release,
                call.max_new_tokens,
                call.temperature,
                call.seed,
                usage,
                stop=call.stop,
            ):
                pieces.append(piece)
                yield {"type": "token", "text": piece}
            call.trace.tokens_in, call.trace.tokens_out = usage.prompt_tokens, usage.completion_tokens
            call.trace.timings.update(usage.timings)
            answered = True
            yield {
                "type": "done",
                "answer": "".join(pieces).strip(),
                "author": call.author,
                "release": call.trace.release,
                "usage": {
                    "prompt_tokens": usage.prompt_tokens,
                    "completion_tokens": usage.completion_tokens,
                    "finish_reason": usage.finish_reason,
                },
                "batch_size": usage.batch_size,
                "timings": {**call.trace.timings, "total": _ms(call.started)},
            }
        except ServingError as exc:
            self._fail(call, exc)
            yield {"type": "error", "status": exc.status, "message": str(exc), "retry_after": exc.retry_after}
        except (asyncio.CancelledError, GeneratorExit):
            if not answered:
                call.trace.status, call.trace.error = 499, "the client went away"
            raise
        finally:
            self._finish(call)

    async def complete(self, call: Call) -> dict[str, Any]:
        """The 'done' event of a call run to the end (a failure raises its ServingError)."""
        async for event in self.events(call):
            if event["type"] == "error":
                raise ServingError(event["message"], status=event["status"], retry_after=event["retry_after"])
            if event["type"] == "done":
                return event
        raise ServingError("generation ended without an answer", status=500)

    async def rag(self, request: RagRequest) -> RagResponse:
        call = await self.prepare_rag(request)
        done = await self.complete(call)
        return RagResponse(**_response_fields(done), sources=call.sources)

    async def generate(self, request: GenerateRequest) -> GenerateResponse:
        call = await self.prepare_generate(request)
        return GenerateResponse(**_response_fields(await self.complete(call)))

    # traces

    def _fail(self, call: Call, exc: ServingError) -> None:
        call.trace.status, call.trace.error = exc.status, str(exc)

    def _finish(self, call: Call) -> None:
        if call.trace.latency_ms:
            return  # traced already
        call.trace.latency_ms = _ms(call.started) or 0.001
        self.traces.add(call.trace)

    def trace_refusal(self, route: str, status: int, message: str, author: str | None = None) -> None:
        """A request refused before it reached a route (bad JSON, a schema error)."""
        self.traces.add(Trace(route=route, status=status, latency_ms=0.001, author=author, error=message))

    def close(self) -> None:
        self.watcher.stop()
        self.generator.close()
        self.traces.stop()
        self.retrieval.close()


def _refuse(message: str) -> Callable[[], str]:
    def refuse() -> str:
        raise ServingError(message)

    return refuse


def chat_messages(messages: list[Message], passages: list[str]) -> list[Message]:
    """The twin's system prompt with the passages first (a client's system messages follow it, as the
    client's own instructions), then the conversation as the client sent it."""
    client_system = "\n\n".join(m["content"] for m in messages if m["role"] == "system")
    turns = [m for m in messages if m["role"] in ("user", "assistant")]
    last = max(i for i, m in enumerate(turns) if m["role"] == "user")
    quoted = rag_messages(turns[last]["content"], passages)
    system = quoted[0]["content"] if len(quoted) > 1 else None
    system = "\n\n".join(s for s in (system, client_system) if s) or None
    head: list[Message] = [{"role": "system", "content": system}] if system else []
    return [*head, *turns[:last], quoted[-1], *turns[last + 1 :]]


def _response_fields(done: Event) -> dict[str, Any]:
    return {
        "answer": done["answer"],
        "author": done["author"],
        "release": done["release"],
        "usage": UsageModel(**done["usage"]),
        "timings": done["timings"],
        "batch_size": done["batch_size"],
    }


def _ms(since: float) -> float:
    return round((time.perf_counter() - since) * 1000, 2)
