"""Tier markers are set from what a test uses, so `-m pure` / `-m db` select without anyone marking."""

import types
from typing import Any

from llm_twin_assets_tests.conftest import tiers


def _item(fixtures: list[str], **module_names: object) -> Any:
    return types.SimpleNamespace(fixturenames=fixtures, module=types.SimpleNamespace(**module_names))


def test_a_test_is_tiered_by_its_fixtures_and_its_modules_imports() -> None:
    assert tiers(_item(["tmp_path"])) == ["pure"]
    assert tiers(_item(["db", "database", "settings"])) == ["db"]
    assert tiers(_item(["tiny_model_path"])) == ["models"]
    assert tiers(_item(["site"], load_causal_lm=object())) == ["models", "process"]
    assert tiers(_item(["tmp_path"], subprocess=object())) == ["process"]
    assert tiers(_item(["fresh_database_url"], CliRunner=object())) == ["db", "process"]
