"""The ``raw_documents`` stage: crawl an author's links and store one row per source URL.

Each link's new documents are stored as soon as the link is crawled (:class:`StoreAsFound`), so a run cut
short (killed, timed out) keeps what it found; changes and removals wait for the whole crawl (one
transaction). A crawl where more than half of the links failed removes nothing (it could not see the
author) and says why. Removed documents become tombstones, kept ``LLM_TWIN_TOMBSTONE_DAYS`` days (see
:mod:`llm_twin_assets.store.tombstones`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from llm_twin_assets.authors import load_author
from llm_twin_assets.errors import StoreError
from llm_twin_assets.store.data_versions import data_version
from llm_twin_assets.store.database import Connection, DatabaseError
from llm_twin_assets.store.raw_documents import IngestSummary, store_crawl, store_new

if TYPE_CHECKING:
    from llm_twin_assets.crawling.dispatcher import CrawlOptions
    from llm_twin_assets.crawling.links import LinksFile
    from llm_twin_assets.records import CrawledDocument, CrawlOutcome
    from llm_twin_assets.settings import TwinSettings
    from llm_twin_assets.store.database import Database


class StoreAsFound:
    """Stores each link's new documents as soon as the link is crawled. Best effort: when the database
    cannot take them now, the crawl goes on and its end stores everything."""

    def __init__(self, database: Database, slug: str, name: str, log: logging.Logger) -> None:
        self.database, self.slug, self.name, self.log = database, slug, name, log
        self.ids: list[str] = []
        """The documents stored so far (new to the store)."""
        self.restored: list[str] = []
        """Tombstoned documents found again so far, moved back."""
        self._conn: Connection | None = None
        self._off = False

    def __call__(self, link: str, documents: list[CrawledDocument]) -> None:
        if self._off or not documents:
            return
        try:
            if self._conn is None:
                self._conn = self.database.open()
            stored = store_new(self._conn, self.slug, self.name, documents)
            self.ids.extend(stored.inserted)
            self.restored.extend(stored.restored)
        except (DatabaseError, StoreError) as exc:
            self._off = True
            self.log.warning(f"documents are stored when the crawl ends, not as found ({exc})")

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()


@dataclass(frozen=True)
class IngestReport:
    links: LinksFile
    outcome: CrawlOutcome
    summary: IngestSummary
    version: str


def ingest_author(
    database: Database, settings: TwinSettings, slug: str, options: CrawlOptions, log: logging.Logger
) -> IngestReport:
    """Crawl the author's links file (under ``settings``' authors folder) and store what it found."""
    # Imported here: crawlers pull in trafilatura and Playwright, which the code location need not load.
    from llm_twin_assets.crawling.dispatcher import crawl, link_identities

    links = load_author(settings, slug)
    found = StoreAsFound(database, links.slug, links.author.name, log)
    try:
        outcome = crawl(links, options, found)
    finally:
        found.close()
    for failure in outcome.failures:
        log.warning(f"link failed: {failure.error}")
    with database.connect() as conn:
        summary = store_crawl(
            conn,
            links.slug,
            links.author.name,
            links.sha256,
            link_identities(links),
            outcome,
            remove_after_gone=settings.gone_crawls_to_remove,
            stored_earlier=found.ids,
            restored_earlier=found.restored,
            tombstone_days=settings.tombstone_days,
        )
        version = data_version(conn, "raw_documents", links.slug)
    if summary.removals_withheld is not None:
        log.warning(f"author {links.slug!r}: nothing removed: {summary.removals_withheld}")
    return IngestReport(links, outcome, summary, version)
