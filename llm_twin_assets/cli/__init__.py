"""``llm-twin``: the user's front door to the platform."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from llm_twin_assets.cli.authors import author_app
from llm_twin_assets.cli.backup import register as register_backup
from llm_twin_assets.cli.common import dagster_instance, friendly_errors
from llm_twin_assets.cli.demo import demo_app
from llm_twin_assets.cli.releases import eval_app, release_app
from llm_twin_assets.cli.serving import register as register_serving
from llm_twin_assets.cli.setup import register as register_setup
from llm_twin_assets.cli.tombstones import register as register_tombstones
from llm_twin_assets.errors import TwinError
from llm_twin_assets.kinds import kinds_help
from llm_twin_assets.settings import get_settings

if TYPE_CHECKING:  # Dagster is loaded by the commands that run assets, not at start-up
    from llm_twin_assets.defs.runner import Step

# Deprecation notices from the model libraries are for us, not for the person at the prompt.
warnings.filterwarnings("ignore", category=FutureWarning, module=r"(transformers|peft|trl)\.")
warnings.filterwarnings("ignore", message=r".* is currently in preview")  # Dagster's own API notices

app = typer.Typer(
    help="Build an LLM twin of an author, from their writing to a served model.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
register_setup(app)
app.add_typer(author_app, name="author")
app.add_typer(demo_app, name="demo")
app.add_typer(eval_app, name="eval")
app.add_typer(release_app, name="release")
register_serving(app)
register_backup(app)
register_tombstones(author_app)


@app.command("materialize")
@friendly_errors
def materialize(
    author: Annotated[str, typer.Option(help="The author's slug (partition key).")],
    select: Annotated[str, typer.Option(help="Dagster asset selection, e.g. 'raw_documents' or '*'.")] = "*",
    config: Annotated[
        Path | None,
        typer.Option(help="A YAML run config, e.g. `ops: {instruct_dataset: {config: {max_passages: 20}}}`."),
    ] = None,
    verbose: Annotated[
        bool, typer.Option("--verbose", help="Also print the trainer's and evaluator's own log lines.")
    ] = False,
) -> None:
    """Run the selected assets for one author, in-process, one asset at a time, with their checks. The
    training and evaluation steps' own logs go to their train.log / eval.log (printed with --verbose)."""
    from llm_twin_assets.authors import load_author
    from llm_twin_assets.definitions import defs
    from llm_twin_assets.defs.runner import pool_holders, refuse_while_running, run_in_order, select_assets

    links = load_author(get_settings(), author)  # a clear error before anything runs
    op_config = _read_run_config(config)
    instance = dagster_instance()
    for run in refuse_while_running(instance, author):
        typer.secho(
            f"run {run.run_id} of {author} was left started by a process that ended (killed?): marked failed",
            fg=typer.colors.YELLOW,
        )
    _check_run_config(
        op_config, config, {k.path[-1] for k in defs.resolve_asset_graph().get_all_asset_keys()}
    )
    if op_config:
        given = "; ".join(
            f"{asset}: {', '.join(sorted((op_config[asset] or {}).get('config') or {}))}"
            for asset in op_config
        )
        typer.secho(
            f"one-off: --config {config} overrides the author's build settings for this run only, and is "
            f"not recorded ({given}); to keep settings, put them under `build:` in {links.path}",
            fg=typer.colors.YELLOW,
        )
    keys = select_assets(defs, select)
    resources = dict(defs.resources or {})
    trainer = resources.get("trainer")
    if trainer is not None and not verbose:
        # a new resource, not model_copy: Dagster rebuilds resources from their constructor arguments
        resources["trainer"] = type(trainer)(**{**trainer.model_dump(), "forward_output": False})
    steps = run_in_order(
        defs,
        keys,
        author,
        instance,
        resources=resources,
        op_config=op_config,
        on_start=lambda asset: _print_start(asset, author, pool_holders(instance, defs, asset)),
    )
    for step in steps:
        _print_step(step)
        if not step.success or step.blocked:
            raise typer.Exit(1)


def _print_start(asset: str, author: str, waiting: list[str]) -> None:
    typer.echo(f"-> {asset} [{author}] ...")
    for line in waiting:
        typer.secho(f"   {line}", fg=typer.colors.YELLOW)


def _check_run_config(op_config: dict[str, Any], config: Path | None, assets: set[str]) -> None:
    unknown = sorted(set(op_config) - assets)
    if unknown:
        raise TwinError(f"--config {config}: no asset named {', '.join(unknown)}")


def _print_step(step: Step) -> None:
    """One line per step: its numbers and its checks' verdicts (a failed check's reason below it), or
    why it failed."""
    if not step.success:
        typer.secho(
            f"   FAILED {step.asset} after {step.seconds:.1f} s: {step.failure}",
            fg=typer.colors.RED,
            err=True,
        )
        return
    shown = ", ".join(
        f"{k}={v}"
        for k, v in step.metadata.items()
        if isinstance(v, (int, float)) and not isinstance(v, bool)
    )
    verdicts = ", ".join(f"{c.check_name}={'ok' if c.passed else 'FAILED'}" for c in step.checks)
    typer.echo(
        f"   done {step.asset} in {step.seconds:.1f} s: {shown}"
        + (f" | checks: {verdicts}" if verdicts else "")
    )
    for check in step.checks:
        if not check.passed and check.description:
            typer.secho(f"   {check.check_name}: {check.description}", fg=typer.colors.RED, err=True)


@app.command("search")
@friendly_errors
def search_command(
    query: Annotated[str, typer.Argument(help="What to look for, in plain words.")],
    author: Annotated[str | None, typer.Option(help="Only this author's chunks (slug).")] = None,
    kind: Annotated[list[str] | None, typer.Option(help=f"Only these kinds ({kinds_help()}).")] = None,
    k: Annotated[int, typer.Option("--k", min=1, max=100, help="How many results.")] = 10,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON list of results.")] = False,
) -> None:
    """The chunks nearest to a query, with scores and source URLs."""
    import json

    from llm_twin_assets.retrieval import search

    hits = search(query, author=author, kinds=kind or None, k=k)
    if as_json:
        typer.echo(json.dumps([hit.as_dict() for hit in hits], ensure_ascii=False, indent=2))
        return
    if not hits:
        typer.echo("no results (has `chunk_embeddings` been materialized for this author?)")
    for rank, hit in enumerate(hits, start=1):
        where = " › ".join([hit.title or "", *hit.heading_path][: 1 + len(hit.heading_path)]).strip(" ›")
        similarity = f" (cosine {hit.similarity:.3f})" if hit.similarity is not None else ""
        snippet = " ".join(hit.text.split())[:160]
        span = hit.unit_span()
        if hit.unit is not None and span is not None:
            # The unit that matched, then its passage (the chunk) around it, the unit between » and «.
            a, b = span
            before, unit, after = (" ".join(t.split()) for t in (hit.text[:a], hit.text[a:b], hit.text[b:]))
            before = f"…{before[-120:]}" if len(before) > 120 else before
            after = f"{after[:120]}…" if len(after) > 120 else after
            unit_similarity = (
                f" (cosine {hit.unit.similarity:.3f})" if hit.unit.similarity is not None else ""
            )
            snippet = f"matched{unit_similarity}: {unit[:200]}\n    passage: {before} »{unit[:200]}« {after}".rstrip()
        typer.echo(
            f"{rank:>2}. {hit.score:.4f}{similarity}  [{hit.kind}, {hit.author}] {where}\n"
            f"    {hit.document_url}\n    {snippet}"
        )


@app.command("generate")
@friendly_errors
def generate_command(
    prompt: Annotated[str, typer.Argument(help="What to ask.")],
    author: Annotated[str, typer.Option(help="The twin's author (slug).")],
    max_new_tokens: Annotated[int, typer.Option(min=1, max=4096)] = 128,
    compare: Annotated[bool, typer.Option(help="Also answer with the base model.")] = True,
) -> None:
    """Answer a prompt with the author's released twin (the current release: see `llm-twin release
    list`), and with the base model to compare."""
    from llm_twin_assets.artifacts import open_store
    from llm_twin_assets.evaluation.releases import released_twin
    from llm_twin_assets.llm import generate
    from llm_twin_assets.store.database import open_database

    settings = get_settings()
    store = open_store(settings.artifacts_url, settings.artifacts_dir)
    twin = released_twin(open_database(settings), store, author, settings.home / "cache" / "adapters")
    messages = [{"role": "user", "content": prompt}]
    if compare:
        typer.secho("base model:", bold=True)
        answer = generate(twin.load_base(), [messages], max_new_tokens=max_new_tokens, decoding=twin.decoding)
        typer.echo(answer[0] + "\n")
    release = twin.release
    typer.secho(
        f"{author}'s twin, release {release.release} (sft {release.sft_version}, dpo {release.dpo_version}):",
        bold=True,
    )
    typer.echo(generate(twin.load(), [messages], max_new_tokens=max_new_tokens, decoding=twin.decoding)[0])


def _read_run_config(path: Path | None) -> dict[str, Any]:
    """The ``ops`` section of a YAML run config (one entry per asset), checked for shape."""
    import yaml

    if path is None:
        return {}
    try:
        loaded = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise TwinError(f"--config {path}: {exc}") from None
    ops = loaded.get("ops", {}) if isinstance(loaded, dict) else None
    if not isinstance(ops, dict) or set(loaded) - {"ops"}:
        raise TwinError(f"--config {path}: expected a mapping with only an 'ops' section")
    return ops


def main() -> None:  # pragma: no cover - console entry point
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
