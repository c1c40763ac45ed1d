"""``llm-twin author removed <slug>`` and ``llm-twin author restore <slug> [<url> ...]``: the documents a
crawl removed, kept as tombstones ``LLM_TWIN_TOMBSTONE_DAYS`` days, and how to bring them back (with their
chunks and vectors: nothing is embedded again)."""

from __future__ import annotations

from typing import Annotated

import typer

from llm_twin_assets.cli.common import friendly_errors
from llm_twin_assets.errors import TwinError


def _listed_links(slug: str) -> tuple[set[str], str] | None:
    """The link identities of the author's links file now, and its path (None: no readable file)."""
    from llm_twin_assets.authors import load_author
    from llm_twin_assets.crawling.dispatcher import link_identities
    from llm_twin_assets.settings import get_settings

    try:
        links = load_author(get_settings(), slug)
    except TwinError:
        return None
    return set(link_identities(links)), str(links.path)


def removed_command(slug: Annotated[str, typer.Argument(help="The author's slug.")]) -> None:
    """The author's removed documents kept as tombstones (newest first), restorable with
    `llm-twin author restore`."""
    from llm_twin_assets.settings import get_settings
    from llm_twin_assets.store.database import open_database
    from llm_twin_assets.store.tombstones import purge, tombstones

    settings = get_settings()
    with open_database(settings).connect() as conn, conn.transaction():
        purged = purge(conn, settings.tombstone_days, slug)
        found = tombstones(conn, slug)
    if purged:
        typer.echo(f"purged {purged} tombstones older than {settings.tombstone_days:g} days")
    if not found:
        typer.echo(f"{slug}: no removed documents kept")
        return
    for t in found:
        typer.echo(
            f"{t.removed_at:%Y-%m-%d %H:%M}\t{t.reason}\t{t.kind}\t{t.chunks} chunks\t{t.url}"
            f"\t(link: {t.source_link})"
        )
    typer.echo(f"{len(found)} removed documents, kept {settings.tombstone_days:g} days after their removal")


def restore_command(
    slug: Annotated[str, typer.Argument(help="The author's slug.")],
    urls: Annotated[
        list[str] | None,
        typer.Argument(
            help="What to restore: a document's URL or id, or a link (every document it gave). "
            "None: every tombstone of the author."
        ),
    ] = None,
) -> None:
    """Bring removed documents back, with their cleaned text, chunks and vectors (nothing is cleaned,
    chunked or embedded again). A document whose link is no longer in the links file is removed again by
    the next crawl: put its link back to keep it."""
    from llm_twin_assets.crawling.documents import link_identity
    from llm_twin_assets.settings import get_settings
    from llm_twin_assets.store.database import open_database
    from llm_twin_assets.store.tombstones import purge, restore, tombstones

    settings = get_settings()
    with open_database(settings).connect() as conn, conn.transaction():
        purge(conn, settings.tombstone_days, slug)
        kept = tombstones(conn, slug)
        chosen: dict[str, str | None] = {}
        for wanted in urls or []:
            identity = link_identity(wanted)
            matches = [t for t in kept if wanted in (t.id, t.url) or t.source_link in (wanted, identity)]
            if not matches:
                raise TwinError(
                    f"no removed document of {slug!r} is {wanted!r} (by URL, id or link); "
                    f"`llm-twin author removed {slug}` lists them; nothing was restored"
                )
            chosen.update({t.id: t.source_link for t in matches})
        if not urls:
            chosen = {t.id: t.source_link for t in kept}
        if not chosen:
            typer.echo(f"{slug}: no removed documents kept: nothing to restore")
            return
        done = restore(conn, slug, list(chosen))
    for url in done.documents.values():
        typer.echo(f"restored {url}")
    typer.echo(
        f"restored {len(done.documents)} documents with {done.chunks} chunks "
        f"({done.vectors} with their vectors: nothing to embed again)"
        + (f"; {len(done.stale)} already stored again (tombstone dropped)" if done.stale else "")
    )
    listed = _listed_links(slug)
    if listed is not None:
        links, path = listed
        unlisted = sorted({chosen[i] or "?" for i in done.documents if chosen[i] not in links})
        for link in unlisted:
            typer.echo(
                f"note: {link} is not in {path}: the next crawl removes its documents again; "
                "put the link back to keep them"
            )


def register(author_app: typer.Typer) -> None:
    author_app.command("removed")(friendly_errors(removed_command))
    author_app.command("restore")(friendly_errors(restore_command))
