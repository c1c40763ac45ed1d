"""What the crawl tells the store for its removal policy: which failed links are gone for good, and
which links answered with every document they hold."""

import json
from dataclasses import replace
from pathlib import Path

from llm_twin_assets.crawling.dispatcher import CrawlOptions, crawl
from llm_twin_assets.crawling.http import CrawlPolicy
from llm_twin_assets.crawling.links import load
from llm_twin_assets_tests.ingest.site import SiteState, write_links


def test_gone_links_and_complete_links(
    site: tuple[str, SiteState], fast_policy: CrawlPolicy, tmp_path: Path
) -> None:
    base, _ = site
    authors = tmp_path / "authors"
    (authors / "drafts").mkdir(parents=True)
    (authors / "drafts" / "one.md").write_text("# One\n\nThe first draft.\n")
    (authors / "drafts" / "two.md").write_text("# Two\n\nThe second draft.\n")
    (authors / "posts.csv").write_text('ShareLink,ShareCommentary\n,"Measure first, scale second."\n')
    urls = [
        f"{base}/nope.html",  # 404
        f"{base}/removed.html",  # 410
        f"{base}/error.html",  # 500: a passing failure
        f"{base}/blog/small-machines.html",  # an article page: complete (its one document)
        f"{base}/feed",  # a feed shows only its newest entries: never complete
        "./drafts",
        "./posts.csv",
        "./deleted-draft.md",  # named directly, no longer there
        "./deleted-folder",
        "file:///etc/passwd",  # refused, not gone
    ]
    path = write_links(authors, "maya", [json.dumps(u) for u in urls])
    outcome = crawl(load(path), CrawlOptions(policy=replace(fast_policy, max_retries=0), local_roots=[]))

    gone = {f.link: f.gone for f in outcome.failures}
    assert gone == {
        f"{base}/nope.html": True,
        f"{base}/removed.html": True,
        f"{base}/error.html": False,
        str(authors / "deleted-draft.md"): True,
        str(authors / "deleted-folder"): True,
        "/etc/passwd": False,  # a file:// link is known by its real path
    }
    errors = {f.link: f.error for f in outcome.failures}
    assert errors[f"{base}/removed.html"] == f"{base}/removed.html: HTTP 410"
    assert (
        errors[str(authors / "deleted-draft.md")] == f"{authors / 'deleted-draft.md'}: no such file or folder"
    )
    assert outcome.complete_links == {
        str(authors / "drafts"),
        str(authors / "posts.csv"),
        f"{base}/blog/small-machines.html",
    }
    assert outcome.crawled_links == outcome.complete_links | {f"{base}/feed"}
    assert sorted(d.title or "" for d in outcome.documents if d.source_link == str(authors / "drafts")) == [
        "One",
        "Two",
    ]
