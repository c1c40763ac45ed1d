"""What a person wants to know about the store: server, versions, schema, row counts, what cleaning
rejected. It reads whatever is there and says what is missing (no pgvector, no schema) instead of failing."""

from __future__ import annotations

from dataclasses import dataclass, field

import psycopg

from llm_twin_assets.errors import StoreError
from llm_twin_assets.store.database import Database, redact, stored_dimension
from llm_twin_assets.store.tombstones import counts

TABLES = ("authors", "raw_documents", "cleaned_documents", "cleaning_rejections", "chunks")
"""Live rows only: removed documents are kept apart, as tombstones (counted on their own line)."""


@dataclass
class StoreReport:
    url: str
    embedded: bool
    server_version: str
    pgvector_version: str | None
    migrations: list[str]
    rows: dict[str, int] = field(default_factory=dict)
    embedding_dim: int | None = None
    rejected: dict[str, int] = field(default_factory=dict)
    tombstones: tuple[int, int] | None = None
    """(documents, chunks) removed and kept as tombstones; None before the schema has them."""
    problems: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        lines = [
            f"database:     {redact(self.url)} ({'embedded' if self.embedded else 'external'})",
            f"postgresql:   {self.server_version}",
            f"pgvector:     {self.pgvector_version or 'not installed'}",
            f"migrations:   {', '.join(self.migrations) or 'none'}",
            "rows:         " + (", ".join(f"{t}={n}" for t, n in self.rows.items()) or "none"),
        ]
        if self.embedding_dim is not None:
            lines.append(f"embeddings:   vector({self.embedding_dim})")
        if self.rows.get("cleaning_rejections") is not None:
            lines.append(
                "not cleaned:  " + (", ".join(f"{r}={n}" for r, n in self.rejected.items()) or "none")
            )
        if self.tombstones is not None:
            documents, chunks = self.tombstones
            lines.append(
                f"removed:      {documents} documents, {chunks} chunks kept as tombstones "
                "(`llm-twin author removed <slug>`)"
            )
        lines += [f"problem:      {p}" for p in self.problems]
        return lines


def report(database: Database) -> StoreReport:
    try:
        with database.connect(vector_types=False) as conn:
            return _report(conn, database)
    except psycopg.Error as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise StoreError(f"cannot read the store at {redact(database.url)}: {reason}") from None


def _exists(conn: psycopg.Connection, table: str) -> bool:
    row = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (table,)).fetchone()
    return bool(row and row[0])


def _report(conn: psycopg.Connection, database: Database) -> StoreReport:
    server_version = conn.execute("SHOW server_version").fetchone()[0]  # type: ignore[index]
    ext = conn.execute("SELECT extversion FROM pg_extension WHERE extname = 'vector'").fetchone()
    problems = []
    if ext is None:
        problems.append(
            "pgvector is not installed in this database (`llm-twin db start` installs it where the server "
            "has it; see LLM_TWIN_DATABASE_URL)"
        )
    migrations = []
    if _exists(conn, "schema_migrations"):
        migrations = [
            r[0] for r in conn.execute("SELECT name FROM schema_migrations ORDER BY version").fetchall()
        ]
    else:
        problems.append("the schema is not applied (run `llm-twin db start`)")
    rows = {
        t: int(conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0])  # type: ignore[index]
        for t in TABLES
        if _exists(conn, t)
    }
    rejected: dict[str, int] = {}
    if "cleaning_rejections" in rows:
        rejected = dict(
            conn.execute(
                "SELECT reason, count(*) FROM cleaning_rejections GROUP BY reason ORDER BY reason"
            ).fetchall()
        )
    tombstones = None
    if _exists(conn, "removed_raw_documents"):
        tombstones = counts(conn)
    return StoreReport(
        url=database.url,
        embedded=database.embedded,
        server_version=str(server_version),
        pgvector_version=ext[0] if ext else None,
        migrations=migrations,
        rows=rows,
        embedding_dim=stored_dimension(conn) if "chunks" in rows else None,
        rejected=rejected,
        tombstones=tombstones,
        problems=problems,
    )
