from pathlib import Path

import pytest

from llm_twin_assets.errors import ConfigError
from llm_twin_assets.settings import BUNDLED, get_settings


def test_defaults_are_the_embedded_and_bundled_ones(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("LLM_TWIN_HOME", "LLM_TWIN_DATABASE_URL", "LLM_TWIN_DEVICE", "LLM_TWIN_BASE_MODEL"):
        monkeypatch.delenv(name, raising=False)
    settings = get_settings()
    assert settings.home == Path(".llm_twin").absolute()
    assert settings.database_url is None
    assert settings.embedding_model == BUNDLED and settings.base_model == BUNDLED
    assert settings.device == "auto"
    assert settings.pgdata == settings.home / "pgdata"


def test_environment_is_read_when_asked_not_at_import(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("LLM_TWIN_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("LLM_TWIN_DATABASE_URL", "postgresql://u:p@db.example/x")
    monkeypatch.setenv("LLM_TWIN_DEVICE", "cpu")
    settings = get_settings()
    assert settings.home == tmp_path / "home"
    assert settings.database_url == "postgresql://u:p@db.example/x"
    assert settings.resolved_device() == "cpu"


def test_overrides_win_over_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLM_TWIN_DEVICE", "cuda")
    assert get_settings(device="cpu").device == "cpu"
    assert get_settings(device=None).device == "cuda"  # None means "not overridden"


@pytest.mark.parametrize("blank", ["", "   "])
def test_blank_database_url_means_embedded(monkeypatch: pytest.MonkeyPatch, blank: str) -> None:
    monkeypatch.setenv("LLM_TWIN_DATABASE_URL", blank)
    assert get_settings().database_url is None


def test_invalid_device_is_rejected_with_the_setting_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLM_TWIN_DEVICE", "tpu")
    with pytest.raises(ConfigError, match=r"^LLM_TWIN_DEVICE: .*\(got 'tpu'\)"):
        get_settings()


def test_a_bad_value_names_its_variable_and_local_roots_take_a_path_list_or_json(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("LLM_TWIN_GONE_CRAWLS_TO_REMOVE", "0")
    with pytest.raises(
        ConfigError, match=r"^LLM_TWIN_GONE_CRAWLS_TO_REMOVE: .*greater than or equal to 1 \(got '0'\)"
    ):
        get_settings()
    monkeypatch.delenv("LLM_TWIN_GONE_CRAWLS_TO_REMOVE")
    monkeypatch.setenv("LLM_TWIN_LOCAL_ROOTS", "/srv/drafts:/srv/exports")
    assert get_settings().local_roots == [Path("/srv/drafts"), Path("/srv/exports")]
    monkeypatch.setenv("LLM_TWIN_LOCAL_ROOTS", '["/srv/drafts"]')
    assert get_settings().local_roots == [Path("/srv/drafts")]
