"""Chooses a crawler per link and crawls an author's links concurrently (politely per host)."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from llm_twin_assets.crawling.articles import ArticleOptions, crawl_article
from llm_twin_assets.crawling.folders import read_drafts
from llm_twin_assets.crawling.http import CrawlPolicy, PoliteClient
from llm_twin_assets.crawling.links import LinksFile
from llm_twin_assets.crawling.posts import read_linkedin_export
from llm_twin_assets.crawling.render import Renderer
from llm_twin_assets.crawling.repositories import RepoOptions, crawl_repository
from llm_twin_assets.errors import TwinError
from llm_twin_assets.records import CrawledDocument, CrawlOutcome, Kind, LinkFailure

GIT_HOSTS = ("github.com", "gitlab.com", "bitbucket.org", "codeberg.org", "git.sr.ht")


@dataclass(frozen=True)
class CrawlOptions:
    policy: CrawlPolicy = field(default_factory=CrawlPolicy)
    article: ArticleOptions = field(default_factory=ArticleOptions)
    repository: RepoOptions = field(default_factory=RepoOptions)
    render_pages: int = 2


def infer_kind(url: str) -> Kind:
    """article | post | repository, from the shape of the link."""
    parts = urlsplit(url)
    if parts.scheme in ("http", "https"):
        host = (parts.hostname or "").lower().removeprefix("www.")
        segments = [s for s in parts.path.split("/") if s]
        if parts.path.endswith(".git") or (host in GIT_HOSTS and len(segments) == 2):
            return "repository"
        if host.endswith("linkedin.com") and segments[:1] in (["posts"], ["feed"]):
            return "post"
        if host in ("x.com", "twitter.com", "mastodon.social", "bsky.app", "threads.net"):
            return "post"
        return "article"
    if parts.scheme == "git":
        return "repository"
    path = Path(parts.path if parts.scheme == "file" else url)
    if path.suffix.lower() == ".csv":
        return "post"
    if (path / ".git").exists() or path.suffix == ".git":
        return "repository"
    return "article"


async def _crawl_link(
    url: str, kind: Kind, client: PoliteClient, renderer: Renderer, options: CrawlOptions
) -> list[CrawledDocument]:
    scheme = urlsplit(url).scheme
    if kind == "repository":
        return [await asyncio.to_thread(crawl_repository, url, url, client.guard, options.repository)]
    if scheme in ("http", "https"):
        return await crawl_article(url, kind, client, renderer, options.article)
    local = Path(urlsplit(url).path) if scheme == "file" else Path(url)
    if local.suffix.lower() == ".csv":
        return await asyncio.to_thread(read_linkedin_export, local, url)
    return await asyncio.to_thread(read_drafts, local, kind, url)


def _fullness(document: CrawledDocument) -> tuple[bool, int]:
    return (document.metadata.get("via") != "feed", len(document.content))


async def crawl_links(links: LinksFile, options: CrawlOptions) -> CrawlOutcome:
    """Every link of the author, concurrently; one failing link never fails the others."""
    outcome = CrawlOutcome()
    async with PoliteClient(options.policy) as client:
        renderer = Renderer(client, pages=options.render_pages, timeout_s=options.policy.read_timeout_s)
        try:
            jobs = []
            for link in links.author.links:
                url = links.resolve(link)
                kind = link.kind or infer_kind(url)
                jobs.append((url, kind, _crawl_link(url, kind, client, renderer, options)))
            results = await asyncio.gather(*(job for _, _, job in jobs), return_exceptions=True)
        finally:
            await renderer.close()
        chosen: dict[str, CrawledDocument] = {}
        for (url, kind, _), result in zip(jobs, results, strict=True):
            if isinstance(result, BaseException):
                if not isinstance(result, (TwinError, OSError, TimeoutError)):
                    # A bug or an unexpected library error: say what it was, keep the other links.
                    message = f"{url}: {type(result).__name__}: {result}"
                else:
                    message = str(result) if str(result).startswith(url) else f"{url}: {result}"
                outcome.failures.append(LinkFailure(link=url, kind=kind, error=message))
                continue
            outcome.crawled_links.add(url)
            for document in result:
                # The same page reached twice (its own URL and a feed): keep the fuller version.
                current = chosen.get(document.url)
                if current is None or _fullness(document) > _fullness(current):
                    chosen[document.url] = document
        outcome.documents = list(chosen.values())
        outcome.stats = {"requests": client.requests, "rendered": renderer.rendered}
    return outcome


def crawl(links: LinksFile, options: CrawlOptions | None = None) -> CrawlOutcome:
    start = time.perf_counter()
    outcome = asyncio.run(crawl_links(links, options or CrawlOptions()))
    outcome.stats["seconds"] = round(time.perf_counter() - start, 2)
    return outcome
