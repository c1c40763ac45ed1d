"""What a person wants to know about the store: server, versions, schema, row counts."""

from __future__ import annotations

from dataclasses import dataclass, field

from llm_twin_assets.store.database import Database, redact

TABLES = ("authors", "raw_documents", "cleaned_documents", "chunks")


@dataclass
class StoreReport:
    url: str
    embedded: bool
    server_version: str
    pgvector_version: str | None
    migrations: list[str]
    rows: dict[str, int] = field(default_factory=dict)

    def lines(self) -> list[str]:
        return [
            f"database:     {redact(self.url)} ({'embedded' if self.embedded else 'external'})",
            f"postgresql:   {self.server_version}",
            f"pgvector:     {self.pgvector_version or 'not installed'}",
            f"migrations:   {', '.join(self.migrations) or 'none'}",
            "rows:         " + ", ".join(f"{t}={n}" for t, n in self.rows.items()),
        ]


def report(database: Database) -> StoreReport:
    with database.connect() as conn:
        server_version = conn.execute("SHOW server_version").fetchone()[0]  # type: ignore[index]
        ext = conn.execute("SELECT extversion FROM pg_extension WHERE extname = 'vector'").fetchone()
        migrations = [
            r[0] for r in conn.execute("SELECT name FROM schema_migrations ORDER BY version").fetchall()
        ]
        rows = {t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in TABLES}  # type: ignore[index]
    return StoreReport(
        url=database.url,
        embedded=database.embedded,
        server_version=str(server_version),
        pgvector_version=ext[0] if ext else None,
        migrations=migrations,
        rows=rows,
    )
