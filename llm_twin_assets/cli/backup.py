"""``llm-twin export <dir>`` and ``llm-twin import <dir>``: the whole warehouse, with checksums."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from llm_twin_assets.cli.common import friendly_errors


def _store_and_database():  # type: ignore[no-untyped-def]
    from llm_twin_assets.artifacts import open_store
    from llm_twin_assets.settings import get_settings
    from llm_twin_assets.store.database import open_database

    settings = get_settings()
    return open_database(settings), open_store(settings.artifacts_url, settings.artifacts_dir)


def export_command(target: Annotated[Path, typer.Argument(help="A new (or empty) folder.")]) -> None:
    """Export every table (documents, chunks with embeddings, evaluations, releases, traces …) and every
    artifact (datasets, adapters) with a manifest of checksums."""
    from llm_twin_assets.backup import export_store

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
    """Import an export into an empty store (checked first: a partial or damaged export is refused and
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
