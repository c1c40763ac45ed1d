"""Crawl throughput over a local multi-host fixture: our crawler versus fetching pages one by one.

Eight HTTP servers on 127.0.0.1-127.0.0.8 each serve 25 generated article pages (200 in all) and a
robots.txt. Both runs obey robots.txt and the same per-host minimum delay (default 0.25 s) and run the
same extraction (trafilatura); ours keeps every host busy at once, the baseline fetches and extracts
one page at a time, in two orders (pages grouped by host, as links files list them, and hosts
interleaved). Figures: pages/s, wall time, and the pages stored.

Run: ``.venv/bin/python bench/crawl.py [--hosts 8] [--pages 200] [--delay 0.25]``.
"""

from __future__ import annotations

import argparse
import asyncio
import http.server
import sys
import tempfile
import threading
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.harness import Report, timer
from llm_twin_assets.crawling.articles import ArticleOptions, crawl_article
from llm_twin_assets.crawling.dispatcher import CrawlOptions, crawl
from llm_twin_assets.crawling.http import CrawlPolicy, PoliteClient
from llm_twin_assets.crawling.links import parse
from llm_twin_assets.crawling.render import Renderer

SENTENCES = [
    "I keep coming back to the idea that small machines are enough for most data work.",
    "Measure first, then decide what needs to be bigger; usually nothing does.",
    "A job you can run twice without thinking is worth more than a clever recovery script.",
    "Boring infrastructure is a discipline, and discipline is what keeps pagers quiet.",
]


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        if self.path == "/robots.txt":
            body = b"User-agent: *\nDisallow: /private/\n"
            kind = "text/plain"
        else:
            n = abs(hash(self.path)) % 1000
            paragraphs = "".join(
                f"<p>{SENTENCES[(n + i) % 4]} Paragraph {i} of page {self.path}.</p>" for i in range(8)
            )
            body = (
                f"<html><head><title>Page {self.path}</title></head><body><nav>Home</nav><article>"
                f"<h1>Page {self.path}</h1>{paragraphs}</article><footer>(c)</footer></body></html>"
            ).encode()
            kind = "text/html; charset=utf-8"
        self.send_response(200)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


async def one_by_one(urls: list[str], policy: CrawlPolicy) -> tuple[int, int]:
    """Fetch and extract each page in turn: the next request starts when the previous page is done."""
    pages = 0
    async with PoliteClient(policy) as client:
        renderer = Renderer(client)
        try:
            for url in urls:
                pages += len(await crawl_article(url, "article", client, renderer, ArticleOptions()))
        finally:
            await renderer.close()
    return pages, client.requests


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=8)
    parser.add_argument("--pages", type=int, default=200)
    parser.add_argument("--delay", type=float, default=0.25, help="per-host minimum delay, seconds")
    args = parser.parse_args()

    servers = []
    for i in range(args.hosts):
        server = http.server.ThreadingHTTPServer((f"127.0.0.{i + 1}", 0), _Handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
    urls = [
        f"http://127.0.0.{i % args.hosts + 1}:{servers[i % args.hosts].server_address[1]}/p/{i}.html"
        for i in range(args.pages)
    ]
    links_text = "name: Bench Author\nlinks:\n" + "".join(f"  - {u}\n" for u in urls)
    links = parse(links_text, Path(tempfile.mkdtemp()) / "bench.yaml")
    policy = CrawlPolicy(
        min_delay_s=args.delay,
        allow_private_networks=True,
        per_host_concurrency=1,
        total_concurrency=max(8, args.hosts),
    )

    report = Report("crawl")
    report.note("hosts", args.hosts)
    report.note("pages", args.pages)
    report.note("per-host delay s", args.delay)
    with timer() as elapsed:
        outcome = crawl(links, CrawlOptions(policy=policy))
    seconds = elapsed()
    report.add(
        crawler="ours: hosts in parallel, polite per host",
        pages=len(outcome.documents),
        failed=len(outcome.failures),
        requests=outcome.stats["requests"],
        seconds=seconds,
        pages_per_s=len(outcome.documents) / seconds,
    )
    # One by one, in two orders: a site's pages together (how links files usually list them: the
    # host delay binds on every page) and hosts interleaved (the delay rarely binds).
    for order, ordered in (
        ("grouped by host", sorted(urls, key=lambda u: (u.split("/")[2], u))),
        ("hosts interleaved", urls),
    ):
        with timer() as elapsed:
            pages, requests = asyncio.run(one_by_one(ordered, policy))
        seconds = elapsed()
        report.add(
            crawler=f"one by one, {order}",
            pages=pages,
            failed=args.pages - pages,
            requests=requests,
            seconds=seconds,
            pages_per_s=pages / seconds,
        )
    ours, grouped, interleaved = report.rows
    report.note(
        "speed-up vs one by one (grouped / interleaved)",
        f"{ours['pages_per_s'] / grouped['pages_per_s']:.1f}x / "
        f"{ours['pages_per_s'] / interleaved['pages_per_s']:.1f}x",
    )
    report.save()
    for server in servers:
        server.shutdown()


if __name__ == "__main__":
    main()
