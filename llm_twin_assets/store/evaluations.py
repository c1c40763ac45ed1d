"""Evaluations in PostgreSQL: one ``evaluations`` row with its ``evaluation_metrics`` rows (each metric
with its bootstrap 95% interval, ``low`` and ``high``), written in one transaction (a reader sees all of
an evaluation or none of it); and other authors' passages, the "other writers" of an evaluation."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg.types.json import Jsonb


@dataclass(frozen=True)
class EvaluationRecord:
    id: str
    author: str
    base_model: str
    sft_version: str
    dpo_version: str
    instruct_version: str
    preference_version: str
    examples: int
    examples_key: str
    settings: dict[str, Any]
    classifier: dict[str, Any]
    gate: dict[str, Any]
    gate_passed: bool
    evaluated_at: datetime | None = None


_COLUMNS = (
    "id, author, base_model, sft_version, dpo_version, instruct_version, preference_version, examples, "
    "examples_key, settings, classifier, gate, gate_passed, evaluated_at"
)


def save(conn: psycopg.Connection, record: EvaluationRecord, models: dict[str, dict[str, Any]]) -> datetime:
    """Insert the evaluation and its metrics (``{model: {"version", "metrics": {name: value},
    "intervals": {name: [low, high] | None}}}``, intervals optional); an evaluation of the same id is
    replaced whole (a release that names it keeps naming it). Returns when it was evaluated."""
    updated = ", ".join(f"{c} = EXCLUDED.{c}" for c in _COLUMNS.split(", ")[1:])
    with conn.transaction():
        row = conn.execute(
            f"INSERT INTO evaluations ({_COLUMNS}) VALUES "
            "(%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, now()) "
            f"ON CONFLICT (id) DO UPDATE SET {updated} RETURNING evaluated_at",
            (
                record.id,
                record.author,
                record.base_model,
                record.sft_version,
                record.dpo_version,
                record.instruct_version,
                record.preference_version,
                record.examples,
                record.examples_key,
                Jsonb(record.settings),
                Jsonb(record.classifier),
                Jsonb(record.gate),
                record.gate_passed,
            ),
        ).fetchone()
        assert row is not None
        evaluated_at: datetime = row[0]
        conn.execute("DELETE FROM evaluation_metrics WHERE evaluation_id = %s", (record.id,))
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO evaluation_metrics (evaluation_id, author, model, version, metric, value, "
                "low, high, evaluated_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
                [
                    (
                        record.id,
                        record.author,
                        model,
                        entry["version"],
                        metric,
                        value,
                        *_ends((entry.get("intervals") or {}).get(metric)),
                        evaluated_at,
                    )
                    for model, entry in models.items()
                    for metric, value in entry["metrics"].items()
                ],
            )
    return evaluated_at


def _ends(interval: Any) -> tuple[float | None, float | None]:
    if not interval:
        return None, None
    return float(interval[0]), float(interval[1])


def set_gate(conn: psycopg.Connection, evaluation_id: str, gate: dict[str, Any], passed: bool) -> None:
    """Record a new decision on an existing evaluation (the gate's margins changed, the metrics did not)."""
    conn.execute(
        "UPDATE evaluations SET gate = %s, gate_passed = %s WHERE id = %s",
        (Jsonb(gate), passed, evaluation_id),
    )


def get(conn: psycopg.Connection, evaluation_id: str) -> EvaluationRecord | None:
    row = conn.execute(f"SELECT {_COLUMNS} FROM evaluations WHERE id = %s", (evaluation_id,)).fetchone()
    return EvaluationRecord(*row) if row else None


def latest(conn: psycopg.Connection, author: str, dpo_version: str | None = None) -> EvaluationRecord | None:
    """The author's most recent evaluation (of one DPO version when given)."""
    row = conn.execute(
        f"SELECT {_COLUMNS} FROM evaluations WHERE author = %s AND (%s::text IS NULL OR dpo_version = %s) "
        "ORDER BY evaluated_at DESC, id LIMIT 1",
        (author, dpo_version, dpo_version),
    ).fetchone()
    return EvaluationRecord(*row) if row else None


def metrics(conn: psycopg.Connection, evaluation_id: str) -> dict[str, dict[str, Any]]:
    """``{model: {"version": ..., "metrics": {name: value}, "intervals": {name: [low, high] | None}}}``
    of one evaluation, in the stored order."""
    models: dict[str, dict[str, Any]] = {}
    for model, version, metric, value, low, high in conn.execute(
        "SELECT model, version, metric, value, low, high FROM evaluation_metrics WHERE evaluation_id = %s "
        "ORDER BY CASE model WHEN 'base' THEN 0 WHEN 'sft' THEN 1 WHEN 'twin' THEN 2 WHEN 'base+rag' THEN 3 "
        "WHEN 'sft+rag' THEN 4 WHEN 'twin+rag' THEN 5 WHEN 'author' THEN 6 ELSE 7 END, model, metric",
        (evaluation_id,),
    ):
        entry = models.setdefault(model, {"version": version, "metrics": {}, "intervals": {}})
        entry["metrics"][metric] = value
        entry["intervals"][metric] = [low, high] if low is not None and high is not None else None
    return models


def other_writers(
    conn: psycopg.Connection, author: str, limit: int = 200, min_words: int = 20
) -> list[tuple[str, str, str]]:
    """Up to ``limit`` passages (chunks of at least ``min_words`` words) by authors other than ``author``,
    shared evenly between them and picked by a hash of their id (the same store gives the same picks):
    ``(author, document_id, text)``."""
    others = [
        r[0]
        for r in conn.execute(
            "SELECT DISTINCT author FROM chunks WHERE author <> %s ORDER BY author", (author,)
        ).fetchall()
    ]
    if not others or limit <= 0:
        return []
    each = max(1, limit // len(others))
    rows = conn.execute(
        "SELECT author, document_id, content FROM (SELECT author, document_id, content, "
        "ROW_NUMBER() OVER (PARTITION BY author ORDER BY md5(id)) AS pick FROM chunks "
        "WHERE author <> %s AND array_length(regexp_split_to_array(trim(content), '\\s+'), 1) >= %s) c "
        "WHERE pick <= %s ORDER BY author, pick",
        (author, min_words, each),
    ).fetchall()
    return [(str(a), str(d), str(t)) for a, d, t in rows][:limit]
