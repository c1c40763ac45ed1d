"""``llm-twin demo build-repo|serve``: the demo author's local site and repository."""

from __future__ import annotations

import contextlib
from typing import Annotated

import typer

from llm_twin_assets.cli.common import friendly_errors

demo_app = typer.Typer(help="The demo author's local site and repository.", no_args_is_help=True)


@demo_app.command("build-repo")
@friendly_errors
def demo_build_repo() -> None:
    """Build samples/maya/tinyvec.git (a bare git repository) from samples/maya/tinyvec."""
    from llm_twin_assets.demo import SAMPLES, build_git_repo

    typer.echo(f"built {build_git_repo(SAMPLES / 'maya' / 'tinyvec', SAMPLES / 'maya' / 'tinyvec.git')}")


@demo_app.command("serve")
@friendly_errors
def demo_serve(port: Annotated[int, typer.Option(help="Port on 127.0.0.1.")] = 8765) -> None:
    """Serve samples/site on http://127.0.0.1:PORT until interrupted."""
    import signal
    import threading

    from llm_twin_assets.demo import SAMPLES, serve_directory

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with serve_directory(SAMPLES / "site", port=port) as url:
        typer.echo(f"serving {SAMPLES / 'site'} on {url}", err=True)
        with contextlib.suppress(KeyboardInterrupt):
            stop.wait()
