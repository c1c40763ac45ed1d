"""Rendering pages in headless Chromium (Playwright, the system browser), with no direct network.

Every request the page makes is intercepted: the document is served from the response we already
fetched politely, scripts and data requests go through the same guarded client (SSRF guard, size
limit), and images, media, fonts, styles and sub-frames are never fetched.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
from typing import Any

from llm_twin_assets.crawling.http import Page, PoliteClient
from llm_twin_assets.errors import ConfigError

_SKIPPED = frozenset(
    {
        "image",
        "media",
        "font",
        "stylesheet",
        "websocket",
        "manifest",
        "eventsource",
        "texttrack",
        "beacon",
        "ping",
        "cspreport",
    }
)
CHROMIUM_ARGS = [
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
    "--disable-dev-shm-usage",
]


def chromium_path() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        raise ConfigError(
            "chromium",
            "the system Chromium is not installed (Playwright needs it)",
            "run `make install` (it runs apt-get install -y chromium)",
        )
    return path


class Renderer:
    """One browser for a crawl, launched on first use; at most ``pages`` rendered at once."""

    def __init__(self, client: PoliteClient, *, pages: int = 2, timeout_s: float = 20.0) -> None:
        self.client = client
        self.timeout_ms = timeout_s * 1000
        self._pages = asyncio.Semaphore(pages)
        self._launch = asyncio.Lock()
        self._playwright: Any = None
        self._browser: Any = None
        self._context: Any = None
        self.rendered = 0

    async def _ensure_browser(self) -> Any:
        async with self._launch:
            if self._context is None:
                from playwright.async_api import async_playwright

                self._playwright = await async_playwright().start()
                self._browser = await self._playwright.chromium.launch(
                    executable_path=chromium_path(), headless=True, args=CHROMIUM_ARGS
                )
                self._context = await self._browser.new_context(
                    user_agent=self.client.policy.user_agent, service_workers="block", accept_downloads=False
                )
        return self._context

    async def render(self, page: Page) -> str:
        """The DOM after scripts ran, for a page we already fetched."""
        context = await self._ensure_browser()
        async with self._pages:
            tab = await context.new_page()
            try:
                await tab.route("**/*", lambda route: self._serve(route, page))
                await tab.goto(page.url, wait_until="load", timeout=self.timeout_ms)
                with contextlib.suppress(Exception):
                    await tab.wait_for_load_state("networkidle", timeout=min(5000, self.timeout_ms))
                self.rendered += 1
                return str(await tab.content())
            finally:
                await tab.close()

    async def _serve(self, route: Any, page: Page) -> None:
        request = route.request
        if request.is_navigation_request():
            if request.frame.parent_frame is None and request.url == page.url:
                headers = {"content-type": page.headers.get("content-type", "text/html; charset=utf-8")}
                await route.fulfill(status=200, headers=headers, body=page.body)
            else:
                await route.abort()  # no sub-frames, no navigating away
            return
        if request.resource_type in _SKIPPED or request.method != "GET":
            await route.abort()
            return
        try:
            resource = await self.client.fetch_resource(request.url)
        except Exception:
            await route.abort()
            return
        headers = {
            k: v
            for k, v in resource.headers.items()
            if k in ("content-type", "cache-control", "access-control-allow-origin")
        }
        await route.fulfill(status=resource.status, headers=headers, body=resource.body)

    async def close(self) -> None:
        if self._browser is not None:
            await self._browser.close()
        if self._playwright is not None:
            await self._playwright.stop()
