"""A fault test: the database server restarted (a real fast shutdown, then a start) while a feature step
is in the middle of its write. The step is retried, also while the server is still down, and the run
finishes with exactly the rows an undisturbed run makes: nothing lost, nothing twice, all embedded.
An outage longer than the retries fails in one clear line; a wrong setting fails at once."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import dagster as dg
import numpy as np
import psycopg
import pytest

from llm_twin_assets.defs.failures import DATABASE_RETRIES
from llm_twin_assets.defs.features.assets import cleaned_documents
from llm_twin_assets.defs.features.definitions import FEATURE_ASSETS, FEATURE_CHECKS
from llm_twin_assets.defs.resources import ModelsResource, StoreResource
from llm_twin_assets.defs.runner import failure_reason, materialize_for_author
from llm_twin_assets.settings import TwinSettings
from llm_twin_assets.store import embedded
from llm_twin_assets.store.database import Database
from llm_twin_assets_tests.store.helpers import add_author, raw_row, upsert_raw

ASSETS = [*FEATURE_ASSETS, *FEATURE_CHECKS]
TOPICS = ["sourdough", "marathons", "HNSW graphs", "retries", "bicycles", "tea", "compilers", "gardens"]
DOCUMENTS = {
    f"note-{i}": "\n\n".join(
        f"Note {i}, part {p}: what I learned about {TOPICS[i % len(TOPICS)]} in week {i * 7 + p}. "
        f"The {p + 1}th lesson was that {TOPICS[(i + p) % len(TOPICS)]} reward patience, measurement "
        f"and {i + p} small, boring steps taken every day rather than one heroic effort."
        for p in range(5)
    )
    for i in range(24)
}
WAIT_S = 30.0


def seed(db: Database, author: str) -> None:
    with db.connect() as conn:
        add_author(conn, author)
        upsert_raw(conn, [raw_row(author, f"https://blog.example/{n}", t) for n, t in DOCUMENTS.items()])


def materialize(
    author: str, instance: dg.DagsterInstance, assets: list[object] = ASSETS
) -> dg.ExecuteInProcessResult:
    return materialize_for_author(
        assets, author, {"store": StoreResource(), "models": ModelsResource(device="cpu")}, instance=instance
    )


def partition(db: Database, author: str) -> dict[tuple[str, int], tuple[object, ...]]:
    """(document URL, ordinal) -> what the chunk holds, and its vector."""
    with db.connect() as conn:
        rows = conn.execute(
            "SELECT d.url, c.ordinal, c.content_hash, c.n_tokens, c.char_start, c.char_end, c.context,"
            " c.embedding_model, c.embedding FROM chunks c JOIN cleaned_documents d ON d.id = c.document_id"
            " WHERE c.author = %s",
            (author,),
        ).fetchall()
    found = {(r[0], r[1]): (*r[2:-1], None if r[-1] is None else r[-1].to_numpy()) for r in rows}
    assert len(found) == len(rows)  # one chunk per (document, ordinal): nothing twice
    return found


def retries_of(instance: dg.DagsterInstance, step: str) -> list[str]:
    """Why ``step`` of the instance's latest run asked for each retry so far."""
    runs = instance.get_runs(limit=1)
    if not runs:
        return []
    return [
        str(e.dagster_event.step_retry_data.error)  # type: ignore[union-attr]
        for e in instance.all_logs(runs[0].run_id, of_type=dg.DagsterEventType.STEP_UP_FOR_RETRY)
        if e.step_key == step
    ]


@dataclass
class Outage:
    blocked_query: str = ""
    """What the step was doing when the server stopped."""
    url: str = ""
    """Where the server answered again."""
    errors: list[BaseException] = field(default_factory=list)


@contextmanager
def restart_mid_write(
    db: Database,
    settings: TwinSettings,
    table: str,
    back_when: Callable[[], bool] | None,
) -> Iterator[Outage]:
    """While the body runs a materialization: once a step's write to ``table`` is waiting (on a lock
    held here, so the stop lands inside that write's transaction, never before or after it), stop the
    server (fast shutdown: every backend terminated), keep it down until ``back_when()`` (None: until
    the run ends), then start it again on the same data."""
    outage = Outage()
    run_over = threading.Event()
    holder = psycopg.connect(db.url, autocommit=True)
    holder.execute("BEGIN")
    holder.execute(f"LOCK TABLE {table} IN EXCLUSIVE MODE")
    holder_pid = holder.info.backend_pid

    def until(what: str, condition: Callable[[], object]) -> object:
        deadline = time.monotonic() + WAIT_S
        while time.monotonic() < deadline and not run_over.is_set():
            value = condition()
            if value:
                return value
            time.sleep(0.05)
        raise AssertionError(f"{'the run ended' if run_over.is_set() else 'timed out'} before {what}")

    def inject() -> None:
        try:
            with psycopg.connect(db.url, autocommit=True) as watcher:
                row = until(
                    f"a write to {table} waited on the lock",
                    lambda: watcher.execute(
                        "SELECT query FROM pg_stat_activity WHERE %s = ANY(pg_blocking_pids(pid))",
                        (holder_pid,),
                    ).fetchone(),
                )
            outage.blocked_query = str(row[0])  # type: ignore[index]
            assert embedded.stop(settings.pgdata)
            if back_when is None:
                assert run_over.wait(WAIT_S), "timed out before the run ended"
            else:
                until("the server could come back", back_when)
        except BaseException as exc:  # reported by the test's own thread
            outage.errors.append(exc)
        finally:
            holder.close()  # never leave the run waiting on the lock
            outage.url = embedded.ensure_running(settings.pgdata)

    injector = threading.Thread(target=inject)
    injector.start()
    try:
        yield outage
    finally:
        run_over.set()
        injector.join(timeout=WAIT_S)
        holder.close()
        assert not injector.is_alive()
    assert outage.url == db.url  # the restarted server answers at the same address


@pytest.mark.slow
def test_a_restart_mid_write_is_retried_and_the_partition_is_exact(
    db: Database, settings: TwinSettings
) -> None:
    seed(db, "ref")
    seed(db, "maya")
    with dg.DagsterInstance.ephemeral() as instance:
        undisturbed = materialize("ref", instance)
    assert undisturbed.success
    reference = partition(db, "ref")
    assert len(reference) > len(DOCUMENTS)  # several chunks per document

    with dg.DagsterInstance.ephemeral() as instance:
        # Down until a retry has met no server, then back.
        with restart_mid_write(
            db, settings, "chunks", lambda: len(retries_of(instance, "chunks")) >= 2
        ) as outage:
            result = materialize("maya", instance)
        assert not outage.errors, outage.errors
        causes = retries_of(instance, "chunks")

    # The chunks step was inside its write (documents read and chunked) when the server stopped.
    assert re.search(r'\b(DELETE FROM|INSERT INTO|UPDATE) "?chunks\b', outage.blocked_query), (
        outage.blocked_query
    )
    # The restart was felt: the write lost its connection, then a retry found no server (or one still
    # starting); each was retried.
    assert len(causes) >= 2, causes
    assert "administrator command" in causes[0] and "the server restarted or went away" in causes[0]
    assert all("is not reachable right now" in cause for cause in causes[1:]), causes
    assert result.success
    assert all(c.passed for c in result.get_asset_check_evaluations())

    disturbed = partition(db, "maya")
    assert set(disturbed) == set(reference)
    for key, (*fields, vector) in disturbed.items():
        *expected, reference_vector = reference[key]
        assert fields == expected, key
        assert vector is not None and np.allclose(vector, reference_vector, atol=1e-3), key
    with db.connect() as conn:
        assert conn.execute(
            "SELECT count(*), count(DISTINCT document_id) FROM chunks WHERE author = 'maya'"
        ).fetchone() == (len(reference), len(DOCUMENTS))


@pytest.mark.slow
def test_an_outage_longer_than_the_retries_fails_in_one_clear_line(
    db: Database, settings: TwinSettings
) -> None:
    seed(db, "maya")
    with dg.DagsterInstance.ephemeral() as instance:
        with restart_mid_write(db, settings, "cleaned_documents", None) as outage:
            result = materialize("maya", instance, [cleaned_documents])  # the server stays down
        assert outage.errors == []
        causes = retries_of(instance, "cleaned_documents")
    assert re.search(r'\bINSERT INTO "?cleaned_documents\b', outage.blocked_query), outage.blocked_query
    assert not result.success and len(causes) == DATABASE_RETRIES
    failure = next(e for e in result.all_events if e.is_step_failure)
    reason = failure_reason(failure.step_failure_data.error)  # what `llm-twin materialize` prints
    assert reason.startswith("PostgreSQL at ") and "is not reachable right now" in reason, reason
    assert reason.endswith(f"still so after {DATABASE_RETRIES} retries over 7 s"), reason
    with db.connect() as conn:  # the write in progress was rolled back: nothing half-written
        assert conn.execute("SELECT count(*) FROM cleaned_documents WHERE author = 'maya'").fetchone() == (0,)


def test_a_wrong_database_user_fails_at_once_not_retried(db: Database) -> None:
    """A refusal is a setting to fix, not an outage: no retry, the setting named, no password shown."""
    url = db.url.replace("postgres:@", "nobody:secret@", 1)
    assert url != db.url
    with dg.DagsterInstance.ephemeral() as instance:
        result = materialize_for_author(
            [cleaned_documents], "maya", {"store": StoreResource(database_url=url)}, instance=instance
        )
    assert not result.success
    assert not any(e.is_step_up_for_retry for e in result.all_events)
    failure = next(e for e in result.all_events if e.is_step_failure)
    reason = failure_reason(failure.step_failure_data.error)
    assert reason.startswith("LLM_TWIN_DATABASE_URL: cannot connect to PostgreSQL"), reason
    assert 'role "nobody" does not exist' in reason and "secret" not in reason
