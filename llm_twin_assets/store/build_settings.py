"""An author's build settings as recorded in the store (``author_build_settings``)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg.types.json import Jsonb


@dataclass(frozen=True)
class RecordedSettings:
    author: str
    settings: dict[str, dict[str, Any]]
    """asset name -> the fields the author set (validated)."""
    digest: str
    links_file: str | None
    recorded_at: datetime


def settings_digest(settings: dict[str, dict[str, Any]]) -> str:
    """A 16-hex digest of the settings as written (keys sorted); the same settings give the same digest."""
    text = json.dumps(settings, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def record(
    conn: psycopg.Connection,
    author: str,
    name: str,
    settings: dict[str, dict[str, Any]],
    links_file: str | None,
) -> tuple[RecordedSettings, bool]:
    """Store the author's settings; returns what is recorded and whether it changed."""
    digest = settings_digest(settings)
    with conn.transaction():
        conn.execute(
            "INSERT INTO authors (slug, name) VALUES (%s, %s) ON CONFLICT DO NOTHING", (author, name)
        )
        before = conn.execute(
            "SELECT digest FROM author_build_settings WHERE author = %s FOR UPDATE", (author,)
        ).fetchone()
        changed = before is None or before[0] != digest
        if changed or before is None:
            conn.execute(
                "INSERT INTO author_build_settings (author, settings, digest, links_file) VALUES (%s, %s, %s, %s)"
                " ON CONFLICT (author) DO UPDATE SET settings = EXCLUDED.settings, digest = EXCLUDED.digest,"
                " links_file = EXCLUDED.links_file, recorded_at = now()",
                (author, Jsonb(settings), digest, links_file),
            )
    found = recorded(conn, author)
    assert found is not None
    return found, changed


def recorded(conn: psycopg.Connection, author: str) -> RecordedSettings | None:
    row = conn.execute(
        "SELECT settings, digest, links_file, recorded_at FROM author_build_settings WHERE author = %s",
        (author,),
    ).fetchone()
    if row is None:
        return None
    return RecordedSettings(author, dict(row[0]), str(row[1]), row[2], row[3])
