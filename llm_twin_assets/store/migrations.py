"""Numbered SQL files in ``sql/``, applied in order, each once and each in its own transaction.

Applied files are recorded in ``schema_migrations`` with a checksum; a transaction-scoped advisory
lock serialises processes that migrate at the same moment. A file that fails leaves the schema as it
was before that file.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import psycopg

from llm_twin_assets.errors import MigrationError
from llm_twin_assets.kinds import REGISTRY

_FILE = re.compile(r"^(\d{3,})_[a-z0-9_]+\.sql$")
LOCK_KEY = 0x7417_0001  # arbitrary, constant: "llm twin migrations"


@dataclass(frozen=True)
class Migration:
    version: str
    path: Path
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def default_sql_dir() -> Path:
    """The schema files shipped inside the package (``llm_twin_assets/sql``, a link to the repository's
    top-level ``sql/`` that a wheel or a container install carries as plain files), or, where the package
    runs from a copy that dropped the link (a built bento: BentoML does not follow it), the ``sql/`` beside
    the package."""
    inside = Path(str(resources.files("llm_twin_assets") / "sql"))
    beside = inside.parent.parent / "sql"
    return beside if not inside.is_dir() and beside.is_dir() else inside


def discover(sql_dir: Path) -> list[Migration]:
    """The migration files in ``sql_dir``, in order; other files are an error, not silently skipped."""
    if not sql_dir.is_dir():
        raise MigrationError(f"schema folder {sql_dir} does not exist")
    found: list[Migration] = []
    for path in sorted(sql_dir.iterdir()):
        if path.suffix != ".sql":
            continue
        match = _FILE.match(path.name)
        if not match:
            raise MigrationError(f"{path}: schema files are named NNN_description.sql (lowercase)")
        found.append(Migration(version=match.group(1), path=path, sql=path.read_text()))
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise MigrationError(f"{sql_dir}: two schema files share a number: {sorted(versions)}")
    return found


def applied(conn: psycopg.Connection) -> dict[str, str]:
    """version -> checksum of what this database has applied (empty before the first run)."""
    exists = conn.execute("SELECT to_regclass('schema_migrations') IS NOT NULL").fetchone()
    if not exists or not exists[0]:
        return {}
    return dict(conn.execute("SELECT version, checksum FROM schema_migrations").fetchall())


def apply(conn: psycopg.Connection, sql_dir: Path) -> list[str]:
    """Apply every pending file; return the versions applied now (empty when up to date)."""
    pending = discover(sql_dir)
    done_now: list[str] = []
    for migration in pending:
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (LOCK_KEY,))
            conn.execute(
                """CREATE TABLE IF NOT EXISTS schema_migrations (
                       version text PRIMARY KEY, name text NOT NULL, checksum text NOT NULL,
                       applied_at timestamptz NOT NULL DEFAULT now())"""
            )
            seen = applied(conn)
            if migration.version in seen:
                if seen[migration.version] != migration.checksum:
                    raise MigrationError(
                        f"{migration.path} changed after it was applied to this database; "
                        "add a new numbered file instead of editing an applied one"
                    )
                continue
            try:
                with conn.transaction():
                    conn.execute(migration.sql.encode())
            except psycopg.Error as exc:
                raise MigrationError(f"{migration.path} failed and was rolled back: {exc}") from exc
            conn.execute(
                "INSERT INTO schema_migrations (version, name, checksum) VALUES (%s, %s, %s)",
                (migration.version, migration.path.name, migration.checksum),
            )
            done_now.append(migration.version)
    return done_now


def check_kinds(conn: psycopg.Connection) -> None:
    """Refuse a database whose ``document_kinds`` lacks a kind the registry (``llm_twin_assets.kinds``)
    lists, or gives it another family: documents of that kind could not be stored, or would be treated
    as the other family. Rows the registry does not list are kept (old documents of a retired kind are
    rejected by cleaning as ``unknown_kind``)."""
    stored: dict[str, str] = dict(conn.execute("SELECT kind, family FROM document_kinds").fetchall())
    problems = [
        f"{k.name!r} ({k.family}) is missing: add a migration with "
        f"INSERT INTO document_kinds (kind, family) VALUES ('{k.name}', '{k.family}')"
        if k.name not in stored
        else f"{k.name!r} is {stored[k.name]!r} in the database but {k.family!r} in the registry"
        for k in REGISTRY
        if stored.get(k.name) != k.family
    ]
    if problems:
        raise MigrationError("document kinds do not match llm_twin_assets/kinds.py: " + "; ".join(problems))
