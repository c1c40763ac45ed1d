import os
import subprocess
import sys
from pathlib import Path

import psutil
import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from llm_twin_assets.errors import ConfigError
from llm_twin_assets.settings import get_settings
from llm_twin_assets.store import embedded
from llm_twin_assets.store.database import Database, open_database, redact
from llm_twin_assets.store.migrations import default_sql_dir, discover

START = "from pathlib import Path; from llm_twin_assets.store import embedded; print(embedded.ensure_running(Path({!r})))"


def _postmasters(pgdata: Path) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter(attrs=("name", "cmdline", "ppid")):
        cmd = proc.info["cmdline"] or []
        if proc.info["name"] == "postgres" and str(pgdata) in cmd:
            found.append(proc)
    return found


def test_two_processes_starting_at_once_end_with_one_server(tmp_path: Path) -> None:
    pgdata = tmp_path / "home" / "pgdata"
    procs = [
        subprocess.Popen([sys.executable, "-c", START.format(str(pgdata))], stdout=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    urls = [p.communicate(timeout=120)[0].strip() for p in procs]
    try:
        assert all(p.returncode == 0 for p in procs)
        assert urls[0] == urls[1]
        assert len(_postmasters(pgdata)) == 1  # the postmaster; its children are started by it
        # Both processes have exited and the server is still there for the next one.
        state = embedded.status(pgdata)
        assert state.running and state.url == urls[0]
        with psycopg.connect(urls[0]) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
    finally:
        assert embedded.stop(pgdata)
    assert not embedded.status(pgdata).running
    assert _postmasters(pgdata) == []
    assert embedded.stop(pgdata) is False  # stopping a stopped server is not an error


def test_a_stopped_server_restarts_in_the_same_process_with_its_data(tmp_path: Path) -> None:
    settings = get_settings(home=str(tmp_path / "home"))
    db = open_database(settings)
    with db.connect() as conn:
        conn.execute("INSERT INTO authors (slug, name) VALUES ('jane', 'Jane')")
    embedded.stop(settings.pgdata)
    db = open_database(settings)
    try:
        with db.connect() as conn:
            assert conn.execute("SELECT name FROM authors").fetchall() == [("Jane",)]
    finally:
        embedded.stop(settings.pgdata)


def test_a_data_home_that_cannot_be_created_names_the_setting(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    with pytest.raises(ConfigError, match="LLM_TWIN_HOME") as err:
        open_database(get_settings(home=str(blocker / "home")))
    assert "writable" in str(err.value)


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://nobody:secret@127.0.0.1:1/x",
        "postgresql://postgres:@/nodb?host=/nonexistent-socket-dir",
        "host=127.0.0.1 port=1 user=nobody password=secret dbname=x",  # libpq's keyword form
    ],
)
def test_an_unreachable_database_url_names_the_setting_and_hides_the_password(url: str) -> None:
    with pytest.raises(ConfigError) as err:
        open_database(get_settings(database_url=url))
    message = str(err.value)
    assert message.startswith("LLM_TWIN_DATABASE_URL: cannot connect")
    assert "secret" not in message
    assert "Fix:" in message


def test_a_url_that_is_not_postgresql_is_refused() -> None:
    with pytest.raises(ConfigError, match="not a PostgreSQL URL"):
        open_database(get_settings(database_url="mysql://u:p@h/db"))


def test_sqlalchemy_style_urls_are_accepted(database: Database) -> None:
    params = conninfo_to_dict(database.url)
    url = f"postgresql+psycopg://postgres@/postgres?host={params['host']}"
    assert open_database(get_settings(database_url=url)).embedded is False


def test_a_database_where_pgvector_cannot_be_installed_is_refused_clearly(fresh_database_url: str) -> None:
    # Managed databases often let an application role connect but not install extensions.
    with psycopg.connect(fresh_database_url, autocommit=True) as conn:
        conn.execute("DROP ROLE IF EXISTS app_user")
        conn.execute("CREATE ROLE app_user LOGIN")
        conn.execute("GRANT CREATE ON SCHEMA public TO app_user")
    url = make_conninfo(fresh_database_url, user="app_user")
    try:
        with pytest.raises(ConfigError, match="CREATE EXTENSION vector") as err:
            open_database(get_settings(database_url=url))
        assert str(err.value).startswith("LLM_TWIN_DATABASE_URL:")
        # Nothing was half-created.
        with psycopg.connect(fresh_database_url) as conn:
            assert conn.execute("SELECT to_regclass('schema_migrations')").fetchone() == (None,)
    finally:
        with psycopg.connect(fresh_database_url, autocommit=True) as conn:
            conn.execute("REVOKE CREATE ON SCHEMA public FROM app_user")
            conn.execute("DROP ROLE app_user")


def test_an_external_url_is_used_as_is_with_no_code_change(
    database: Database, fresh_database_url: str
) -> None:
    external = open_database(get_settings(database_url=fresh_database_url))
    assert external.embedded is False
    with external.connect() as conn:
        assert conn.execute("SELECT current_database()").fetchone() == (
            conninfo_to_dict(fresh_database_url)["dbname"],
        )
        assert conn.execute("SELECT count(*) FROM schema_migrations").fetchone() == (
            len(discover(default_sql_dir())),
        )


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql://u:pa:ss@h/db", "postgresql://u:***@h/db"),
        ("postgresql://postgres:@/postgres?host=/tmp", "postgresql://postgres:@/postgres?host=/tmp"),
        ("postgresql://u@h/db", "postgresql://u@h/db"),
        ("host=h password=hunter2 dbname=x", "host=h password=*** dbname=x"),
        ("host=h password = 'hun ter\\'2' dbname=x", "host=h password = *** dbname=x"),
        ("host=h PASSWORD=hunter2", "host=h PASSWORD=***"),
        ("host=h password=abc://x dbname=d", "host=h password=*** dbname=d"),
        (
            "postgresql://h/db?user=u&password=hunter2&sslmode=require",
            "postgresql://h/db?user=u&password=***&sslmode=require",
        ),
    ],
)
def test_redact(url: str, shown: str) -> None:
    assert redact(url) == shown


def test_db_status_on_a_database_without_pgvector_or_schema_says_so_in_a_few_lines(
    fresh_database_url: str, tmp_path: Path
) -> None:
    from llm_twin_assets_tests.test_cli import run

    result = run("db", "status", home=tmp_path, LLM_TWIN_DATABASE_URL=fresh_database_url)
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    lines = result.stdout.strip().splitlines()
    assert len(lines) < 12, result.stdout
    assert "pgvector:     not installed" in result.stdout
    assert "problem:      the schema is not applied (run `llm-twin db start`)" in result.stdout


def test_the_vector_column_follows_the_dimension_setting_until_vectors_are_stored(
    fresh_database_url: str,
) -> None:
    from llm_twin_assets_tests.store.helpers import seed_chunks, unit_vectors

    def declared(url: str) -> tuple[str, str]:
        with psycopg.connect(url) as conn:
            column = conn.execute(
                "SELECT format_type(atttypid, atttypmod) FROM pg_attribute"
                " WHERE attrelid = 'chunks'::regclass AND attname = 'embedding'"
            ).fetchone()
            index = conn.execute(
                "SELECT indexdef FROM pg_indexes WHERE indexname = 'chunks_embedding_hnsw'"
            ).fetchone()
        assert column is not None and index is not None
        return column[0], index[0]

    database = open_database(get_settings(database_url=fresh_database_url, embedding_dim=8))
    column, index = declared(fresh_database_url)
    assert column == "vector(8)" and "halfvec(8)" in index  # created for the setting: empty store
    with database.connect() as conn:
        seed_chunks(conn, unit_vectors(3, dim=8), ["maya"] * 3)
    with pytest.raises(ConfigError) as err:
        open_database(get_settings(database_url=fresh_database_url, embedding_dim=384))
    message = str(err.value)
    assert message.startswith("LLM_TWIN_EMBEDDING_DIM: is 384") and "3 embeddings of 8 dimensions" in message
    assert declared(fresh_database_url)[0] == "vector(8)"  # nothing was changed
    assert open_database(get_settings(database_url=fresh_database_url, embedding_dim=8)).embedded is False


def test_an_installed_wheel_carries_the_schema(tmp_path: Path) -> None:
    """The schema files travel inside the package: an install from the wheel (no repository) finds them."""
    import site
    import zipfile

    root = Path(__file__).resolve().parents[2]
    built = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(tmp_path),
            str(root),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert built.returncode == 0, built.stderr[-2000:]
    [wheel] = tmp_path.glob("llm_twin-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    shipped = {f"llm_twin_assets/sql/{m.path.name}" for m in discover(default_sql_dir())}
    assert shipped and shipped <= names
    target = tmp_path / "installed"
    zipfile.ZipFile(wheel).extractall(target)
    # No site processing: the editable install of this checkout is not on the path, only the wheel's copy.
    env = {"PYTHONPATH": os.pathsep.join([str(target), *site.getsitepackages()]), "PATH": os.environ["PATH"]}
    code = (
        "import llm_twin_assets.store.migrations as m; d = m.default_sql_dir(); "
        "print(d); print(len(m.discover(d)))"
    )
    out = subprocess.run(
        [sys.executable, "-S", "-c", code], capture_output=True, text=True, env=env, timeout=120, cwd=tmp_path
    )
    assert out.returncode == 0, out.stderr[-2000:]
    folder, count = out.stdout.split()
    assert folder.startswith(str(target)) and int(count) == len(shipped)
