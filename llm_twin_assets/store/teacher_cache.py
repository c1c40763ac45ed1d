"""Teacher replies kept in PostgreSQL (``teacher_replies``), shared by every run and machine on the store."""

from __future__ import annotations

from llm_twin_assets.store.database import Database
from llm_twin_assets.store.upsert import bulk_upsert


class PostgresReplyCache:
    """key -> (reply text, finished). Keys hash the teacher, prompt version, budget and messages."""

    def __init__(self, database: Database) -> None:
        self.database = database

    def get_many(self, keys: list[str]) -> dict[str, tuple[str, bool]]:
        if not keys:
            return {}
        with self.database.connect() as conn:
            rows = conn.execute(
                "SELECT key, reply, finished FROM teacher_replies WHERE key = ANY(%s)", (keys,)
            ).fetchall()
        return {key: (reply, bool(finished)) for key, reply, finished in rows}

    def put_many(self, teacher: str, prompt_version: str, replies: list[tuple[str, str, bool]]) -> None:
        if not replies:
            return
        with self.database.connect() as conn:
            bulk_upsert(
                conn,
                "teacher_replies",
                ("key", "teacher", "prompt_version", "reply", "finished"),
                [(key, teacher, prompt_version, text, finished) for key, text, finished in replies],
                key="key",
                compare=("reply", "finished"),
            )
