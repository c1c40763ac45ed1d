"""Each crawler on real inputs: the fixture site in real Chromium, a real git repository, files."""

from pathlib import Path

import pytest

from llm_twin_assets.crawling.dispatcher import CrawlOptions, crawl
from llm_twin_assets.crawling.documents import canonical_url
from llm_twin_assets.crawling.folders import FolderError, read_drafts
from llm_twin_assets.crawling.links import parse
from llm_twin_assets.crawling.posts import ExportError, read_linkedin_export
from llm_twin_assets.crawling.repositories import crawl_repository
from llm_twin_assets.crawling.safety import LocalRoots, NetworkGuard
from llm_twin_assets.demo import SAMPLES
from llm_twin_assets.records import CrawlOutcome


def crawl_urls(tmp_path: Path, urls: list[str], policy) -> CrawlOutcome:  # type: ignore[no-untyped-def]
    text = "name: Maya Okafor\nlinks:\n" + "".join(f"  - {u}\n" for u in urls)
    return crawl(parse(text, tmp_path / "maya.yaml"), CrawlOptions(policy=policy))


def by_url(outcome: CrawlOutcome) -> dict:  # type: ignore[type-arg]
    return {d.url: d for d in outcome.documents}


def test_articles_in_two_layouts_keep_title_date_and_main_text_only(
    site, fast_policy, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    base, _ = site
    outcome = crawl_urls(
        tmp_path,
        [f"{base}/blog/small-machines.html", f"{base}/blog/tests-that-touch-real-things.html"],
        fast_policy,
    )
    assert outcome.failures == []
    docs = by_url(outcome)
    a = docs[f"{base}/blog/small-machines.html"]
    assert a.title == "Your data fits on a laptop" and a.published_at == "2025-02-11"
    assert "Here is a confession" in a.content and "So: measure before you scale." in a.content
    assert "Subscribe to get new posts" not in a.content and "Built with plain HTML" not in a.content
    assert "\n\n" in a.content  # paragraphs stay paragraphs
    b = docs[f"{base}/blog/tests-that-touch-real-things.html"]
    assert b.title == "Tests that touch real things"
    assert "I used to write a lot of mocks." in b.content
    assert "Great post! Totally agree." not in b.content and "Recent" not in b.content.splitlines()
    assert all(d.kind == "article" and d.metadata["via"] == "html" for d in outcome.documents)


def test_a_page_cannot_claim_another_origin_as_its_canonical_url(site, fast_policy, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    base, _ = site  # small-machines.html names http://127.0.0.1:8765/... as canonical: another origin
    outcome = crawl_urls(tmp_path, [f"{base}/blog/small-machines.html?utm_source=x#top"], fast_policy)
    assert [d.url for d in outcome.documents] == [f"{base}/blog/small-machines.html"]


def test_a_javascript_rendered_page_is_rendered_in_chromium(site, fast_policy, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    base, state = site
    outcome = crawl_urls(tmp_path, [f"{base}/app/essay.html"], fast_policy)
    [doc] = outcome.documents
    assert doc.metadata["via"] == "render" and outcome.stats["rendered"] == 1
    assert doc.title == "Idempotence is a habit"
    assert "The most useful property a data job can have" in doc.content
    assert "/app/essay.json" in state.requests  # fetched through our client, for the browser


def test_an_interstitial_falls_back_to_the_sites_feed(site, fast_policy, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    base, _ = site
    outcome = crawl_urls(tmp_path, [f"{base}/members/@maya/walled-story"], fast_policy)
    [doc] = outcome.documents
    assert doc.metadata["via"] == "feed" and doc.metadata["fallback_reason"] == "anti-bot interstitial"
    assert doc.title == "The walled story" and "measure before you scale" in doc.content
    assert doc.url == f"{base}/members/@maya/walled-story"


def test_a_feed_link_imports_its_entries_and_a_page_beats_its_feed_summary(
    site, fast_policy, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    base, _ = site  # the sample feed's links point at :8765, not this server: only same-site entries count
    outcome = crawl_urls(tmp_path, [f"{base}/feed.xml"], fast_policy)
    assert outcome.documents == [] and "no entries from its own site" in outcome.failures[0].error


def test_bad_links_fail_alone_with_reasons(site, fast_policy, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    base, _ = site
    outcome = crawl_urls(
        tmp_path,
        [
            f"{base}/paper.pdf",
            f"{base}/loop-a",
            f"{base}/huge.html",
            f"{base}/blog/boring-postgres.html",
            "http://127.0.0.1:9/closed",
        ],
        fast_policy,
    )
    errors = {f.link: f.error for f in outcome.failures}
    assert "binary or non-text content (application/pdf)" in errors[f"{base}/paper.pdf"]
    assert "redirect loop" in errors[f"{base}/loop-a"]
    assert "byte limit" in errors[f"{base}/huge.html"]
    assert "robots.txt could not be fetched (ConnectError" in errors["http://127.0.0.1:9/closed"]
    assert [d.title for d in outcome.documents] == ["In praise of boring Postgres"]


def test_linkedin_export_posts(tmp_path: Path) -> None:
    docs = read_linkedin_export(
        SAMPLES / "maya" / "linkedin-Shares.csv", "export", roots=LocalRoots.of([SAMPLES])
    )
    assert len(docs) == 6  # the repost with no words of her own is skipped
    first = docs[0]
    assert first.kind == "post" and first.url == "https://www.linkedin.com/feed/update/urn:li:share:7001"
    assert first.content.startswith("Unpopular opinion: your first data platform")
    assert "\n\nMeasure first." in first.content  # multi-line posts keep their line breaks
    assert first.published_at == "2025-09-30 09:12:44"
    assert '"What happens if we run this twice?"' in docs[2].content  # CSV quoting undone


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"Date,Visibility\n2025-01-01,PUBLIC\n", "no post text column"),
        (b"", "empty file"),
        (b"\x00\x01\x02", "binary content"),
        (b"ShareCommentary\n\n", "no posts with text"),
    ],
)
def test_bad_exports_are_named(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "Shares.csv"
    path.write_bytes(content)
    with pytest.raises(ExportError, match=message) as err:
        read_linkedin_export(path, "x", roots=LocalRoots.of([tmp_path]))
    assert str(path) in str(err.value)


def test_a_repository_keeps_readme_docs_and_code_and_skips_the_rest(sample_repo: Path) -> None:
    doc = crawl_repository(
        str(sample_repo), "link", NetworkGuard(allow_private=False), roots=LocalRoots.of([sample_repo.parent])
    )
    paths = [f["path"] for f in doc.metadata["files"]]
    assert paths[0] == "README.md"
    assert {"tinyvec/index.py", "tinyvec/__init__.py", "tests/test_index.py", "pyproject.toml"} <= set(paths)
    assert not {"poetry.lock", "logo.png", "big.py", "tinyvec/_generated.py"} & set(paths)
    assert not any(p.startswith("node_modules") for p in paths)
    assert doc.metadata["skipped"] == {
        "lock file": 1,
        "not text or code": 1,
        "over size limit": 1,
        "generated": 1,
    }
    assert len(doc.metadata["commit"]) == 40 and doc.kind == "repository" and doc.title == "tinyvec"
    for entry in doc.metadata["files"]:  # offsets point at each file's text inside the document
        assert doc.content[entry["start"] : entry["end"]].strip()
    index_py = next(f for f in doc.metadata["files"] if f["path"] == "tinyvec/index.py")
    assert doc.content[index_py["start"] :].startswith('"""An exact cosine-similarity index.')


def test_a_repository_over_a_file_url_and_a_broken_one(sample_repo: Path, tmp_path: Path) -> None:
    guard, roots = NetworkGuard(allow_private=False), LocalRoots.of([sample_repo.parent, tmp_path])
    doc = crawl_repository(sample_repo.as_uri(), "link", guard, roots=roots)
    assert doc.metadata["files"][0]["path"] == "README.md"
    from llm_twin_assets.crawling.git import RepositoryError

    broken = tmp_path / "not-a-repo.git"  # looks like a bare repository, holds nothing git can read
    (broken / "objects").mkdir(parents=True)
    (broken / "HEAD").write_text("not a ref\n")
    with pytest.raises(RepositoryError, match="git clone failed"):
        crawl_repository(broken.as_uri(), "link", guard, roots=roots)


def test_a_folder_of_drafts(tmp_path: Path) -> None:
    drafts = tmp_path / "drafts"
    (drafts / "2025").mkdir(parents=True)
    (drafts / "2025" / "on-retries.md").write_text("# On retries\n\nWait as long as the server asks.\n")
    (drafts / "notes.txt").write_text("A plain note about boring databases.\n")
    (drafts / ".hidden.md").write_text("# secret\n")
    (drafts / "image.png").write_bytes(b"\x89PNG\x00")
    roots = LocalRoots.of([tmp_path])
    docs = read_drafts(drafts, "article", "link", roots=roots)
    assert sorted(d.title for d in docs) == ["On retries", "notes"]
    assert all(d.url.startswith("file://") for d in docs)
    (tmp_path / "empty").mkdir()
    with pytest.raises(FolderError, match="no Markdown or text files"):
        read_drafts(tmp_path / "empty", "article", "x", roots=roots)


@pytest.mark.parametrize(
    ("url", "canonical"),
    [
        ("HTTPS://Example.ORG:443/a/b/?utm_source=x&id=3#frag", "https://example.org/a/b?id=3"),
        ("http://example.org", "http://example.org/"),
        ("http://example.org:8080/x/", "http://example.org:8080/x"),
    ],
)
def test_canonical_urls(url: str, canonical: str) -> None:
    assert canonical_url(url) == canonical
