"""``llm-twin author add|list|show``: authors and their links files."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from llm_twin_assets.cli.common import dagster_instance, friendly_errors
from llm_twin_assets.errors import TwinError
from llm_twin_assets.settings import get_settings

author_app = typer.Typer(help="Authors and their links files.", no_args_is_help=True)


@author_app.command("add")
@friendly_errors
def author_add(links_file: Annotated[Path, typer.Argument(help="An <slug>.yaml links file.")]) -> None:
    """Validate a links file, copy it into the authors folder (or upload it to LLM_TWIN_AUTHORS_URL) and
    register the author's partition."""
    from llm_twin_assets.authors import add_author
    from llm_twin_assets.defs.build_settings import validate_build
    from llm_twin_assets.defs.partitions import register_authors

    settings = get_settings()
    links = add_author(settings, links_file, validate=validate_build)
    instance = dagster_instance()
    register_authors(instance, [links.slug])
    where = f"{settings.authors_url.rstrip('/')}/{links.slug}.yaml" if settings.authors_url else links.path
    typer.echo(f"added {links.slug} ({links.author.name}): {len(links.author.links)} links -> {where}")


@author_app.command("list")
@friendly_errors
def author_list() -> None:
    """The authors in the authors folder, with their link counts (a file the sensor would refuse says why)."""
    from llm_twin_assets.crawling.links import LinksFileError, discover, load
    from llm_twin_assets.defs.build_settings import check_author

    settings = get_settings()
    from llm_twin_assets.authors import authors_folder

    for slug, path in discover(authors_folder(settings)).items():
        try:
            links = load(path)
            check_author(links, settings)
            typer.echo(f"{slug}\t{links.author.name}\t{len(links.author.links)} links")
        except LinksFileError as exc:
            typer.echo(f"{slug}\tINVALID\t{exc}")


@author_app.command("show")
@friendly_errors
def author_show(
    slug: Annotated[str, typer.Argument(help="The author's slug.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """The author's links file and build settings: as recorded (what every trigger builds with), each
    asset's effective settings with where each value comes from, and a change not yet recorded."""
    import json

    report = _settings_report(slug)
    if as_json:
        typer.echo(json.dumps(report, indent=2, ensure_ascii=False))
        return
    typer.echo(f"{slug} ({report['name']}): {report['links']} links in {report['links_file']}")
    if report["links_file_problem"]:
        typer.secho(
            f"links file refused (no run will start): {report['links_file_problem']}", fg=typer.colors.RED
        )
    found = report["recorded"]
    if found is None:
        typer.echo("build settings: not recorded yet (the next sensor run records the links file's)")
    else:
        at = datetime.fromisoformat(found["recorded_at"])
        typer.echo(f"build settings: recorded {at:%Y-%m-%d %H:%M:%S} (digest {found['digest']})")
    if report["pending_change"]:
        typer.secho(
            "the links file's build settings differ from the recorded ones: the sensor records them on its "
            "next tick (or: llm-twin materialize --author " + slug + " --select build_settings)",
            fg=typer.colors.YELLOW,
        )
    for asset, fields in report["effective"].items():
        shown = ", ".join(
            f"{name}={json.dumps(item['value'])}" + ("" if item["source"] == "default" else " (author)")
            for name, item in fields.items()
            if item["value"] is not None or item["source"] != "default"
        )
        typer.echo(f"  {asset}: {shown}")


def _settings_report(slug: str) -> dict[str, Any]:
    """What ``author show`` reports (its JSON): the links file, the recorded settings, the effective
    settings per asset with each value's source, and whether the file holds a change not yet recorded."""
    from llm_twin_assets.authors import load_author
    from llm_twin_assets.defs.build_settings import check_author, config_classes
    from llm_twin_assets.store.build_settings import recorded, settings_digest
    from llm_twin_assets.store.database import open_database

    settings = get_settings()
    links = load_author(settings, slug)
    problem = None
    try:
        in_file: dict[str, Any] | None = check_author(links, settings)
    except TwinError as exc:
        in_file, problem = None, str(exc)
    with open_database(settings).connect() as conn:
        found = recorded(conn, slug)
    current = found.settings if found is not None else (in_file or {})
    effective = {
        asset: {
            name: {"value": value, "source": "author" if name in current.get(asset, {}) else "default"}
            for name, value in cls.model_validate(current.get(asset, {})).model_dump(mode="json").items()
        }
        for asset, cls in config_classes().items()
    }
    return {
        "author": slug,
        "name": links.author.name,
        "links_file": str(links.path),
        "links": len(links.author.links),
        "links_file_problem": problem,
        "recorded": None
        if found is None
        else {"digest": found.digest, "recorded_at": found.recorded_at.isoformat(timespec="seconds")},
        "settings": current,
        "pending_change": in_file is not None and (found is None or settings_digest(in_file) != found.digest),
        "effective": effective,
    }
