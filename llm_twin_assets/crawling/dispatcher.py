"""Chooses a crawler per link and crawls an author's links concurrently (politely per host).

Besides the documents, the outcome says which failed links are gone for good (HTTP 404/410, a
missing local file or folder) and which links answered with every document they hold (a drafts
folder, a LinkedIn export, an article page or a repository: their one document; never a feed, which
shows only its newest entries), so the store can tell a removed source from a passing failure.

Links are known by their identity (:func:`~llm_twin_assets.crawling.documents.link_identity`): the
documents' ``source_link``, the failures and the answered links all name it, so the same source spelled
another way (a relative path, its absolute path, ``file://``, a symlinked folder; a host in capitals, a
default port) is the same link, crawled once.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from llm_twin_assets.crawling.articles import ArticleOptions, crawl_article
from llm_twin_assets.crawling.documents import link_identity
from llm_twin_assets.crawling.folders import EmptyFolder, read_drafts
from llm_twin_assets.crawling.http import CrawlPolicy, FetchError, PoliteClient
from llm_twin_assets.crawling.links import LinksFile, local_path
from llm_twin_assets.crawling.posts import read_linkedin_export
from llm_twin_assets.crawling.render import Renderer
from llm_twin_assets.crawling.repositories import RepoOptions, crawl_repository
from llm_twin_assets.crawling.safety import EXPORT_SUFFIXES, LocalPathMissing, LocalRoots
from llm_twin_assets.errors import TwinError
from llm_twin_assets.records import CrawledDocument, CrawlOutcome, Kind, LinkFailure

GIT_HOSTS = ("github.com", "gitlab.com", "bitbucket.org", "codeberg.org", "git.sr.ht")
GONE_STATUSES = frozenset({404, 410})


@dataclass(frozen=True)
class CrawlOptions:
    policy: CrawlPolicy = field(default_factory=CrawlPolicy)
    article: ArticleOptions = field(default_factory=ArticleOptions)
    repository: RepoOptions = field(default_factory=RepoOptions)
    render_pages: int = 2
    local_roots: Sequence[Path] | None = None
    """Folders local links may name, besides the links file's own folder (the authors folder);
    None = the settings' authors folder and ``LLM_TWIN_LOCAL_ROOTS``, read when the crawl starts."""


def local_roots(links: LinksFile, options: CrawlOptions) -> LocalRoots:
    """Where this crawl may read local files: the authors folder (the links file lives there) and
    the configured roots."""
    folders = options.local_roots
    if folders is None:
        from llm_twin_assets.settings import get_settings

        settings = get_settings()
        folders = settings.readable_folders
    return LocalRoots.of([links.path.parent, *folders])


def link_identities(links: LinksFile) -> list[str]:
    """The identity of every link of the file, in order (a source named twice appears twice)."""
    return [link_identity(links.resolve(link)) for link in links.author.links]


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
    path = local_path(url) or Path(parts.path)
    if path.suffix.lower() in EXPORT_SUFFIXES:
        return "post"
    if (path / ".git").exists() or path.suffix == ".git":
        return "repository"
    return "article"


async def _crawl_link(
    url: str,
    identity: str,
    kind: Kind,
    client: PoliteClient,
    renderer: Renderer,
    roots: LocalRoots,
    options: CrawlOptions,
) -> tuple[list[CrawledDocument], bool]:
    """The link's documents (each naming the link by its identity), and whether they are every
    document the link holds. ``url`` is read as written (a local path's own name is checked too)."""
    documents, complete = await _read_link(url, kind, client, renderer, roots, options)
    for document in documents:
        document.source_link = identity
    return documents, complete


async def _read_link(
    url: str, kind: Kind, client: PoliteClient, renderer: Renderer, roots: LocalRoots, options: CrawlOptions
) -> tuple[list[CrawledDocument], bool]:
    scheme = urlsplit(url).scheme
    if kind == "repository" or scheme == "git":
        document = await asyncio.to_thread(
            crawl_repository, url, url, client.guard, options.repository, roots=roots
        )
        return [document], True
    if scheme in ("http", "https"):
        # A page is its one document (a stored row under an old canonical URL is superseded); a feed
        # shows only its newest entries, so its listing is never complete.
        documents = await crawl_article(url, kind, client, renderer, options.article)
        return documents, not any(_listed_by_feed(d) for d in documents)
    local = local_path(url)
    assert local is not None, url  # links.py allows no other scheme
    if local.suffix.lower() in EXPORT_SUFFIXES:
        return await asyncio.to_thread(read_linkedin_export, local, url, roots=roots), True
    return await asyncio.to_thread(read_drafts, local, kind, url, roots=roots), True


def _listed_by_feed(document: CrawledDocument) -> bool:
    """An entry a feed link listed (an article that fell back to its site's feed is still that page)."""
    return document.metadata.get("via") == "feed" and "fallback_reason" not in document.metadata


def is_gone(error: BaseException) -> bool:
    """The source says the link is gone for good (not a passing failure)."""
    if isinstance(error, FetchError):
        return error.status in GONE_STATUSES
    return isinstance(error, LocalPathMissing)


def _fullness(document: CrawledDocument) -> tuple[bool, int]:
    return (document.metadata.get("via") != "feed", len(document.content))


OnLink = Callable[[str, list[CrawledDocument]], None]
"""Called with a link and its documents as soon as that link is crawled (the crawl goes on meanwhile)."""


async def _reported(
    url: str, job: Awaitable[tuple[list[CrawledDocument], bool]], on_link: OnLink, broken: list[BaseException]
) -> tuple[list[CrawledDocument], bool]:
    result = await job
    if not broken:
        try:
            on_link(url, result[0])
        except Exception as exc:  # not the link's failure: the crawl's, raised once every link is done
            broken.append(exc)
    return result


async def crawl_links(links: LinksFile, options: CrawlOptions, on_link: OnLink | None = None) -> CrawlOutcome:
    """Every link of the author, concurrently; one failing link never fails the others. ``on_link``
    sees each link's documents as soon as it is crawled, so a crawl cut short keeps what it found (an
    error it raises stops the calls and is raised when the crawl ends)."""
    outcome = CrawlOutcome()
    roots = local_roots(links, options)
    broken: list[BaseException] = []
    async with PoliteClient(options.policy) as client:
        renderer = Renderer(client, pages=options.render_pages, timeout_s=options.policy.read_timeout_s)
        try:
            jobs = []
            seen: set[str] = set()
            for link in links.author.links:
                url = links.resolve(link)
                identity = link_identity(url)
                if identity in seen:  # the same source spelled twice: crawled once
                    continue
                seen.add(identity)
                kind = link.kind or infer_kind(url)
                job = _crawl_link(url, identity, kind, client, renderer, roots, options)
                jobs.append(
                    (
                        url,
                        identity,
                        kind,
                        job if on_link is None else _reported(identity, job, on_link, broken),
                    )
                )
            results = await asyncio.gather(*(job for *_, job in jobs), return_exceptions=True)
        finally:
            await renderer.close()
        if broken:
            raise broken[0]
        chosen: dict[str, CrawledDocument] = {}
        for (url, identity, kind, _), result in zip(jobs, results, strict=True):
            if isinstance(result, BaseException):
                if not isinstance(result, (TwinError, OSError, TimeoutError)):
                    # A bug or an unexpected library error: say what it was, keep the other links.
                    message = f"{url}: {type(result).__name__}: {result}"
                else:
                    message = str(result) if str(result).startswith(url) else f"{url}: {result}"
                outcome.failures.append(
                    LinkFailure(link=identity, kind=kind, error=message, gone=is_gone(result))
                )
                if isinstance(result, EmptyFolder):  # it answered: with nothing, completely
                    outcome.complete_links.add(identity)
                continue
            documents, complete = result
            outcome.crawled_links.add(identity)
            if complete:
                outcome.complete_links.add(identity)
            for document in documents:
                # The same page reached twice (its own URL and a feed): keep the fuller version.
                current = chosen.get(document.url)
                if current is None or _fullness(document) > _fullness(current):
                    chosen[document.url] = document
        outcome.documents = list(chosen.values())
        outcome.stats = {"requests": client.requests, "rendered": renderer.rendered}
    return outcome


def crawl(
    links: LinksFile, options: CrawlOptions | None = None, on_link: OnLink | None = None
) -> CrawlOutcome:
    start = time.perf_counter()
    outcome = asyncio.run(crawl_links(links, options or CrawlOptions(), on_link))
    outcome.stats["seconds"] = round(time.perf_counter() - start, 2)
    return outcome
