"""The twin service under load: N concurrent HTTP clients against a real `llm-twin serve` process.

- /retrieve: p50/p95/p99 latency and requests/s at 1 and --clients concurrent clients (goal on 2 CPU
  cores: p99 < 50 ms at 20 clients), then again at --clients while --batch /generate requests keep the
  generation thread busy (retrieval must not queue behind generation);
- /rag: the same figures with generation (--rag-tokens new tokens each);
- /generate: generated tokens/s, one request at a time versus --batch concurrent requests (goal: >= 3x in
  each of --runs runs).

It serves the data home of LLM_TWIN_HOME (run `make demo` first: Maya's released twin on SmolLM2-135M),
or ``--url`` of a service already running. Every answer runs to its full --gen-tokens (min_new_tokens is
not a service option, so prompts ask for long answers; the figures count the tokens really generated).

    make bench-serve            (CPU)
    python bench/serve.py --url http://gpu-host:3001 --batch 32     (a GPU service)
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.harness import Report

QUESTIONS = [
    "Why should a data job be safe to run twice?",
    "How do you test a pipeline?",
    "What is an idempotent write?",
    "How do you pick a vector index?",
    "What goes wrong when a job runs twice?",
    "How do you keep a schema in one place?",
    "What did you learn from tinyvec?",
    "How do you make a backfill safe?",
]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


async def load(
    url: str, route: str, payloads: list[dict], clients: int
) -> tuple[list[float], float, list[dict]]:  # type: ignore[type-arg]
    """Send ``payloads`` with ``clients`` in flight at once; latencies (ms), wall seconds, bodies."""
    latencies: list[float] = []
    bodies: list[dict] = []  # type: ignore[type-arg]
    queue: asyncio.Queue[dict] = asyncio.Queue()  # type: ignore[type-arg]
    for payload in payloads:
        queue.put_nowait(payload)
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=url, timeout=600, limits=limits) as client:

        async def worker() -> None:
            while not queue.empty():
                payload = queue.get_nowait()
                started = time.perf_counter()
                response = await client.post(route, json=payload)
                latencies.append((time.perf_counter() - started) * 1000)
                if response.status_code != 200:
                    raise SystemExit(f"{route} answered {response.status_code}: {response.text[:300]}")
                bodies.append(response.json())

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(clients)))
        return latencies, time.perf_counter() - started, bodies


async def busy_generating(url: str, payload: dict, clients: int, stop: asyncio.Event) -> int:  # type: ignore[type-arg]
    """Keep ``clients`` /generate requests in flight until ``stop``; the tokens they generated."""
    tokens = 0
    async with httpx.AsyncClient(base_url=url, timeout=600) as client:

        async def worker() -> None:
            nonlocal tokens
            while not stop.is_set():
                response = await client.post("/generate", json=payload)
                if response.status_code == 200:
                    tokens += response.json()["usage"]["completion_tokens"]

        await asyncio.gather(*(worker() for _ in range(clients)))
    return tokens


async def load_while_generating(
    url: str,
    payloads: list[dict],
    clients: int,
    generate: dict,
    batch: int,  # type: ignore[type-arg]
) -> tuple[list[float], float, list[dict]]:  # type: ignore[type-arg]
    """``load`` on /retrieve while ``batch`` /generate requests keep the generation thread busy."""
    stop = asyncio.Event()
    background = asyncio.ensure_future(busy_generating(url, generate, batch, stop))
    await asyncio.sleep(1.0)  # the batch is running
    try:
        return await load(url, "/retrieve", payloads, clients)
    finally:
        stop.set()
        await background


def summary(latencies: list[float], wall: float) -> dict[str, float]:
    return {
        "requests": len(latencies),
        "p50_ms": statistics.median(latencies),
        "p95_ms": percentile(latencies, 0.95),
        "p99_ms": percentile(latencies, 0.99),
        "rps": len(latencies) / wall,
    }


def start_service(port: int, log: Path) -> subprocess.Popen[bytes]:
    llm_twin = str(Path(sys.executable).with_name("llm-twin"))
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [llm_twin, "serve", "--port", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"the service exited; see {log}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200:
                return proc
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    raise SystemExit(f"the service was not ready in 300 s; see {log}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--url", help="a running service (default: start one on the data home)")
    parser.add_argument("--port", type=int, default=3017)
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--requests", type=int, default=400, help="/retrieve requests")
    parser.add_argument("--rag-requests", type=int, default=16)
    parser.add_argument("--rag-tokens", type=int, default=32)
    parser.add_argument("--batch", type=int, default=8, help="concurrent /generate requests")
    parser.add_argument("--gen-tokens", type=int, default=64)
    parser.add_argument("--runs", type=int, default=3, help="runs of the /generate batching comparison")
    parser.add_argument(
        "--only", choices=("retrieve", "rag", "generate"), action="append", help="run only these parts"
    )
    args = parser.parse_args()

    proc = None
    url = args.url
    if url is None:
        home = Path(os.environ.get("LLM_TWIN_HOME", ".llm_twin"))
        (home / "logs").mkdir(parents=True, exist_ok=True)
        proc = start_service(args.port, home / "logs" / "bench-serve.log")
        url = f"http://127.0.0.1:{args.port}"
    try:
        models = httpx.get(f"{url}/v1/models", timeout=30).json()["data"]
        if not models:
            raise SystemExit("no released twin to serve: run `make demo` first")
        author = models[0]["id"]
        report = Report("serve-cpu")
        report.note("author", f"{author} release {models[0]['release']}")
        report.note("cpus", os.cpu_count())
        report.note("load_average", " ".join(f"{x:.2f}" for x in os.getloadavg()))
        parts = set(args.only or ("retrieve", "rag", "generate"))
        prompt = "Write a long, detailed essay about data pipelines, with many examples."
        generate = [
            {"prompt": prompt, "author": author, "max_new_tokens": args.gen_tokens} for _ in range(args.batch)
        ]

        retrieve = [
            {"query": QUESTIONS[i % len(QUESTIONS)], "author": author, "top_k": 5}
            for i in range(args.requests)
        ]
        if "retrieve" in parts:
            asyncio.run(load(url, "/retrieve", retrieve[:20], 4))  # warm-up
            for clients in (1, args.clients):
                latencies, wall, _ = asyncio.run(load(url, "/retrieve", retrieve, clients))
                report.add(route="/retrieve", clients=clients, generating=0, **summary(latencies, wall))
            latencies, wall, _ = asyncio.run(
                load_while_generating(url, retrieve, args.clients, generate[0], args.batch)
            )
            report.add(
                route="/retrieve", clients=args.clients, generating=args.batch, **summary(latencies, wall)
            )

        rag = [
            {"query": QUESTIONS[i % len(QUESTIONS)], "author": author, "max_new_tokens": args.rag_tokens}
            for i in range(args.rag_requests)
        ]
        for clients in (1, min(8, args.rag_requests)) if "rag" in parts else ():
            latencies, wall, bodies = asyncio.run(load(url, "/rag", rag, clients))
            tokens = sum(b["usage"]["completion_tokens"] for b in bodies)
            report.add(
                route="/rag",
                clients=clients,
                requests=len(latencies),
                p50_ms=statistics.median(latencies),
                p95_ms=percentile(latencies, 0.95),
                p99_ms=percentile(latencies, 0.99),
                rps=len(latencies) / wall,
                tokens_per_s=tokens / wall,
                largest_batch=max(b.get("batch_size") or 0 for b in bodies),
            )

        speedups = []
        for run in range(1, args.runs + 1) if "generate" in parts else ():
            figures = {}
            for clients in (1, args.batch):
                latencies, wall, bodies = asyncio.run(load(url, "/generate", generate, clients))
                tokens = sum(b["usage"]["completion_tokens"] for b in bodies)
                figures[clients] = tokens / wall
                report.add(
                    route="/generate",
                    run=run,
                    clients=clients,
                    requests=len(latencies),
                    p50_ms=statistics.median(latencies),
                    tokens=tokens,
                    tokens_per_s=tokens / wall,
                    largest_batch=max(b.get("batch_size") or 0 for b in bodies),
                )
            speedups.append(figures[args.batch] / figures[1])
        if speedups:
            report.note("generate_speedup", ", ".join(f"{s:.2f}x" for s in speedups))
        report.note("load_average_after", " ".join(f"{x:.2f}" for x in os.getloadavg()))
        report.save()
    finally:
        if proc is not None:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=60)


if __name__ == "__main__":
    main()
