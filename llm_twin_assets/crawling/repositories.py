"""Code repositories: a shallow clone, walked with sensible ignores, kept as one document.

The document holds one section per kept file, README first, then docs, then code. Each section starts
with a line ``␞ <path>`` (U+241E, a printable mark that real files do not start lines with, so a
README's own Markdown headings and fences never look like file boundaries); ``metadata["files"]``
lists each file's path, size and offsets in the content.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from llm_twin_assets.crawling.documents import link_identity
from llm_twin_assets.crawling.links import local_path
from llm_twin_assets.crawling.safety import (
    LocalPathRefused,
    LocalRoots,
    NetworkGuard,
    holds_private_key,
    walk_refusal,
)
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


GIT_PORTS = {"http": 80, "https": 443, "git": 9418}
HEAD_TIMEOUT_S = 30.0
_PROXY_VARIABLES = frozenset({"http_proxy", "https_proxy", "all_proxy", "no_proxy", "ftp_proxy"})


def git_env(allow_protocols: str) -> dict[str, str]:
    """The environment of every git call: no prompts, no proxies, no user or system git config.

    A proxy, or a ``url.<base>.insteadOf`` in someone's config, would send git to an address the
    guard never checked."""
    env = {  # nothing of the caller's git (proxy command, other repository, object store, config); traces may stay
        key: value
        for key, value in os.environ.items()
        if key.lower() not in _PROXY_VARIABLES and (not key.startswith("GIT_") or key.startswith("GIT_TRACE"))
    }
    env.update(
        {
            "GIT_TERMINAL_PROMPT": "0",
            "GIT_ALLOW_PROTOCOL": allow_protocols,
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_CONFIG_GLOBAL": os.devnull,
            "GIT_LFS_SKIP_SMUDGE": "1",
        }
    )
    return env


def _verb(args: list[str]) -> str:
    """The git command in ``args`` (after any ``-c key=value`` / ``-C folder`` options)."""
    rest = list(args)
    while len(rest) > 1 and rest[0] in ("-c", "-C"):
        rest = rest[2:]
    return rest[0] if rest else "git"


def run_git(
    args: list[str], *, subject: str, timeout_s: float, allow_protocols: str = "file"
) -> subprocess.CompletedProcess[str]:
    """``git *args`` under a deadline that holds: git runs in a process group of its own, and the
    whole group is killed when the deadline passes. (``subprocess.run(timeout=...)`` kills git alone:
    its helpers, such as git-remote-http, live on with the connection and the output pipes.)

    RepositoryError names ``subject`` (the link) when the deadline passes."""
    process = subprocess.Popen(
        ["git", *args],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=git_env(allow_protocols),
        start_new_session=True,
    )
    try:
        stdout, stderr = process.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        _kill_group(process)
        raise RepositoryError(
            f"{subject}: git {_verb(args)} took over {timeout_s:.3g} s; stopped it and every process it started"
        ) from None
    except BaseException:
        _kill_group(process)
        raise
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


def _kill_group(process: subprocess.Popen[str]) -> None:
    # The group id is git's pid, which stays ours until git is reaped below.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    try:
        process.communicate(timeout=5)
    except subprocess.TimeoutExpired:
        # Something left the group (setsid) and still holds a pipe: stop listening to it.
        for pipe in (process.stdout, process.stderr):
            if pipe is not None:
                pipe.close()
        process.wait()


def _bracketed(address: str) -> str:
    return f"[{address}]" if ":" in address else address


def pin_address(url: str, guard: NetworkGuard) -> tuple[str, list[str], list[str]]:
    """(URL to clone, git options, checked addresses) so that git dials what the guard checked.

    The guard resolves the host once and checks every address; git must not resolve it again (a
    rebinding DNS name could answer differently the second time). http(s): curl's resolve list is
    pinned with ``http.curloptResolve``; git://: the URL names the checked address itself."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    try:
        port = parts.port or GIT_PORTS[scheme]
    except ValueError as exc:
        raise RepositoryError(f"{url}: {exc}") from None
    host = parts.hostname
    if not host:
        raise RepositoryError(f"{url}: no host in the repository URL")
    addresses = guard.check_host_sync(host, port)
    try:
        ipaddress.ip_address(host)
        return url, [], addresses  # an address already: nothing to resolve
    except ValueError:
        pass
    if scheme == "git":
        netloc = f"{_bracketed(addresses[0])}:{port}"
        return urlunsplit((scheme, netloc, parts.path, parts.query, "")), [], addresses[:1]
    pinned = ",".join(_bracketed(address) for address in addresses)
    return url, ["-c", f"http.curloptResolve={host}:{port}:{pinned}"], addresses


def clone_command(url: str, into: Path, pin: list[str], *, shallow: bool = True) -> list[str]:
    """The arguments of ``git`` for a quiet, redirect-free clone of one branch of ``url``."""
    return [
        "-c",
        "http.followRedirects=false",
        "-c",
        "core.symlinks=false",
        *pin,
        "clone",
        *(["--depth", "1"] if shallow else []),
        "--single-branch",
        "--no-tags",
        "--quiet",
        "--",
        url,
        str(into),
    ]


def _clone(url: str, into: Path, subject: str, guard: NetworkGuard, options: RepoOptions) -> list[str]:
    """Clone ``url`` into ``into``; the addresses git was pinned to (none for a local repository)."""
    scheme = urlsplit(url).scheme.lower()
    target, pin, addresses = (url, [], []) if scheme == "file" else pin_address(url, guard)
    # Only the protocol of this clone: a remote repository cannot make git read local files.
    protocols = {"file": "file", "git": "git"}.get(scheme, "http:https")
    deadline = time.monotonic() + options.clone_timeout_s
    result = run_git(
        clone_command(target, into, pin),
        subject=subject,
        timeout_s=options.clone_timeout_s,
        allow_protocols=protocols,
    )
    if result.returncode != 0 and "does not support shallow" in result.stderr:
        # A dumb-HTTP server (static files) cannot serve a shallow clone: take the whole branch, within
        # what is left of the same deadline.
        shutil.rmtree(into, ignore_errors=True)
        left = max(1.0, deadline - time.monotonic())
        command = clone_command(target, into, pin, shallow=False)
        result = run_git(command, subject=subject, timeout_s=left, allow_protocols=protocols)
    if result.returncode != 0:
        reason = (result.stderr.strip().splitlines() or ["unknown error"])[-1]
        raise RepositoryError(f"{subject}: git clone failed ({reason})")
    return addresses


def _head(root: Path, subject: str) -> str | None:
    result = run_git(["-C", str(root), "rev-parse", "HEAD"], subject=subject, timeout_s=HEAD_TIMEOUT_S)
    return result.stdout.strip() or None


def _is_git_repository(folder: Path) -> bool:
    """A work tree (has .git) or a bare repository (HEAD and objects/ at the top)."""
    return (folder / ".git").exists() or ((folder / "HEAD").is_file() and (folder / "objects").is_dir())


def _borrowed_objects(folder: Path) -> str | None:
    """Why a local repository would make git read objects outside ``folder`` (and so outside the
    allowed folders), or None."""
    dot_git = folder / ".git"
    if dot_git.is_file():
        return "its .git is a file pointing at another folder (a worktree or submodule)"
    store = dot_git if dot_git.is_dir() else folder
    if (store / "objects" / "info" / "alternates").exists():
        return "it borrows objects from another repository (objects/info/alternates)"
    return None


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
            if not real.is_dir():
                raise LocalPathRefused(
                    url, "a local repository is a folder (a work tree or a bare repository)"
                )
            canonical = real.as_uri()
            if _is_git_repository(real):
                borrowed = _borrowed_objects(real)
                if borrowed is not None:
                    raise LocalPathRefused(url, f"{borrowed}; only self-contained repositories are read")
                _clone(real.as_uri(), Path(tmp) / "repo", url, guard, options)
                root = Path(tmp) / "repo"
                commit = _head(root, url)
            else:
                root, commit = real, None  # a plain folder given as a repository: walk it in place
        else:
            addresses = _clone(url, Path(tmp) / "repo", url, guard, options)
            root = Path(tmp) / "repo"
            commit = _head(root, url)
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
    parts = urlsplit(url)
    name = parts.path.rstrip("/").rsplit("/", 1)[-1].removesuffix(".git") or parts.hostname or url
    return CrawledDocument(
        url=canonical,
        kind="repository",
        content="".join(sections).rstrip() + "\n",
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
