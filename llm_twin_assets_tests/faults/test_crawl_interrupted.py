"""A fault test: a crawl killed halfway (SIGKILL, a real process). What it had found stays stored, the
next run finishes the crawl, and every link's document is stored exactly once."""

from __future__ import annotations

import http.server
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import dagster as dg

from llm_twin_assets.defs.ingest.assets import raw_documents
from llm_twin_assets.defs.ingest.checks import raw_documents_have_content, raw_documents_unique_content
from llm_twin_assets.defs.resources import AuthorsResource, StoreResource
from llm_twin_assets.defs.runner import materialize_for_author
from llm_twin_assets.store.database import Database
from llm_twin_assets_tests.ingest.site import article, write_links
from llm_twin_assets_tests.servers import serve_http

PAGES = 8
ANSWERED = 4
"""Pages answered at once; the next one is held until the test lets it go, so the crawl is killed with
exactly these fetched."""
WAIT_S = 60.0
CONFIG = {"ops": {"raw_documents": {"config": {"min_delay_s": 0.05, "render": "never"}}}}
CRAWL = """
import json
import sys

from llm_twin_assets.defs.ingest.assets import raw_documents
from llm_twin_assets.defs.resources import AuthorsResource, StoreResource
from llm_twin_assets.defs.runner import materialize_for_author

materialize_for_author(
    [raw_documents],
    "maya",
    {
        "store": StoreResource(),
        "authors": AuthorsResource(authors_dir=sys.argv[1], allow_private_networks=True),
    },
    run_config=json.loads(sys.argv[2]),
)
"""


class Site:
    """Eight articles on 127.0.0.1; after the first ANSWERED, a request waits for ``release``."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.lock = threading.Lock()
        self.asked: list[str] = []
        self.answered: list[str] = []


@contextmanager
def serve(site: Site) -> Iterator[str]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path == "/robots.txt":
                return self._send(404, "no rules")
            number = path.removeprefix("/post-").removesuffix(".html")
            if not number.isdigit() or not 0 <= int(number) < PAGES:
                return self._send(404, "no such page")
            with site.lock:
                site.asked.append(path)
                held = len(site.asked) > ANSWERED
            if held:
                site.release.wait(WAIT_S)
            with site.lock:
                site.answered.append(path)
            self._send(
                200,
                article(
                    f"Post {number}",
                    f"Post {number} is about lesson {number}: small tools, measured twice, run {number} times.",
                ),
            )

        def _send(self, status: int, body: str) -> None:
            data = body.encode()
            try:
                self.send_response(status)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
            except OSError:  # the crawler was killed while this page was held
                pass

    with serve_http(Handler, stop=site.release.set) as url:
        yield url


def stored(db: Database) -> dict[str, tuple[str, str, str]]:
    """URL -> (content hash, transaction id, fetched at) of maya's rows."""
    with db.connect() as conn:
        rows = conn.execute(
            "SELECT url, content_hash, xmin::text, fetched_at::text FROM raw_documents WHERE author = 'maya'"
        ).fetchall()
    found = {r[0]: (r[1], r[2], r[3]) for r in rows}
    assert len(found) == len(rows)
    return found


def until(what: str, condition: Callable[[], str | None], proc: subprocess.Popen[str], log: Path) -> None:
    """Wait until ``condition`` returns None; what it returns otherwise says where things stand."""
    deadline = time.monotonic() + WAIT_S
    state = None
    while time.monotonic() < deadline:
        state = condition()
        if state is None:
            return
        if proc.poll() is not None:
            raise AssertionError(
                f"the crawl ended (exit {proc.returncode}) before {what}:\n{log.read_text()}"
            )
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}: {state}")


def test_a_crawl_killed_halfway_keeps_what_it_found_and_the_next_run_finishes_it(
    db: Database, tmp_path: Path
) -> None:
    site = Site()
    authors = tmp_path / "authors"
    with serve(site) as base:
        links = [f"{base}/post-{i}.html" for i in range(PAGES)]
        write_links(authors, "maya", links)
        log_path = tmp_path / "crawl.log"
        log = log_path.open("w")
        proc = subprocess.Popen(
            [sys.executable, "-c", CRAWL, str(authors), json.dumps(CONFIG)],
            stdout=log,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,  # its own process group: the kill takes all of it
        )
        try:
            until(
                "half the pages stored and the next one asked for",
                lambda: (
                    None
                    if len(site.asked) > ANSWERED and len(stored(db)) == ANSWERED
                    else f"{len(site.asked)} pages asked for, {len(stored(db))} stored"
                ),
                proc,
                log_path,
            )
        finally:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=WAIT_S)
            log.close()
        assert proc.returncode == -signal.SIGKILL
        assert len(site.asked) == ANSWERED + 1  # killed while the next page was on its way
        first = stored(db)
        with site.lock:
            fetched = [base + path for path in site.answered]
        assert sorted(first) == sorted(fetched) and len(first) == ANSWERED  # what it found, stored

        site.release.set()  # the next run meets no held page
        with dg.DagsterInstance.ephemeral() as instance:
            second = materialize_for_author(
                [raw_documents, raw_documents_have_content, raw_documents_unique_content],
                "maya",
                {
                    "store": StoreResource(),
                    "authors": AuthorsResource(authors_dir=str(authors), allow_private_networks=True),
                },
                instance=instance,
                run_config=CONFIG,
            )
    assert second.success
    assert all(c.passed for c in second.get_asset_check_evaluations())
    [event] = second.asset_materializations_for_node("raw_documents")
    meta = {k: v.value for k, v in event.metadata.items()}
    assert (meta["new"], meta["unchanged"], meta["changed"], meta["failed"]) == (
        PAGES - ANSWERED,
        ANSWERED,
        0,
        0,
    )
    final = stored(db)
    assert sorted(final) == sorted(links)  # every link once
    assert len({hash_ for hash_, _, _ in final.values()}) == PAGES  # each its own content
    assert {url: final[url] for url in first} == first  # the first run's rows, untouched
    with db.connect() as conn:
        assert conn.execute("SELECT links_hash IS NOT NULL FROM authors WHERE slug = 'maya'").fetchone() == (
            True,
        )
