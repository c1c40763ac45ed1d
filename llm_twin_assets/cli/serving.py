"""``llm-twin serve`` (the BentoML service in bentos/llm_twin) and ``llm-twin ask`` (a question over HTTP)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from llm_twin_assets.cli.common import friendly_errors
from llm_twin_assets.errors import TwinError
from llm_twin_assets.settings import get_settings

SERVICE = "bentos.llm_twin.service:LLMTwin"
DEFAULT_PORT = 3001
"""Not 3000: that is the Dagster UI's (`llm-twin dagster`); `make serve` and the README use 3001 too."""
DEFAULT_URL = f"http://127.0.0.1:{DEFAULT_PORT}"


def project_root() -> Path:
    """The checkout that holds bentos/llm_twin (the service is not part of the installed package)."""
    root = Path(__file__).resolve().parents[2]
    if not (root / "bentos" / "llm_twin" / "service.py").is_file():
        raise TwinError(
            f"bentos/llm_twin/service.py is not beside this installation ({root}): run from a checkout, or "
            "serve a built bento (`bentoml build -f bentos/llm_twin/bentofile.yaml .`, then `bentoml serve llm_twin`)"
        )
    return root


def serve(
    port: Annotated[int, typer.Option(help="Port to listen on (3000 is the Dagster UI's).")] = DEFAULT_PORT,
    host: Annotated[str, typer.Option(help="Address to bind (0.0.0.0 to serve the network).")] = "127.0.0.1",
) -> None:
    """Serve the released twins: /rag, /retrieve, /generate, /v1 (OpenAI-compatible), the chat page at /,
    /readyz and /metrics. Runs until interrupted; new releases and rollbacks are picked up live."""
    root = project_root()
    bentoml = Path(sys.executable).with_name("bentoml")
    command = [str(bentoml) if bentoml.exists() else "bentoml", "serve", SERVICE, "--port", str(port)]
    command += ["--host", host, "--working-dir", str(root)]
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": os.environ.get("HF_HUB_OFFLINE", "1"),
        "TOKENIZERS_PARALLELISM": "false",
        # the worker runs two torch thread teams at once (generation, query encoding) on the same cores:
        # idle OpenMP threads that spin slow the busy ones several times over (bench/serve.py)
        "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY", "PASSIVE"),
        # BentoML keeps Prometheus' multiprocess files in $BENTOML_HOME and empties that folder when a
        # service starts: a second service on this machine would wipe the first one's /metrics. One per
        # port, under the data home, unless BENTOML_HOME is set.
        "BENTOML_HOME": os.environ.get("BENTOML_HOME")
        or str(get_settings().home / "bentoml" / f"serve-{port}"),
    }
    typer.echo(f"serving on http://{host}:{port}/ (chat page), OpenAPI at /docs.json; Ctrl-C stops", err=True)
    os.chdir(root)
    os.execvpe(command[0], command, env)


def ask(
    question: Annotated[str, typer.Argument(help="What to ask.")],
    author: Annotated[
        str | None, typer.Option(help="The twin's author (slug); omitted: the one named or released.")
    ] = None,
    url: Annotated[str, typer.Option(help="The service's address.")] = DEFAULT_URL,
    top_k: Annotated[int, typer.Option(min=1, max=100, help="Passages given to the twin.")] = 3,
    max_new_tokens: Annotated[
        int | None, typer.Option(min=1, max=4096, help="Omitted: the service's default.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="The whole response as JSON.")] = False,
    wait: Annotated[float, typer.Option(help="Seconds to wait for the service to be ready (/readyz).")] = 0,
) -> None:
    """Ask the running service (POST /rag) and print the twin's answer and the passages it was given."""
    import httpx

    if wait:
        _wait_ready(url, wait)

    payload = {"query": question, "author": author, "top_k": top_k, "max_new_tokens": max_new_tokens}
    try:
        response = httpx.post(f"{url.rstrip('/')}/rag", json=payload, timeout=600)
    except httpx.TransportError as exc:
        raise TwinError(f"no service at {url} ({exc}): start it with `llm-twin serve`") from None
    body = response.json() if response.headers.get("content-type", "").startswith("application/json") else {}
    if response.status_code != 200:
        error = body.get("error")
        message = error.get("message") if isinstance(error, dict) else error or response.text
        raise TwinError(f"{url} answered {response.status_code}: {message}")
    if as_json:
        typer.echo(json.dumps(body, indent=2))
        return
    typer.secho(f"{body['author']}'s twin (release {body['release']}):", bold=True)
    typer.echo(body["answer"] + "\n")
    typer.secho("sources:", bold=True)
    for rank, source in enumerate(body["sources"], 1):
        snippet = " ".join(source["text"].split())[:160]
        typer.echo(f"{rank:>2}. {source['score']:.4f}  {source['document_url']}\n    {snippet}")
    timings = body["timings"]
    typer.echo(
        f"\n{body['usage']['completion_tokens']} tokens in {timings.get('total', 0) / 1000:.1f} s "
        f"(retrieval {timings.get('retrieve', 0):.0f} ms)"
    )


def _wait_ready(url: str, seconds: float) -> None:
    import time

    import httpx

    deadline = time.monotonic() + seconds
    while True:
        try:
            if httpx.get(f"{url.rstrip('/')}/readyz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            raise TwinError(f"the service at {url} was not ready within {seconds:g} s (see its log)")
        time.sleep(0.5)


def register(app: typer.Typer) -> None:
    app.command("serve")(friendly_errors(serve))
    app.command("ask")(friendly_errors(ask))
