"""Teachers: whoever writes text for the datasets. A local transformers model, or any
OpenAI-compatible ``/v1/chat/completions`` endpoint (vLLM, Ollama, OpenAI, our own service).

A teacher answers a list of conversations with one :class:`Reply` each, in order. A reply that came
back but is unusable (empty, cut off) is returned as such for the caller to drop and count; an
endpoint that cannot be reached or keeps failing raises :class:`TeacherError` after its retries.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from llm_twin_assets.errors import TwinError
from llm_twin_assets.llm import Message, Reply

if TYPE_CHECKING:
    import httpx

    from llm_twin_assets.llm import LoadedLM
    from llm_twin_assets.settings import TwinSettings

Progress = Callable[[int, int], None]


class TeacherError(TwinError):
    pass


class Teacher(Protocol):
    label: str

    def complete(
        self, conversations: list[list[Message]], *, max_new_tokens: int, progress: Progress | None = None
    ) -> list[Reply]: ...


class ReplyCache(Protocol):
    """Where teacher replies are kept (``store.teacher_cache.PostgresReplyCache``): key -> (text, finished)."""

    def get_many(self, keys: list[str]) -> dict[str, tuple[str, bool]]: ...

    def put_many(self, teacher: str, prompt_version: str, replies: list[tuple[str, str, bool]]) -> None: ...


def reply_key(teacher: str, prompt_version: str, max_new_tokens: int, messages: list[Message]) -> str:
    """What determines a reply: the teacher, the prompt version, the budget and the messages (which hold
    the passage)."""
    payload = {"teacher": teacher, "prompt_version": prompt_version, "max_new_tokens": max_new_tokens}
    text = json.dumps({**payload, "messages": messages}, sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


class CachedTeacher:
    """A teacher whose replies are kept: a prompt it answered before is not asked again, so a dataset
    rebuilt after one new post costs one call per new passage. Replies are stored as they arrive (in
    rounds of ``round_size``), so a run that fails half-way keeps what it paid for."""

    def __init__(self, inner: Teacher, cache: ReplyCache, prompt_version: str, round_size: int = 64) -> None:
        self.inner = inner
        self.cache = cache
        self.prompt_version = prompt_version
        self.round_size = round_size
        self.label = inner.label
        self.asked = 0
        """Prompts sent to the inner teacher by this object (cache misses)."""
        self.reused = 0

    def complete(
        self, conversations: list[list[Message]], *, max_new_tokens: int, progress: Progress | None = None
    ) -> list[Reply]:
        keys = [reply_key(self.label, self.prompt_version, max_new_tokens, c) for c in conversations]
        known = {
            k: Reply(text, finished) for k, (text, finished) in self.cache.get_many(sorted(set(keys))).items()
        }
        missing = list(dict.fromkeys(k for k in keys if k not in known))  # each distinct prompt once
        self.reused += sum(k in known for k in keys)
        first = {k: i for i, k in reversed(list(enumerate(keys)))}
        for start in range(0, len(missing), self.round_size):
            batch = missing[start : start + self.round_size]
            replies = self.inner.complete(
                [conversations[first[k]] for k in batch], max_new_tokens=max_new_tokens
            )
            self.asked += len(batch)
            self.cache.put_many(
                self.label,
                self.prompt_version,
                [(k, r.text, r.finished) for k, r in zip(batch, replies, strict=True)],
            )
            known.update(zip(batch, replies, strict=True))
            if progress:
                progress(min(start + self.round_size, len(missing)), len(missing))
        return [known[k] for k in keys]

    def close(self) -> None:
        close = getattr(self.inner, "close", None)
        if close is not None:
            close()


class LocalTeacher:
    """A causal LM run in this process: prompts sorted by length and generated in batches (greedy)."""

    def __init__(self, lm: LoadedLM, label: str, batch_size: int = 8, **generate_kwargs: Any) -> None:
        self.lm = lm
        self.label = label
        self.batch_size = batch_size
        self.generate_kwargs = generate_kwargs

    def complete(
        self, conversations: list[list[Message]], *, max_new_tokens: int, progress: Progress | None = None
    ) -> list[Reply]:
        from llm_twin_assets.llm import generate_replies

        # Similar lengths together (characters: free, and a good proxy): less padding, and the same
        # batches for the same inputs. Each prompt is tokenized once, in generation.
        lengths = [sum(len(m["content"]) for m in c) for c in conversations]
        order = sorted(range(len(conversations)), key=lambda i: (lengths[i], i))
        replies: list[Reply | None] = [None] * len(conversations)
        for start in range(0, len(order), self.batch_size):
            batch = order[start : start + self.batch_size]
            out = generate_replies(
                self.lm,
                [conversations[i] for i in batch],
                max_new_tokens=max_new_tokens,
                **self.generate_kwargs,
            )
            for i, reply in zip(batch, out, strict=True):
                replies[i] = reply
            if progress:
                progress(min(start + self.batch_size, len(order)), len(order))
        return [r for r in replies if r is not None]


@dataclass(frozen=True)
class EndpointOptions:
    base_url: str
    model: str
    api_key: str | None = None
    concurrency: int = 4
    timeout_s: float = 120.0
    retries: int = 3
    backoff_s: float = 0.5
    temperature: float = 0.0


_RETRYABLE = {408, 409, 425, 429, 500, 502, 503, 504}


class OpenAITeacher:
    """An OpenAI-compatible chat endpoint, with timeouts, retries with backoff and bounded concurrency."""

    def __init__(self, options: EndpointOptions, client: httpx.Client | None = None) -> None:
        import httpx

        self.options = options
        self.url = options.base_url.rstrip("/") + "/chat/completions"
        self.label = f"openai:{options.model}@{options.base_url}"
        headers = {"Authorization": f"Bearer {options.api_key}"} if options.api_key else {}
        self.client = client or httpx.Client(
            timeout=httpx.Timeout(options.timeout_s, connect=min(10.0, options.timeout_s)),
            headers=headers,
            limits=httpx.Limits(max_connections=options.concurrency),
        )
        self._failed = threading.Event()

    def complete(
        self, conversations: list[list[Message]], *, max_new_tokens: int, progress: Progress | None = None
    ) -> list[Reply]:
        self._failed.clear()
        done = 0
        lock = threading.Lock()
        first_error: list[BaseException] = []

        def one(messages: list[Message]) -> Reply:
            nonlocal done
            try:
                reply = self._request(messages, max_new_tokens)
            except BaseException as exc:
                with lock:
                    first_error.append(exc)
                self._failed.set()  # requests not yet sent are not sent
                raise
            with lock:
                done += 1
                if progress:
                    progress(done, len(conversations))
            return reply

        with ThreadPoolExecutor(max_workers=self.options.concurrency, thread_name_prefix="teacher") as pool:
            futures = [pool.submit(one, c) for c in conversations]
            try:
                return [f.result() for f in futures]
            except BaseException as exc:
                for f in futures:
                    f.cancel()
                raise (first_error[0] if first_error else exc) from None

    def _request(self, messages: list[Message], max_new_tokens: int) -> Reply:
        import httpx

        body = {
            "model": self.options.model,
            "messages": messages,
            "max_tokens": max_new_tokens,
            "temperature": self.options.temperature,
        }
        problem, retry_after = "", None
        for attempt in range(self.options.retries + 1):
            if self._failed.is_set():
                raise TeacherError(f"teacher endpoint {self.url}: stopped after another request failed")
            if attempt:
                time.sleep(self._delay(attempt, retry_after))
            try:
                response = self.client.post(self.url, json=body)
            except httpx.HTTPError as exc:
                problem, retry_after = f"{type(exc).__name__}: {exc}", None
                continue
            if response.status_code in _RETRYABLE:
                problem = f"HTTP {response.status_code}: {response.text[:200]}"
                retry_after = response.headers.get("retry-after") if response.status_code == 429 else None
                continue
            if response.status_code != 200:
                raise TeacherError(
                    f"teacher endpoint {self.url} refused the request: HTTP {response.status_code}: "
                    f"{response.text[:300]}"
                )
            return self._parse(response)
        raise TeacherError(
            f"teacher endpoint {self.url} failed after {self.options.retries + 1} attempts: {problem}"
        )

    def _delay(self, attempt: int, retry_after: str | None) -> float:
        if retry_after:
            try:
                return min(60.0, float(retry_after))
            except ValueError:
                pass
        return self.options.backoff_s * 2 ** (attempt - 1) * (1 + random.random() / 4)

    def _parse(self, response: httpx.Response) -> Reply:
        try:
            payload: Any = response.json()
            choice = payload["choices"][0]
            content = choice["message"].get("content") or ""
            finish = choice.get("finish_reason")
        except (ValueError, KeyError, IndexError, TypeError, AttributeError) as exc:
            raise TeacherError(
                f"teacher endpoint {self.url} answered without an OpenAI chat completion "
                f"({type(exc).__name__}: {exc}): {response.text[:300]}"
            ) from None
        return Reply(str(content).strip(), finish != "length")

    def close(self) -> None:
        self.client.close()


def local_teacher(settings: TwinSettings, model: str, *, batch_size: int | None = None) -> LocalTeacher:
    """A local teacher for ``model`` ('bundled', a path or a hub id) on the configured device."""
    from llm_twin_assets.llm import load_causal_lm
    from llm_twin_assets.models.registry import BUNDLED, prepare_smollm2, resolve

    ref = resolve(model, "LLM_TWIN_TEACHER_MODEL")
    if ref is None:
        from llm_twin_assets.models.registry import ModelRef

        ref = ModelRef(str(prepare_smollm2(settings.model_cache)), True, BUNDLED)
    device = settings.resolved_device()
    lm = load_causal_lm(ref, device=device, dtype="bfloat16" if device == "cuda" else "float32")
    label = f"local:{ref.name}"
    return LocalTeacher(lm, label, batch_size or settings.teacher_batch_size)


def teacher_from_settings(settings: TwinSettings) -> Teacher:
    """The configured teacher; ``openai`` needs a base URL, and reads its key from the named variable."""
    if settings.teacher_backend == "local":
        return local_teacher(settings, settings.teacher_model)
    if not settings.teacher_base_url:
        from llm_twin_assets.errors import ConfigError

        raise ConfigError(
            "LLM_TWIN_TEACHER_BASE_URL",
            "is unset but the teacher backend is 'openai'",
            "set it to the endpoint's base URL, e.g. http://127.0.0.1:8000/v1",
        )
    return OpenAITeacher(
        EndpointOptions(
            base_url=settings.teacher_base_url,
            model=settings.teacher_model,
            api_key=os.environ.get(settings.teacher_api_key_env) or None,
            concurrency=settings.teacher_concurrency,
            timeout_s=settings.teacher_timeout_s,
            retries=settings.teacher_retries,
        )
    )
