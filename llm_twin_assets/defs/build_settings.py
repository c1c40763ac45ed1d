"""An author's build settings: the links file's ``build:`` section, checked against each asset's config,
recorded in the store by the ``build_settings`` asset, and applied by every asset that has settings,
whatever started the run (the sensor, the schedule, declarative automation, a launch from the UI, the
CLI).

How an asset's settings are chosen, field by field: a value in the run's own config (``ops:``) is a
one-off for that run; else the author's recorded setting; else the asset's default. Each materialization
shows the values it used and where each came from (``build_settings``, ``build_settings_source``).
Declarative automation cannot give a run config, and needs none: its runs build with the author's
settings, as a launch from the UI without config does.
"""

import json
from typing import TYPE_CHECKING, Any, TypeVar

import dagster as dg
from pydantic import ValidationError

from llm_twin_assets.crawling.links import BUILD_ASSETS, LinksFile, LinksFileError
from llm_twin_assets.defs.authoring import author_asset
from llm_twin_assets.defs.resources import AuthorsResource, StoreResource

if TYPE_CHECKING:
    from llm_twin_assets.settings import TwinSettings
    from llm_twin_assets.store.database import Database

C = TypeVar("C", bound=dg.Config)


def config_classes() -> dict[str, type[dg.Config]]:
    """asset name -> its config class (imported here, not at module load: the asset modules import us)."""
    from llm_twin_assets.defs.datasets.assets import InstructDatasetConfig, PreferenceDatasetConfig
    from llm_twin_assets.defs.evaluation.assets import EvaluationConfig
    from llm_twin_assets.defs.training.assets import TrainingConfig

    classes: dict[str, type[dg.Config]] = {
        "instruct_dataset": InstructDatasetConfig,
        "preference_dataset": PreferenceDatasetConfig,
        "sft_adapter": TrainingConfig,
        "dpo_adapter": TrainingConfig,
        "twin_evaluation": EvaluationConfig,
    }
    assert set(classes) == set(BUILD_ASSETS)
    return classes


def validate_build(links: LinksFile) -> dict[str, dict[str, Any]]:
    """The links file's ``build:`` section, every field checked against its asset's config; returns the
    fields as set (JSON values). Errors name the file, the line and the field, all at once."""
    classes = config_classes()
    problems: list[str] = []
    settings: dict[str, dict[str, Any]] = {}
    for asset, fields in links.author.build.items():
        cls = classes[asset]
        known = cls.model_fields
        for name in sorted(set(fields) - set(known)):
            problems.append(
                f"{links.path}, line {links.build_lines.get(f'{asset}.{name}')}: build.{asset}.{name}: "
                f"no such setting (the settings of {asset} are: {', '.join(known)})"
            )
        given = {k: v for k, v in fields.items() if k in known}
        try:
            model = cls.model_validate(given)
        except ValidationError as exc:
            for error in exc.errors():
                field = str(error["loc"][0]) if error["loc"] else ""
                problems.append(
                    f"{links.path}, line {links.build_lines.get(f'{asset}.{field}', links.build_lines.get(asset))}"
                    f": build.{asset}.{field}: {error['msg']}"
                )
            continue
        dumped = model.model_dump(mode="json")
        settings[asset] = {k: dumped[k] for k in given}
    if problems:
        raise LinksFileError("\n".join(problems))
    return settings


def check_author(links: LinksFile, settings: "TwinSettings") -> dict[str, dict[str, Any]]:
    """Everything a links file must pass before any run builds the author (``author add``, the sensor,
    the schedule): every local link resolves to a readable file or folder, and the build settings are
    valid. Returns the build settings."""
    from llm_twin_assets.authors import check_local_links

    check_local_links(links, settings, must_exist=True)
    return validate_build(links)


def author_settings(database: "Database", author: str) -> tuple[dict[str, Any], str]:
    """The author's build settings and where they came from: as recorded by ``build_settings``; else
    (never recorded) the links file's section; else none."""
    from llm_twin_assets.authors import load_author
    from llm_twin_assets.settings import get_settings
    from llm_twin_assets.store.build_settings import recorded, settings_digest

    with database.connect() as conn:
        found = recorded(conn, author)
    if found is not None:
        return found.settings, f"recorded {found.recorded_at:%Y-%m-%d %H:%M:%S} (digest {found.digest})"
    try:
        links = load_author(get_settings(), author)
    except LinksFileError:
        return {}, "none (no links file, nothing recorded)"
    values = validate_build(links)
    return values, f"links file {links.path} (not recorded yet; digest {settings_digest(values)})"


def with_author_settings(
    context: dg.AssetExecutionContext, config: C, database: "Database"
) -> tuple[C, dict[str, Any]]:
    """``config`` as this author builds it: the run's own config wins (a one-off), then the author's
    settings, then the defaults. Returns it with the metadata that shows what was used and why."""
    asset = context.asset_key.path[-1]
    run_config: dict[str, Any] = dict(context.run.run_config or {})
    ops: dict[str, Any] = dict(run_config.get("ops") or {})
    explicit: dict[str, Any] = dict((ops.get(asset) or {}).get("config") or {})
    values, origin = author_settings(database, context.partition_key)
    own = dict(values.get(asset, {}))
    resolved = type(config).model_validate({**own, **explicit})
    source = {
        name: "run config (one-off)" if name in explicit else "author"
        for name in type(config).model_fields
        if name in explicit or name in own
    }
    if explicit:
        context.log.warning(
            f"one-off settings for {asset} from this run's config ({', '.join(sorted(explicit))}): not the "
            "author's build settings, and not recorded; to keep them, put them under `build:` in the "
            "author's links file"
        )
    metadata = {
        "build_settings": dg.MetadataValue.json(resolved.model_dump(mode="json")),
        "build_settings_source": dg.MetadataValue.json(source),
        "build_settings_origin": origin,
        "one_off_settings": bool(explicit),
    }
    return resolved, metadata


def settings_table(values: dict[str, dict[str, Any]]) -> str:
    """The settings as a Markdown table, for the UI."""
    rows = ["| asset | setting | value |", "|---|---|---|"]
    rows += [
        f"| {asset} | {name} | `{json.dumps(value)}` |"
        for asset, fields in sorted(values.items())
        for name, value in sorted(fields.items())
    ]
    return "\n".join(rows) if len(rows) > 2 else "(none: every asset's defaults)"


@author_asset(
    group_name="ingest",
    kinds={"yaml", "postgres"},
    description="The author's build settings (the links file's `build:` section), validated and recorded; "
    "its data version is their digest, so a change re-builds what they affect, once.",
)
def build_settings(
    context: dg.AssetExecutionContext, store: StoreResource, authors: AuthorsResource
) -> dg.MaterializeResult:
    from llm_twin_assets.authors import load_author
    from llm_twin_assets.store.build_settings import record

    links = load_author(authors.settings(), context.partition_key)
    values = validate_build(links)
    with store.database().connect() as conn:
        found, changed = record(conn, links.slug, links.author.name, values, str(links.path))
    context.log.info(
        f"build settings of {links.slug}: {'changed' if changed else 'unchanged'} (digest {found.digest})"
    )
    return dg.MaterializeResult(
        data_version=dg.DataVersion(found.digest),
        metadata={
            "digest": found.digest,
            "changed": changed,
            "settings": dg.MetadataValue.json(values),
            "table": dg.MetadataValue.md(settings_table(values)),
            "links_file": dg.MetadataValue.path(str(links.path)),
        },
    )
