"""A polite, guarded HTTP client for crawling.

On by default: robots.txt (RFC 9309), a minimum delay and a concurrency limit per host while hosts
are fetched in parallel, timeouts (per read, and a deadline on each whole request), retries with
exponential backoff on 429/5xx that honour ``Retry-After``, a maximum page size, manual redirects with
loop detection, and the SSRF guard on every connection (see :mod:`.safety`).
"""

from __future__ import annotations

import asyncio
import email.utils
import random
import time
import urllib.robotparser
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpcore
import httpx
from httpcore._backends.auto import AutoBackend

from llm_twin_assets.crawling.safety import NetworkGuard, check_web_url
from llm_twin_assets.errors import TwinError

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})


@dataclass(frozen=True)
class CrawlPolicy:
    """How politely and how safely we crawl. Every default is on the careful side."""

    user_agent: str = "LLMTwinBot/0.1 (personal-writing crawler; obeys robots.txt)"
    min_delay_s: float = 1.0
    per_host_concurrency: int = 1
    total_concurrency: int = 8
    connect_timeout_s: float = 10.0
    read_timeout_s: float = 20.0
    request_deadline_s: float = 60.0
    """Connect, headers and body of one attempt, all together. A server trickling a byte now and then
    never trips the read timeout; without this it would hold its host's slot for as long as it likes."""
    max_page_bytes: int = 5_000_000
    max_retries: int = 3
    backoff_base_s: float = 0.5
    max_backoff_s: float = 30.0
    max_redirects: int = 8
    obey_robots: bool = True
    max_crawl_delay_s: float = 30.0
    allow_private_networks: bool = False


class FetchError(TwinError):
    """A URL could not be fetched; the message names the URL and the reason."""

    def __init__(self, url: str, reason: str, status: int | None = None, page: Page | None = None) -> None:
        self.url, self.reason, self.status, self.page = url, reason, status, page
        super().__init__(f"{url}: {reason}")


@dataclass
class Page:
    requested_url: str
    url: str  # after redirects
    status: int
    headers: dict[str, str]
    body: bytes
    attempts: int = 1
    redirects: list[str] = field(default_factory=list)

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "").split(";", 1)[0].strip().lower()

    @property
    def text(self) -> str:
        charset = None
        for part in self.headers.get("content-type", "").split(";")[1:]:
            key, _, value = part.partition("=")
            if key.strip().lower() == "charset":
                charset = value.strip().strip('"')
        try:
            return self.body.decode(charset or "utf-8")
        except (LookupError, UnicodeDecodeError):
            return self.body.decode("utf-8", errors="replace")


class _GuardedBackend(httpcore.AsyncNetworkBackend):
    """Resolves and checks the host, then dials the checked address itself (no second lookup)."""

    def __init__(self, guard: NetworkGuard) -> None:
        self._inner = AutoBackend()
        self._guard = guard

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Any = None,
    ) -> httpcore.AsyncNetworkStream:
        addresses = await self._guard.resolve(host, port)
        last: Exception | None = None
        for address in addresses:
            try:
                return await self._inner.connect_tcp(address, port, timeout, local_address, socket_options)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                last = exc
        assert last is not None
        raise last

    async def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Any = None
    ) -> httpcore.AsyncNetworkStream:
        raise httpcore.ConnectError("unix sockets are not crawled")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class _HostGate:
    def __init__(self, delay: float, concurrency: int) -> None:
        self.delay = delay
        self.semaphore = asyncio.Semaphore(concurrency)
        self.lock = asyncio.Lock()
        self.next_at = 0.0

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        async with self.semaphore:
            async with self.lock:
                wait = self.next_at - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
                self.next_at = time.monotonic() + self.delay
            yield


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme.lower()}://{parts.netloc.lower()}"


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


class PoliteClient:
    """Use as ``async with PoliteClient(policy) as client: page = await client.fetch(url)``."""

    def __init__(self, policy: CrawlPolicy) -> None:
        self.policy = policy
        self.guard = NetworkGuard(policy.allow_private_networks)
        self._gates: dict[str, _HostGate] = {}
        self._robots: dict[str, urllib.robotparser.RobotFileParser | None] = {}
        self._robots_locks: dict[str, asyncio.Lock] = {}
        self._robots_unreachable: dict[str, str] = {}
        self._total = asyncio.Semaphore(policy.total_concurrency)
        self._client: httpx.AsyncClient | None = None
        self.requests = 0

    async def __aenter__(self) -> PoliteClient:
        transport = httpx.AsyncHTTPTransport(trust_env=False)
        ssl_context = transport._pool._ssl_context  # keep httpx's verified TLS set-up
        transport._pool = httpcore.AsyncConnectionPool(
            ssl_context=ssl_context,
            max_connections=self.policy.total_concurrency * 2,
            max_keepalive_connections=self.policy.total_concurrency,
            network_backend=_GuardedBackend(self.guard),
        )
        self._client = httpx.AsyncClient(
            transport=transport,
            headers={"User-Agent": self.policy.user_agent, "Accept-Encoding": "gzip, deflate"},
            timeout=httpx.Timeout(self.policy.read_timeout_s, connect=self.policy.connect_timeout_s),
            follow_redirects=False,
            trust_env=False,
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._client is not None:
            await self._client.aclose()

    def _gate(self, url: str) -> _HostGate:
        origin = _origin(url)
        if origin not in self._gates:
            self._gates[origin] = _HostGate(self.policy.min_delay_s, self.policy.per_host_concurrency)
        return self._gates[origin]

    # -- robots.txt ------------------------------------------------------------------------------

    async def allowed_by_robots(self, url: str) -> bool:
        if not self.policy.obey_robots:
            return True
        origin = _origin(url)
        lock = self._robots_locks.setdefault(origin, asyncio.Lock())
        async with lock:
            if origin not in self._robots:
                self._robots[origin] = await self._load_robots(origin)
        parser = self._robots[origin]
        return True if parser is None else parser.can_fetch(self.policy.user_agent, url)

    async def _load_robots(self, origin: str) -> urllib.robotparser.RobotFileParser | None:
        """None = no rules (a 4xx, per RFC 9309); a parser that disallows all on 5xx or no answer."""
        parser = urllib.robotparser.RobotFileParser()
        try:
            page = await self._fetch(f"{origin}/robots.txt", polite=True, robots=False, max_retries=1)
        except FetchError as exc:
            if exc.status is not None and 400 <= exc.status < 500:
                return None
            parser.parse(["User-agent: *", "Disallow: /"])
            self._robots_unreachable[origin] = exc.reason
            return parser
        parser.parse(page.text[:500_000].splitlines())
        delay = parser.crawl_delay(self.policy.user_agent)
        if delay:
            gate = self._gate(origin)
            gate.delay = max(gate.delay, min(float(delay), self.policy.max_crawl_delay_s))
        return parser

    # -- fetching --------------------------------------------------------------------------------

    async def fetch(self, url: str) -> Page:
        """A page, politely: robots, per-host delay, retries, redirects, size limit, SSRF guard."""
        return await self._fetch(url, polite=True, robots=True, max_retries=self.policy.max_retries)

    async def fetch_resource(self, url: str) -> Page:
        """A page's sub-resource for rendering (scripts, data): guarded and size-limited, no delay."""
        return await self._fetch(url, polite=False, robots=False, max_retries=1)

    async def _fetch(self, url: str, *, polite: bool, robots: bool, max_retries: int) -> Page:
        requested, seen = url, [url]
        hops: list[Any] = []
        while True:
            check_web_url(url)
            if robots and not await self.allowed_by_robots(url):
                unreachable = self._robots_unreachable.get(_origin(url))
                if unreachable:
                    raise FetchError(
                        url,
                        f"robots.txt could not be fetched ({unreachable}), which RFC 9309 "
                        "says to treat as disallowing everything",
                    )
                raise FetchError(url, "disallowed by robots.txt")
            page = await self._fetch_one(url, polite=polite, max_retries=max_retries)
            if page.status not in REDIRECT_STATUSES:
                page.requested_url, page.redirects = requested, hops
                if page.status >= 400:
                    raise FetchError(url, f"HTTP {page.status}", status=page.status, page=page)
                return page
            location = page.headers.get("location")
            if not location:
                raise FetchError(url, f"HTTP {page.status} redirect without a Location header", page.status)
            target = urljoin(url, location)
            if target in seen:
                raise FetchError(requested, f"redirect loop ({' -> '.join([*seen, target][-5:])})")
            if len(hops) >= self.policy.max_redirects:
                raise FetchError(requested, f"more than {self.policy.max_redirects} redirects")
            seen.append(target)
            hops.append(target)
            url = target

    async def _fetch_one(self, url: str, *, polite: bool, max_retries: int) -> Page:
        assert self._client is not None, "use PoliteClient as an async context manager"
        attempt = 0
        while True:
            attempt += 1
            try:
                if polite:
                    # The host's delay is waited out before taking a global slot, so a host that
                    # must wait never holds up the others.
                    async with self._gate(url).slot(), self._total:
                        page = await self._request_within_deadline(url)
                else:
                    async with self._total:
                        page = await self._request_within_deadline(url)
            except (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError) as exc:
                if attempt > max_retries:
                    raise FetchError(url, f"{type(exc).__name__} after {attempt} attempts: {exc}") from exc
                await asyncio.sleep(self._backoff(attempt, None, url))
                continue
            page.attempts = attempt
            if page.status in RETRY_STATUSES and attempt <= max_retries:
                await asyncio.sleep(
                    self._backoff(attempt, _retry_after(page.headers.get("retry-after")), url)
                )
                continue
            return page

    def _backoff(self, attempt: int, retry_after: float | None, url: str) -> float:
        if retry_after is not None:
            if retry_after > self.policy.max_backoff_s:
                raise FetchError(
                    url,
                    f"the server asks to retry after {retry_after:.0f} s, "
                    f"more than the {self.policy.max_backoff_s:.0f} s we wait",
                )
            return retry_after
        exponential = self.policy.backoff_base_s * 2 ** (attempt - 1)
        return min(self.policy.max_backoff_s, exponential * (1 + 0.25 * random.random()))

    async def _request_within_deadline(self, url: str) -> Page:
        """One attempt, cut off at the deadline; the host's slot is free again when this returns.

        Not retried: a server too slow for a whole deadline seldom recovers within seconds, and each
        retry would hold the host's slot for another deadline."""
        deadline = self.policy.request_deadline_s
        timeout = asyncio.timeout(deadline)
        try:
            async with timeout:
                return await self._request(url)
        except TimeoutError:
            if not timeout.expired():
                raise
            raise FetchError(
                url,
                f"no complete answer within the {deadline:g} s request deadline (connect, headers and body)",
            ) from None

    async def _request(self, url: str) -> Page:
        assert self._client is not None
        self.requests += 1
        limit = self.policy.max_page_bytes
        async with self._client.stream("GET", url) as response:
            declared = response.headers.get("content-length")
            if declared and declared.isdigit() and int(declared) > limit:
                raise FetchError(url, f"page is {int(declared):,} bytes, over the {limit:,}-byte limit")
            chunks, size = [], 0
            async for chunk in response.aiter_bytes():
                size += len(chunk)
                if size > limit:
                    raise FetchError(url, f"page is over the {limit:,}-byte limit")
                chunks.append(chunk)
            return Page(
                requested_url=url,
                url=str(response.url),
                status=response.status_code,
                headers={k.lower(): v for k, v in response.headers.items()},
                body=b"".join(chunks),
            )
