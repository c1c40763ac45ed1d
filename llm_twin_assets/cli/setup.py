"""``llm-twin db|models|instance``: the store, the bundled models and the Dagster instance of this machine."""

from __future__ import annotations

from typing import Annotated

import typer

from llm_twin_assets.cli.common import dagster_home, friendly_errors
from llm_twin_assets.settings import get_settings

db_app = typer.Typer(help="The PostgreSQL + pgvector store (embedded by default).", no_args_is_help=True)
models_app = typer.Typer(help="The bundled models (offline).", no_args_is_help=True)
instance_app = typer.Typer(help="The Dagster instance of this machine.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(db_app, name="db")
    app.add_typer(models_app, name="models")
    app.add_typer(instance_app, name="instance")


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
    from llm_twin_assets.store.database import Database, resolve_url
    from llm_twin_assets.store.status import report

    settings = get_settings()
    if settings.database_url:
        database = Database(resolve_url(settings)[0], embedded=False)
    else:
        state = embedded.status(settings.pgdata)
        if not state.running or state.url is None:
            typer.echo(f"embedded server: not running ({settings.pgdata}); start it with `llm-twin db start`")
            raise typer.Exit(1)
        typer.echo(f"embedded server: running, pid {state.pid}, data {state.pgdata}")
        database = Database(state.url, embedded=True)
    found = report(database)
    for line in found.lines():
        typer.echo(line)
    if found.problems:
        raise typer.Exit(1)


@db_app.command("url")
@friendly_errors
def db_url(
    show_password: Annotated[
        bool, typer.Option("--show-password", help="Print the password too (for psql or other tools).")
    ] = False,
) -> None:
    """Print the connection URL, its password hidden unless --show-password. Exit 1 when the embedded
    server is down."""
    from llm_twin_assets.store import embedded
    from llm_twin_assets.store.database import redact

    settings = get_settings()
    if settings.database_url:
        typer.echo(settings.database_url if show_password else redact(settings.database_url))
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
    typer.echo(
        f"embedding: {registry.embedding_model(settings).name_or_path} "
        f"({embedder.get_embedding_dimension()}-d)"
    )


@instance_app.command("init")
@friendly_errors
def instance_init() -> None:
    """Write $DAGSTER_HOME/dagster.yaml (one run per author at a time, the gpu pool) unless you have your own."""
    typer.echo(f"dagster instance: {dagster_home() / 'dagster.yaml'}")
