"""``llm-twin eval show`` and ``llm-twin release list|rollback``: what was measured, what is served."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from llm_twin_assets.cli.common import friendly_errors

eval_app = typer.Typer(help="Evaluations of the twins against their base models.", no_args_is_help=True)
release_app = typer.Typer(help="Released twins: what is served, and going back.", no_args_is_help=True)


def _database() -> Any:
    from llm_twin_assets.settings import get_settings
    from llm_twin_assets.store.database import open_database

    return open_database(get_settings())


def _artifacts() -> Any:
    from llm_twin_assets.artifacts import open_store
    from llm_twin_assets.settings import get_settings

    settings = get_settings()
    return open_store(settings.artifacts_url, settings.artifacts_dir)


@eval_app.command("show")
@friendly_errors
def eval_show(
    author: Annotated[str, typer.Option(help="The author (slug).")],
    evaluation: Annotated[str | None, typer.Option(help="An evaluation id; default: the latest.")] = None,
    as_json: Annotated[
        bool,
        typer.Option(
            "--json", help="One object per model: its version, a metrics map and each metric's 95% interval."
        ),
    ] = False,
    examples: Annotated[
        int,
        typer.Option(
            min=0,
            max=50,
            help="Also print this many held-out examples: the author's answer, the base's, the twin's.",
        ),
    ] = 0,
) -> None:
    """The comparison table of the author's latest evaluation (or one by id), each metric with its
    bootstrap 95% interval, the differences the gate decided on, and the gate's decision."""
    from llm_twin_assets.evaluation import EvaluationError
    from llm_twin_assets.evaluation.report import evaluation_lines
    from llm_twin_assets.store import evaluations

    with _database().connect() as conn:
        record = evaluations.get(conn, evaluation) if evaluation else evaluations.latest(conn, author)
        if record is None or record.author != author:
            raise EvaluationError(
                f"no evaluation {evaluation + ' ' if evaluation else ''}of {author!r}: materialize twin_evaluation"
            )
        models = evaluations.metrics(conn, record.id)
    if as_json:
        typer.echo(
            json.dumps(
                [
                    {
                        "model": name,
                        "version": entry["version"],
                        "evaluation_id": record.id,
                        "metrics": entry["metrics"],
                        "intervals": entry.get("intervals", {}),
                    }
                    for name, entry in models.items()
                ],
                indent=2,
            )
        )
        return
    for line in evaluation_lines(record, models):
        if line.startswith("quality gate "):
            colour = typer.colors.GREEN if record.gate_passed else typer.colors.RED
            typer.secho(line, bold=True, fg=colour)
        else:
            typer.echo(line)
    if examples:
        from llm_twin_assets.evaluation.report import examples_text
        from llm_twin_assets.evaluation.run import read_examples

        typer.echo("")
        typer.echo(examples_text(read_examples(_artifacts(), author, record.id), examples))


@release_app.command("list")
@friendly_errors
def release_list(
    author: Annotated[str | None, typer.Option(help="Only this author (slug).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="A JSON list of releases.")] = False,
) -> None:
    """Every release, oldest first; the one each author serves now is marked."""
    from llm_twin_assets.store import releases

    with _database().connect() as conn:
        found = releases.all_releases(conn, author)
    if as_json:
        typer.echo(json.dumps([r.as_dict() for r in found], indent=2))
        return
    if not found:
        typer.echo("no releases yet (materialize twin_release; its evaluation must pass the quality gate)")
    for r in found:
        mark = "*" if r.current else " "
        typer.echo(
            f"{mark} {r.author} release {r.release}  {r.released_at:%Y-%m-%d %H:%M}  sft {r.sft_version}  "
            f"dpo {r.dpo_version}  evaluation {r.evaluation_id}"
        )


@release_app.command("rollback")
@friendly_errors
def release_rollback(
    author: Annotated[str, typer.Argument(help="The author (slug).")],
    version: Annotated[str, typer.Argument(help="A release number, or the DPO adapter version it released.")],
) -> None:
    """Serve an earlier release of the author again (from the next request on). Every file the release
    needs (both adapters, weights included, against their checksums) is checked first: a release that
    cannot be served is refused and the current one stays."""
    from llm_twin_assets.evaluation.releases import rollback

    database, store = _database(), _artifacts()
    for note in check_release_files(database, store, author, version):
        typer.echo(f"note: {note}")
    release = rollback(database, store, author, version)
    typer.echo(
        f"{author} now serves release {release.release} (sft {release.sft_version}, dpo {release.dpo_version})"
    )


@release_app.command("export")
@friendly_errors
def release_export(
    author: Annotated[str, typer.Argument(help="The author (slug).")],
    folder: Annotated[Path, typer.Argument(help="Where to write the adapter (replaced if it exists).")],
    release: Annotated[int | None, typer.Option(help="A release number; default the current one.")] = None,
) -> None:
    """Write a release as one LoRA adapter for a LoRA server (vLLM `--enable-lora`): SFT and DPO
    concatenated exactly as the service combines them, with twin.json (versions, decoding rules)."""
    from llm_twin_assets.evaluation import EvaluationError
    from llm_twin_assets.settings import get_settings
    from llm_twin_assets.store import releases
    from llm_twin_assets.training.adapters import adapter_folder, get_adapter, verify_twin_files
    from llm_twin_assets.training.twin import export_twin_adapter

    database, store = _database(), _artifacts()
    with database.connect() as conn:
        chosen = releases.current(conn, author) if release is None else releases.get(conn, author, release)
    if chosen is None:
        what = "no current release" if release is None else f"no release {release}"
        raise EvaluationError(f"{author!r} has {what} (see `llm-twin release list --author {author}`)")
    verify_twin_files(store, author, chosen.sft_version, chosen.dpo_version)
    cache = get_settings().home / "cache" / "adapters"
    sft = adapter_folder(store, get_adapter(store, author, "sft", chosen.sft_version), cache)
    dpo = adapter_folder(store, get_adapter(store, author, "dpo", chosen.dpo_version), cache)
    name = f"{author}-r{chosen.release}"
    summary = export_twin_adapter(
        sft,
        dpo,
        folder,
        {
            "name": name,
            "author": author,
            "release": chosen.release,
            "sft_version": chosen.sft_version,
            "dpo_version": chosen.dpo_version,
            "evaluation_id": chosen.evaluation_id,
            "decoding": chosen.decoding,
        },
    )
    typer.echo(
        f"{author} release {chosen.release}: one LoRA adapter of rank {summary['rank']} on "
        f"{summary['base_model']} ({', '.join(summary['target_modules'])}) -> {folder}\n"
        f"serve it as {name}, e.g. vllm serve <base> --enable-lora --max-lora-rank "
        f"{_lora_rank_bound(summary['rank'])} --lora-modules {name}={folder}"
    )


def _lora_rank_bound(rank: int) -> int:
    """vLLM's --max-lora-rank takes one of 8, 16, 32, 64, 128, 256, 320, 512: the smallest that fits."""
    return next((r for r in (8, 16, 32, 64, 128, 256, 320, 512) if r >= rank), rank)


def check_release_files(database: Any, store: Any, author: str, version: str) -> list[str]:
    """Refuse (one line naming the file and the rule, and what is still served) a release of ``author``
    whose adapters are not all in the artifact store as published; notes for adapters too old to record
    checksums. An unknown ``version`` is left to ``rollback`` to name."""
    from llm_twin_assets.evaluation import EvaluationError
    from llm_twin_assets.store import releases
    from llm_twin_assets.training.adapters import AdapterFilesError, verify_twin_files

    with database.connect() as conn:
        known = releases.all_releases(conn, author)
        current = releases.current(conn, author)
    chosen = next((r for r in known if str(r.release) == version or r.dpo_version == version), None)
    if chosen is None:
        return []
    try:
        return verify_twin_files(store, author, chosen.sft_version, chosen.dpo_version)
    except AdapterFilesError as exc:
        kept = (
            f"{author} still serves release {current.release}" if current else f"{author} serves no release"
        )
        raise EvaluationError(
            f"release {chosen.release} of {author!r} cannot be served: {exc}; nothing changed ({kept})"
        ) from None
