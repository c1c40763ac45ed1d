"""``llm-twin export <dir>`` and ``llm-twin import <dir>``: the whole warehouse, with checksums."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from llm_twin_assets.cli.common import friendly_errors


def _store_and_database():
    from llm_twin_assets.artifacts import open_store
    from llm_twin_assets.settings import get_settings
    from llm_twin_assets.store.database import open_database

    settings = get_settings()
    return open_database(settings), open_store(settings.artifacts_url, settings.artifacts_dir)


def export_command(target: Annotated[Path, typer.Argument(help="A new (or empty) folder.")]) -> None:
    """Export every table (documents, chunks with embeddings, evaluations, releases, traces …) and every
    artifact (datasets, adapters) with a manifest of checksums. An existing file, a folder with anything
    in it, or a place that cannot be written is refused before anything is read."""
    from llm_twin_assets.backup import check_export_target, export_store

    check_export_target(target)
    database, store = _store_and_database()
    summary = export_store(database, store, target, progress=lambda line: typer.echo(f"  {line}"))
    rows = sum(summary.tables.values())
    typer.echo(
        f"exported {rows:,} rows in {len(summary.tables)} tables and {summary.artifacts:,} artifacts "
        f"({summary.bytes / 1e6:.1f} MB) to {target}"
    )


def import_command(
    source: Annotated[Path, typer.Argument(help="A folder written by `llm-twin export`.")],
) -> None:
    """Import an export into an empty store (checked first: a partial or damaged export, a symbolic link
    anywhere in it, a manifest path outside it or a row count that is not the manifest's is refused and
    nothing is written)."""
    from llm_twin_assets.backup import import_store

    database, store = _store_and_database()
    summary = import_store(database, store, source, progress=lambda line: typer.echo(f"  {line}"))
    rows = sum(summary.tables.values())
    typer.echo(
        f"imported {rows:,} rows in {len(summary.tables)} tables and {summary.artifacts:,} artifacts from {source}"
    )


def register(app: typer.Typer) -> None:
    app.command("export")(friendly_errors(export_command))
    app.command("import")(friendly_errors(import_command))
