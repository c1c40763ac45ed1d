"""Where the database is, how to connect to it, and bringing its schema up to date.

``LLM_TWIN_DATABASE_URL`` names any PostgreSQL with pgvector; unset, the embedded server under the
data home is started (once, shared) and used. Either way :class:`Database` is what code holds.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg
from pgvector.psycopg import register_vector
from psycopg.conninfo import conninfo_to_dict

from llm_twin_assets.errors import ConfigError, StoreError, TwinError
from llm_twin_assets.settings import TwinSettings
from llm_twin_assets.store import embedded, migrations
from llm_twin_assets.store.author_indexes import drop_author_indexes
from llm_twin_assets.store.outages import (
    NEARLY_FULL,
    NO_SERVER,
    SERVER_CHANGING,
    DatabaseUnavailable,
    DiskFullError,
    disk_full_cause,
    disk_full_error,
    free_bytes,
    redact,
    scrub,
)

__all__ = [
    "BadValue",
    "Connection",
    "ConnectionLost",
    "Database",
    "DatabaseError",
    "open_database",
    "redact",
    "resolve_url",
    "scrub",
    "stored_dimension",
]

# The store's names for what code above it holds and catches: only the store imports psycopg
# (an import-linter contract), so the rest of the package can change drivers without knowing it.
Connection = psycopg.Connection
"""An open connection to the store (commit/rollback by :meth:`Database.connect`)."""
DatabaseError = psycopg.Error
"""Anything the database refused or failed at."""
ConnectionLost = psycopg.OperationalError
"""The server went away or cannot be reached (a restart, a network failure): reconnect and retry."""
BadValue = (psycopg.DataError, psycopg.IntegrityError, psycopg.ProgrammingError)
"""A row the database refused for what it holds (a value, a constraint): fails alone, never retried."""


@dataclass(frozen=True)
class Database:
    """A reachable PostgreSQL with pgvector and our schema applied."""

    url: str
    embedded: bool
    pgdata: Path | None = None
    """The embedded server's data folder, when known: where a full disk is looked for."""

    @property
    def _setting(self) -> str:
        return "LLM_TWIN_DATABASE_URL" if not self.embedded else "LLM_TWIN_HOME"

    @contextmanager
    def connect(self, *, autocommit: bool = False, vector_types: bool = True) -> Iterator[psycopg.Connection]:
        """A connection with pgvector types registered; commits on success, rolls back on error. A full
        disk under the database is a :class:`DiskFullError` that says so."""
        conn = self._connection()
        try:
            conn.autocommit = autocommit
            if vector_types:
                register_vector(conn)
            with conn:
                yield conn
        except psycopg.OperationalError as exc:
            full = self._disk_full(exc, stopped=conn.broken)
            if full is None:
                raise
            raise full from exc
        finally:
            conn.close()

    def open(self) -> psycopg.Connection:
        """A long-lived autocommit connection with pgvector types (for a process that asks many queries:
        retrieval, the service); the caller keeps it, and closes it."""
        conn = self._connection()
        conn.autocommit = True
        register_vector(conn)
        return conn

    def _connection(self) -> psycopg.Connection:
        try:
            return _open(self.url, self._setting)
        except TwinError as exc:  # the embedded server may have stopped because its disk is full
            full = self._disk_full(exc, stopped=True)
            if full is None:
                raise
            raise full from exc

    def _disk_full(self, exc: Exception, *, stopped: bool) -> DiskFullError | None:
        """The clear error for ``exc`` when a full disk caused it, else None (see ``store.outages``)."""
        return disk_full_cause(exc, redact(self.url), self.pgdata if self.embedded else None, stopped=stopped)


def _open(url: str, setting: str) -> psycopg.Connection:
    """A connection, or the one clear error: libpq's own text may repeat the URL or a piece of it (an
    unclosed quote or IPv6 bracket, a bad percent-escape), so it is scrubbed of the password, and the
    error is raised outside the handler with a scrubbed copy as its cause: no traceback, log or Dagster
    failure can show the original."""
    try:
        return psycopg.connect(url, connect_timeout=10)
    except (psycopg.OperationalError, psycopg.ProgrammingError) as exc:
        failure = _connect_failure(exc, url, setting)
    raise failure


def _connect_failure(exc: psycopg.Error, url: str, setting: str) -> TwinError:
    text = scrub(str(exc).strip(), url)
    reason = text.splitlines()[0] if text else type(exc).__name__
    cause = _scrubbed(exc, text)
    if not isinstance(exc, psycopg.OperationalError):  # libpq could not even parse it
        failure: TwinError = ConfigError(
            setting,
            f"{redact(url)} is not a valid PostgreSQL URL ({reason})",
            "use postgresql://user:password@host:port/dbname",
        )
    else:
        config_error = ConfigError(
            setting,
            f"cannot connect to PostgreSQL at {redact(url)} ({reason})",
            "check the URL, that the server is up and that it accepts this user"
            if setting == "LLM_TWIN_DATABASE_URL"
            else "run `llm-twin db status`; remove a stale data home or set LLM_TWIN_DATABASE_URL",
        )
        away = f"PostgreSQL at {redact(url)} is not reachable right now ({reason})"
        if SERVER_CHANGING.search(text):  # a restart in progress, whoever asks
            failure = DatabaseUnavailable(away)
        elif NO_SERVER.search(text):  # gone since it was reached, or never there: see open_database
            failure = DatabaseUnavailable(away, config_error)
        else:
            failure = config_error
    failure.__cause__ = cause
    return failure


def _scrubbed(exc: psycopg.Error, text: str) -> BaseException:
    """``exc`` itself when its text holds no password, else one of its kind with the scrubbed text."""
    if text == str(exc).strip():
        return exc
    try:
        return type(exc)(text)
    except Exception:
        return psycopg.Error(text)


def resolve_url(settings: TwinSettings) -> tuple[str, bool]:
    """The database URL and whether it is the embedded server (started here when needed)."""
    if settings.database_url:
        url = settings.database_url
        # SQLAlchemy-style URLs are common in users' environments; psycopg wants the plain scheme.
        url = re.sub(r"^postgresql\+psycopg2?://", "postgresql://", url)
        if not re.match(r"^postgres(ql)?://", url) and not _is_keyword_conninfo(url):
            why = _keyword_problem(url)
            raise ConfigError(
                "LLM_TWIN_DATABASE_URL",
                f"{redact(url)} is not a PostgreSQL URL" + (f" ({why})" if why else ""),
                "use postgresql://user:password@host:port/dbname, or unset it to use the embedded server",
            )
        return url, False
    try:
        return embedded.ensure_running(settings.pgdata), True
    except StoreError as exc:
        free = free_bytes(settings.pgdata)
        if free is None or free >= NEARLY_FULL:
            raise
        raise disk_full_error(
            f"the embedded PostgreSQL server in {settings.pgdata} did not start",
            settings.pgdata,
            free,
            f"its log: {settings.pgdata / 'log'}",
            writing=False,
        ) from exc


def _keyword_problem(value: str) -> str | None:
    """What libpq finds wrong with ``value`` as a ``key=value`` string (scrubbed of its password)."""
    if "=" not in value:
        return None
    try:
        conninfo_to_dict(value)
    except psycopg.ProgrammingError as exc:
        text = scrub(str(exc).strip(), value)
        return text.splitlines()[0] if text else None
    return None


def _is_keyword_conninfo(value: str) -> bool:
    """libpq's other form, ``host=... dbname=...``, is a valid setting too."""
    if "=" not in value:
        return False
    try:
        conninfo_to_dict(value)
    except psycopg.ProgrammingError:
        return False
    return True


def open_database(settings: TwinSettings, *, sql_dir: Path | None = None) -> Database:
    """Reach the configured database (starting the embedded one if needed) and apply the schema."""
    url, is_embedded = resolve_url(settings)
    database = Database(
        url=url, embedded=is_embedded, pgdata=settings.pgdata.absolute() if is_embedded else None
    )
    setting = "LLM_TWIN_HOME" if is_embedded else "LLM_TWIN_DATABASE_URL"
    try:
        with database.connect(autocommit=True, vector_types=False) as conn:
            _ensure_pgvector(conn, url, setting)
    except DatabaseUnavailable as exc:
        if exc.config_error is None:
            raise
        # Never reached from this process: no server at that address is a setting to fix, not an outage.
        raise exc.config_error from exc.__cause__
    with database.connect(autocommit=True) as conn:
        migrations.apply(conn, sql_dir or migrations.default_sql_dir())
        migrations.check_kinds(conn)
        ensure_dimension(conn, settings.embedding_dim, url, setting)
    return database


MAX_INDEXED_DIM = 4000  # pgvector's HNSW index over halfvec


def stored_dimension(conn: psycopg.Connection) -> int | None:
    """The dimension of ``chunks.embedding`` as the schema declares it."""
    row = conn.execute(
        "SELECT atttypmod FROM pg_attribute WHERE attrelid = 'chunks'::regclass AND attname = 'embedding'"
    ).fetchone()
    return int(row[0]) if row and row[0] and row[0] > 0 else None


def ensure_dimension(conn: psycopg.Connection, dim: int, url: str, setting: str) -> None:
    """Make ``chunks.embedding`` hold ``dim`` dimensions: re-declared (with its index) while no chunk is
    embedded yet; otherwise a mismatch is an error naming both dimensions (nothing is changed)."""
    if stored_dimension(conn) == dim:
        return
    if not 1 <= dim <= MAX_INDEXED_DIM:
        raise ConfigError(
            "LLM_TWIN_EMBEDDING_DIM", f"is {dim}", f"use a dimension between 1 and {MAX_INDEXED_DIM}"
        )
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (migrations.LOCK_KEY,))
        current = stored_dimension(conn)
        if current == dim:
            return
        embedded = conn.execute("SELECT count(*) FROM chunks WHERE embedding IS NOT NULL").fetchone()
        if embedded and embedded[0]:
            raise ConfigError(
                "LLM_TWIN_EMBEDDING_DIM",
                f"is {dim}, but the store at {redact(url)} ({setting}) holds {embedded[0]:,} embeddings of "
                f"{current} dimensions",
                f"set LLM_TWIN_EMBEDDING_DIM={current} (and a model of that dimension), or point "
                f"{setting} at a fresh store for the new model",
            )
        # No vectors yet: declare the column (and its half-precision HNSW index) for this dimension.
        drop_author_indexes(conn)  # they cast to the old dimension
        conn.execute("DROP INDEX IF EXISTS chunks_embedding_hnsw")
        conn.execute(f"ALTER TABLE chunks ALTER COLUMN embedding TYPE vector({dim})")
        conn.execute(
            f"CREATE INDEX chunks_embedding_hnsw ON chunks USING hnsw ((embedding::halfvec({dim}))"
            " halfvec_cosine_ops) WITH (m = 16, ef_construction = 128)"
        )


def _ensure_pgvector(conn: psycopg.Connection, url: str, setting: str) -> None:
    row = conn.execute(
        "SELECT default_version, installed_version FROM pg_available_extensions WHERE name = 'vector'"
    ).fetchone()
    if row is None:
        raise ConfigError(
            setting,
            f"the database at {redact(url)} has no pgvector extension available",
            "install pgvector >= 0.8 on that server (or use a provider that ships it), "
            "or unset LLM_TWIN_DATABASE_URL to use the embedded server",
        )
    if row[1] is not None:
        return
    try:
        conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
    except psycopg.errors.InsufficientPrivilege as exc:
        raise ConfigError(
            setting,
            f"pgvector is available on {redact(url)} but not installed in this database, "
            "and this user may not install it",
            "have a database owner run CREATE EXTENSION vector; once, or connect as one",
        ) from exc
    except psycopg.Error as exc:
        raise StoreError(f"could not install pgvector in {redact(url)}: {scrub(str(exc), url)}") from None
