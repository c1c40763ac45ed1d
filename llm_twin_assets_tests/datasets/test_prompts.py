"""Prompt templates render strictly: the passage always reaches the teacher, verbatim."""

import pytest

from llm_twin_assets.datasets.prompts import (
    INSTRUCTION_TEMPLATES,
    TOPIC,
    PromptTemplate,
    TemplateError,
    answer_prompt,
    frame_instruction,
    instruction_prompt,
)
from llm_twin_assets.kinds import KINDS, document_kind

PASSAGE = 'def f(x):\n    return {"a": x}  # braces {and} "quotes" survive'


@pytest.mark.parametrize("kind", KINDS)
def test_the_passage_reaches_the_last_user_turn_verbatim(kind: str) -> None:
    messages = instruction_prompt(
        kind, author="Maya Okafor", title="Boring Postgres", passage=PASSAGE, max_words=30
    )
    assert messages[0]["role"] == "system"
    assert messages[-1]["role"] == "user"
    assert PASSAGE in messages[-1]["content"]
    assert "Maya Okafor" in messages[-1]["content"] and "Boring Postgres" in messages[-1]["content"]
    assert "30 words" in messages[-1]["content"]
    # worked examples come before, as complete user/assistant turns, and never hold the real passage
    shots = messages[1:-1]
    assert [m["role"] for m in shots] == ["user", "assistant"] * (len(shots) // 2)
    assert all(PASSAGE not in m["content"] for m in shots)


def test_topic_prompt_holds_the_passage() -> None:
    [message] = TOPIC.render(passage=PASSAGE)
    assert message["role"] == "user" and message["content"].startswith(PASSAGE)


@pytest.mark.parametrize(
    ("values", "complaint"),
    [
        ({"author": "a", "title": "t", "max_words": 3}, "missing ['passage']"),
        ({"author": "a", "title": "t", "passage": "p", "max_words": 3, "context": "c"}, "unused ['context']"),
        ({"author": "a", "title": "t", "passage": "   ", "max_words": 3}, "blank value for ['passage']"),
    ],
)
def test_rendering_refuses_missing_unused_and_blank_values(values: dict[str, object], complaint: str) -> None:
    with pytest.raises(TemplateError, match=complaint.replace("[", r"\[").replace("]", r"\]")):
        INSTRUCTION_TEMPLATES["prose"].render(**values)


def test_a_template_with_a_non_name_placeholder_is_refused() -> None:
    with pytest.raises(TemplateError, match="not a plain name"):
        PromptTemplate("bad", "", "look: {passage[0]}").render(passage="x")


def test_every_template_uses_exactly_its_inputs() -> None:
    for template in [*INSTRUCTION_TEMPLATES.values(), TOPIC]:
        assert "passage" in template.fields
        for shot, reply in template.shots:
            assert reply.strip()
            assert template.fields - {"max_words"} <= set(shot) | {"max_words"}


@pytest.mark.parametrize("kind", KINDS)
def test_frames_name_the_topic_and_vary(kind: str) -> None:
    made = {frame_instruction(kind, "the cost of retries", "Safe jobs", pick) for pick in range(6)}
    assert len(made) == len(document_kind(kind).frames)
    assert all("the cost of retries" in m and "{" not in m for m in made)


def test_the_rejected_answer_is_asked_for_with_the_instruction_and_the_authors_length() -> None:
    assert answer_prompt("Write a post about bread.") == [
        {"role": "user", "content": "Write a post about bread."}
    ]
    assert answer_prompt("Write a post about bread.", 134) == [
        {
            "role": "user",
            "content": "Write a post about bread. Answer in one or two short paragraphs (about 130 words).",
        }
    ]
    assert "(about 20 words)" in answer_prompt("Hi.", 3)[0]["content"]
