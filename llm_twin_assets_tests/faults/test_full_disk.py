"""A full disk under the data home: writes fail with one clear line, nothing stored before is harmed, and
once there is room again the same write succeeds. The data home lies on its own small tmpfs, filled to
the last byte with a ballast file; the embedded PostgreSQL, the artifact store, Dagster and the
``llm-twin`` command are the real ones.

What PostgreSQL really does on a full disk, and so what is tested:

- a write that needs a new page fails with SQLSTATE 53100 (``could not extend file``): the server stays
  up, the transaction is rolled back;
- a write whose WAL needs a new 16 MB segment makes the server PANIC; its crash recovery then cannot
  finish either, and it shuts down until there is room, when its next start recovers.
"""

from __future__ import annotations

import errno
import os
import random
import shutil
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from llm_twin_assets.artifacts import ArtifactError, LocalArtifactStore
from llm_twin_assets.settings import get_settings
from llm_twin_assets.store import embedded
from llm_twin_assets.store.database import Database, open_database
from llm_twin_assets.store.outages import DiskFullError
from llm_twin_assets_tests.conftest import fresh_home
from llm_twin_assets_tests.store.helpers import add_author, raw_row, upsert_raw
from llm_twin_assets_tests.test_cli import run as cli
from llm_twin_assets_tests.waiting import wait_until

DISK = "160m"  # the embedded server's initdb takes ~40 MB, and its WAL grows in 16 MB segments
VOCABULARY = (
    "the a small boring database index query server page table vector model pipeline run test disk write "
    "read answer question author post article note crawl chunk embed search rank fuse train adapter loss "
    "step metric check gate release serve cache retry timeout queue batch token draft"
)


@pytest.fixture
def small_home(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A data home on its own small file system (mounted here; unmounted after, with its server stopped)."""
    home = fresh_home("llm-twin-full-disk-")
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={DISK},mode=0755", "tmpfs", str(home)],
        capture_output=True,
        text=True,
    )
    assert mounted.returncode == 0, f"this test mounts a tmpfs, which needs root: {mounted.stderr}"
    monkeypatch.setenv("LLM_TWIN_HOME", str(home))
    monkeypatch.setenv("DAGSTER_HOME", str(home / "dagster"))  # the command line's default
    monkeypatch.setenv("LLM_TWIN_AUTHORS_DIR", str(home / "authors"))
    monkeypatch.delenv("LLM_TWIN_DATABASE_URL", raising=False)
    try:
        yield home
    finally:
        (home / "ballast").unlink(missing_ok=True)
        try:
            embedded.stop(home / "pgdata")
        except Exception:  # a server that will not stop cleanly still may not outlive the test
            server = embedded.status(home / "pgdata")
            if server.pid:
                os.kill(server.pid, signal.SIGQUIT)  # PostgreSQL's immediate shutdown
                wait_until(lambda: not embedded.status(home / "pgdata").running, "an immediate shutdown")
            raise
        finally:
            subprocess.run(["umount", str(home)], check=True)
            shutil.rmtree(home, ignore_errors=True)


def fill(disk: Path) -> Path:
    """A ballast file that takes every byte the file system has left."""
    ballast = disk / "ballast"
    fd = os.open(ballast, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        for size in (1 << 20, 1 << 12, 1):
            block = b"\xff" * size
            try:
                while True:
                    os.write(fd, block)
            except OSError as exc:
                assert exc.errno == errno.ENOSPC, exc
    finally:
        os.close(fd)
    assert shutil.disk_usage(disk).free < 1 << 20
    return ballast


def prose(seed: int, paragraphs: int) -> str:
    """Text that compresses about as badly as real prose (so rows really take pages)."""
    rng = random.Random(seed)
    words = VOCABULARY.split()
    return "\n\n".join(
        " ".join(rng.choice(words) for _ in range(rng.randint(8, 16))).capitalize() + "."
        for _ in range(paragraphs)
    )


def seed_author(db: Database, slug: str, documents: int, paragraphs: int) -> None:
    with db.connect() as conn:
        add_author(conn, slug)
        upsert_raw(
            conn,
            [raw_row(slug, f"https://{slug}.example/{i}", prose(i, paragraphs)) for i in range(documents)],
        )


def snapshot(db: Database) -> dict[str, tuple[int, str]]:
    """Every stored row: a count and a digest per table."""
    found = {}
    with db.connect() as conn:
        for table, key in (("authors", "slug"), ("raw_documents", "id"), ("cleaned_documents", "id")):
            row = conn.execute(
                f"SELECT count(*), md5(coalesce(string_agg(t::text, '|' ORDER BY {key}), '')) FROM {table} t"
            ).fetchone()
            assert row is not None
            found[table] = (int(row[0]), str(row[1]))
    return found


def materialize(home: Path, author: str, **env: str) -> subprocess.CompletedProcess[str]:
    return cli("materialize", "--author", author, "--select", "cleaned_documents", home=home, **env)


@pytest.mark.slow
def test_a_full_data_home_fails_writes_clearly_and_keeps_what_was_stored(
    small_home: Path, tmp_path: Path
) -> None:
    settings = get_settings()
    db = open_database(settings)
    seed_author(db, "ada", documents=6, paragraphs=20)
    seed_author(db, "bob", documents=60, paragraphs=80)  # cleaned, more than the tables' spare pages hold
    (small_home / "authors").mkdir()
    for slug in ("ada", "bob"):
        (small_home / "authors" / f"{slug}.yaml").write_text(
            f"name: {slug}\nlinks:\n- https://{slug}.example/\n"
        )
    done = materialize(small_home, "ada")  # also makes the Dagster instance under the data home
    assert done.returncode == 0, done.stderr
    store = LocalArtifactStore(settings.artifacts_dir)
    key = "datasets/ada/instruct/v1/train.parquet"
    original = os.urandom(300_000)
    store.put(key, original)
    before = snapshot(db)
    assert before["cleaned_documents"][0] == 6
    server = embedded.status(settings.pgdata)
    assert server.running

    ballast = fill(small_home)

    # An artifact write: one clear line; no temporary file left; the version before it untouched.
    with pytest.raises(ArtifactError) as failed:
        store.put(key, os.urandom(1_000_000))
    message = str(failed.value)
    assert "\n" not in message and str(store.root / key) in message and "no space left" in message
    assert "Fix: free space" in message
    assert [p.name for p in (store.root / key).parent.iterdir()] == ["train.parquet"]
    assert store.get(key) == original
    with pytest.raises(ArtifactError, match="no space left"):
        store.put("adapters/ada/sft/v2/adapter_model.safetensors", os.urandom(100_000))
    assert store.list_keys() == [key]
    assert [p for p in store.root.rglob("*") if p.is_file()] == [store.root / key]

    # A database write, straight through the store: PostgreSQL's 53100, said plainly.
    with pytest.raises(DiskFullError) as full:
        seed_author(db, "cyd", documents=60, paragraphs=80)
    message = str(full.value)
    assert "\n" not in message and "could not extend file" in message
    assert f"the disk holding the data home {small_home} is full" in message
    assert "Fix: free space on that disk" in message

    # The same asset from the command line: with Dagster's instance on the full disk too (the default)
    # the command cannot even record a run, and says why in one line instead of a traceback...
    refused = materialize(small_home, "bob")
    assert refused.returncode == 2 and "Traceback" not in refused.stderr, refused.stderr
    [line] = refused.stderr.strip().splitlines()
    assert line.startswith(f"error: the disk holding {small_home} is full") and "Fix: free space" in line
    # ... and with the instance elsewhere, the step fails on the database write, named as such.
    failed_run = materialize(small_home, "bob", DAGSTER_HOME=str(tmp_path / "dagster"))
    assert failed_run.returncode == 1, failed_run.stderr
    reason = next(
        x for x in failed_run.stderr.splitlines() if x.strip().startswith("FAILED cleaned_documents")
    )
    assert (
        f"the disk holding the data home {small_home} is full" in reason and "could not extend file" in reason
    )

    # Room again: everything stored before is as it was, the server never stopped, and the write succeeds.
    ballast.unlink()
    assert snapshot(db) == before
    assert store.get(key) == original
    assert embedded.status(settings.pgdata).pid == server.pid
    done = materialize(small_home, "bob")
    assert done.returncode == 0, done.stderr
    with db.connect() as conn:
        counts = dict(
            conn.execute("SELECT author, count(*) FROM cleaned_documents GROUP BY author").fetchall()
        )
    assert counts == {"ada": 6, "bob": 60}
    store.put(key, b"the next version")
    assert store.get(key) == b"the next version" and store.list_keys() == [key]


def test_a_server_stopped_by_a_full_disk_says_so_and_recovers_once_there_is_room(small_home: Path) -> None:
    settings = get_settings()
    db = open_database(settings)
    seed_author(db, "ada", documents=20, paragraphs=20)
    # A table whose freed pages later writes reuse: on a full disk those writes still succeed, until
    # their WAL needs a new segment.
    with db.connect(autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE scratch (id int, pad text STORAGE PLAIN)"
            " WITH (vacuum_truncate = false, autovacuum_enabled = false)"
        )
        churn(conn)
        conn.execute("CHECKPOINT")
    before = snapshot(db)

    ballast = fill(small_home)

    with pytest.raises(DiskFullError) as stopped, db.connect(autocommit=True) as conn:
        for _ in range(12):  # ~25 MB of WAL each: a handful fill the segments there are
            churn(conn)
    message = str(stopped.value)
    assert "\n" not in message and 'could not write to file "pg_wal/xlogtemp.' in message, message
    assert "the embedded PostgreSQL server could not write and stopped" in message, message
    assert f"the disk holding the data home {small_home} is full" in message
    assert "Fix: free space on that disk" in message
    # What really happened: a PANIC, then a crash recovery that cannot finish either, so the server shuts
    # down; it stays down until there is room.
    wait_until(lambda: not embedded.status(settings.pgdata).running, "the server to shut down")
    assert "PANIC:  could not write to file" in (settings.pgdata / "log").read_text(errors="replace")

    # While the disk is full: the next connection, and a start from the command line, say the same.
    with pytest.raises(DiskFullError) as down, db.connect():
        pass
    assert "the embedded PostgreSQL server stopped" in str(down.value) and "is full" in str(down.value)
    start = cli("db", "start", home=small_home)
    assert start.returncode == 2 and "Traceback" not in start.stderr, start.stderr
    [line] = start.stderr.strip().splitlines()
    assert (
        line.startswith("error: LLM_TWIN_HOME: ")
        and f"the disk holding the data home {small_home} is full" in line
    )
    assert not embedded.status(settings.pgdata).running

    # Room again: this same process starts the server, which recovers; what was committed is intact.
    ballast.unlink()
    db = open_database(settings)
    assert embedded.status(settings.pgdata).running
    log = (settings.pgdata / "log").read_text(errors="replace")
    recovery = log.rsplit("automatic recovery in progress", 1)[1]
    assert "redo done" in recovery and "database system is ready to accept connections" in recovery
    assert snapshot(db) == before
    with db.connect(autocommit=True) as conn:
        churn(conn)
    seed_author(db, "bob", documents=5, paragraphs=5)
    assert snapshot(db)["authors"][0] == 2
    assert cli("db", "status", home=small_home).returncode == 0


def churn(conn: psycopg.Connection) -> None:
    """~22 MB into ``scratch``, deleted and vacuumed: the pages stay, free for the next round."""
    conn.execute("INSERT INTO scratch SELECT g, repeat(md5(g::text), 32) FROM generate_series(1, 20000) g")
    conn.execute("DELETE FROM scratch")
    conn.execute("VACUUM scratch")
