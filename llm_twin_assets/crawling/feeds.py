"""RSS/Atom feeds: a source of their own, and the fallback when a page hides behind a wall."""

from __future__ import annotations

import re
import unicodedata
from copy import deepcopy
from typing import Any
from urllib.parse import urljoin, urlsplit

import feedparser
import trafilatura
from trafilatura.xml import xmltotxt

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


# What trafilatura's Markdown serializer escapes or rewrites in a page's text: CommonMark inline
# markers (``* _ ` ~ [ ] <``, doubling backslashes before them), block markers at the start of a
# paragraph (``# > - +``, ``1.``, ``1)``), table pipes, ``\(x\)`` and ``\[x\]`` (rewritten as ``$`` math),
# ``&`` (it HTML-unescapes its whole output, so a page that shows ``&amp;`` would lose it) and U+2424
# (its own paragraph mark, deleted from the output).
_AS_SHOWN = "\\*_`~[]<>#-+.)|&\u2424"
_EMPTY_LINE = re.compile(r"(?<=\n)(?=\n)")


def _is_code(element: Any) -> bool:
    return bool(element.tag == "code" or (element.tag == "hi" and element.get("rend") == "#t"))


def markdown_as_shown(body: Any) -> str:
    """Trafilatura's Markdown for an extracted tree, without the escapes it adds to the page's text.

    Its serializer backslash-escapes the characters of the text that Markdown could misread
    (``MAX_RETRIES`` becomes ``MAX\\_RETRIES``, ``<path>`` becomes ``\\<path>``). Each such character of
    the page's own text is swapped here for a stand-in the serializer leaves alone (an ideograph the
    page does not use) and swapped back afterwards, so the text reads exactly as the page shows it,
    backslashes the page shows included; only the Markdown for the page's structure (headings,
    lists, emphasis, code, tables) is added. The serializer also drops every empty line, those of a code
    block included; each empty line in code holds one more stand-in through it and reads empty again.
    """
    if body is None:
        return ""
    tree = deepcopy(body)
    seen = "".join(tree.itertext()) + "".join(
        g.get("alt", "") + g.get("title", "") for g in tree.iter("graphic")
    )
    base = 0x20000  # CJK Extension B: printable (the serializer drops unprintable characters), NFC-stable
    while any(chr(base + i) in seen for i in range(len(_AS_SHOWN) + 1)):
        base += len(_AS_SHOWN) + 1
    swap = {ord(ch): chr(base + i) for i, ch in enumerate(_AS_SHOWN)}
    empty_line = chr(base + len(_AS_SHOWN))
    # Backticks in code stay: the serializer sizes code fences on them (and escapes nothing in code).
    swap_in_code = {k: v for k, v in swap.items() if k != ord("`")}

    def protect(element: Any, in_code: bool) -> None:
        in_code = in_code or _is_code(element)
        table = swap_in_code if in_code else swap

        def shown(text: str) -> str:
            text = text.translate(table)
            return _EMPTY_LINE.sub(empty_line, text) if in_code else text

        if element.text:
            element.text = shown(element.text)
        if element.tag == "graphic":  # alt and title become the image's Markdown text
            for name in ("alt", "title"):
                if element.get(name):
                    element.set(name, element.get(name).translate(table))
        for child in element:
            protect(child, in_code)
            if child.tail:  # text after the child, inside this element
                child.tail = shown(child.tail)

    protect(tree, False)
    text = xmltotxt(tree, include_formatting=True)
    return text.translate({ord(v): k for k, v in swap.items()} | {ord(empty_line): None})


def html_fragment_to_text(fragment: str) -> str:
    """A feed entry's HTML as text, the way the article extractor gives a page (Markdown structure,
    the entry's text exactly as it shows)."""
    doc: Any = trafilatura.bare_extraction(
        f"<html><body><article>{fragment}</article></body></html>",
        output_format="markdown",
        include_formatting=True,
        favor_recall=True,
    )
    if doc is None:
        return ""
    text = markdown_as_shown(doc.body)
    if doc.commentsbody is not None:
        text = f"{text}\n{markdown_as_shown(doc.commentsbody)}"
    return unicodedata.normalize("NFC", text).strip()


def _web_link(url: str) -> bool:
    """An http(s) URL with a host, as a browser reads it (control characters and whitespace dropped)."""
    cleaned = "".join(ch for ch in url if ch > " " and ch != "\x7f")
    try:
        parts = urlsplit(cleaned)
    except ValueError:
        return False
    return parts.scheme.lower() in ("http", "https") and bool(parts.netloc)


def parse_feed(page: Page, kind: Kind, source_link: str) -> list[CrawledDocument]:
    """Every entry of a feed on the feed's own site, as documents (content from the feed itself)."""
    parsed = feedparser.parse(page.body, response_headers={"content-location": page.url})
    documents = []
    for entry in parsed.entries:
        link = entry.get("link")
        if not link or not same_site(urljoin(page.url, link), page.url):
            continue  # a feed may only speak for its own site
        if not _web_link(urljoin(page.url, link)):
            continue  # javascript:, data:, vbscript:… (however spelled) never become a document's URL
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
