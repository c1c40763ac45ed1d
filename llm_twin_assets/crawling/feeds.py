"""RSS/Atom feeds: a source of their own, and the fallback when a page hides behind a wall."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urljoin, urlsplit

import feedparser
import trafilatura

from llm_twin_assets.crawling.documents import canonical_url, same_site
from llm_twin_assets.crawling.http import Page
from llm_twin_assets.records import CrawledDocument, Kind

FEED_TYPES = (
    "application/rss+xml",
    "application/atom+xml",
    "application/feed+json",
    "application/xml",
    "text/xml",
)
_ALTERNATE = re.compile(r"<link[^>]+rel=[\"']?alternate[\"']?[^>]*>", re.IGNORECASE)
_HREF = re.compile(r"href=[\"']([^\"']+)[\"']", re.IGNORECASE)
_TYPE = re.compile(r"type=[\"']([^\"']+)[\"']", re.IGNORECASE)


def looks_like_feed(page: Page) -> bool:
    if page.content_type in ("application/rss+xml", "application/atom+xml"):
        return True
    head = page.body[:2048].lstrip().lower()
    return page.content_type in ("application/xml", "text/xml", "") and (b"<rss" in head or b"<feed" in head)


def candidate_feeds(url: str, html: str | None = None) -> list[str]:
    """Where the feed of the site holding ``url`` probably is, most specific first."""
    parts = urlsplit(url)
    origin = f"{parts.scheme}://{parts.netloc}"
    host = (parts.hostname or "").lower()
    found: list[str] = []
    if host == "medium.com" or host.endswith(".medium.com"):
        segments = [s for s in parts.path.split("/") if s]
        if host == "medium.com" and segments and segments[0].startswith("@"):
            found.append(f"{origin}/feed/{segments[0]}")
        elif host == "medium.com" and segments:
            found.append(f"{origin}/feed/{segments[0]}")  # a publication
        else:
            found.append(f"{origin}/feed")
    if host.endswith(".substack.com"):
        found.append(f"{origin}/feed")
    for tag in _ALTERNATE.findall(html or ""):
        kind, href = _TYPE.search(tag), _HREF.search(tag)
        if kind and href and kind.group(1).lower() in FEED_TYPES:
            found.append(urljoin(url, href.group(1)))
    found += [f"{origin}/{path}" for path in ("feed", "rss.xml", "feed.xml", "atom.xml", "index.xml")]
    return list(dict.fromkeys(found))


def _entry_html(entry: Any) -> str:
    if entry.get("content"):
        return str(entry["content"][0].get("value", ""))
    return str(entry.get("summary", ""))


def html_fragment_to_text(fragment: str) -> str:
    text = trafilatura.extract(
        f"<html><body><article>{fragment}</article></body></html>",
        output_format="markdown",
        include_formatting=True,
        favor_recall=True,
    )
    return (text or "").strip()


def parse_feed(page: Page, kind: Kind, source_link: str) -> list[CrawledDocument]:
    """Every entry of a feed on the feed's own site, as documents (content from the feed itself)."""
    parsed = feedparser.parse(page.body, response_headers={"content-location": page.url})
    documents = []
    for entry in parsed.entries:
        link = entry.get("link")
        if not link or not same_site(urljoin(page.url, link), page.url):
            continue  # a feed may only speak for its own site
        text = html_fragment_to_text(_entry_html(entry))
        if not text:
            continue
        documents.append(
            CrawledDocument(
                url=canonical_url(urljoin(page.url, link)),
                kind=kind,
                content=text,
                source_link=source_link,
                title=entry.get("title"),
                published_at=entry.get("published") or entry.get("updated"),
                metadata={"via": "feed", "feed": page.url},
            )
        )
    return documents


def entry_for(page: Page, url: str, kind: Kind, source_link: str) -> CrawledDocument | None:
    """The entry of a feed that is the article at ``url``, if the feed holds it."""
    wanted = canonical_url(url)
    for document in parse_feed(page, kind, source_link):
        if document.url == wanted:
            return document
    return None
