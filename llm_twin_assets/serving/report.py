"""What ``serving_report`` shows: volume, latency, errors, the most-cited sources and the content gaps."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from llm_twin_assets.store import traces
from llm_twin_assets.store.database import Database


@dataclass
class ServingReport:
    since: datetime
    requests: int
    errors: int
    """Answered 5xx: the service failed or refused for capacity."""
    rejected: int
    """Answered 4xx: the client's request was wrong (unknown author, invalid field)."""
    statuses: dict[int, int]
    routes: list[traces.RouteSummary]
    most_cited: list[dict[str, Any]]
    gaps: list[dict[str, Any]]
    gap_below: float
    notes: list[str] = field(default_factory=list)

    @property
    def error_rate(self) -> float:
        return self.errors / self.requests if self.requests else 0.0

    def markdown(self) -> str:
        lines = [
            f"Since {self.since.isoformat(timespec='minutes')}: {self.requests} requests, {self.errors} errors "
            f"(5xx, {self.error_rate:.1%}), {self.rejected} rejected (4xx).",
            "",
            "| route | requests | 5xx | p50 ms | p95 ms | tokens out |",
            "|---|---|---|---|---|---|",
        ]
        for r in self.routes:
            lines.append(
                f"| {r.route} | {r.requests} | {r.errors} | {_ms(r.p50_ms)} | {_ms(r.p95_ms)} | {r.tokens_out} |"
            )
        return "\n".join(lines)

    def cited_markdown(self) -> str:
        rows = ["| citations | author | document | chunk |", "|---|---|---|---|"]
        rows += [
            f"| {c['citations']} | {c['author']} | {c['document_url'] or '(removed)'} | {c['chunk_id'][:12]} |"
            for c in self.most_cited
        ]
        return "\n".join(rows)

    def gaps_markdown(self) -> str:
        rows = [
            f"Questions whose best passage had cosine similarity below {self.gap_below} (or no passage):",
            "",
            "| author | question | best similarity | asked |",
            "|---|---|---|---|",
        ]
        rows += [
            f"| {g['author']} | {_cell(g['query'])} | {_similarity(g['best_similarity'])} | {g['times_asked']} |"
            for g in self.gaps
        ]
        return "\n".join(rows)


def build_report(database: Database, days: float, gap_below: float) -> ServingReport:
    since = datetime.now(UTC) - timedelta(days=days)
    with database.connect() as conn:
        statuses = traces.status_counts(conn, since)
        routes = traces.route_summaries(conn, since)
        cited = traces.most_cited(conn, since)
        gaps = traces.content_gaps(conn, since, gap_below)
    return ServingReport(
        since=since,
        requests=sum(statuses.values()),
        errors=sum(n for s, n in statuses.items() if s >= 500),
        rejected=sum(n for s, n in statuses.items() if 400 <= s < 500),
        statuses=statuses,
        routes=routes,
        most_cited=cited,
        gaps=gaps,
        gap_below=gap_below,
    )


def _ms(value: float | None) -> str:
    return "—" if value is None else f"{value:.0f}"


def _similarity(value: float | None) -> str:
    return "none" if value is None else f"{value:.3f}"


def _cell(text: str) -> str:
    text = " ".join(text.split()).replace("|", "\\|")
    return text if len(text) <= 80 else text[:79] + "…"
