"""Who writes the answers: the local base model with the released adapters (batched here), or any
OpenAI-compatible server that serves LoRA adapters by name (vLLM with ``--enable-lora``), chosen by
``LLM_TWIN_GENERATOR``. Both stream text and report the same usage and timings."""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import threading
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from llm_twin_assets.decoding_rules import Decoding
from llm_twin_assets.llm import Message
from llm_twin_assets.serving import NotReleased, Overloaded, ServingError
from llm_twin_assets.serving.batcher import Batcher
from llm_twin_assets.serving.decoding import GenerationRequest, RunningBatch

if TYPE_CHECKING:
    from llm_twin_assets.artifacts import ArtifactStore
    from llm_twin_assets.settings import TwinSettings
    from llm_twin_assets.store.database import Database
    from llm_twin_assets.store.releases import Release

log = logging.getLogger(__name__)


@dataclass
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    finish_reason: str | None = None
    batch_size: int | None = None
    timings: dict[str, float] = field(default_factory=dict)  # milliseconds: queue, first_token, generate


class Generator(Protocol):
    def sync(self, current: dict[str, Release]) -> dict[str, str]:
        """Serve exactly these releases; returns the authors that cannot be served, with the reason."""

    def stream(
        self,
        messages: list[Message],
        release: Release | None,
        max_new_tokens: int,
        temperature: float,
        seed: int | None,
        usage: Usage,
        stop: Sequence[str] = (),
    ) -> AsyncIterator[str]:
        """Text pieces as they are generated (``release`` None: the base model), up to a ``stop`` string
        (not included); fills ``usage``."""

    def check_capacity(self) -> None:
        """Raise Overloaded now if a generation would be refused (before a stream's first byte)."""

    def close(self) -> None: ...


class LocalGenerator:
    """The base model in this process, each author's release as one adapter, requests batched."""

    def __init__(
        self,
        settings: TwinSettings,
        database: Database,
        store: ArtifactStore,
        *,
        max_batch: int = 8,
        max_wait_s: float = 0.01,
        max_pending: int = 32,
    ) -> None:
        from llm_twin_assets.models.registry import model_folder
        from llm_twin_assets.serving.twins import TwinModels

        self.settings = settings
        self.database = database
        self.store = store
        self.models = TwinModels(model_folder(settings.base_model, settings), settings.resolved_device())
        self.batcher = Batcher(
            RunningBatch(self.models.lm, lambda: self.models.forward_model, self.models.route),
            max_batch=max_batch,
            max_wait_s=max_wait_s,
            max_pending=max_pending,
        )
        self._lock = threading.Lock()
        # torch's CPU thread count is per thread (OpenMP): set it where the decoding runs, or the
        # generation thread gets the worker's default (BentoML sets 1), and batches run at half speed
        threads = settings.torch_threads or max(1, os.cpu_count() or 1)
        self.batcher.run(functools.partial(_set_threads, threads))

    def sync(self, current: dict[str, Release]) -> dict[str, str]:
        with self._lock:  # the watcher and start-up may both sync
            return self._sync(current)

    def _sync(self, current: dict[str, Release]) -> dict[str, str]:
        from llm_twin_assets.evaluation.releases import serving
        from llm_twin_assets.training.adapters import adapter_folder
        from llm_twin_assets.training.twin import trained_base

        problems: dict[str, str] = {}
        for author, release in current.items():
            installed = self.models.installed.get(author)
            if installed is not None and installed.release == release.release:
                continue
            try:
                _, twin = serving(self.database, self.store, author)
                cache = self.settings.home / "cache" / "adapters"
                sft = adapter_folder(self.store, twin.sft, cache)
                dpo = adapter_folder(self.store, twin.dpo, cache) if twin.dpo is not None else None
                if trained_base(sft).resolve() != self.models.base_folder.resolve():
                    raise ServingError(
                        f"{author!r}'s release {release.release} was trained on {release.base_model}, not on "
                        f"the base model this service holds ({self.settings.base_model}); serve it with "
                        "LLM_TWIN_BASE_MODEL set to that model"
                    )
                self.batcher.run(functools.partial(self.models.install, author, release.release, sft, dpo))
                log.info("serving %s release %s", author, release.release)
            except Exception as exc:  # one author's broken release never stops the others
                problems[author] = str(exc)
                log.error("cannot serve %s release %s: %s", author, release.release, exc)
        for author in set(self.models.installed) - set(current):
            self.batcher.run(functools.partial(self.models.remove, author))
        return problems

    async def stream(
        self,
        messages: list[Message],
        release: Release | None,
        max_new_tokens: int,
        temperature: float,
        seed: int | None,
        usage: Usage,
        stop: Sequence[str] = (),
    ) -> AsyncIterator[str]:
        if release is not None:
            installed = self.models.installed.get(release.author)
            if installed is None or installed.release != release.release:
                raise NotReleased(
                    f"{release.author!r}'s release {release.release} is not loaded yet; retry shortly"
                )
            adapter = installed.adapter
        else:
            adapter = "__base__"
        loop = asyncio.get_running_loop()
        pieces: asyncio.Queue[str | None] = asyncio.Queue()
        request = GenerationRequest(
            messages=messages,
            adapter=adapter,
            max_new_tokens=max_new_tokens,
            temperature=temperature,
            seed=seed,
            stop=tuple(stop),
            # the release's rules, exactly as its evaluation generated (the base model: none)
            decoding=Decoding.from_dict(release.decoding) if release is not None else Decoding(),
            on_text=lambda text: _put(loop, pieces, text),
            on_done=lambda: _put(loop, pieces, None),
        )
        self.batcher.submit(request)
        try:
            while (piece := await pieces.get()) is not None:
                yield piece
        finally:
            request.cancel()  # a client that left stops its row at the next token
        if isinstance(request.error, ServingError):
            raise request.error
        if request.error is not None:
            raise ServingError(f"generation failed: {request.error}", status=500) from request.error
        usage.prompt_tokens = request.prompt_tokens
        usage.completion_tokens = len(request.token_ids)
        usage.finish_reason = request.finish_reason
        usage.batch_size = request.batch_size
        started = request.started_at or request.queued_at
        usage.timings["queue"] = round((started - request.queued_at) * 1000, 1)
        if request.first_token_at is not None:
            usage.timings["first_token"] = round((request.first_token_at - request.queued_at) * 1000, 1)
        usage.timings["generate"] = round(((request.finished_at or time.perf_counter()) - started) * 1000, 1)

    def check_capacity(self) -> None:
        self.batcher.check_capacity()

    def close(self) -> None:
        self.batcher.stop()


class RemoteGenerator:
    """An OpenAI-compatible server that serves each author's twin as a LoRA adapter named by
    ``LLM_TWIN_GENERATOR_MODEL`` (default ``{author}-r{release}``: start vLLM with
    ``--enable-lora --lora-modules ada-r3=/adapters/ada/r3``, the SFT and DPO adapters concatenated)."""

    def __init__(self, settings: TwinSettings) -> None:
        import os

        from openai import AsyncOpenAI

        if not settings.generator_base_url:
            raise ServingError("LLM_TWIN_GENERATOR=openai needs LLM_TWIN_GENERATOR_BASE_URL (up to /v1)")
        self.settings = settings
        self.client = AsyncOpenAI(
            base_url=settings.generator_base_url,
            api_key=os.environ.get(settings.generator_api_key_env) or "not-needed",
            timeout=settings.generator_timeout_s,
            max_retries=0,
        )
        self._in_flight = 0
        self.max_pending = settings.serve_max_pending

    def model_name(self, release: Release | None) -> str:
        if release is None:
            return self.settings.generator_base_model
        return self.settings.generator_model.format(author=release.author, release=release.release)

    def sync(self, current: dict[str, Release]) -> dict[str, str]:
        return {}  # the server loads its adapters; names are derived from the release

    async def stream(
        self,
        messages: list[Message],
        release: Release | None,
        max_new_tokens: int,
        temperature: float,
        seed: int | None,
        usage: Usage,
        stop: Sequence[str] = (),
    ) -> AsyncIterator[str]:
        import openai

        self.check_capacity()
        self._in_flight += 1
        queued = time.perf_counter()
        try:
            stream = await self.client.chat.completions.create(  # type: ignore[call-overload]
                model=self.model_name(release),
                messages=messages,
                max_tokens=max_new_tokens,
                temperature=temperature,
                seed=seed,
                stop=list(stop) or None,
                stream=True,
                stream_options={"include_usage": True},
            )
            async for chunk in stream:
                if chunk.usage is not None:
                    usage.prompt_tokens = chunk.usage.prompt_tokens
                    usage.completion_tokens = chunk.usage.completion_tokens
                for choice in chunk.choices:
                    if choice.finish_reason:
                        usage.finish_reason = choice.finish_reason
                    if choice.delta.content:
                        if "first_token" not in usage.timings:
                            usage.timings["first_token"] = round((time.perf_counter() - queued) * 1000, 1)
                        yield choice.delta.content
        except openai.APIStatusError as exc:
            raise ServingError(
                f"the generator at {self.settings.generator_base_url} answered {exc.status_code} for model "
                f"{self.model_name(release)!r}: {exc.message}",
                status=502,
            ) from exc
        except openai.APIError as exc:
            raise ServingError(
                f"the generator at {self.settings.generator_base_url} failed: {exc}", status=502
            ) from exc
        finally:
            self._in_flight -= 1
        usage.timings["generate"] = round((time.perf_counter() - queued) * 1000, 1)

    def check_capacity(self) -> None:
        if self._in_flight >= self.max_pending:
            raise Overloaded(
                f"{self._in_flight} generations in flight at the generator; retry shortly", retry_after=1
            )

    def close(self) -> None:
        pass


def _set_threads(threads: int) -> None:
    import torch

    # torch's thread count is per thread, initialised lazily at the thread's first parallel operation to
    # the count set last by ANY thread: set before that, it is lost as soon as another thread (the query
    # encoder) sets its own. Initialised first (get), this thread keeps its count whatever others set.
    torch.get_num_threads()
    torch.set_num_threads(threads)


def _put(loop: asyncio.AbstractEventLoop, pieces: asyncio.Queue[str | None], text: str | None) -> None:
    loop.call_soon_threadsafe(pieces.put_nowait, text)


def make_generator(settings: TwinSettings, database: Database, store: ArtifactStore) -> Generator:
    if settings.generator == "openai":
        return RemoteGenerator(settings)
    return LocalGenerator(
        settings,
        database,
        store,
        max_batch=settings.serve_max_batch,
        max_wait_s=settings.serve_batch_wait_ms / 1000,
        max_pending=settings.serve_max_pending,
    )
