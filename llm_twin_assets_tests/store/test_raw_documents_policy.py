"""``store_crawl`` on the real store: the removal policy, metadata changes and timestamps."""

from __future__ import annotations

import time

from llm_twin_assets.records import CrawledDocument, CrawlOutcome, LinkFailure
from llm_twin_assets.store.database import Database
from llm_twin_assets.store.raw_documents import store_crawl

FEED = "https://maya.example/feed.xml"
PAGE = "https://maya.example/page.html"
FOLDER = "/drafts"


def post(n: int) -> CrawledDocument:
    return CrawledDocument(
        url=f"https://maya.example/posts/{n}",
        kind="post",
        content=f"Post number {n} says something of its own.",
        source_link=FEED,
        title=f"Post {n}",
        metadata={"via": "feed", "feed": FEED},
    )


def page(
    content: str = "A page the author wrote.", kind: str = "article", title: str = "Page"
) -> CrawledDocument:
    return CrawledDocument(
        url=PAGE,
        kind=kind,
        content=content,
        source_link=PAGE,
        title=title,
        metadata={"via": "html", "attempts": 1},
    )


def draft(name: str) -> CrawledDocument:
    return CrawledDocument(
        url=f"file:///drafts/{name}.md",
        kind="article",
        content=f"Draft {name}.",
        source_link=FOLDER,
        metadata={"via": "file"},
    )


def crawl(
    db: Database,
    documents: list[CrawledDocument],
    *,
    links: tuple[str, ...] = (FEED, PAGE, FOLDER),
    failures: list[LinkFailure] | None = None,
    complete: set[str] | None = None,
    remove_after_gone: int = 2,
):  # type: ignore[no-untyped-def]
    outcome = CrawlOutcome(
        documents=documents,
        failures=failures or [],
        crawled_links={d.source_link for d in documents},
        complete_links=complete if complete is not None else {d.source_link for d in documents} - {FEED},
    )
    with db.connect() as conn:
        return store_crawl(
            conn, "maya", "Maya", "sha", list(links), outcome, remove_after_gone=remove_after_gone
        )


def stored(db: Database) -> dict[str, tuple[object, ...]]:
    with db.connect() as conn:
        rows = conn.execute(
            "SELECT url, kind, title, fetched_at, updated_at, gone_crawls, xmin::text FROM raw_documents"
            " WHERE author = 'maya' ORDER BY url"
        ).fetchall()
    return {r[0]: r[1:] for r in rows}


def test_a_feed_that_moves_on_never_removes_an_older_post(db: Database) -> None:
    crawl(db, [post(3), post(2), post(1)])
    summary = crawl(db, [post(4), post(3), post(2)])  # the feed shows only its newest three now
    assert sum(summary.removed.values()) == 0 and summary.gone_pending == 0
    assert {f"https://maya.example/posts/{n}" for n in (1, 2, 3, 4)} <= set(stored(db))


def test_a_page_that_answers_404_twice_in_a_row_is_removed_and_one_found_again_is_kept(db: Database) -> None:
    crawl(db, [page(), post(1)])
    gone = [LinkFailure(link=PAGE, kind="article", error=f"{PAGE}: HTTP 404", gone=True)]
    first = crawl(db, [post(1)], failures=gone)
    assert first.gone_pending == 1 and sum(first.removed.values()) == 0
    assert stored(db)[PAGE][4] == 1  # gone once: still stored
    crawl(db, [page(), post(1)])  # it answers again: the count starts over
    assert stored(db)[PAGE][4] == 0
    crawl(db, [post(1)], failures=gone)
    second = crawl(db, [post(1)], failures=gone)
    assert second.removal_reasons == {"gone": 1} and PAGE not in stored(db)


def test_a_temporary_failure_or_a_gone_feed_keeps_every_row(db: Database) -> None:
    crawl(db, [page(), post(1), post(2)])
    failures = [
        LinkFailure(link=PAGE, kind="article", error=f"{PAGE}: HTTP 503"),
        LinkFailure(link=FEED, kind="post", error=f"{FEED}: HTTP 410", gone=True),
    ]
    for _ in range(3):
        summary = crawl(db, [], failures=failures)
        assert sum(summary.removed.values()) == 0
    assert len(stored(db)) == 3  # the feed's posts were never its to take away


def test_a_draft_deleted_from_its_folder_leaves_after_consecutive_crawls(db: Database) -> None:
    crawl(db, [draft("a"), draft("b")])
    crawl(db, [draft("a")])
    assert "file:///drafts/b.md" in stored(db)
    summary = crawl(db, [draft("a")])
    assert summary.removal_reasons == {"gone": 1} and "file:///drafts/b.md" not in stored(db)


def test_a_link_gone_from_the_links_file_takes_its_rows_at_once(db: Database) -> None:
    crawl(db, [page(), post(1), post(2)])
    summary = crawl(db, [page()], links=(PAGE,))
    assert summary.removal_reasons == {"unlisted": 2} and set(stored(db)) == {PAGE}


def test_a_rerun_writes_nothing_and_a_kind_or_title_change_is_stored_without_new_content(
    db: Database,
) -> None:
    crawl(db, [page(), post(1)])
    before = stored(db)
    summary = crawl(db, [page(), post(1)])
    assert summary.written == 0 and stored(db) == before  # same xmin, same timestamps

    time.sleep(0.01)
    summary = crawl(db, [page(kind="post", title="Page, renamed"), post(1)])
    after = stored(db)
    assert sum(summary.changed.values()) == 1
    assert after[PAGE][:2] == ("post", "Page, renamed")
    assert after[PAGE][2] == before[PAGE][2]  # fetched_at: the content did not change
    assert after[PAGE][3] > before[PAGE][3]  # updated_at: something stored did

    crawl(db, [page("The page now says more.", kind="post", title="Page, renamed"), post(1)])
    assert stored(db)[PAGE][2] > after[PAGE][2]  # fetched_at follows the content


def test_a_feed_link_that_starts_serving_a_page_does_not_take_its_posts(db: Database) -> None:
    crawl(db, [post(1), post(2)])
    maintenance = CrawledDocument(
        url=FEED, kind="post", content="Down for maintenance.", source_link=FEED, metadata={"via": "html"}
    )
    for _ in range(3):  # the link answers with one page: complete, but the feed's posts were its listing
        summary = crawl(db, [maintenance], complete={FEED})
        assert sum(summary.removed.values()) == 0
    assert {f"https://maya.example/posts/{n}" for n in (1, 2)} <= set(stored(db))
