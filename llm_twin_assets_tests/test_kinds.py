"""The kind registry is the one place kinds are named: every module's treatment of a kind comes from it."""

import pytest

from llm_twin_assets.datasets.prompts import INSTRUCTION_TEMPLATES, frame_instruction
from llm_twin_assets.features.chunking import CHUNKERS
from llm_twin_assets.features.cleaning import CODE_KINDS, PROSE_KINDS
from llm_twin_assets.kinds import KINDS, REGISTRY, document_kind, is_code, is_prose, kinds_help, kinds_of


def test_every_registered_kind_has_a_chunker_a_prompt_and_frames_that_name_the_topic() -> None:
    assert len(set(KINDS)) == len(KINDS) == len(REGISTRY)
    for kind in REGISTRY:
        assert kind.chunking in CHUNKERS and kind.family in INSTRUCTION_TEMPLATES
        assert kind.frames and all("{topic}" in f for f in kind.frames)
        assert "tidy logs" in frame_instruction(kind.name, "tidy logs", "A title", 0)
        assert kind.name in kinds_help() and kind.description in kinds_help()


def test_families_split_the_kinds_and_drive_cleaning() -> None:
    assert set(kinds_of("prose")) | set(kinds_of("code")) == set(KINDS)
    assert not set(kinds_of("prose")) & set(kinds_of("code"))
    assert (kinds_of("prose"), kinds_of("code")) == (PROSE_KINDS, CODE_KINDS)
    assert is_code("repository") and is_prose("article") and is_prose("post")
    assert not is_code("talk") and not is_prose("talk")  # unknown kinds are neither


def test_an_unknown_kind_is_refused_with_the_known_ones() -> None:
    with pytest.raises(ValueError, match="unknown document kind 'talk': use article, post, repository"):
        document_kind("talk")
