"""Releases in PostgreSQL: immutable rows numbered per author, and the one each author serves now.

Moving an author's current release (a new release or a rollback) notifies channel ``twin_releases``
with the author's slug, in the same transaction, so a service can pick it up without polling.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

import psycopg

CHANNEL = "twin_releases"


@dataclass(frozen=True)
class Release:
    author: str
    release: int
    base_model: str
    sft_version: str
    dpo_version: str
    instruct_version: str
    preference_version: str
    evaluation_id: str
    released_at: datetime
    current: bool = False
    decoding: dict[str, Any] | None = None
    """The decoding rules the release's evaluation generated with (``decoding_rules.Decoding``): the
    service generates with the same, so served tokens are the evaluated tokens."""

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["released_at"] = self.released_at.isoformat(timespec="seconds")
        return data


_COLUMNS = (
    "r.author, r.release, r.base_model, r.sft_version, r.dpo_version, r.instruct_version, "
    "r.preference_version, r.evaluation_id, r.released_at, (c.release IS NOT NULL) AS current, "
    "(SELECT e.settings -> 'decoding' FROM evaluations e WHERE e.id = r.evaluation_id) AS decoding"
)
_FROM = "releases r LEFT JOIN current_releases c ON c.author = r.author AND c.release = r.release"


def record(conn: psycopg.Connection, evaluation: Any) -> tuple[Release, bool]:
    """Release the twin ``evaluation`` measured and make it current; returns it and whether it is new.
    The same twin (DPO version) released before keeps its number and becomes current again."""
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(hashtext('release:' || %s))", (evaluation.author,))
        existing = conn.execute(
            "SELECT release FROM releases WHERE author = %s AND dpo_version = %s",
            (evaluation.author, evaluation.dpo_version),
        ).fetchone()
        new = existing is None
        if new:
            number = conn.execute(
                "INSERT INTO releases (author, release, base_model, sft_version, dpo_version, instruct_version,"
                " preference_version, evaluation_id) SELECT %s, coalesce(max(release), 0) + 1, %s, %s, %s, %s,"
                " %s, %s FROM releases WHERE author = %s RETURNING release",
                (
                    evaluation.author,
                    evaluation.base_model,
                    evaluation.sft_version,
                    evaluation.dpo_version,
                    evaluation.instruct_version,
                    evaluation.preference_version,
                    evaluation.id,
                    evaluation.author,
                ),
            ).fetchone()
            assert number is not None
            release = int(number[0])
        else:
            assert existing is not None
            release = int(existing[0])
        _point(conn, evaluation.author, release, "released")
    found = get(conn, evaluation.author, release)
    assert found is not None
    return found, new


def rollback(conn: psycopg.Connection, author: str, release: int) -> Release:
    """Serve an earlier (or any recorded) release of ``author`` again."""
    with conn.transaction():
        _point(conn, author, release, "rollback")
    found = get(conn, author, release)
    assert found is not None
    return found


def _point(conn: psycopg.Connection, author: str, release: int, reason: str) -> None:
    conn.execute(
        "INSERT INTO current_releases (author, release, reason) VALUES (%s, %s, %s) ON CONFLICT (author) "
        "DO UPDATE SET release = EXCLUDED.release, reason = EXCLUDED.reason, changed_at = now()",
        (author, release, reason),
    )
    conn.execute("SELECT pg_notify(%s, %s)", (CHANNEL, author))


def get(conn: psycopg.Connection, author: str, release: int) -> Release | None:
    row = conn.execute(
        f"SELECT {_COLUMNS} FROM {_FROM} WHERE r.author = %s AND r.release = %s", (author, release)
    ).fetchone()
    return Release(*row) if row else None


def current(conn: psycopg.Connection, author: str) -> Release | None:
    row = conn.execute(
        f"SELECT {_COLUMNS} FROM releases r JOIN current_releases c ON c.author = r.author "
        "AND c.release = r.release WHERE r.author = %s",
        (author,),
    ).fetchone()
    return Release(*row) if row else None


def all_releases(conn: psycopg.Connection, author: str | None = None) -> list[Release]:
    rows = conn.execute(
        f"SELECT {_COLUMNS} FROM {_FROM} WHERE %s::text IS NULL OR r.author = %s ORDER BY r.author, r.release",
        (author, author),
    ).fetchall()
    return [Release(*row) for row in rows]


def all_current(conn: psycopg.Connection) -> dict[str, Release]:
    """Every author's current release, by author."""
    rows = conn.execute(
        f"SELECT {_COLUMNS} FROM releases r JOIN current_releases c ON c.author = r.author "
        "AND c.release = r.release ORDER BY r.author"
    ).fetchall()
    return {row[0]: Release(*row) for row in rows}


def listen_for_releases(conn: psycopg.Connection) -> None:
    """Subscribe ``conn`` (autocommit) to release notifications: ``conn.notifies()`` yields one per author
    whose current release moved."""
    conn.execute(f"LISTEN {CHANNEL}")
