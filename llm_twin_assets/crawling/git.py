"""Running git on links from outside: every call under a deadline that kills git's whole process group,
with no prompts, proxies or user config, dialling only the addresses the network guard checked, and
cloning one branch without redirects or symlinks."""

from __future__ import annotations

import contextlib
import ipaddress
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from llm_twin_assets.crawling.safety import NetworkGuard
from llm_twin_assets.errors import TwinError


class RepositoryError(TwinError):
    pass


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


def clone(url: str, into: Path, subject: str, guard: NetworkGuard, timeout_s: float) -> list[str]:
    """Clone ``url`` into ``into``; the addresses git was pinned to (none for a local repository)."""
    scheme = urlsplit(url).scheme.lower()
    target, pin, addresses = (url, [], []) if scheme == "file" else pin_address(url, guard)
    # Only the protocol of this clone: a remote repository cannot make git read local files.
    protocols = {"file": "file", "git": "git"}.get(scheme, "http:https")
    deadline = time.monotonic() + timeout_s
    result = run_git(
        clone_command(target, into, pin),
        subject=subject,
        timeout_s=timeout_s,
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


def head_commit(root: Path, subject: str) -> str | None:
    result = run_git(["-C", str(root), "rev-parse", "HEAD"], subject=subject, timeout_s=HEAD_TIMEOUT_S)
    return result.stdout.strip() or None


def is_git_repository(folder: Path) -> bool:
    """A work tree (has .git) or a bare repository (HEAD and objects/ at the top)."""
    return (folder / ".git").exists() or ((folder / "HEAD").is_file() and (folder / "objects").is_dir())


def borrowed_objects(folder: Path) -> str | None:
    """Why a local repository would make git read objects outside ``folder`` (and so outside the
    allowed folders), or None."""
    dot_git = folder / ".git"
    if dot_git.is_file():
        return "its .git is a file pointing at another folder (a worktree or submodule)"
    store = dot_git if dot_git.is_dir() else folder
    if (store / "objects" / "info" / "alternates").exists():
        return "it borrows objects from another repository (objects/info/alternates)"
    return None
