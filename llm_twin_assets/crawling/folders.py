"""A plain folder of Markdown/text drafts (or one such file) on disk: one document per file."""

from __future__ import annotations

import re
from pathlib import Path

from llm_twin_assets.errors import TwinError
from llm_twin_assets.records import CrawledDocument, Kind

DRAFT_SUFFIXES = (".md", ".markdown", ".txt", ".rst", ".text")
_HEADING = re.compile(r"^\s*#\s+(.+)$", re.MULTILINE)


class FolderError(TwinError):
    pass


def read_drafts(
    path: Path, kind: Kind, source_link: str, max_file_bytes: int = 2_000_000
) -> list[CrawledDocument]:
    if path.is_file():
        files = [path]
    elif path.is_dir():
        files = sorted(
            p
            for p in path.rglob("*")
            if p.is_file()
            and not p.is_symlink()
            and p.suffix.lower() in DRAFT_SUFFIXES
            and not any(part.startswith(".") for part in p.relative_to(path).parts)
        )
    else:
        raise FolderError(f"{path}: no such file or folder")
    documents = []
    for file in files:
        if file.stat().st_size > max_file_bytes:
            raise FolderError(
                f"{file}: {file.stat().st_size:,} bytes, over the {max_file_bytes:,}-byte limit"
            )
        data = file.read_bytes()
        if b"\x00" in data[:4096]:
            continue
        text = data.decode("utf-8", errors="replace").strip()
        if not text:
            continue
        heading = _HEADING.search(text)
        documents.append(
            CrawledDocument(
                url=file.resolve().as_uri(),
                kind=kind,
                content=text,
                source_link=source_link,
                title=heading.group(1).strip() if heading else file.stem.replace("-", " ").replace("_", " "),
                metadata={"via": "file", "path": str(file.resolve())},
            )
        )
    if not documents:
        raise FolderError(f"{path}: no Markdown or text files with content ({', '.join(DRAFT_SUFFIXES)})")
    return documents
