"""A trickling server cannot hold a crawl: each request attempt has a deadline, and the host's slot is
released when it fires."""

import asyncio
import time
from dataclasses import replace

from llm_twin_assets.crawling.http import CrawlPolicy, FetchError, Page, PoliteClient
from llm_twin_assets_tests.ingest.trickle import serve_trickle


def test_a_trickling_page_fails_at_the_deadline_and_frees_its_hosts_slot(fast_policy: CrawlPolicy) -> None:
    # One byte every 0.5 s never trips the 10 s read timeout: only the whole-request deadline can stop it.
    policy = replace(fast_policy, request_deadline_s=2.0, per_host_concurrency=1)
    with serve_trickle(slow_paths=("/slow.html",)) as base:
        slow, quick = f"{base}/slow.html", f"{base}/quick.html"

        async def crawl() -> tuple[BaseException | Page, Page, float]:
            async with PoliteClient(policy) as client:
                first = asyncio.ensure_future(client.fetch(slow))
                await asyncio.sleep(0.3)  # the trickling page holds the host's only slot first
                page = await client.fetch(quick)
                finished = time.monotonic()
                return (await asyncio.gather(first, return_exceptions=True))[0], page, finished

        start = time.monotonic()
        error, page, quick_done = asyncio.run(crawl())
        elapsed = time.monotonic() - start

    assert isinstance(error, FetchError)
    assert str(error).startswith(slow) and "2 s request deadline" in str(error)
    assert page.status == 200 and b"This host answers its other pages at once." in page.body
    deadline, trickle = policy.request_deadline_s, 30.0  # the trickle would go on for serve_trickle's limit_s
    # it waited for the slot, which the deadline gave back: well before the trickle would have
    assert deadline <= quick_done - start < trickle / 3
    assert elapsed < trickle / 3


def test_the_deadline_is_on_by_default() -> None:
    assert 0 < CrawlPolicy().request_deadline_s <= 60
