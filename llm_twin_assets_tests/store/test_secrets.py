"""No form of database URL, valid or malformed, ever shows its password: not in our messages, not in
libpq's own error text passed on, not in a traceback's cause chain, not in the CLI's output, not in a
Dagster failure. Every case goes through the real code paths (libpq parses and fails for real)."""

from __future__ import annotations

import traceback
from pathlib import Path

import pytest
from typer.testing import CliRunner

from llm_twin_assets.errors import TwinError
from llm_twin_assets.settings import get_settings
from llm_twin_assets.store.database import open_database, redact, scrub
from llm_twin_assets_tests.test_cli import run

PASSWORD = "Hunter2xyz"

# (connection string, what libpq makes of it) — each password is PASSWORD, or what the check looks for
FORMS = {
    "keyword form, unclosed quote": f"host=/x password='{PASSWORD}",
    "keyword form, bad option": f"host=/x password={PASSWORD} bogus=1",
    "keyword form, quoted with spaces, bad port": f"host=/x password = '{PASSWORD} x' port=abc",
    "keyword form, escaped space, bad port": f"host=/x password={PASSWORD}\\ x port=x",
    "keyword form, sslpassword, bad option": f"host=/x sslpassword={PASSWORD} bogus=1",
    "keyword form, unreachable": f"host=127.0.0.1 port=1 user=u password={PASSWORD}",
    "URL, malformed IPv6 host": f"postgresql://u:{PASSWORD}@[::1",
    "URL, malformed IPv6 host and a path": f"postgresql://u:{PASSWORD}@[::1/db",
    "URL, port not a number": f"postgresql://u:{PASSWORD}@127.0.0.1:notaport/db",
    "URL, bad percent escape in the password (libpq echoes the token)": f"postgresql://u:p%ZZ{PASSWORD}@h/db",
    "URL, password in the query, bad parameter": f"postgresql://u@127.0.0.1:1/db?password={PASSWORD}&bogus=1",
    "URL, password holding '/' and '@'": f"postgresql://u:{PASSWORD}/@x@127.0.0.1:1/db",
    "URL, sqlalchemy scheme, malformed IPv6 host": f"postgresql+psycopg://u:{PASSWORD}@[::1",
    "URL, valid but unreachable": f"postgresql://u:{PASSWORD}@127.0.0.1:1/db",
}


def _shows(text: str) -> bool:
    return PASSWORD in text or PASSWORD[3:] in text  # a partial leak counts too


@pytest.mark.parametrize("url", FORMS.values(), ids=FORMS.keys())
def test_redact_hides_the_password_of_every_form(url: str) -> None:
    redacted = redact(url)
    assert not _shows(redacted), redacted
    assert "***" in redacted


def test_redact_keeps_what_is_not_a_password() -> None:
    assert redact("postgresql://u:pw@db.example:5432/twin?sslmode=require") == (
        "postgresql://u:***@db.example:5432/twin?sslmode=require"
    )
    assert redact("postgresql://db.example:5432/twin?application_name=a@b") == (
        "postgresql://db.example:5432/twin?application_name=a@b"
    )
    assert redact("host=h port=5432 dbname=twin user=u") == "host=h port=5432 dbname=twin user=u"
    assert redact("host=h password='a b' user=u") == "host=h password=*** user=u"
    fix = "Fix: use postgresql://user:password@host:port/dbname"  # the placeholder in our own advice
    assert scrub(fix) == fix


def test_scrub_hides_a_password_libpq_repeats_in_its_own_words() -> None:
    url = f"postgresql://u:p%ZZ{PASSWORD}@h/db"
    assert (
        scrub(f'invalid percent-encoded token: "p%ZZ{PASSWORD}"', url)
        == 'invalid percent-encoded token: "***"'
    )
    quoted = f'matching "]" in IPv6 host address in URI: "postgresql://u:{PASSWORD}@[::1"'
    assert (
        scrub(quoted) == 'matching "]" in IPv6 host address in URI: "postgresql://u:***@[::1"'
    )  # URL unknown


@pytest.mark.parametrize("url", FORMS.values(), ids=FORMS.keys())
def test_open_database_never_shows_the_password(url: str, tmp_path: Path) -> None:
    with pytest.raises(TwinError) as raised:
        open_database(get_settings(database_url=url, home=tmp_path))
    message = str(raised.value)
    assert message.startswith("LLM_TWIN_DATABASE_URL: ") and "***" in message
    whole = "".join(traceback.format_exception(raised.value))  # the cause chain a traceback would print
    assert not _shows(whole), whole
    seen: BaseException | None = raised.value
    while seen is not None:  # and no exception in the chain holds it, printed or not
        assert not _shows(str(seen)) and not _shows(repr(seen.args))
        seen = seen.__cause__ or seen.__context__


@pytest.mark.parametrize("command", [("db", "status"), ("db", "start"), ("release", "list")])
@pytest.mark.parametrize("url", FORMS.values(), ids=FORMS.keys())
def test_the_cli_prints_one_line_without_the_password(
    url: str, command: tuple[str, ...], tmp_path: Path
) -> None:
    from llm_twin_assets.cli import app

    result = CliRunner().invoke(
        app, list(command), env={"LLM_TWIN_DATABASE_URL": url, "LLM_TWIN_HOME": str(tmp_path)}
    )
    shown = result.output  # stdout and stderr, as a terminal shows them
    if result.exc_info is not None and not isinstance(result.exception, SystemExit):
        shown += "".join(traceback.format_exception(*result.exc_info))
    assert result.exit_code == 2, shown
    assert not _shows(shown), shown
    assert result.stdout == ""
    [line] = result.stderr.splitlines()
    assert line.startswith("error: ") and "***" in line  # the URL named, its password hidden


@pytest.mark.parametrize(
    "url", [FORMS["keyword form, unclosed quote"], FORMS["URL, malformed IPv6 host"]], ids=["quote", "ipv6"]
)
def test_llm_twin_db_status_as_a_person_runs_it(url: str, tmp_path: Path) -> None:
    done = run("db", "status", home=tmp_path, LLM_TWIN_DATABASE_URL=url)
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr and not _shows(done.stdout + done.stderr)
    assert done.stderr.startswith("error: LLM_TWIN_DATABASE_URL: ")


def test_a_dagster_failure_never_shows_the_password(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import dagster as dg

    from llm_twin_assets.defs.failures import clear_failures

    url = FORMS["URL, malformed IPv6 host"]
    monkeypatch.setenv("LLM_TWIN_DATABASE_URL", url)

    @dg.asset
    def needs_the_store() -> None:
        with clear_failures():
            open_database(get_settings(home=tmp_path))

    @dg.asset
    def says_too_much() -> None:  # an error of ours that quotes the URL as given: scrubbed on the way out
        with clear_failures():
            raise TwinError(f"cannot use {url} (password {PASSWORD})")

    for asset in (needs_the_store, says_too_much):
        with dg.DagsterInstance.ephemeral() as instance:
            result = dg.materialize([asset], instance=instance, raise_on_error=False)
        failure = next(e for e in result.all_events if e.is_step_failure)
        error = failure.step_failure_data.error  # type: ignore[union-attr]
        assert error is not None and "***" in error.message
        while error is not None:  # the description and every cause Dagster keeps
            assert not _shows(error.message) and not _shows("".join(error.stack)), error.message
            error = error.cause or error.context
