"""The front door, run as a person runs it: the installed ``llm-twin`` script in a subprocess."""

import os
import shutil
import subprocess
from pathlib import Path

import psycopg
import pytest

from llm_twin_assets.store.migrations import default_sql_dir, discover

LLM_TWIN = shutil.which("llm-twin") or str(Path(__file__).resolve().parents[1] / ".venv/bin/llm-twin")


def run(*args: str, home: Path, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {**os.environ, "LLM_TWIN_HOME": str(home), **env}
    environ.pop("LLM_TWIN_DATABASE_URL", None) if "LLM_TWIN_DATABASE_URL" not in env else None
    return subprocess.run([LLM_TWIN, *args], capture_output=True, text=True, env=environ, timeout=300)


@pytest.mark.slow
def test_db_lifecycle_from_the_command_line(tmp_path: Path) -> None:
    home = tmp_path / "home"
    down = run("db", "status", home=home)
    assert down.returncode == 1 and "not running" in down.stdout
    assert run("db", "url", home=home).returncode == 1

    started = run("db", "start", home=home)
    assert started.returncode == 0, started.stderr
    assert started.stdout.startswith("ready: postgresql://")
    try:
        status = run("db", "status", home=home)
        assert status.returncode == 0, status.stderr
        assert "postgresql:   18." in status.stdout
        assert "pgvector:     0.8." in status.stdout
        assert "migrations:   001_core.sql" in status.stdout
        assert "chunks=0" in status.stdout

        url = run("db", "url", home=home).stdout.strip()
        with psycopg.connect(url) as conn:
            assert conn.execute("SELECT count(*) FROM schema_migrations").fetchone() == (
                len(discover(default_sql_dir())),
            )
        assert run("db", "start", home=home).returncode == 0  # a second start reuses the server
    finally:
        stopped = run("db", "stop", home=home)
    assert stopped.returncode == 0 and stopped.stdout.startswith("stopped:")
    assert run("db", "stop", home=home).stdout.startswith("not running:")


def test_bad_settings_give_one_clear_line_not_a_traceback(tmp_path: Path) -> None:
    result = run("db", "start", home=tmp_path, LLM_TWIN_DATABASE_URL="postgresql://u:hunter2@127.0.0.1:1/db")
    assert result.returncode == 2
    assert result.stderr.startswith("error: LLM_TWIN_DATABASE_URL: cannot connect")
    assert "Traceback" not in result.stderr and "hunter2" not in result.stderr

    result = run("db", "status", home=tmp_path, LLM_TWIN_GONE_CRAWLS_TO_REMOVE="0")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.startswith("error: LLM_TWIN_GONE_CRAWLS_TO_REMOVE: ")

    result = run("models", "prepare", home=tmp_path, LLM_TWIN_EMBEDDING_MODEL=str(tmp_path / "nope"))
    assert result.returncode == 2
    assert "LLM_TWIN_EMBEDDING_MODEL" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.slow
def test_models_prepare_reports_both_models(tmp_path: Path) -> None:
    result = run("models", "prepare", home=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "base LLM:" in result.stdout and "smollm2-135m-instruct" in result.stdout
    assert "embedding:" in result.stdout and "(384-d)" in result.stdout


def test_a_failed_step_is_reported_by_its_cause_not_by_dagsters_wrapper() -> None:
    import dagster as dg

    from llm_twin_assets.defs.failures import clear_failures
    from llm_twin_assets.defs.runner import failure_reason
    from llm_twin_assets.errors import TwinError

    @dg.asset
    def lost_connection() -> None:
        raise psycopg.errors.AdminShutdown("terminating connection due to administrator command")

    @dg.asset
    def named_problem() -> None:
        with clear_failures():
            raise TwinError("author 'ada': the links file names nothing")

    reasons = {}
    for asset in (lost_connection, named_problem):
        with dg.DagsterInstance.ephemeral() as instance:
            result = dg.materialize([asset], instance=instance, raise_on_error=False)
        failure = next(e for e in result.all_events if e.is_step_failure)
        reasons[asset.key.path[-1]] = failure_reason(failure.step_failure_data.error)  # type: ignore[union-attr]
    assert reasons == {
        "lost_connection": "AdminShutdown: terminating connection due to administrator command",
        "named_problem": "author 'ada': the links file names nothing",
    }


def test_instance_init_writes_the_run_queue_limits_once(tmp_path: Path) -> None:
    import dagster as dg

    result = run("instance", "init", home=tmp_path, DAGSTER_HOME=str(tmp_path / "dagster"))
    assert result.returncode == 0, result.stderr
    config = tmp_path / "dagster" / "dagster.yaml"
    assert result.stdout.strip() == f"dagster instance: {config}"
    with dg.DagsterInstance.from_config(str(tmp_path / "dagster")) as instance:
        limits = instance.get_concurrency_config().run_queue_config.tag_concurrency_limits  # type: ignore[union-attr]
    assert {"key": "dagster/partition", "value": {"applyLimitPerUniqueValue": True}, "limit": 1} in limits
    config.write_text("telemetry:\n  enabled: true\n")  # the user's own: left alone
    assert run("instance", "init", home=tmp_path, DAGSTER_HOME=str(tmp_path / "dagster")).returncode == 0
    assert config.read_text() == "telemetry:\n  enabled: true\n"


def test_materialize_refuses_while_a_run_for_the_author_is_going(tmp_path: Path) -> None:
    import dagster as dg

    authors = tmp_path / "authors"
    authors.mkdir()
    (authors / "ada.yaml").write_text("name: Ada\nlinks:\n  - https://example.org/a\n")
    dagster_home = tmp_path / "dagster"
    assert run("instance", "init", home=tmp_path, DAGSTER_HOME=str(dagster_home)).returncode == 0
    with dg.DagsterInstance.from_config(str(dagster_home)) as instance:  # e.g. the nightly run, underway
        going = dg.DagsterRun(
            job_name="author_pipeline", status=dg.DagsterRunStatus.STARTED, tags={"dagster/partition": "ada"}
        )
        instance.add_run(going)
    result = run(
        "materialize", "--author", "ada", "--select", "raw_documents",
        home=tmp_path, DAGSTER_HOME=str(dagster_home), LLM_TWIN_AUTHORS_DIR=str(authors),
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith(f"error: a run for author 'ada' is started (run {going.run_id}")
