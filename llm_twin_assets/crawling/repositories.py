"""Code repositories: a shallow clone, walked with sensible ignores, kept as one document.

The document holds one section per kept file, README first, then docs, then code. Each section starts
with a line ``␞ <path>`` (U+241E, a printable mark that real files do not start lines with, so a
README's own Markdown headings and fences never look like file boundaries); ``metadata["files"]``
lists each file's path, size and offsets in the content.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from llm_twin_assets.crawling.safety import NetworkGuard
from llm_twin_assets.errors import TwinError
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


class RepositoryError(TwinError):
    pass


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
            text = data.decode("utf-8", errors="replace")
            if _generated(text):
                skip("generated")
                continue
            if text.strip():
                kept.append((rel, text))
    kept.sort(key=lambda item: _rank(item[0]))
    return kept, skipped


def _clone(url: str, into: Path, guard: NetworkGuard, options: RepoOptions) -> None:
    parts = urlsplit(url)
    if parts.scheme in ("http", "https", "git"):
        guard.check_host_sync(parts.hostname or "", parts.port or 443)
    env = {
        **os.environ,
        "GIT_TERMINAL_PROMPT": "0",
        "GIT_ALLOW_PROTOCOL": "http:https:git:file",
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_LFS_SKIP_SMUDGE": "1",
    }
    command = [
        "git",
        "-c",
        "http.followRedirects=false",
        "-c",
        "protocol.file.allow=always",
        "-c",
        "core.symlinks=false",
        "clone",
        "--depth",
        "1",
        "--single-branch",
        "--no-tags",
        "--quiet",
        url,
        str(into),
    ]
    try:
        result = subprocess.run(
            command,
            capture_output=True,
            text=True,
            env=env,
            timeout=options.clone_timeout_s,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired as exc:
        raise RepositoryError(f"{url}: git clone took over {options.clone_timeout_s:.0f} s") from exc
    if result.returncode != 0:
        reason = (result.stderr.strip().splitlines() or ["unknown error"])[-1]
        raise RepositoryError(f"{url}: git clone failed ({reason})")


def _head(root: Path) -> str | None:
    result = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True)
    return result.stdout.strip() or None


def _is_git_repository(folder: Path) -> bool:
    """A work tree (has .git) or a bare repository (HEAD and objects/ at the top)."""
    return (folder / ".git").exists() or ((folder / "HEAD").is_file() and (folder / "objects").is_dir())


def crawl_repository(
    url: str, source_link: str, guard: NetworkGuard, options: RepoOptions | None = None
) -> CrawledDocument:
    options = options or RepoOptions()
    local = Path(url).expanduser()
    with tempfile.TemporaryDirectory(prefix="llm-twin-clone-") as tmp:
        if local.is_dir() and not _is_git_repository(local):
            root, commit = local, None  # a plain folder given as a repository: walk it in place
        else:
            _clone(local.resolve().as_uri() if local.is_dir() else url, Path(tmp) / "repo", guard, options)
            root = Path(tmp) / "repo"
            commit = _head(root)
        files, skipped = walk(root, options)
    if not files:
        raise RepositoryError(f"{url}: no README, docs or code files to keep (skipped: {skipped})")
    sections, index, total, offset = [], [], 0, 0
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
    name = urlsplit(url).path.rstrip("/").rsplit("/", 1)[-1].removesuffix(".git") or local.name
    canonical = local.resolve().as_uri() if local.exists() else url.rstrip("/").removesuffix(".git")
    return CrawledDocument(
        url=canonical,
        kind="repository",
        content="".join(sections).rstrip() + "\n",
        source_link=source_link,
        title=name,
        metadata={"via": "git" if commit else "folder", "commit": commit, "files": index, "skipped": skipped},
    )
