from pathlib import Path

import pytest

from llm_twin_assets.crawling.dispatcher import infer_kind
from llm_twin_assets.crawling.links import LinksFileError, load, parse

GOOD = """name: Jane Doe
links:
  - https://janedoe.substack.com/p/some-post
  - url: https://github.com/janedoe/tool
    kind: repository            # optional
  - url: ./exports/linkedin-Shares.csv
    kind: post
"""


def test_the_documented_format_parses(tmp_path: Path) -> None:
    links = parse(GOOD, tmp_path / "jane-doe.yaml")
    assert links.slug == "jane-doe" and links.author.name == "Jane Doe"
    assert [(link.url, link.kind) for link in links.author.links] == [
        ("https://janedoe.substack.com/p/some-post", None),
        ("https://github.com/janedoe/tool", "repository"),
        ("./exports/linkedin-Shares.csv", "post"),
    ]
    assert links.resolve(links.author.links[2]) == str(tmp_path / "exports" / "linkedin-Shares.csv")
    assert links.resolve(links.author.links[0]) == "https://janedoe.substack.com/p/some-post"
    assert len(links.sha256) == 64


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        ("name: X\nlinks:\n  - url: ftp://x.org/a\n", 3, "scheme 'ftp' is not allowed"),
        (
            "name: X\nlinks:\n  - https://a.org\n  - url: https://b.org\n    kind: tweet\n",
            5,
            "links.1.kind: Value error, unknown kind 'tweet': use article, post, repository",
        ),
        ("name: X\nlinks:\n  - https://a.org\n  - href: https://b.org\n", 4, "links.1.url: Field required"),
        ("links:\n  - https://a.org\n", 1, "name: Field required"),
        ("name: X\nlinks: []\n", 2, "at least 1 item"),
        ("name: X\nlinks:\n  - [unclosed\n", 4, "not valid YAML"),
        ("name: X\nlinks:\n  - https://a.org\nextra: 1\n", 4, "extra: Extra inputs are not permitted"),
        ("- just a list\n", 1, "expected a mapping"),
    ],
)
def test_errors_name_the_file_the_line_and_the_problem(
    tmp_path: Path, text: str, line: int, message: str
) -> None:
    path = tmp_path / "jane.yaml"
    with pytest.raises(LinksFileError) as err:
        parse(text, path)
    assert f"{path}, line {line}" in str(err.value)
    assert message in str(err.value)


def test_the_file_name_must_be_a_slug(tmp_path: Path) -> None:
    with pytest.raises(LinksFileError, match="slug"):
        parse(GOOD, tmp_path / "Jane Doe.yaml")


def test_unreadable_or_binary_files_are_named(tmp_path: Path) -> None:
    path = tmp_path / "jane.yaml"
    path.write_bytes(b"\xff\xfe\x00binary")
    with pytest.raises(LinksFileError, match=r"jane.yaml: not UTF-8"):
        load(path)
    with pytest.raises(LinksFileError, match="cannot be read"):
        load(tmp_path / "missing.yaml")


@pytest.mark.parametrize(
    ("url", "kind"),
    [
        ("https://github.com/janedoe/tool", "repository"),
        ("https://gitlab.com/janedoe/tool", "repository"),
        ("https://example.org/code/tool.git", "repository"),
        ("git://example.org/tool", "repository"),
        ("https://www.linkedin.com/posts/janedoe_activity-1", "post"),
        ("https://janedoe.substack.com/p/some-post", "article"),
        ("https://medium.com/@janedoe/a-story-123", "article"),
        ("https://github.com/janedoe/tool/blob/main/README.md", "article"),
        ("/exports/Shares.csv", "post"),
        ("/home/jane/drafts", "article"),
    ],
)
def test_kind_inference(url: str, kind: str) -> None:
    assert infer_kind(url) == kind
