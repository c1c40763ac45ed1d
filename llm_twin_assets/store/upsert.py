"""Idempotent bulk upserts: COPY into a staging table, then one INSERT ... ON CONFLICT.

Rows are keyed by content-derived ids; a row whose ``content_hash`` is unchanged is not rewritten,
so re-running over unchanged input writes nothing. Everything happens in the caller's transaction.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import psycopg
from psycopg import sql


@dataclass
class UpsertResult:
    inserted: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: int = 0

    @property
    def written(self) -> int:
        return len(self.inserted) + len(self.updated)


def bulk_upsert(
    conn: psycopg.Connection,
    table: str,
    columns: Sequence[str],
    rows: Iterable[Sequence[object]],
    *,
    key: str = "id",
    compare: str | Sequence[str] | None = "content_hash",
    update: Sequence[str] | None = None,
    on_update: Mapping[str, str] | None = None,
) -> UpsertResult:
    """Insert new rows and update those whose ``compare`` column(s) changed; return what happened.

    ``update`` lists the columns rewritten on conflict (default: every column but the key). With
    ``compare=None`` a conflicting row is rewritten only when any of the update columns differ.
    ``on_update`` sets more columns, only on rows that are rewritten, to SQL expressions written in
    code (e.g. ``{"updated_at": "now()"}``): timestamps move only when something really changed.
    """
    if key not in columns:
        raise ValueError(f"key column {key!r} must be among the columns {list(columns)}")
    with conn.transaction():  # a savepoint inside the caller's transaction, or a transaction of its own
        return _bulk_upsert(conn, table, columns, rows, key, compare, update, on_update or {})


def _bulk_upsert(
    conn: psycopg.Connection,
    table: str,
    columns: Sequence[str],
    rows: Iterable[Sequence[object]],
    key: str,
    compare: str | Sequence[str] | None,
    update: Sequence[str] | None,
    on_update: Mapping[str, str],
) -> UpsertResult:
    update_cols = [c for c in (update if update is not None else columns) if c != key]
    stage = sql.Identifier(f"_stage_{table}")
    target = sql.Identifier(table)
    cols = sql.SQL(", ").join(sql.Identifier(c) for c in columns)

    conn.execute(
        sql.SQL(
            "CREATE TEMP TABLE IF NOT EXISTS {stage} (LIKE {target} INCLUDING DEFAULTS) ON COMMIT DROP"
        ).format(stage=stage, target=target)
    )
    conn.execute(sql.SQL("TRUNCATE {stage}").format(stage=stage))
    total = 0
    with conn.cursor().copy(
        sql.SQL("COPY {stage} ({cols}) FROM STDIN").format(stage=stage, cols=cols)
    ) as copy:
        for row in rows:
            if len(row) != len(columns):
                raise ValueError(f"{table}: a row has {len(row)} values for {len(columns)} columns")
            copy.write_row(row)
            total += 1
    if total == 0:
        return UpsertResult()

    compared = update_cols if compare is None else [compare] if isinstance(compare, str) else list(compare)
    changed = sql.SQL(" OR ").join(
        sql.SQL("{t}.{c} IS DISTINCT FROM EXCLUDED.{c}").format(t=target, c=sql.Identifier(c))
        for c in compared
    )
    sets = [sql.SQL("{c} = EXCLUDED.{c}").format(c=sql.Identifier(c)) for c in update_cols]
    sets += [sql.SQL("{c} = {e}").format(c=sql.Identifier(c), e=sql.SQL(e)) for c, e in on_update.items()]
    query = sql.SQL(
        # DISTINCT ON: a key twice in one batch would otherwise abort the whole statement.
        "INSERT INTO {target} ({cols}) SELECT DISTINCT ON ({key}) {cols} FROM {stage} "
        "ON CONFLICT ({key}) DO UPDATE SET {sets} WHERE {changed} "
        "RETURNING {key}, (xmax = 0) AS inserted"
    ).format(
        target=target,
        cols=cols,
        stage=stage,
        key=sql.Identifier(key),
        sets=sql.SQL(", ").join(sets),
        changed=changed,
    )
    result = UpsertResult()
    for row_key, was_inserted in conn.execute(query).fetchall():
        (result.inserted if was_inserted else result.updated).append(row_key)
    result.unchanged = total - result.written
    return result
