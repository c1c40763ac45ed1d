"""``llm-twin``: the user's front door to the platform."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import Annotated, Any, TypeVar

import typer

from llm_twin_assets.errors import TwinError
from llm_twin_assets.settings import get_settings

app = typer.Typer(help="Build an LLM twin of an author, from their writing to a served model.",
                  no_args_is_help=True, pretty_exceptions_enable=False)
db_app = typer.Typer(help="The PostgreSQL + pgvector store (embedded by default).", no_args_is_help=True)
models_app = typer.Typer(help="The bundled models (offline).", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(models_app, name="models")

F = TypeVar("F", bound=Callable[..., Any])


def friendly_errors(func: F) -> F:
    """Our own errors print one clear line and exit 2, instead of a traceback."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except TwinError as exc:
            typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
            raise typer.Exit(2) from None

    return wrapper  # type: ignore[return-value]


@db_app.command("start")
@friendly_errors
def db_start() -> None:
    """Start the store (the embedded server unless LLM_TWIN_DATABASE_URL is set) and apply the schema."""
    from llm_twin_assets.store.database import open_database, redact

    database = open_database(get_settings())
    typer.echo(f"ready: {redact(database.url)}")


@db_app.command("stop")
@friendly_errors
def db_stop() -> None:
    """Stop the embedded server (an external database is left alone)."""
    from llm_twin_assets.store import embedded

    settings = get_settings()
    if settings.database_url:
        typer.echo("LLM_TWIN_DATABASE_URL is set: the external database is not ours to stop")
        return
    stopped = embedded.stop(settings.pgdata)
    typer.echo(f"stopped: {settings.pgdata}" if stopped else f"not running: {settings.pgdata}")


@db_app.command("status")
@friendly_errors
def db_status() -> None:
    """Server, versions, applied schema files and row counts. Exit 1 when the store is down."""
    from llm_twin_assets.store import embedded
    from llm_twin_assets.store.database import Database
    from llm_twin_assets.store.status import report

    settings = get_settings()
    if settings.database_url:
        database = Database(settings.database_url, embedded=False)
    else:
        state = embedded.status(settings.pgdata)
        if not state.running or state.url is None:
            typer.echo(f"embedded server: not running ({settings.pgdata}); start it with `llm-twin db start`")
            raise typer.Exit(1)
        typer.echo(f"embedded server: running, pid {state.pid}, data {state.pgdata}")
        database = Database(state.url, embedded=True)
    for line in report(database).lines():
        typer.echo(line)


@db_app.command("url")
@friendly_errors
def db_url() -> None:
    """Print the connection URL (for psql or other tools). Exit 1 when the embedded server is down."""
    from llm_twin_assets.store import embedded

    settings = get_settings()
    if settings.database_url:
        typer.echo(settings.database_url)
        return
    state = embedded.status(settings.pgdata)
    if not state.running:
        typer.echo("embedded server not running; start it with `llm-twin db start`", err=True)
        raise typer.Exit(1)
    typer.echo(state.url)


@models_app.command("prepare")
@friendly_errors
def models_prepare(
    force: Annotated[bool, typer.Option(help="Convert again even if a cached conversion exists.")] = False,
    tiny: Annotated[bool, typer.Option(help="Also build the tiny test Llama.")] = False,
) -> None:
    """Convert the bundled base LLM once (cached per machine) and check the embedding model."""
    from llm_twin_assets.embeddings import load_embedder
    from llm_twin_assets.models import registry

    settings = get_settings()
    if settings.base_model == "bundled":
        folder = registry.prepare_smollm2(settings.model_cache, force=force)
        size = sum(p.stat().st_size for p in folder.iterdir() if p.is_file())
        typer.echo(f"base LLM:  {folder} ({size / 1e6:.0f} MB)")
    else:
        typer.echo(f"base LLM:  {registry.base_model(settings).name_or_path}")
    if tiny:
        typer.echo(f"tiny LLM:  {registry.tiny_llama(settings)}")
    embedder = load_embedder(settings)
    typer.echo(f"embedding: {registry.embedding_model(settings).name_or_path} "
               f"({embedder.get_embedding_dimension()}-d)")


def main() -> None:  # pragma: no cover - console entry point
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
