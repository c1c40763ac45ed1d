"""Authors: finding and validating their links files, and registering them."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

from llm_twin_assets.crawling.links import LinksFile, LinksFileError, discover, load, local_path
from llm_twin_assets.crawling.safety import (
    LocalPathMissing,
    LocalPathRefused,
    LocalRoots,
    refuse_private_key,
)
from llm_twin_assets.settings import TwinSettings

_KEY_SCAN_BYTES = 2_000_000  # a draft is at most this big (folders.py); the crawl reads it all again


_LINKS_SUFFIXES = (".yaml", ".yml")


def authors_folder(settings: TwinSettings, slug: str | None = None) -> Path:
    """The folder links files are read from: ``LLM_TWIN_AUTHORS_DIR``; or, with ``LLM_TWIN_AUTHORS_URL``
    (a fleet, where no step container has anybody's authors folder), a copy of that S3 prefix under the
    data home, refreshed first: only ``slug``'s file when given, and copies whose object is gone removed."""
    folder = settings.authors_folder
    if not settings.authors_url:
        return folder
    from llm_twin_assets.artifacts import open_store
    from llm_twin_assets.crawling.links import MAX_LINKS_FILE_BYTES

    store = open_store(settings.authors_url, folder)
    names = [
        key
        for key in store.list_keys(f"{slug}." if slug is not None else "")
        if "/" not in key
        and key.endswith(_LINKS_SUFFIXES)
        and (slug is None or key.rsplit(".", 1)[0] == slug)
    ]
    folder.mkdir(parents=True, exist_ok=True)
    for key in names:
        data = store.get(key)[: MAX_LINKS_FILE_BYTES + 1]  # one over the limit: refused by load(), by name
        path = folder / key
        if not path.is_file() or path.read_bytes() != data:
            part = folder / f".{key}.part"
            part.write_bytes(data)
            os.replace(part, path)
    for path in folder.iterdir():
        if path.suffix in _LINKS_SUFFIXES and (slug is None or path.stem == slug) and path.name not in names:
            path.unlink()
    return folder


def _where(settings: TwinSettings) -> str:
    return settings.authors_url or str(settings.authors_dir)


def links_file_path(settings: TwinSettings, slug: str) -> Path:
    found = discover(authors_folder(settings, slug)).get(slug)
    if found is None:
        hint = (
            "upload it there or run `llm-twin author add <links.yaml>`"
            if settings.authors_url
            else "set LLM_TWIN_AUTHORS_DIR or run `llm-twin author add <links.yaml>`"
        )
        raise LinksFileError(
            f"no links file for author {slug!r} in {_where(settings)} (expected {slug}.yaml there; {hint})"
        )
    return found


def load_author(settings: TwinSettings, slug: str) -> LinksFile:
    return load(links_file_path(settings, slug))


def add_author(
    settings: TwinSettings, source: Path, validate: Callable[[LinksFile], object] | None = None
) -> LinksFile:
    """Validate a links file (its local links must exist; ``validate`` checks the rest, e.g. the build
    settings against the assets' configs) and copy it into the authors folder (or upload it to
    ``LLM_TWIN_AUTHORS_URL``).

    The file is copied as written (comments kept) when every link is absolute; otherwise it is
    rewritten with local paths resolved against its original folder, so they still point there.
    """
    links = load(source)
    check_local_links(links, settings, must_exist=True)
    if validate is not None:
        validate(links)
    absolute = all(links.resolve(link) == link.url for link in links.author.links)
    if settings.authors_url:
        from llm_twin_assets.artifacts import open_store

        text = source.read_bytes() if absolute else _absolute_links(links).encode("utf-8")
        open_store(settings.authors_url, settings.authors_folder).put(f"{links.slug}.yaml", text)
        return load(authors_folder(settings, links.slug) / f"{links.slug}.yaml")
    target = settings.authors_dir / f"{links.slug}.yaml"
    if source.resolve() == target.resolve():
        return links
    settings.authors_dir.mkdir(parents=True, exist_ok=True)
    if absolute:
        shutil.copyfile(source, target)
    else:
        target.write_text(_absolute_links(links), encoding="utf-8")
    return load(target)


def _absolute_links(links: LinksFile) -> str:
    """The links file with relative local paths resolved against its original folder."""
    import yaml

    entries = []
    for link in links.author.links:
        url = links.resolve(link)
        entries.append({"url": url, "kind": link.kind} if link.kind else url)
    data: dict[str, object] = {"name": links.author.name, "links": entries}
    if links.author.build:
        data["build"] = links.author.build
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True)


def local_roots(settings: TwinSettings) -> LocalRoots:
    """The folders links may name local files in: the authors folder and ``LLM_TWIN_LOCAL_ROOTS``."""
    return LocalRoots.of(settings.readable_folders)


def check_local_links(links: LinksFile, settings: TwinSettings, must_exist: bool = False) -> None:
    """Refuse, by name, every local link the crawler would refuse (see ``LocalRoots``).

    With ``must_exist`` (``author add``, the sensor, the schedule) a local path that does not exist is
    refused too, naming where it was looked for: a links file copied away from the folder its relative
    links were written for must not start a crawl that sees none of the author. Without it, a path that
    does not exist passes (the crawl reports it as gone until it appears).
    """
    roots = local_roots(settings)
    problems = []
    for index, link in enumerate(links.author.links):
        path = local_path(links.resolve(link))
        if path is None:
            continue
        try:
            real = roots.check(path)
            if real.is_file():
                with real.open("rb") as file:
                    refuse_private_key(path, file.read(_KEY_SCAN_BYTES))
        except LocalPathMissing:
            if must_exist:
                problems.append(
                    f"{links.path}, line {links.line_of(index)}: links.{index}: {link.url}: no such file or "
                    f"folder ({path}; a relative path is read from the links file's folder, {links.path.parent})"
                )
            continue
        except LocalPathRefused as exc:
            shown = link.url if exc.path == link.url else f"{link.url} ({exc.path})"
            problems.append(
                f"{links.path}, line {links.line_of(index)}: links.{index}: {shown}: refused: {exc.rule}"
            )
    if problems:
        raise LinksFileError("\n".join(problems))
