"""Posts from a LinkedIn data export (``Shares.csv``, or the newer posts CSV), read only from the
allowed folders (:class:`~llm_twin_assets.crawling.safety.LocalRoots`)."""

from __future__ import annotations

import csv
import io
from pathlib import Path

from llm_twin_assets.crawling.documents import link_identity
from llm_twin_assets.crawling.safety import EXPORT_SUFFIXES, LocalPathRefused, LocalRoots, refuse_private_key
from llm_twin_assets.errors import TwinError
from llm_twin_assets.records import CrawledDocument, stable_id

_TEXT = ("sharecommentary", "commentary", "content", "text", "post", "postcontent")
_LINK = ("sharelink", "link", "url", "posturl", "permalink")
_DATE = ("date", "created", "createdat", "publishedat", "created date")


class ExportError(TwinError):
    pass


def _column(header: list[str], names: tuple[str, ...]) -> int | None:
    normalised = [h.strip().lower().replace("_", "").replace(" ", "") for h in header]
    for name in names:
        key = name.replace(" ", "")
        if key in normalised:
            return normalised.index(key)
    return None


def read_linkedin_export(
    path: Path, source_link: str, *, roots: LocalRoots, max_bytes: int = 50_000_000
) -> list[CrawledDocument]:
    real = roots.check(path)  # LocalPathRefused / LocalPathMissing name the path
    if real.is_dir():
        raise ExportError(f"{path}: a folder, not a CSV export")
    if real.suffix.lower() not in EXPORT_SUFFIXES:
        raise LocalPathRefused(path, f"not a CSV export ({', '.join(EXPORT_SUFFIXES)})")
    size = real.stat().st_size
    if size > max_bytes:
        raise ExportError(f"{path}: {size:,} bytes, over the {max_bytes:,}-byte limit")
    raw = real.read_bytes()
    refuse_private_key(path, raw)
    if b"\x00" in raw[:4096]:
        raise ExportError(f"{path}: binary content, not a CSV export")
    text = raw.decode("utf-8-sig", errors="replace")
    csv.field_size_limit(10_000_000)
    rows = list(csv.reader(io.StringIO(text)))
    if not rows:
        raise ExportError(f"{path}: empty file")
    header = rows[0]
    text_col = _column(header, _TEXT)
    if text_col is None:
        raise ExportError(
            f"{path}, line 1: no post text column (expected one of ShareCommentary, "
            f"Commentary, Content); found {header}"
        )
    link_col, date_col = _column(header, _LINK), _column(header, _DATE)
    documents = []
    for line, row in enumerate(rows[1:], start=2):
        if len(row) <= text_col:
            continue
        body = row[text_col].replace('""', '"').strip()
        if not body:
            continue  # a repost with no words of the author's own
        link = row[link_col].strip() if link_col is not None and len(row) > link_col else ""
        url = (
            link_identity(link)
            if link.startswith(("http://", "https://"))
            else (f"{real.as_uri()}#post-{stable_id(body)[:12]}")
        )
        documents.append(
            CrawledDocument(
                url=url,
                kind="post",
                content=body,
                source_link=source_link,
                published_at=row[date_col].strip() if date_col is not None and len(row) > date_col else None,
                metadata={"via": "linkedin-export", "export": str(path), "line": line},
            )
        )
    if not documents:
        raise ExportError(f"{path}: no posts with text")
    return documents
