"""git under a deadline that holds, and pinned to the address the SSRF guard checked.

Real git against real servers on 127.0.0.1: a trickling HTTP server, a dumb-HTTP server over a bare
repository (``git update-server-info``) and ``git daemon``, reached through the name ``localhost``.
"""

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from llm_twin_assets.crawling.git import RepositoryError, pin_address, run_git
from llm_twin_assets.crawling.repositories import RepoOptions, crawl_repository
from llm_twin_assets.crawling.safety import BlockedAddress, NetworkGuard
from llm_twin_assets.demo import serve_directory
from llm_twin_assets_tests.ingest.trickle import processes_naming, serve_trickle
from llm_twin_assets_tests.servers import free_port
from llm_twin_assets_tests.waiting import wait_until

GUARD = NetworkGuard(allow_private=True)  # the servers live on loopback


def test_a_trickling_git_server_cannot_hold_a_clone_and_leaves_no_git_behind() -> None:
    with serve_trickle() as base:
        url = f"{base}/x.git"
        start = time.monotonic()
        with pytest.raises(RepositoryError) as err:
            crawl_repository(url, url, GUARD, RepoOptions(clone_timeout_s=3))
        elapsed = time.monotonic() - start
        # git-remote-http, not only git, must be gone while the server would still be trickling.
        left = processes_naming(base)
    assert str(err.value) == f"{url}: git clone took over 3 s; stopped it and every process it started"
    assert elapsed < 3 * 3  # a few times the clone's 3 s limit, not the trickle's 30 s
    assert left == []


def test_every_git_call_has_a_deadline(tmp_path: Path) -> None:
    # A git whose child outlives the deadline (here an alias running sleep) is stopped, child and all.
    with pytest.raises(RepositoryError, match=r"^the link: git wait took over 1 s"):
        run_git(["-c", "alias.wait=!sleep 37.5", "wait"], subject="the link", timeout_s=1)
    assert processes_naming("sleep 37.5") == []  # the alias's own child went with git


@pytest.fixture
def served_repo(sample_repo: Path, tmp_path: Path) -> Path:
    """The sample bare repository, ready for a dumb-HTTP server (info/refs written)."""
    folder = tmp_path / "served"
    shutil.copytree(sample_repo, folder / "tinyvec.git")
    subprocess.run(["git", "-C", str(folder / "tinyvec.git"), "update-server-info"], check=True)
    return folder


def test_an_http_clone_through_a_host_name_is_pinned_to_the_checked_address(
    served_repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    trace = tmp_path / "curl.log"
    monkeypatch.setenv("GIT_TRACE_CURL", str(trace))  # curl's own account of how it found the host
    with serve_directory(served_repo) as base:
        port = int(base.rsplit(":", 1)[1])
        url = f"http://localhost:{port}/tinyvec.git"
        target, options, addresses = pin_address(url, GUARD)
        assert (target, options, addresses) == (
            url,
            ["-c", f"http.curloptResolve=localhost:{port}:127.0.0.1"],
            ["127.0.0.1"],
        )
        doc = crawl_repository(url, url, GUARD)
    assert doc.metadata["address"] == "127.0.0.1" and len(doc.metadata["commit"]) == 40
    assert doc.metadata["files"][0]["path"] == "README.md" and doc.url == f"http://localhost:{port}/tinyvec"
    log = trace.read_text()
    assert f"Added localhost:{port}:127.0.0.1 to DNS cache" in log  # the pin, from the guard's answer
    assert "Hostname localhost was found in DNS cache" in log  # used instead of a second lookup


def _listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
        return True
    except OSError:
        return False


@pytest.fixture
def git_daemon(served_repo: Path) -> Iterator[int]:
    port = free_port()
    daemon = subprocess.Popen(
        [
            "git",
            "daemon",
            "--export-all",
            f"--base-path={served_repo}",
            "--listen=127.0.0.1",
            f"--port={port}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_until(lambda: _listening(port), "git daemon to listen", 5, 0.05)
        yield port
    finally:
        daemon.terminate()
        daemon.wait(timeout=10)


def test_a_git_protocol_clone_dials_the_checked_address(
    git_daemon: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    trace = tmp_path / "packet.log"
    monkeypatch.setenv("GIT_TRACE_PACKET", str(trace))
    url = f"git://localhost:{git_daemon}/tinyvec.git"
    assert pin_address(url, GUARD) == (f"git://127.0.0.1:{git_daemon}/tinyvec.git", [], ["127.0.0.1"])
    doc = crawl_repository(url, url, GUARD)
    assert doc.metadata["address"] == "127.0.0.1" and doc.metadata["files"][0]["path"] == "README.md"
    # The request git sent names the address the guard checked, not the name.
    assert f"host=127.0.0.1:{git_daemon}" in trace.read_text()


def test_a_clone_of_a_loopback_host_is_refused_before_git_runs() -> None:
    with pytest.raises(BlockedAddress, match="localhost resolves to 127.0.0.1, a loopback address"):
        crawl_repository("http://localhost:9/x.git", "x", NetworkGuard(allow_private=False))
