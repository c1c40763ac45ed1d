"""Where the database is, how to connect to it, and bringing its schema up to date.

``LLM_TWIN_DATABASE_URL`` names any PostgreSQL with pgvector; unset, the embedded server under the
data home is started (once, shared) and used. Either way :class:`Database` is what code holds.
"""

from __future__ import annotations

import re
import shutil
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
from llm_twin_assets.store.vectors import drop_author_indexes

_URL_FORM = re.compile(r"^\s*[A-Za-z][A-Za-z0-9+.-]*://")
_URL_PASSWORD = re.compile(r"(://[^:/@]*:)[^@]+@")
_QUERY_PASSWORD = re.compile(r"([?&]password=)[^&#]*", re.IGNORECASE)
_KEYWORD_PASSWORD = re.compile(r"(\bpassword\s*=\s*)(?:'(?:[^'\\]|\\.)*'|[^\s']\S*)", re.IGNORECASE)


def redact(url: str) -> str:
    """The connection string with any password replaced, fit for logs and error messages, in every form
    libpq takes: ``postgresql://user:secret@host``, ``...?password=secret`` and ``host=h password=secret``
    (quoted values too)."""
    if _URL_FORM.match(url):
        return _QUERY_PASSWORD.sub(r"\1***", _URL_PASSWORD.sub(r"\1***@", url))
    return _KEYWORD_PASSWORD.sub(r"\1***", url)


class DiskFullError(StoreError):
    """The disk under the database is full. The transaction in progress was rolled back; what was
    committed before is intact, and a run after space is freed carries on."""


_NEARLY_FULL = 32 << 20
"""Less room than this (two WAL segments) under the embedded server's data: a lost connection or a failed
start is the full disk's doing (PostgreSQL stops when it cannot create a WAL segment, and its recovery
cannot finish until there is room)."""

# Besides 53100 (disk full): how a connection ends when the server crashed or stopped.
_SERVER_GONE = {None, "57P01", "57P02", "57P03", "58030"}


def _free_bytes(path: Path) -> int | None:
    for candidate in (path, *path.parents):
        try:
            return shutil.disk_usage(candidate).free
        except OSError:
            continue
    return None


def _disk_full_error(
    what: str, pgdata: Path, free: int | None, reason: str, *, writing: bool = True
) -> DiskFullError:
    room = f"{free / 2**20:.1f} MiB free" if free is not None else "free space unknown"
    kept = "the write in progress was rolled back; " if writing else ""
    return DiskFullError(
        f"LLM_TWIN_HOME: {what}: the disk holding the data home {pgdata.parent} is full ({room}; {reason}); "
        f"{kept}what was stored before is intact. Fix: free space on that disk (or move LLM_TWIN_HOME to "
        "a bigger one), then run it again: the embedded server recovers on its next start"
    )


def _first_line(exc: BaseException | str) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


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
        """The clear error for ``exc`` when a full disk caused it, else None. ``stopped``: the server
        went away (PostgreSQL PANICs when it cannot create a WAL segment)."""
        if isinstance(exc, psycopg.errors.DiskFull):
            reason = _first_line(exc.diag.message_primary or exc)
            if not self.embedded or self.pgdata is None:
                return DiskFullError(
                    f"the database at {redact(self.url)} is out of disk space ({reason}); the write in "
                    "progress was rolled back. Fix: free space on the database server's disk (or grow "
                    "its volume), then run it again"
                )
            what = "the embedded PostgreSQL server could not write" + (" and stopped" if stopped else "")
            return _disk_full_error(what, self.pgdata, _free_bytes(self.pgdata), reason)
        if not self.embedded or self.pgdata is None:
            return None
        if isinstance(exc, psycopg.Error) and exc.sqlstate not in _SERVER_GONE:
            return None
        free = _free_bytes(self.pgdata)
        if free is None or free >= _NEARLY_FULL:
            return None
        return _disk_full_error(
            "the embedded PostgreSQL server stopped", self.pgdata, free, f"PostgreSQL: {_first_line(exc)}"
        )


class DatabaseUnavailable(StoreError):
    """The server is not there right now (restarting, failing over, coming back): the work is worth
    retrying. ``config_error`` is what the failure means when this process never reached the server."""

    def __init__(self, message: str, config_error: ConfigError | None = None) -> None:
        super().__init__(message)
        self.config_error = config_error


# How libpq and the server word a connection attempt that met no server, and one that met a server
# starting, stopping or recovering. Anything else (a refused user or password, an unknown database or
# host) is a setting to fix, never retried.
_NO_SERVER = re.compile(
    r"No such file or directory|Connection refused|timeout expired|server closed the connection unexpectedly",
    re.IGNORECASE,
)
_SERVER_CHANGING = re.compile(
    r"the database system is (starting up|shutting down|in recovery mode|not (yet )?accepting connections)",
    re.IGNORECASE,
)
# A connection lost mid-work because the server shut down (fast, or after a crash) or is starting.
_LOST_STATES = {"57P01", "57P02", "57P03"}


def is_transient(exc: BaseException) -> bool:
    """Whether ``exc`` is the database going away or coming back (a restart, a failover, a dropped
    connection) rather than a problem to fix: retrying the work once it is back is the right answer."""
    if isinstance(exc, DatabaseUnavailable):
        return True
    if not isinstance(exc, psycopg.OperationalError):
        return False
    state = exc.sqlstate
    # No SQLSTATE on an established connection: libpq lost it ("server closed the connection
    # unexpectedly", "the connection is lost").
    return state is None or state in _LOST_STATES or state.startswith("08")


def _open(url: str, setting: str) -> psycopg.Connection:
    try:
        return psycopg.connect(url, connect_timeout=10)
    except psycopg.OperationalError as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        config_error = ConfigError(
            setting,
            f"cannot connect to PostgreSQL at {redact(url)} ({reason})",
            "check the URL, that the server is up and that it accepts this user"
            if setting == "LLM_TWIN_DATABASE_URL"
            else "run `llm-twin db status`; remove a stale data home or set LLM_TWIN_DATABASE_URL",
        )
        away = f"PostgreSQL at {redact(url)} is not reachable right now ({reason})"
        if _SERVER_CHANGING.search(str(exc)):  # a restart in progress, whoever asks
            raise DatabaseUnavailable(away) from exc
        if _NO_SERVER.search(str(exc)):  # gone since it was reached, or never there: see open_database
            raise DatabaseUnavailable(away, config_error) from exc
        raise config_error from exc
    except psycopg.ProgrammingError as exc:
        raise ConfigError(
            setting,
            f"{redact(url)} is not a valid PostgreSQL URL ({exc})",
            "use postgresql://user:password@host:port/dbname",
        ) from exc


def resolve_url(settings: TwinSettings) -> tuple[str, bool]:
    """The database URL and whether it is the embedded server (started here when needed)."""
    if settings.database_url:
        url = settings.database_url
        # SQLAlchemy-style URLs are common in users' environments; psycopg wants the plain scheme.
        url = re.sub(r"^postgresql\+psycopg2?://", "postgresql://", url)
        if not re.match(r"^postgres(ql)?://", url) and not _is_keyword_conninfo(url):
            raise ConfigError(
                "LLM_TWIN_DATABASE_URL",
                f"{redact(url)} is not a PostgreSQL URL",
                "use postgresql://user:password@host:port/dbname, or unset it to use the embedded server",
            )
        return url, False
    try:
        return embedded.ensure_running(settings.pgdata), True
    except StoreError as exc:
        free = _free_bytes(settings.pgdata)
        if free is None or free >= _NEARLY_FULL:
            raise
        raise _disk_full_error(
            f"the embedded PostgreSQL server in {settings.pgdata} did not start",
            settings.pgdata,
            free,
            f"its log: {settings.pgdata / 'log'}",
            writing=False,
        ) from exc


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
        raise StoreError(f"could not install pgvector in {redact(url)}: {exc}") from exc
