"""A plain folder of Markdown/text drafts (or one such file) on disk: one document per file.

Only under the allowed folders (:class:`~llm_twin_assets.crawling.safety.LocalRoots`); inside a
drafts folder, hidden files, key material, symlinks and files holding a private key are skipped.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from llm_twin_assets.crawling.safety import (
    DRAFT_SUFFIXES,
    LocalPathRefused,
    LocalRoots,
    holds_private_key,
    refuse_private_key,
    walk_refusal,
)
from llm_twin_assets.errors import TwinError
from llm_twin_assets.records import CrawledDocument, Kind

_HEADING = re.compile(r"^\s*#\s+(.+)$", re.MULTILINE)


class FolderError(TwinError):
    pass


class EmptyFolder(FolderError):
    """The drafts folder is there and holds no drafts now: a complete answer with nothing in it (the
    drafts stored from it before are gone at their source)."""


def _drafts_in(folder: Path, skipped: dict[str, int]) -> list[Path]:
    """The draft files under ``folder``, sorted; what the rules skip is counted by reason."""

    def skip(reason: str) -> None:
        skipped[reason] = skipped.get(reason, 0) + 1

    found = []
    for current, dirs, files in os.walk(folder, followlinks=False):
        base = Path(current)
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))  # hidden folders: never entered
        for name in files:
            file = base / name
            reason = walk_refusal(file.relative_to(folder))
            if reason is None and file.suffix.lower() not in DRAFT_SUFFIXES:
                reason = "not a draft type"
            if reason is None and file.is_symlink():
                reason = "symlink"  # may point outside the allowed folders
            if reason is None and not file.is_file():
                reason = "not a regular file"
            if reason is not None:
                skip(reason)
                continue
            found.append(file)
    return sorted(found)


def read_drafts(
    path: Path, kind: Kind, source_link: str, *, roots: LocalRoots, max_file_bytes: int = 2_000_000
) -> list[CrawledDocument]:
    """One document per draft in ``path`` (a file or a folder) when the rules allow reading it."""
    real = roots.check(path)  # LocalPathRefused / LocalPathMissing name the path
    skipped: dict[str, int] = {}
    if real.is_file():
        if real.suffix.lower() not in DRAFT_SUFFIXES:
            raise LocalPathRefused(path, f"not a Markdown or text draft ({', '.join(DRAFT_SUFFIXES)})")
        files = [real]
    else:
        files = _drafts_in(real, skipped)
    documents = []
    for file in files:
        size = file.stat().st_size
        if size > max_file_bytes:
            raise FolderError(f"{file}: {size:,} bytes, over the {max_file_bytes:,}-byte limit")
        data = file.read_bytes()
        if file == real:
            refuse_private_key(path, data)  # a file named by the link itself is refused by name
        elif holds_private_key(data):
            skipped["private key"] = skipped.get("private key", 0) + 1
            continue
        if b"\x00" in data[:4096]:
            skipped["binary"] = skipped.get("binary", 0) + 1
            continue
        text = data.decode("utf-8", errors="replace").strip()
        if not text:
            continue
        heading = _HEADING.search(text)
        documents.append(
            CrawledDocument(
                url=file.as_uri(),
                kind=kind,
                content=text,
                source_link=source_link,
                title=heading.group(1).strip() if heading else file.stem.replace("-", " ").replace("_", " "),
                metadata={"via": "file", "path": str(file)},
            )
        )
    if not documents:
        detail = f"; skipped: {skipped}" if skipped else ""
        raise (EmptyFolder if real.is_dir() else FolderError)(
            f"{path}: no Markdown or text files with content ({', '.join(DRAFT_SUFFIXES)}){detail}"
        )
    return documents
