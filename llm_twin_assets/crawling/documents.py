"""What crawlers return: documents, and the links that failed (with why)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from llm_twin_assets.crawling.links import Kind

_TRACKING = ("utm_", "fbclid", "gclid", "mc_cid", "mc_eid", "ref_src", "source")


@dataclass
class CrawledDocument:
    url: str  # canonical: the row's identity
    kind: Kind
    content: str
    source_link: str  # the links-file entry it came from
    title: str | None = None
    published_at: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass
class LinkFailure:
    link: str
    kind: str | None
    error: str


@dataclass
class CrawlOutcome:
    documents: list[CrawledDocument] = field(default_factory=list)
    failures: list[LinkFailure] = field(default_factory=list)
    crawled_links: set[str] = field(default_factory=set)  # links that produced an answer
    stats: dict[str, Any] = field(default_factory=dict)


def canonical_url(url: str) -> str:
    """Lower-case scheme and host, no fragment, no tracking parameters, no trailing slash."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https"):
        return url.strip()
    query = urlencode(
        [
            (k, v)
            for k, v in parse_qsl(parts.query, keep_blank_values=True)
            if not k.lower().startswith(_TRACKING)
        ]
    )
    path = parts.path.rstrip("/") or "/"
    netloc = parts.netloc.lower()
    for default in (":80", ":443"):
        if netloc.endswith(default) and (parts.scheme, default) in (("http", ":80"), ("https", ":443")):
            netloc = netloc[: -len(default)]
    return urlunsplit((parts.scheme.lower(), netloc, path, query, ""))


def _host_port(url: str) -> tuple[str, int | None]:
    parts = urlsplit(url)
    default = {"http": 80, "https": 443}.get(parts.scheme)
    return (parts.hostname or "").lower(), parts.port or default


def same_site(a: str, b: str) -> bool:
    """True when the hosts are equal or one is a subdomain of the other, on the same port.

    http and https count as one site (a canonical URL often upgrades the scheme)."""
    (ha, pa), (hb, pb) = _host_port(a), _host_port(b)
    if not ha or not hb:
        return False
    if pa != pb and {pa, pb} != {80, 443}:
        return False
    return ha == hb or ha.endswith("." + hb) or hb.endswith("." + ha)
