"""Code repositories: a shallow clone, walked with sensible ignores, kept as one document.

The document holds one section per kept file, README first, then docs, then code. Each section starts
with a line ``␞ <path>`` (U+241E, a printable mark that real files do not start lines with, so a
README's own Markdown headings and fences never look like file boundaries); ``metadata["files"]``
lists each file's path, size and offsets in the content.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from llm_twin_assets.crawling.documents import link_identity
from llm_twin_assets.crawling.git import (
    RepositoryError,
    borrowed_objects,
    clone,
    head_commit,
    is_git_repository,
)
from llm_twin_assets.crawling.links import local_path
from llm_twin_assets.crawling.safety import (
    LocalPathRefused,
    LocalRoots,
    NetworkGuard,
    holds_private_key,
    walk_refusal,
)
from llm_twin_assets.records import CrawledDocument

IGNORED_DIRS = frozenset(
    {
        ".git",
        ".hg",
        ".svn",
        "node_modules",
        "vendor",
        "third_party",
        "third-party",
        "dist",
        "build",
        "target",
        "out",
        "__pycache__",
        ".venv",
        "venv",
        "env",
        ".tox",
        ".nox",
        ".mypy_cache",
        ".ruff_cache",
        ".pytest_cache",
        "site-packages",
        ".idea",
        ".vscode",
        "coverage",
        ".next",
        ".nuxt",
        ".gradle",
        "bower_components",
        "Pods",
        ".terraform",
        "generated",
        "gen",
    }
)
LOCK_FILES = frozenset(
    {
        "package-lock.json",
        "yarn.lock",
        "pnpm-lock.yaml",
        "poetry.lock",
        "Pipfile.lock",
        "uv.lock",
        "Cargo.lock",
        "go.sum",
        "composer.lock",
        "Gemfile.lock",
        "mix.lock",
        "flake.lock",
        "pdm.lock",
    }
)
TEXT_SUFFIXES = frozenset(
    {
        ".md",
        ".markdown",
        ".rst",
        ".txt",
        ".adoc",
        ".py",
        ".pyi",
        ".js",
        ".jsx",
        ".ts",
        ".tsx",
        ".mjs",
        ".go",
        ".rs",
        ".java",
        ".kt",
        ".scala",
        ".rb",
        ".php",
        ".c",
        ".h",
        ".cc",
        ".cpp",
        ".hpp",
        ".cs",
        ".swift",
        ".m",
        ".sh",
        ".bash",
        ".zsh",
        ".sql",
        ".r",
        ".jl",
        ".lua",
        ".pl",
        ".ex",
        ".exs",
        ".erl",
        ".hs",
        ".ml",
        ".clj",
        ".dart",
        ".vue",
        ".svelte",
        ".toml",
        ".yaml",
        ".yml",
        ".cfg",
        ".ini",
        ".html",
        ".css",
        ".scss",
        ".proto",
        ".graphql",
        ".tf",
        ".nix",
        ".el",
        ".vim",
        ".zig",
    }
)
TEXT_NAMES = frozenset({"Makefile", "Dockerfile", "Justfile", "LICENSE", "README", "CHANGELOG", "Rakefile"})
FILE_MARK = "\u241e"  # starts each file's section in a repository document


@dataclass(frozen=True)
class RepoOptions:
    max_file_bytes: int = 200_000
    max_total_bytes: int = 3_000_000
    clone_timeout_s: float = 120.0


def _rank(path: str) -> tuple[int, str]:
    name = path.rsplit("/", 1)[-1].lower()
    if "/" not in path and name.startswith("readme"):
        return (0, path)
    if path.lower().startswith(("docs/", "doc/")) or name.endswith((".md", ".rst", ".markdown")):
        return (1, path)
    return (2, path)


def _generated(head: str) -> bool:
    first = head[:1000].lower()
    return ("code generated" in first and "do not edit" in first) or "@generated" in first


def walk(root: Path, options: RepoOptions) -> tuple[list[tuple[str, str]], dict[str, int]]:
    """(path, text) of the files worth keeping, and counts of what was skipped and why."""
    kept: list[tuple[str, str]] = []
    skipped: dict[str, int] = {}

    def skip(reason: str) -> None:
        skipped[reason] = skipped.get(reason, 0) + 1

    for folder, dirs, files in os.walk(root, followlinks=False):
        dirs[:] = sorted(d for d in dirs if d not in IGNORED_DIRS and not d.startswith("."))
        for name in sorted(files):
            full = Path(folder) / name
            rel = full.relative_to(root).as_posix()
            refused = walk_refusal(Path(rel))  # hidden files, SSH keys, .pem and the like
            if refused is not None:
                skip(refused)
                continue
            if full.is_symlink():
                skip("symlink")  # may point outside the repository
                continue
            if name in LOCK_FILES:
                skip("lock file")
                continue
            suffix = full.suffix.lower()
            if suffix not in TEXT_SUFFIXES and name not in TEXT_NAMES:
                skip("not text or code")
                continue
            if name.endswith((".min.js", ".min.css", ".map")):
                skip("minified")
                continue
            size = full.stat().st_size
            if size > options.max_file_bytes:
                skip("over size limit")
                continue
            data = full.read_bytes()
            if b"\x00" in data[:8192]:
                skip("binary")
                continue
            if holds_private_key(data):
                skip("private key")
                continue
            text = data.decode("utf-8", errors="replace")
            if _generated(text):
                skip("generated")
                continue
            if text.strip():
                kept.append((rel, text))
    kept.sort(key=lambda item: _rank(item[0]))
    return kept, skipped


def _local_repository(
    url: str, real: Path, into: Path, guard: NetworkGuard, options: RepoOptions
) -> tuple[Path, str | None]:
    """The folder to walk for a local repository (a clone of it into ``into``, or a plain folder
    itself) and its commit (None for a plain folder)."""
    if not real.is_dir():
        raise LocalPathRefused(url, "a local repository is a folder (a work tree or a bare repository)")
    if not is_git_repository(real):
        return real, None  # a plain folder given as a repository: walk it in place
    borrowed = borrowed_objects(real)
    if borrowed is not None:
        raise LocalPathRefused(url, f"{borrowed}; only self-contained repositories are read")
    clone(real.as_uri(), into, url, guard, options.clone_timeout_s)
    return into, head_commit(into, url)


def _one_document(
    files: list[tuple[str, str]], options: RepoOptions, skipped: dict[str, int]
) -> tuple[str, list[dict[str, Any]]]:
    """The files as one text, each under its ``FILE_MARK`` header, up to the repository's budget (the
    files past it counted in ``skipped``), and the index of where each file's text lies in it."""
    sections: list[str] = []
    index: list[dict[str, Any]] = []
    total, offset = 0, 0
    for path, text in files:
        if total + len(text) > options.max_total_bytes:
            skipped["over repository budget"] = skipped.get("over repository budget", 0) + 1
            continue
        body = text.rstrip()
        header = f"{FILE_MARK} {path}\n"
        sections.append(f"{header}{body}\n\n")
        index.append(
            {
                "path": path,
                "bytes": len(text.encode()),
                "start": offset + len(header),
                "end": offset + len(header) + len(body),
            }
        )
        offset += len(sections[-1])
        total += len(text)
    return "".join(sections).rstrip() + "\n", index


def crawl_repository(
    url: str,
    source_link: str,
    guard: NetworkGuard,
    options: RepoOptions | None = None,
    *,
    roots: LocalRoots | None = None,
) -> CrawledDocument:
    """A repository as one document: cloned over http(s)/git (the guard checks and pins the host),
    or, for a local path or file:// URL under ``roots``, cloned from disk (a plain folder is walked
    in place)."""
    options = options or RepoOptions()
    local = local_path(url)
    addresses: list[str] = []
    # A local repository is known by its real location (however the link spells it: a relative or
    # absolute path, file://, a symlinked folder); a remote one by its URL in canonical form.
    canonical = link_identity(url).rstrip("/").removesuffix(".git")
    with tempfile.TemporaryDirectory(prefix="llm-twin-clone-") as tmp:
        if local is not None:
            if roots is None:
                raise LocalPathRefused(
                    url, "local repositories are read only from allowed folders; none given"
                )
            real = roots.check(local)  # LocalPathRefused / LocalPathMissing name the path
            canonical = real.as_uri()
            root, commit = _local_repository(url, real, Path(tmp) / "repo", guard, options)
        else:
            addresses = clone(url, Path(tmp) / "repo", url, guard, options.clone_timeout_s)
            root = Path(tmp) / "repo"
            commit = head_commit(root, url)
        files, skipped = walk(root, options)
    if not files:
        raise RepositoryError(f"{url}: no README, docs or code files to keep (skipped: {skipped})")
    content, index = _one_document(files, options, skipped)
    parts = urlsplit(url)
    name = parts.path.rstrip("/").rsplit("/", 1)[-1].removesuffix(".git") or parts.hostname or url
    return CrawledDocument(
        url=canonical,
        kind="repository",
        content=content,
        source_link=source_link,
        title=name,
        metadata={
            "via": "git" if commit else "folder",
            "commit": commit,
            "address": ",".join(addresses) or None,  # what git was pinned to dial
            "files": index,
            "skipped": skipped,
        },
    )
