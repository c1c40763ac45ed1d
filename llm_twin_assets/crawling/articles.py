"""Articles (and public posts): any web page, main content extracted with trafilatura.

A page is fetched politely; when its static HTML yields too little text (a JavaScript app) it is
rendered in Chromium and extracted again. Anti-bot interstitials ("Just a moment...") and login walls,
common on Medium and Substack, fall back to the site's RSS feed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal

import trafilatura

from llm_twin_assets.crawling.documents import canonical_url, same_site
from llm_twin_assets.crawling.feeds import (
    candidate_feeds,
    entry_for,
    looks_like_feed,
    markdown_as_shown,
    parse_feed,
)
from llm_twin_assets.crawling.http import FetchError, Page, PoliteClient
from llm_twin_assets.crawling.layout import plain_layout
from llm_twin_assets.crawling.render import Renderer
from llm_twin_assets.records import CrawledDocument, Kind

RenderMode = Literal["auto", "always", "never"]
HTML_TYPES = ("text/html", "application/xhtml+xml", "")
TEXT_TYPES = ("text/plain", "text/markdown", "text/x-markdown")
_CHALLENGE = re.compile(
    r"just a moment\.\.\.|cf-chl|challenge-platform|cf_chl_opt|checking your browser|"
    r"attention required! \| cloudflare|enable javascript and cookies to continue|ddos-guard",
    re.IGNORECASE,
)
_LOGIN_WALL = re.compile(
    r"sign in to (continue|read)|log in to (continue|read)|member-only story|"
    r"this post is for paid subscribers|subscribe to (continue|keep) reading|create an account to read",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class ArticleOptions:
    render: RenderMode = "auto"
    min_chars: int = 200  # less than this after rendering: no readable main content


def is_interstitial(page: Page) -> bool:
    head = page.body[:20_000].decode("utf-8", errors="replace")
    if not _CHALLENGE.search(head):
        return False
    # A challenge status, or a small page that is nothing but the challenge.
    return page.status in (403, 429, 503) or len(page.body) < 15_000


@dataclass
class Extracted:
    text: str
    title: str | None
    date: str | None
    url: str | None


def extract(html: str, url: str) -> Extracted | None:
    """The page's main content as Markdown text (the page's own text exactly as it shows, with the
    page's structure marked: headings, lists, emphasis, code, tables), and its metadata."""
    tree = plain_layout(html)  # layout tables unwrapped, listings as code without their line numbers
    doc: Any = trafilatura.bare_extraction(
        html if tree is None else tree,
        url=url,
        with_metadata=True,
        include_formatting=True,
        include_tables=True,
        output_format="markdown",  # serialized below, without trafilatura's escapes
    )
    text = markdown_as_shown(doc.body).strip() if doc is not None else ""
    if not text:
        return None
    return Extracted(text=text, title=doc.title, date=doc.date, url=doc.url)


def _binary(page: Page) -> bool:
    return b"\x00" in page.body[:4096]


async def crawl_article(
    url: str, kind: Kind, client: PoliteClient, renderer: Renderer, options: ArticleOptions
) -> list[CrawledDocument]:
    try:
        page = await client.fetch(url)
    except FetchError as exc:
        if exc.page is not None and is_interstitial(exc.page):
            return [await _from_feed(url, kind, client, exc.page, "anti-bot interstitial")]
        raise
    if looks_like_feed(page):
        documents = parse_feed(page, kind, url)
        if not documents:
            raise FetchError(url, "a feed with no entries from its own site")
        return documents
    if _binary(page) or (page.content_type not in HTML_TYPES and page.content_type not in TEXT_TYPES):
        raise FetchError(
            url, f"binary or non-text content ({page.content_type or 'unknown type'}), not an article"
        )
    if page.content_type in TEXT_TYPES:
        return [_text_file(url, kind, page)]
    if is_interstitial(page):
        return [await _from_feed(url, kind, client, page, "anti-bot interstitial")]

    html, rendered = page.text, False
    found = extract(html, page.url) if options.render != "always" else None
    if options.render == "always" or (options.render == "auto" and _needs_rendering(found, options)):
        html, rendered = await renderer.render(page), True
        found = extract(html, page.url)
    if (
        found is not None
        and _LOGIN_WALL.search(found.text[:2000])
        and len(found.text) < 3 * options.min_chars
    ):
        return [await _from_feed(url, kind, client, page, "login wall")]
    if found is None or len(found.text) < options.min_chars:
        size = 0 if found is None else len(found.text)
        raise FetchError(
            url,
            f"no readable main content ({size} characters after {'rendering' if rendered else 'extraction'})",
        )
    return [_page_document(url, kind, page, found, rendered)]


def _text_file(url: str, kind: Kind, page: Page) -> CrawledDocument:
    """A plain-text or Markdown file, as it is."""
    text = page.text.strip()
    if not text:
        raise FetchError(url, "empty text file")
    return CrawledDocument(
        url=canonical_url(page.url),
        kind=kind,
        content=text,
        source_link=url,
        metadata={"via": "text", "status": page.status},
    )


def _page_document(url: str, kind: Kind, page: Page, found: Extracted, rendered: bool) -> CrawledDocument:
    # A page may name its canonical URL, but only on its own site: never trust it to claim another's.
    canonical = found.url if found.url and same_site(found.url, page.url) else page.url
    return CrawledDocument(
        url=canonical_url(canonical),
        kind=kind,
        content=found.text,
        source_link=url,
        title=found.title,
        published_at=found.date,
        metadata={
            "via": "render" if rendered else "html",
            "status": page.status,
            "fetched_url": page.url,
            "redirects": page.redirects,
            "attempts": page.attempts,
        },
    )


def _needs_rendering(found: Extracted | None, options: ArticleOptions) -> bool:
    return found is None or len(found.text) < options.min_chars


async def _from_feed(url: str, kind: Kind, client: PoliteClient, page: Page, why: str) -> CrawledDocument:
    tried = []
    for feed_url in candidate_feeds(url, page.text if page.content_type in HTML_TYPES else None):
        tried.append(feed_url)
        try:
            feed = await client.fetch(feed_url)
        except FetchError:
            continue
        if not looks_like_feed(feed):
            continue
        document = entry_for(feed, url, kind, url)
        if document is not None:
            document.metadata.update({"fallback_reason": why})
            return document
    raise FetchError(url, f"{why}, and no feed holds this article (tried {', '.join(tried)})")
