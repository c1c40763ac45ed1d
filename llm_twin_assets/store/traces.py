"""Request traces of the twin service (``serving_traces``) and the summaries ``serving_report`` shows."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import psycopg


@dataclass
class Trace:
    route: str
    status: int
    latency_ms: float
    author: str | None = None
    query: str | None = None
    release: int | None = None
    chunk_ids: list[str] = field(default_factory=list)
    scores: list[float] = field(default_factory=list)
    best_similarity: float | None = None
    tokens_in: int | None = None
    tokens_out: int | None = None
    timings: dict[str, float] = field(default_factory=dict)
    error: str | None = None


_FIELDS = (
    "route",
    "author",
    "query",
    "release",
    "chunk_ids",
    "scores",
    "best_similarity",
    "tokens_in",
    "tokens_out",
    "timings",
    "latency_ms",
    "status",
    "error",
)


_INSERT = f"INSERT INTO serving_traces ({', '.join(_FIELDS)}) VALUES ({', '.join(['%s'] * len(_FIELDS))})"
MAX_TEXT = 4_000
"""A trace keeps this much of a query or an error message."""


def storable(text: str | None, limit: int = MAX_TEXT) -> str | None:
    """Text PostgreSQL stores: no NUL characters (text cannot hold them), no lone surrogates (not UTF-8),
    at most ``limit`` characters."""
    if text is None:
        return None
    text = text[:limit].replace("\x00", "\ufffd")
    return text.encode("utf-8", "replace").decode("utf-8")


def _row(t: Trace) -> tuple[Any, ...]:
    values: list[Any] = []
    for name in _FIELDS:
        value = getattr(t, name)
        if name == "timings":
            value = json.dumps(value)
        elif name in ("author", "query", "error", "route"):
            value = storable(value)
        elif name == "chunk_ids":
            value = [storable(c) for c in value]
        values.append(value)
    return tuple(values)


def write(conn: psycopg.Connection, traces: list[Trace]) -> None:
    """Insert ``traces`` in one transaction (their text made storable first)."""
    if not traces:
        return
    with conn.transaction(), conn.cursor() as cur:
        cur.executemany(_INSERT, [_row(t) for t in traces])


def write_each(conn: psycopg.Connection, traces: list[Trace]) -> tuple[int, list[tuple[Trace, Exception]]]:
    """Insert ``traces`` one by one: a trace the database refuses is left out alone. Returns how many
    were written and the refused ones with their error."""
    written = 0
    refused: list[tuple[Trace, Exception]] = []
    for trace in traces:
        try:
            write(conn, [trace])
            written += 1
        except (psycopg.DataError, ValueError) as exc:  # this row's data; a lost server propagates
            refused.append((trace, exc))
    return written, refused


def recent(conn: psycopg.Connection, limit: int = 100) -> list[dict[str, Any]]:
    cur = conn.execute(
        f"SELECT id, at, {', '.join(_FIELDS)} FROM serving_traces ORDER BY id DESC LIMIT %s", (limit,)
    )
    names = [c.name for c in cur.description or []]
    return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


@dataclass(frozen=True)
class RouteSummary:
    route: str
    requests: int
    errors: int
    p50_ms: float | None
    p95_ms: float | None
    tokens_out: int


def route_summaries(conn: psycopg.Connection, since: datetime) -> list[RouteSummary]:
    rows = conn.execute(
        "SELECT route, count(*), count(*) FILTER (WHERE status >= 500),"
        " percentile_cont(0.5) WITHIN GROUP (ORDER BY latency_ms) FILTER (WHERE status < 400),"
        " percentile_cont(0.95) WITHIN GROUP (ORDER BY latency_ms) FILTER (WHERE status < 400),"
        " coalesce(sum(tokens_out), 0)"
        " FROM serving_traces WHERE at >= %s GROUP BY route ORDER BY count(*) DESC",
        (since,),
    ).fetchall()
    return [RouteSummary(r[0], int(r[1]), int(r[2]), r[3], r[4], int(r[5])) for r in rows]


def status_counts(conn: psycopg.Connection, since: datetime) -> dict[int, int]:
    rows = conn.execute(
        "SELECT status, count(*) FROM serving_traces WHERE at >= %s GROUP BY status ORDER BY status", (since,)
    ).fetchall()
    return {int(s): int(n) for s, n in rows}


def most_cited(conn: psycopg.Connection, since: datetime, limit: int = 10) -> list[dict[str, Any]]:
    """The chunks answers cited most, with their document (a chunk since removed shows its id only)."""
    rows = conn.execute(
        "WITH cited AS (SELECT unnest(chunk_ids) AS chunk_id, author FROM serving_traces"
        "  WHERE at >= %s AND status < 400 AND route <> '/retrieve')"
        " SELECT c.chunk_id, c.author, count(*) AS citations, d.url"
        " FROM cited c LEFT JOIN chunks k ON k.id = c.chunk_id LEFT JOIN raw_documents d ON d.id = k.document_id"
        " GROUP BY c.chunk_id, c.author, d.url ORDER BY citations DESC, c.chunk_id LIMIT %s",
        (since, limit),
    ).fetchall()
    return [{"chunk_id": r[0], "author": r[1], "citations": int(r[2]), "document_url": r[3]} for r in rows]


def content_gaps(
    conn: psycopg.Connection, since: datetime, below: float, limit: int = 20
) -> list[dict[str, Any]]:
    """Questions whose best retrieved passage was far from them (cosine below ``below``), or found none:
    what people ask the author that the author has not written about."""
    rows = conn.execute(
        "SELECT author, query, max(best_similarity), count(*) FROM serving_traces"
        " WHERE at >= %s AND status < 400 AND query IS NOT NULL AND route IN ('/rag', '/retrieve',"
        " '/v1/chat/completions') AND (best_similarity IS NULL OR best_similarity < %s)"
        " GROUP BY author, query ORDER BY count(*) DESC, max(best_similarity) NULLS FIRST LIMIT %s",
        (since, below, limit),
    ).fetchall()
    return [{"author": r[0], "query": r[1], "best_similarity": r[2], "times_asked": int(r[3])} for r in rows]
