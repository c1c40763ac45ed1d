"""Local files only from the folders the user allows: the authors folder and LLM_TWIN_LOCAL_ROOTS.

Real files, real symlinks, a real git repository; each refusal names the path and the rule.
"""

import json
import os
from pathlib import Path

import pytest

from llm_twin_assets.authors import add_author
from llm_twin_assets.crawling.dispatcher import CrawlOptions, crawl
from llm_twin_assets.crawling.links import LinksFileError, load
from llm_twin_assets.crawling.repositories import crawl_repository
from llm_twin_assets.crawling.safety import LocalPathRefused, LocalRoots, NetworkGuard
from llm_twin_assets.demo import build_git_repo
from llm_twin_assets.records import CrawlOutcome
from llm_twin_assets.settings import get_settings
from llm_twin_assets_tests.ingest.site import write_links

KEY = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA-not-for-the-twin\n-----END OPENSSH PRIVATE KEY-----\n"
OUTSIDE = "LLM_TWIN_LOCAL_ROOTS"


def crawl_local(authors: Path, urls: list[str], roots: list[Path] | None = None) -> CrawlOutcome:
    """Crawl a links file in ``authors`` with exactly ``roots`` allowed besides it (not the env)."""
    path = write_links(authors, "maya", [json.dumps(url) for url in urls])
    return crawl(load(path), CrawlOptions(local_roots=roots or []))


def errors(outcome: CrawlOutcome) -> dict[str, str]:
    return {failure.link: failure.error for failure in outcome.failures}


def no_secret_in(outcome: CrawlOutcome) -> bool:
    return not any("not-for-the-twin" in d.content or "BEGIN" in d.content for d in outcome.documents)


def test_system_files_are_refused_by_name(tmp_path: Path) -> None:
    outcome = crawl_local(tmp_path / "authors", ["file:///etc/passwd", "/etc/passwd", "FILE:///etc/hostname"])
    found = errors(outcome)
    # Failures name each link by its identity (one spelling per file: the first two are one link, crawled
    # once); the error names it as the links file writes it.
    assert outcome.documents == [] and set(found) == {"/etc/passwd", "/etc/hostname"}
    assert found["/etc/passwd"].startswith("file:///etc/passwd: ")
    assert found["/etc/hostname"].startswith("file:///etc/hostname: ")
    for error in found.values():
        assert "refused: outside the folders local files are read from" in error
        assert OUTSIDE in error  # the setting that would widen them
    assert not any(failure.gone for failure in outcome.failures)  # refused is not gone


def test_ssh_keys_in_the_home_folder_are_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    (home / ".ssh" / "id_rsa").write_text(KEY)
    (home / "keys").mkdir()
    (home / "keys" / "id_ed25519").write_text(KEY)
    monkeypatch.setenv("HOME", str(home))
    outside = crawl_local(tmp_path / "authors", ["~/.ssh/id_rsa"])
    key = str(home / ".ssh" / "id_rsa")  # links name local paths as resolved (~ expanded)
    assert errors(outside)[key].startswith(f"{key}: refused: outside the folders")
    # Even with the whole home folder allowed: hidden folders and key files stay refused.
    allowed = crawl_local(tmp_path / "authors", ["~/.ssh/id_rsa", "~/keys/id_ed25519", "~/.ssh"], [home])
    found = errors(allowed)
    assert found[key] == f"{key}: refused: '.ssh' is hidden; hidden files and folders are never read"
    assert f"{home}/.ssh: refused: '.ssh' is hidden" in found[f"{home}/.ssh"]
    assert found[f"{home}/keys/id_ed25519"] == (
        f"{home}/keys/id_ed25519: refused: 'id_ed25519' is an SSH key; key material is never read"
    )
    assert allowed.documents == [] and no_secret_in(allowed)


def test_a_symlink_in_the_authors_folder_cannot_reach_outside(tmp_path: Path) -> None:
    outside, authors = tmp_path / "outside", tmp_path / "authors"
    outside.mkdir()
    (outside / "secret.md").write_text("# Secret\n\nnot-for-the-twin\n")
    (authors / "drafts").mkdir(parents=True)
    (authors / "drafts" / "good.md").write_text("# Good\n\nA draft of my own, in the authors folder.\n")
    (authors / "drafts" / "sneaky.md").symlink_to(outside / "secret.md")
    (authors / "notes.md").symlink_to(outside / "secret.md")
    (authors / "linked").symlink_to(outside)
    outcome = crawl_local(authors, ["./notes.md", "./linked", "./linked/secret.md", "./drafts"])
    # The links file resolves relative links, symlinks included: the real path is what is refused.
    found = errors(outcome)
    assert set(found) == {str(outside / "secret.md"), str(outside)}  # two links name the same file
    assert all("refused: outside the folders" in error for error in found.values())
    assert len(outcome.failures) == 2  # the two links naming one file are one link, crawled once
    assert [d.title for d in outcome.documents] == ["Good"] and no_secret_in(outcome)


def test_a_symlink_is_judged_by_where_it_really_points(tmp_path: Path) -> None:
    outside, authors = tmp_path / "outside", tmp_path / "authors"
    outside.mkdir()
    (outside / "secret.md").write_text("not-for-the-twin\n")
    authors.mkdir()
    (authors / "notes.md").symlink_to(outside / "secret.md")
    with pytest.raises(LocalPathRefused) as err:
        LocalRoots.of([authors]).check(authors / "notes.md")
    assert str(err.value).startswith(
        f"{authors / 'notes.md'} (really {outside / 'secret.md'}): refused: outside"
    )
    with pytest.raises(LocalPathRefused, match="refused: outside"):
        LocalRoots.of([authors]).check(authors / ".." / "outside" / "secret.md")  # '..' is resolved too


def test_hidden_files_and_folders_are_refused(tmp_path: Path) -> None:
    authors = tmp_path / "authors"
    (authors / ".private").mkdir(parents=True)
    (authors / ".private" / "notes.md").write_text("# Private\n\nnot-for-the-twin\n")
    (authors / ".notes.md").write_text("# Hidden\n\nnot-for-the-twin\n")
    (authors / "drafts" / ".trash").mkdir(parents=True)
    (authors / "drafts" / ".trash" / "old.md").write_text("not-for-the-twin\n")
    (authors / "drafts" / ".hidden.md").write_text("not-for-the-twin\n")
    (authors / "drafts" / "visible.md").write_text("# Visible\n\nA draft anyone may read.\n")
    outcome = crawl_local(authors, ["./.private/notes.md", "./.notes.md", "./.private", "./drafts"])
    found = errors(outcome)
    assert found[str(authors / ".private" / "notes.md")].endswith(
        "refused: '.private' is hidden; hidden files and folders are never read"
    )
    assert "refused: '.notes.md' is hidden" in found[str(authors / ".notes.md")]
    assert "refused: '.private' is hidden" in found[str(authors / ".private")]
    assert [d.title for d in outcome.documents] == ["Visible"] and no_secret_in(outcome)


def test_key_material_and_other_types_inside_an_allowed_folder_are_refused(tmp_path: Path) -> None:
    allowed = tmp_path / "allowed"
    allowed.mkdir()
    (allowed / "server.pem").write_text(KEY)
    (allowed / "notes.md").write_text(f"# Notes\n\nmy key, for safekeeping:\n{KEY}")
    (allowed / "credentials").write_text("[default]\naws_secret_access_key = not-for-the-twin\n")
    (allowed / "photo.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    (allowed / "post.md").write_text("# A post\n\nThe one file here that is mine to share.\n")
    names = ["server.pem", "notes.md", "credentials", "photo.png"]
    outcome = crawl_local(tmp_path / "authors", [str(allowed / n) for n in [*names, "post.md"]], [allowed])
    found = errors(outcome)
    assert "refused: 'server.pem' is key material" in found[str(allowed / "server.pem")]
    assert (
        "refused: holds a private key ('-----BEGIN ... PRIVATE KEY-----')" in found[str(allowed / "notes.md")]
    )
    assert "refused: 'credentials' is a credentials file" in found[str(allowed / "credentials")]
    assert "refused: not a text file of a type read (.md" in found[str(allowed / "photo.png")]
    assert [d.title for d in outcome.documents] == ["A post"] and no_secret_in(outcome)
    # The same folder as a drafts folder: only the draft, the rest skipped.
    folder = crawl_local(tmp_path / "authors", [str(allowed)], [allowed])
    assert [d.title for d in folder.documents] == ["A post"] and no_secret_in(folder)


def test_an_allowed_markdown_draft_is_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    allowed, authors = tmp_path / "my drafts", tmp_path / "authors"
    allowed.mkdir()
    (allowed / "on-retries.md").write_text("# On retries\n\nWait as long as the server asks.\n")
    (authors / "drafts").mkdir(parents=True)
    (authors / "drafts" / "local.txt").write_text("A note kept beside the links file.\n")
    draft = allowed / "on-retries.md"
    outcome = crawl_local(authors, [draft.as_uri(), "./drafts"], [allowed])
    assert outcome.failures == []
    assert sorted(d.title for d in outcome.documents) == ["On retries", "local"]
    # Without explicit roots the crawl reads LLM_TWIN_LOCAL_ROOTS (':' or ',' between folders).
    monkeypatch.setenv(OUTSIDE, f"{tmp_path / 'elsewhere'},{allowed}")
    assert get_settings().local_roots == [tmp_path / "elsewhere", allowed]
    path = write_links(authors, "maya", [json.dumps(str(draft))])
    assert [d.title for d in crawl(load(path)).documents] == ["On retries"]
    monkeypatch.delenv(OUTSIDE)
    assert "refused: outside" in crawl(load(path)).failures[0].error


def test_a_local_repository_must_lie_in_an_allowed_folder(sample_repo: Path, tmp_path: Path) -> None:
    guard = NetworkGuard(allow_private=False)
    with pytest.raises(LocalPathRefused, match=f"^{sample_repo}: refused: outside the folders"):
        crawl_repository(str(sample_repo), "x", guard, roots=LocalRoots.of([tmp_path]))
    with pytest.raises(
        LocalPathRefused, match="refused: local repositories are read only from allowed folders"
    ):
        crawl_repository(sample_repo.as_uri(), "x", guard)


@pytest.mark.parametrize("as_git", [False, True], ids=["folder", "git repository"])
def test_the_repository_walk_skips_hidden_files_and_key_material(tmp_path: Path, as_git: bool) -> None:
    work = tmp_path / "project"
    for path, text in {
        "README.md": "# project\n\nWhat it does.\n",
        "src/app.py": "print('hello')\n",
        ".env": "SECRET=not-for-the-twin\n",
        ".eslintrc.yaml": "root: true\n",
        ".github/workflows/ci.yml": "on: push\n",
        "deploy/server.pem": KEY,
        "deploy/id_ed25519": KEY,
        "config/credentials": "not-for-the-twin\n",
        "docs/keys.md": f"# Keys\n\n{KEY}",
    }.items():
        (work / path).parent.mkdir(parents=True, exist_ok=True)
        (work / path).write_text(text)
    target = build_git_repo(work, tmp_path / "project.git") if as_git else work
    doc = crawl_repository(
        str(target), "x", NetworkGuard(allow_private=False), roots=LocalRoots.of([tmp_path])
    )
    assert [f["path"] for f in doc.metadata["files"]] == ["README.md", "src/app.py"]
    assert doc.metadata["skipped"] == {"hidden": 2, "key material": 3, "private key": 1}
    assert "not-for-the-twin" not in doc.content and "BEGIN" not in doc.content


def test_author_add_refuses_local_links_outside_the_allowed_folders(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(OUTSIDE, raising=False)
    mine = tmp_path / "mine"
    (mine / "drafts").mkdir(parents=True)
    (mine / "drafts" / "post.md").write_text("# Post\n\nMine.\n")
    (mine / "id_rsa").write_text(KEY)
    source = write_links(mine, "maya", ["https://example.org/a", "file:///etc/passwd", "./drafts/post.md"])
    settings = get_settings(authors_dir=tmp_path / "authors")
    with pytest.raises(LinksFileError) as err:
        add_author(settings, source)
    first, second = str(err.value).splitlines()
    assert first.startswith(f"{source}, line 4: links.1: file:///etc/passwd (/etc/passwd): refused: outside")
    assert second.startswith(f"{source}, line 5: links.2: ./drafts/post.md ({mine / 'drafts' / 'post.md'})")
    assert all(OUTSIDE in line for line in (first, second))
    assert not (tmp_path / "authors" / "maya.yaml").exists()

    # Allowed by the setting, the draft passes; a key next to it is refused by its own rule.
    settings = get_settings(authors_dir=tmp_path / "authors", local_roots=[mine])
    write_links(mine, "maya", ["./drafts/post.md", "./id_rsa", "./not-written-yet.md"])
    with pytest.raises(
        LinksFileError, match=r"line 4: links.1: ./id_rsa \(.*\): refused: 'id_rsa' is an SSH key"
    ):
        add_author(settings, source)
    # A local link that names nothing is refused too: the file may have been copied away from its links.
    write_links(mine, "maya", ["./drafts/post.md", "./not-written-yet.md"])
    with pytest.raises(
        LinksFileError, match=r"line 4: links.1: ./not-written-yet.md: no such file or folder"
    ):
        add_author(settings, source)
    (mine / "not-written-yet.md").write_text("# Written now\n\nA draft that exists.\n")
    added = add_author(settings, source)
    assert added.path == tmp_path / "authors" / "maya.yaml" and len(added.author.links) == 2


def test_a_special_file_is_not_read(tmp_path: Path) -> None:
    allowed = tmp_path / "allowed"
    allowed.mkdir()
    os.mkfifo(allowed / "pipe.md")  # reading it would block the crawl for ever
    outcome = crawl_local(tmp_path / "authors", [str(allowed / "pipe.md")], [allowed])
    assert "refused: not a regular file or folder" in outcome.failures[0].error


def test_a_local_repository_that_borrows_objects_from_outside_is_refused(
    sample_repo: Path, tmp_path: Path
) -> None:
    import shutil
    import subprocess

    guard = NetworkGuard(allow_private=False)
    allowed = tmp_path / "allowed"
    allowed.mkdir()
    worktree = allowed / "worktree"  # a work tree whose .git file names a repository outside
    worktree.mkdir()
    (worktree / ".git").write_text(f"gitdir: {sample_repo}\n")
    borrowing = allowed / "borrowing.git"  # a clone that reads its objects from one outside
    subprocess.run(["git", "clone", "-q", "--bare", "--shared", str(sample_repo), str(borrowing)], check=True)
    roots = LocalRoots.of([allowed])
    with pytest.raises(LocalPathRefused, match="its .git is a file pointing at another folder"):
        crawl_repository(str(worktree), "x", guard, roots=roots)
    with pytest.raises(LocalPathRefused, match="borrows objects from another repository"):
        crawl_repository(str(borrowing), "x", guard, roots=roots)
    shutil.copytree(sample_repo, allowed / "own.git")  # self-contained: read
    assert crawl_repository(str(allowed / "own.git"), "x", guard, roots=roots).content
