import psycopg
import pytest

from llm_twin_assets.records import chunk_id, content_hash, document_id, stable_id
from llm_twin_assets.store.database import Database

from .helpers import add_author, raw_row, upsert_raw


def test_ids_are_deterministic_and_distinct() -> None:
    assert document_id("jane", "https://a.org/x") == document_id("jane", "https://a.org/x")
    assert document_id("jane", "https://a.org/x") != document_id("john", "https://a.org/x")
    assert stable_id("ab", "c") != stable_id("a", "bc")  # parts never run together
    h = content_hash("text")
    assert chunk_id("d", 0, h) != chunk_id("d", 1, h)
    assert len(document_id("jane", "u")) == 32


def test_upsert_inserts_then_is_a_no_op_then_updates_only_what_changed(db: Database) -> None:
    with db.connect() as conn:
        add_author(conn, "jane")
        rows = [raw_row("jane", f"https://a.org/{i}", f"text {i}") for i in range(5)]
        first = upsert_raw(conn, rows)
    assert len(first.inserted) == 5 and first.updated == [] and first.unchanged == 0

    with db.connect() as conn:
        again = upsert_raw(conn, rows)
        fetched_before = conn.execute(
            "SELECT id, fetched_at, xmin::text FROM raw_documents ORDER BY id"
        ).fetchall()
    assert again.written == 0 and again.unchanged == 5

    changed = list(rows)
    changed[2] = raw_row("jane", "https://a.org/2", "text 2, revised")
    with db.connect() as conn:
        third = upsert_raw(conn, changed)
        after = conn.execute("SELECT id, fetched_at, xmin::text FROM raw_documents ORDER BY id").fetchall()
        content = conn.execute("SELECT content FROM raw_documents WHERE url = 'https://a.org/2'").fetchone()
    assert third.updated == [document_id("jane", "https://a.org/2")] and third.unchanged == 4
    assert content == ("text 2, revised",)
    # Exactly one physical row was rewritten (a new xmin); the others were not touched.
    touched = [b[0] for b, a in zip(fetched_before, after, strict=True) if b[2] != a[2]]
    assert touched == [document_id("jane", "https://a.org/2")]


def test_a_key_twice_in_one_batch_is_written_once(db: Database) -> None:
    with db.connect() as conn:
        add_author(conn, "jane")
        row = raw_row("jane", "https://a.org/1", "same")
        result = upsert_raw(conn, [row, row])
        count = conn.execute("SELECT count(*) FROM raw_documents").fetchone()
    assert len(result.inserted) == 1 and count == (1,)


def test_a_failing_batch_writes_nothing_and_keeps_what_was_stored(db: Database) -> None:
    with db.connect() as conn:
        add_author(conn, "jane")
        upsert_raw(conn, [raw_row("jane", "https://a.org/keep", "kept")])
    bad = [
        raw_row("jane", "https://a.org/new", "new"),
        raw_row("jane", "https://a.org/keep", "overwritten", kind="tweet"),
    ]
    with pytest.raises(psycopg.errors.ForeignKeyViolation, match="document_kinds"), db.connect() as conn:
        upsert_raw(conn, bad)  # 'tweet' is no registered kind
    with db.connect() as conn:
        rows = conn.execute("SELECT url, content FROM raw_documents").fetchall()
    assert rows == [("https://a.org/keep", "kept")]


def test_rows_of_the_wrong_width_are_refused(db: Database) -> None:
    with pytest.raises(ValueError, match="columns"), db.connect() as conn:
        upsert_raw(conn, [("only", "three", "values")])
