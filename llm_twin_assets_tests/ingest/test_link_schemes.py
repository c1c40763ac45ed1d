"""Links files: schemes parsed as RFC 3986 says (case-insensitive), and limits on size and link count."""

import time
from pathlib import Path

import pytest

from llm_twin_assets.crawling.dispatcher import infer_kind
from llm_twin_assets.crawling.links import (
    MAX_LINKS,
    MAX_LINKS_FILE_BYTES,
    LinksFileError,
    load,
    local_path,
    parse,
)


def one_link(url: str) -> str:
    return f"name: Jane\nlinks:\n  - url: '{url}'\n"


@pytest.mark.parametrize(
    ("url", "scheme"),
    [
        ("javascript:alert(1)", "javascript"),
        ("JavaScript:alert(document.cookie)", "javascript"),
        ("data:text/html,<script>alert(1)</script>", "data"),
        ("data:text/plain;base64,SGVsbG8=", "data"),
        ("mailto:jane@example.org", "mailto"),
        ("ftp://example.org/essay.txt", "ftp"),
        ("ssh://git@example.org/jane/tool.git", "ssh"),
        ("vbscript:msgbox(1)", "vbscript"),
        ("view-source:https://example.org", "view-source"),
        ("localhost:8080/notes", "localhost"),
    ],
)
def test_other_schemes_are_refused_by_name(tmp_path: Path, url: str, scheme: str) -> None:
    path = tmp_path / "jane.yaml"
    with pytest.raises(LinksFileError) as err:
        parse(one_link(url), path)
    assert f"{path}, line 3: links.0.url" in str(err.value)
    assert f"scheme {scheme!r} is not allowed" in str(err.value)


@pytest.mark.parametrize(
    ("url", "stored"),
    [
        ("HTTP://example.com/x", "http://example.com/x"),
        ("HttpS://Example.com/Essay", "https://Example.com/Essay"),  # only the scheme is normalised
        ("GIT://example.org/jane/tool.git", "git://example.org/jane/tool.git"),
        ("File:///home/jane/drafts", "file:///home/jane/drafts"),
        ("file:/home/jane/drafts", "file:/home/jane/drafts"),
        ("https://example.org/a", "https://example.org/a"),
        ("./drafts/a:b.md", "./drafts/a:b.md"),  # a colon after the first part is a path
        ("/home/jane/notes.md", "/home/jane/notes.md"),
    ],
)
def test_allowed_schemes_in_any_case_are_stored_in_lower_case(tmp_path: Path, url: str, stored: str) -> None:
    links = parse(one_link(url), tmp_path / "jane.yaml")
    [link] = links.author.links
    assert link.url == stored


def test_upper_case_links_are_crawled_as_their_kind(tmp_path: Path) -> None:
    links = parse(one_link("HTTPS://github.com/jane/tool"), tmp_path / "jane.yaml")
    url = links.resolve(links.author.links[0])
    assert url == "https://github.com/jane/tool" and infer_kind(url) == "repository"
    assert local_path("file:///home/jane/my%20notes.md") == Path("/home/jane/my notes.md")
    assert local_path("https://example.org/a.md") is None


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http:example.com/x", "http links need a host"),
        ("https:///path-only", "https links need a host"),
        ("file://server/share/notes.md", "a file link names a path on this machine"),
        ("http://example.org:99999/x", "not a valid URL"),
        ("file:notes/a.md", "a file link needs an absolute path"),
    ],
)
def test_malformed_urls_are_named(tmp_path: Path, url: str, message: str) -> None:
    with pytest.raises(LinksFileError, match=message):
        parse(one_link(url), tmp_path / "jane.yaml")


def test_a_links_file_over_the_size_limit_is_refused_before_it_is_read(tmp_path: Path) -> None:
    path = tmp_path / "jane.yaml"
    with path.open("w") as file:  # 10 MB of links, as a careless export might write
        file.write("name: Jane\nlinks:\n")
        for i in range(300_000):
            file.write(f"  - https://example.org/p/{i}\n")
    start = time.monotonic()
    with pytest.raises(LinksFileError) as err:
        load(path)
    assert time.monotonic() - start < 0.5
    size = path.stat().st_size
    assert str(err.value) == (
        f"{path}: {size:,} bytes, over the {MAX_LINKS_FILE_BYTES:,}-byte limit for a links file "
        f"(at most {MAX_LINKS:,} links)"
    )
    with pytest.raises(LinksFileError, match="over the 1,000,000-byte limit"):
        parse("name: Jane\nlinks:\n  - https://example.org/a\n# " + "x" * MAX_LINKS_FILE_BYTES, path)


def test_a_links_file_over_the_link_limit_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "jane.yaml"
    text = "name: Jane\nlinks:\n" + "".join(f"  - https://example.org/p/{i}\n" for i in range(MAX_LINKS))
    assert len(parse(text, path).author.links) == MAX_LINKS  # the limit itself is fine
    path.write_text(text + "  - https://example.org/one-too-many\n")
    with pytest.raises(LinksFileError) as err:
        load(path)
    assert str(err.value).startswith(
        f"{path}, line 3: {MAX_LINKS + 1:,} links, over the limit of {MAX_LINKS:,} in one links file"
    )


def test_links_remember_their_lines(tmp_path: Path) -> None:
    links = parse(
        "name: Jane\nlinks:\n  - https://a.org\n\n  - url: ./notes.md\n    kind: article\n",
        tmp_path / "j.yaml",
    )
    assert links.lines == [3, 5]
