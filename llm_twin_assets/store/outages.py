"""When the database is not there: a restart or failover (worth retrying), or a full disk (to say so).

Both are told apart from a setting to fix (a wrong URL, user or password), which fails at once. And what
may be said about the database in a message: its URL with the password replaced, never the password —
also when libpq's own error text repeats the URL, or a piece of it, verbatim.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from urllib.parse import unquote

import psycopg

from llm_twin_assets.errors import ConfigError, StoreError

HIDDEN = "***"
_URL_FORM = re.compile(r"^\s*[A-Za-z][A-Za-z0-9+.-]*://")
# ``?password=`` / ``&sslpassword=`` in a URL's query: up to the next parameter.
_QUERY_PASSWORD = re.compile(r"([?&](?:ssl)?password=)([^&#]*)", re.IGNORECASE)
# ``password=`` in libpq's keyword form: a quoted value (its closing quote may be missing: libpq then
# fails, and says so, but the value is still a password) or an unquoted one (backslash escapes allowed).
_KEYWORD_PASSWORD = re.compile(
    r"(\b(?:ssl)?password\s*=\s*)('(?:[^'\\]|\\.?)*'?|(?:\\.?|[^\s\\])+)", re.IGNORECASE
)
# ``scheme://user:secret@`` inside free text (an error message quoting a URL): up to a quote, a space or
# the last ``@`` before one.
_TEXT_URL_PASSWORD = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*://[^\s:/@\"']*:)([^\s\"']*)@")
_PLACEHOLDERS = {HIDDEN, "password"}  # e.g. a fix that says "use postgresql://user:password@host/db"


def _password_spans(url: str) -> list[tuple[int, int]]:
    """Where the passwords are in a connection string, in every form libpq takes: the user info of
    ``postgresql://user:secret@host`` (up to the ``@`` libpq would take, or when the URL is malformed the
    last ``@`` before the query: more hidden rather than less), ``?password=`` and ``host=h password=secret``."""
    spans: list[tuple[int, int]] = []
    if _URL_FORM.match(url):
        start = url.index("://") + 3
        slash = url.find("/", start)
        authority_end = slash if slash >= 0 else len(url)
        at = url.rfind("@", start, authority_end)
        if at < 0:  # a password holding a "/" (libpq then fails): the last "@" before the query
            query = url.find("?", start)
            at = url.rfind("@", start, query if query >= 0 else len(url))
        if at >= 0:
            colon = url.find(":", start, at)
            if colon >= 0:
                spans.append((colon + 1, at))
        spans += [m.span(2) for m in _QUERY_PASSWORD.finditer(url, at + 1 if at >= 0 else start)]
    else:
        spans += [m.span(2) for m in _KEYWORD_PASSWORD.finditer(url)]
    return [(a, b) for a, b in spans if b > a]


def redact(url: str) -> str:
    """The connection string with any password replaced, fit for logs and error messages, in every form
    libpq takes (``postgresql://user:secret@host``, ``...?password=secret``, ``host=h password=secret``,
    quoted values too) — and malformed ones: an unclosed quote, an unclosed IPv6 bracket, a bad port."""
    out, last = [], 0
    for a, b in sorted(_password_spans(url)):
        if a < last:
            continue
        out += [url[last:a], HIDDEN]
        last = b
    return "".join(out) + url[last:]


def secrets_of(url: str | None) -> list[str]:
    """The password texts of ``url`` as an error message might repeat them: raw, unquoted, unescaped and
    percent-decoded; longest first."""
    if not url:
        return []
    found: set[str] = set()
    for a, b in _password_spans(url):
        raw = url[a:b]
        inner = raw[1:-1] if len(raw) > 1 and raw[0] == raw[-1] == "'" else raw.lstrip("'")
        unescaped = re.sub(r"\\(.)", r"\1", inner)
        found |= {raw, inner, unescaped, unquote(raw), unquote(inner)}
    return sorted((s for s in found if s and s != HIDDEN), key=len, reverse=True)


def scrub(text: str, url: str | None = None) -> str:
    """``text`` (an error message, libpq's own included) with every password hidden: the URL's own
    passwords wherever they appear (``url``: the connection string the text may quote, when known), and
    any URL user info or ``password=`` value it quotes."""
    if url:
        text = text.replace(url, redact(url))
        for secret in secrets_of(url):
            if len(secret) >= 4:
                text = text.replace(secret, HIDDEN)
            else:  # short: only where it stands alone, so that "ab" does not blank out every word
                text = re.sub(rf"(?<![A-Za-z0-9]){re.escape(secret)}(?![A-Za-z0-9])", HIDDEN, text)
    text = _TEXT_URL_PASSWORD.sub(
        lambda m: m.group(0) if m.group(2) in _PLACEHOLDERS else f"{m.group(1)}{HIDDEN}@", text
    )
    text = _QUERY_PASSWORD.sub(rf"\1{HIDDEN}", text)
    return _KEYWORD_PASSWORD.sub(
        lambda m: m.group(0) if m.group(2) in _PLACEHOLDERS else m.group(1) + HIDDEN, text
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
NO_SERVER = re.compile(
    r"No such file or directory|Connection refused|timeout expired|server closed the connection unexpectedly",
    re.IGNORECASE,
)
SERVER_CHANGING = re.compile(
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


class DiskFullError(StoreError):
    """The disk under the database is full. The transaction in progress was rolled back; what was
    committed before is intact, and a run after space is freed carries on."""


NEARLY_FULL = 32 << 20
"""Less room than this (two WAL segments) under the embedded server's data: a lost connection or a failed
start is the full disk's doing (PostgreSQL stops when it cannot create a WAL segment, and its recovery
cannot finish until there is room)."""

# Besides 53100 (disk full): how a connection ends when the server crashed or stopped.
_SERVER_GONE = {None, "57P01", "57P02", "57P03", "58030"}


def free_bytes(path: Path) -> int | None:
    for candidate in (path, *path.parents):
        try:
            return shutil.disk_usage(candidate).free
        except OSError:
            continue
    return None


def disk_full_error(
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
    text = scrub(str(exc).strip())
    return text.splitlines()[0] if text else type(exc).__name__


def disk_full_cause(
    exc: Exception, where: str, pgdata: Path | None, *, stopped: bool
) -> DiskFullError | None:
    """The clear error for ``exc`` when a full disk caused it, else None. ``where``: the server's URL,
    password redacted; ``pgdata``: the embedded
    server's data folder (None for a server elsewhere); ``stopped``: the server went away (PostgreSQL
    PANICs when it cannot create a WAL segment)."""
    if isinstance(exc, psycopg.errors.DiskFull):
        reason = _first_line(exc.diag.message_primary or exc)
        if pgdata is None:
            return DiskFullError(
                f"the database at {where} is out of disk space ({reason}); the write in "
                "progress was rolled back. Fix: free space on the database server's disk (or grow "
                "its volume), then run it again"
            )
        what = "the embedded PostgreSQL server could not write" + (" and stopped" if stopped else "")
        return disk_full_error(what, pgdata, free_bytes(pgdata), reason)
    if pgdata is None:
        return None
    if isinstance(exc, psycopg.Error) and exc.sqlstate not in _SERVER_GONE:
        return None
    free = free_bytes(pgdata)
    if free is None or free >= NEARLY_FULL:
        return None
    return disk_full_error(
        "the embedded PostgreSQL server stopped", pgdata, free, f"PostgreSQL: {_first_line(exc)}"
    )
