"""A hostile-enough local web site for crawler tests, served on 127.0.0.1 (and other loopback hosts).

Static pages come from ``samples/site`` (the demo author's site: two article layouts, a page rendered
by JavaScript, a feed); dynamic routes add what real sites do to crawlers.
"""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from llm_twin_assets.demo import SAMPLES

SITE = SAMPLES / "site"
ARTICLE = """<!doctype html><html><head><meta charset="utf-8"><title>{title}</title></head><body>
<nav>Home · Archive</nav><article><h1>{title}</h1>{paragraphs}</article><footer>© Maya</footer></body></html>"""
CHALLENGE = """<!doctype html><html><head><title>Just a moment...</title></head><body>
<div id="cf-challenge">Checking your browser before accessing the site.</div>
<script src="/cdn-cgi/challenge-platform/h/b/orchestrate/jsch/v1"></script></body></html>"""


def article(title: str, sentence: str, n: int = 6) -> str:
    body = "".join(
        f"<p>{sentence} This is paragraph {i} of the piece, in Maya's plain voice.</p>" for i in range(n)
    )
    return ARTICLE.format(title=title, paragraphs=body)


@dataclass
class SiteState:
    """What the test can change between crawls, and what the server saw."""

    changing_text: str = "The first version of this note says that small machines are enough."
    changing_status: int = 200
    flaky_hits: int = 0
    requests: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


def _handler(state: SiteState, base: list[str]) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args: object, **kwargs: object) -> None:
            super().__init__(*args, directory=str(SITE), **kwargs)  # type: ignore[arg-type]

        def log_message(self, format: str, *args: object) -> None:
            pass

        def _send(
            self,
            status: int,
            body: bytes | str,
            content_type: str = "text/html; charset=utf-8",
            headers: dict[str, str] | None = None,
        ) -> None:
            data = body.encode() if isinstance(body, str) else body
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            with state.lock:
                state.requests.append(self.path)
            path = self.path.split("?", 1)[0]
            if path == "/robots.txt":
                self._send(200, "User-agent: *\nDisallow: /drafts/\n", "text/plain")
            elif path == "/drafts/secret.html":
                self._send(200, article("Secret draft", "This must never be crawled."))
            elif path == "/flaky.html":
                with state.lock:
                    state.flaky_hits += 1
                    first = state.flaky_hits == 1
                if first:
                    self._send(429, "slow down", "text/plain", {"Retry-After": "1"})
                else:
                    self._send(
                        200, article("Patience pays", "Retries should wait as long as the server asks.")
                    )
            elif path == "/changing.html":
                self._send(state.changing_status, article("A note that changes", state.changing_text))
            elif path == "/loop-a":
                self._send(302, "", headers={"Location": "/loop-b"})
            elif path == "/loop-b":
                self._send(302, "", headers={"Location": "/loop-a"})
            elif path == "/huge.html":
                self._send(200, article("Huge", "word " * 200, n=200))
            elif path == "/paper.pdf":
                self._send(200, b"%PDF-1.7\x00\x01\x02binary" * 100, "application/pdf")
            elif path == "/members/@maya/walled-story":
                self._send(403, CHALLENGE)
            elif path == "/feed":
                link = f"{base[0]}/members/@maya/walled-story"
                self._send(
                    200,
                    f"""<?xml version="1.0"?><rss version="2.0"
 xmlns:content="http://purl.org/rss/1.0/modules/content/"><channel><title>Maya</title>
<item><title>The walled story</title><link>{link}</link><pubDate>Mon, 03 Nov 2025 08:00:00 GMT</pubDate>
<content:encoded><![CDATA[<p>Behind the wall, the story is simple: measure before you scale.</p>
<p>A second paragraph so the feed entry reads like an article, with its own plain words.</p>]]>
</content:encoded></item></channel></rss>""",
                    "application/rss+xml",
                )
            elif path == "/error.html":
                self._send(500, "boom", "text/plain")
            elif path == "/removed.html":
                self._send(410, "this page was removed by its author", "text/plain")
            else:
                super().do_GET()

    return Handler


@contextmanager
def serve_site(host: str = "127.0.0.1", state: SiteState | None = None) -> Iterator[tuple[str, SiteState]]:
    state = state or SiteState()
    base: list[str] = []
    server = http.server.ThreadingHTTPServer((host, 0), _handler(state, base))
    base.append(f"http://{host}:{server.server_address[1]}")
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield base[0], state
    finally:
        server.shutdown()
        server.server_close()


def write_links(folder: Path, slug: str, lines: list[str], name: str = "Maya Okafor") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{slug}.yaml"
    path.write_text(f"name: {name}\nlinks:\n" + "".join(f"  - {line}\n" for line in lines))
    return path
