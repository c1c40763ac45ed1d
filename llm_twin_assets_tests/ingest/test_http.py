"""The polite, guarded client against the fixture site."""

import asyncio
import time
from dataclasses import replace

import pytest

from llm_twin_assets.crawling.http import CrawlPolicy, FetchError, Page, PoliteClient
from llm_twin_assets.crawling.safety import BlockedAddress, refusal
from llm_twin_assets_tests.ingest.site import serve_site


def fetch_all(policy: CrawlPolicy, urls: list[str]) -> list[Page | BaseException]:
    async def run() -> list[Page | BaseException]:
        async with PoliteClient(policy) as client:
            return list(await asyncio.gather(*(client.fetch(u) for u in urls), return_exceptions=True))

    return asyncio.run(run())


def test_a_429_is_retried_after_the_time_the_server_asks(site, fast_policy) -> None:  # type: ignore[no-untyped-def]
    base, state = site
    start = time.monotonic()
    [page] = fetch_all(fast_policy, [f"{base}/flaky.html"])
    assert isinstance(page, Page) and page.status == 200 and page.attempts == 2
    assert time.monotonic() - start >= 1.0  # Retry-After: 1
    assert state.flaky_hits == 2


def test_server_errors_are_retried_with_backoff_then_reported(site, fast_policy) -> None:  # type: ignore[no-untyped-def]
    base, state = site
    [error] = fetch_all(replace(fast_policy, max_retries=2), [f"{base}/error.html"])
    assert isinstance(error, FetchError) and error.status == 500
    assert state.requests.count("/error.html") == 3  # one try and two retries


def test_a_retry_after_longer_than_we_wait_fails_clearly(fast_policy) -> None:  # type: ignore[no-untyped-def]
    client = PoliteClient(replace(fast_policy, max_backoff_s=0.5))
    with pytest.raises(FetchError, match="retry after 1 s"):
        client._backoff(1, 1.0, "http://x/")


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("/loop-a", "redirect loop"),
        ("/huge.html", "over the 200,000-byte limit"),
        ("/drafts/secret.html", "disallowed by robots.txt"),
        ("/nope.html", "HTTP 404"),
    ],
)
def test_bad_pages_fail_with_the_url_and_the_reason(site, fast_policy, path: str, message: str) -> None:  # type: ignore[no-untyped-def]
    base, state = site
    [error] = fetch_all(fast_policy, [f"{base}{path}"])
    assert isinstance(error, FetchError)
    assert str(error).startswith(f"{base}{path}") and message in str(error)
    if "robots" in message:
        assert "/drafts/secret.html" not in state.requests  # never even asked


def test_one_host_is_fetched_with_a_minimum_delay_while_hosts_run_in_parallel(fast_policy) -> None:  # type: ignore[no-untyped-def]
    policy = replace(fast_policy, min_delay_s=0.4)
    pages_of = ("/blog/small-machines.html", "/blog/boring-postgres.html", "/feed.xml")

    def timed(urls: list[str]) -> float:
        start = time.monotonic()
        pages = fetch_all(policy, urls)
        assert all(isinstance(p, Page) for p in pages)
        return time.monotonic() - start

    with serve_site("127.0.0.1") as (a, _), serve_site("127.0.0.2") as (b, _):
        one_host = timed([f"{a}{p}" for p in pages_of])
        two_hosts = timed([f"{h}{p}" for h in (a, b) for p in pages_of])
    # robots.txt + 3 pages per host: 3 gaps of 0.4 s on each host, at least, however fast the machine
    assert one_host >= 1.2
    # the two hosts overlap: two hosts take about as long as one, not twice as long (a ratio, not a
    # wall-clock bound: a loaded machine slows both runs)
    assert two_hosts < 1.5 * one_host


@pytest.mark.parametrize(
    ("address", "blocked"),
    [
        ("127.0.0.1", True),
        ("10.1.2.3", True),
        ("172.16.0.9", True),
        ("192.168.1.1", True),
        ("169.254.169.254", True),
        ("::1", True),
        ("fe80::1", True),
        ("fd00:ec2::254", True),
        ("::ffff:127.0.0.1", True),
        ("0.0.0.0", True),
        ("224.0.0.1", True),
        ("100.64.0.1", True),
        ("93.184.216.34", False),
        ("2606:4700::1111", False),
    ],
)
def test_the_guard_refuses_internal_addresses(address: str, blocked: bool) -> None:
    assert (refusal(address) is not None) is blocked


def test_the_guard_blocks_loopback_unless_private_networks_are_allowed(site, fast_policy) -> None:  # type: ignore[no-untyped-def]
    base, state = site
    host = base.replace("127.0.0.1", "localhost")  # a name, resolved by the guard
    [error] = fetch_all(
        replace(fast_policy, allow_private_networks=False), [f"{host}/blog/small-machines.html"]
    )
    assert isinstance(error, BlockedAddress) and "loopback" in str(error)
    assert state.requests == []  # not a single byte reached the server
    [page] = fetch_all(fast_policy, [f"{host}/blog/small-machines.html"])
    assert isinstance(page, Page) and page.status == 200


def test_only_http_and_https_are_fetched(fast_policy) -> None:  # type: ignore[no-untyped-def]
    [error] = fetch_all(fast_policy, ["file:///etc/passwd"])
    assert "only http and https" in str(error)
