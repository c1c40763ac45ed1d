"""Released twins loaded on demand: the service is ready once the base model is, whatever the number of
authors, and holds at most ``LLM_TWIN_SERVE_MAX_ADAPTERS`` adapters (least recently used evicted).

:class:`LazyLocalGenerator` is the local generator with one difference: ``sync`` (start-up, the release
watcher) only records which release of each author is current and drops resident adapters that are no
longer current; an author's adapter is downloaded and installed by the first request for that author.
An adapter in use by a request in flight is never evicted; when every resident adapter is in use and the
cap is reached, the request is refused with 503 + Retry-After rather than growing memory.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import time
from collections import Counter, OrderedDict
from collections.abc import AsyncIterator, Sequence
from typing import TYPE_CHECKING

from llm_twin_assets.serving import Overloaded, ServingError
from llm_twin_assets.serving.generators import Generator, LocalGenerator, Usage

if TYPE_CHECKING:
    from llm_twin_assets.artifacts import ArtifactStore
    from llm_twin_assets.llm import Message
    from llm_twin_assets.settings import TwinSettings
    from llm_twin_assets.store.database import Database
    from llm_twin_assets.store.releases import Release

log = logging.getLogger(__name__)

MAX_ADAPTERS_ENV = "LLM_TWIN_SERVE_MAX_ADAPTERS"
DEFAULT_MAX_ADAPTERS = 16
RETRY_FAILED_S = 30.0  # a release that failed to load is not downloaded again before this


def max_adapters(settings: TwinSettings) -> int:
    """The resident cap: a ``serve_max_adapters`` setting where the settings have one, else the env var."""
    value = getattr(settings, "serve_max_adapters", None) or os.environ.get(MAX_ADAPTERS_ENV)
    cap = int(value) if value else DEFAULT_MAX_ADAPTERS
    if cap < 1:
        raise ServingError(f"{MAX_ADAPTERS_ENV} must be at least 1, not {cap}", status=500)
    return cap


class LazyLocalGenerator(LocalGenerator):
    """The base model in this process; each author's release installed on first use, LRU-capped."""

    def __init__(
        self,
        settings: TwinSettings,
        database: Database,
        store: ArtifactStore,
        *,
        max_resident: int,
        **kw: object,
    ) -> None:
        super().__init__(settings, database, store, **kw)  # type: ignore[arg-type]
        self.max_resident = max_resident
        self.wanted: dict[str, Release] = {}
        self._recent: OrderedDict[str, None] = OrderedDict()  # resident authors, least recently used first
        self._busy: Counter[str] = Counter()  # requests in flight per author
        self._failed: dict[tuple[str, int], tuple[float, str]] = {}

    # what the release watcher calls

    def sync(self, current: dict[str, Release]) -> dict[str, str]:
        with self._lock:
            self.wanted = dict(current)
            for author, installed in list(self.models.installed.items()):
                release = current.get(author)
                stale = release is None or release.release != installed.release
                if stale and not self._busy[author]:
                    self._evict(author)
            live = {(a, r.release) for a, r in current.items()}
            self._failed = {k: v for k, v in self._failed.items() if k in live}
        return {}  # nothing is loaded here: a release that cannot load is refused on its first request

    # what a request calls

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
        if release is None:
            async for piece in super().stream(messages, None, max_new_tokens, temperature, seed, usage, stop):
                yield piece
            return
        author = release.author
        self._busy[author] += 1  # before loading: from here on the adapter is not evicted under us
        try:
            started = time.perf_counter()
            loaded = await asyncio.to_thread(self.ensure, release)
            if loaded:
                usage.timings["adapter_load"] = round((time.perf_counter() - started) * 1000, 1)
            async for piece in super().stream(
                messages, release, max_new_tokens, temperature, seed, usage, stop
            ):
                yield piece
        finally:
            self._busy[author] -= 1
            if not self._busy[author]:
                del self._busy[author]

    def ensure(self, release: Release) -> bool:
        """Make ``release`` resident (evicting the least recently used idle adapter at the cap); True when
        it was loaded now."""
        author = release.author
        with self._lock:
            installed = self.models.installed.get(author)
            if installed is not None and installed.release == release.release:
                self._recent[author] = None
                self._recent.move_to_end(author)
                return False
            failed = self._failed.get((author, release.release))
            if failed is not None and time.monotonic() - failed[0] < RETRY_FAILED_S:
                raise ServingError(
                    f"{author!r}'s current release cannot be served: {failed[1]}", status=503, retry_after=30
                )
            others = len(self.models.installed) - (1 if installed is not None else 0)
            while others >= self.max_resident:
                victim = next((a for a in self._recent if a != author and not self._busy[a]), None)
                if victim is None:
                    raise Overloaded(
                        f"{others} twins are resident and all are answering ({MAX_ADAPTERS_ENV}="
                        f"{self.max_resident}); retry shortly",
                        retry_after=1,
                    )
                self._evict(victim)
                others -= 1
            try:
                self._load(release)
            except Exception as exc:  # one author's broken release never stops the others
                message = str(exc)
                self._failed[(author, release.release)] = (time.monotonic(), message)
                log.error("cannot serve %s release %s: %s", author, release.release, message)
                if isinstance(exc, ServingError):
                    raise
                raise ServingError(
                    f"{author!r}'s current release cannot be served: {message}", status=503, retry_after=30
                ) from exc
            self._recent[author] = None
            self._recent.move_to_end(author)
            return True

    def resident(self) -> list[str]:
        """Resident authors, least recently used first."""
        return list(self._recent)

    def _load(self, release: Release) -> None:
        from llm_twin_assets.evaluation.releases import serving
        from llm_twin_assets.training.adapters import adapter_folder
        from llm_twin_assets.training.twin import trained_base

        author = release.author
        _, twin = serving(self.database, self.store, author)
        cache = self.settings.home / "cache" / "adapters"
        sft = adapter_folder(self.store, twin.sft, cache)
        dpo = adapter_folder(self.store, twin.dpo, cache) if twin.dpo is not None else None
        if trained_base(sft).resolve() != self.models.base_folder.resolve():
            raise ServingError(
                f"{author!r}'s release {release.release} was trained on {release.base_model}, not on the base "
                f"model this service holds ({self.settings.base_model}); serve it with LLM_TWIN_BASE_MODEL "
                "set to that model",
                status=503,
                retry_after=30,
            )
        self.batcher.run(functools.partial(self.models.install, author, release.release, sft, dpo))
        log.info("serving %s release %s (loaded on first request)", author, release.release)

    def _evict(self, author: str) -> None:
        self.batcher.run(functools.partial(self.models.remove, author))
        self._recent.pop(author, None)
        log.info("unloaded %s's adapter", author)


def serving_generator(settings: TwinSettings) -> Generator | None:
    """The service's generator: the lazy local one, or None where ``TwinServer`` makes its own (a remote
    OpenAI-compatible LoRA server loads adapters by itself)."""
    if settings.generator == "openai":
        return None
    from llm_twin_assets.artifacts import open_store
    from llm_twin_assets.store.database import open_database

    return LazyLocalGenerator(
        settings,
        open_database(settings),
        open_store(settings.artifacts_url, settings.artifacts_dir),
        max_resident=max_adapters(settings),
        max_batch=settings.serve_max_batch,
        max_wait_s=settings.serve_batch_wait_ms / 1000,
        max_pending=settings.serve_max_pending,
    )
