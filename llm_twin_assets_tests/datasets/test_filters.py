"""Filters on teacher replies and generated answers: each drop has a reason."""

import pytest

from llm_twin_assets.datasets.filters import (
    InstructionRules,
    NearDuplicates,
    clean_answer,
    clean_instruction,
    clean_topic,
    instruction_problem,
    rejected_problem,
    topic_problem,
)
from llm_twin_assets.datasets.validation import looks_cut

PASSAGE = (
    "Every year somebody asks me which database they should use for their new project, and every year "
    "I give the same boring answer: start with Postgres and measure before you reach for anything else."
)


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        ('Instruction: "Explain why Postgres is a good default."', "Explain why Postgres is a good default."),
        ("**Question:** How do retries work?", "How do retries work?"),
        ("Here's the instruction: Write a post about bread.", "Write a post about bread."),
        ("Write about databases.\n\nThis instruction asks for...", "Write about databases."),
        ("  Describe   your\nweekend.  ", "Describe your weekend."),
        ("", ""),
    ],
)
def test_clean_instruction(reply: str, expected: str) -> None:
    assert clean_instruction(reply) == expected


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        (
            "The main topic of this text is the importance of measuring first.",
            "the importance of measuring first",
        ),
        ("This text explores retries and backoff. It also covers more.", "retries and backoff"),
        ("The topic is about baking sourdough bread", "baking sourdough bread"),
        ("Postgres as a default database", "postgres as a default database"),
        ("HNSW graphs", "HNSW graphs"),
    ],
)
def test_clean_topic(reply: str, expected: str) -> None:
    assert clean_topic(reply) == expected


@pytest.mark.parametrize(
    ("topic", "finished", "reason"),
    [
        ("", True, "empty"),
        ("the importance of measuring first", False, "too_long"),
        ("postgres", True, "too_short"),
        (" ".join(["word"] * 25), True, "too_long"),
        ("1234 5678 ;;;; ####", True, "not_text"),
        ("the topic of this text", True, "describes_passage"),
        ("the cost of retries", True, None),
    ],
)
def test_topic_problem(topic: str, finished: bool, reason: str | None) -> None:
    assert topic_problem(topic, finished) == reason


@pytest.mark.parametrize(
    ("instruction", "finished", "reason"),
    [
        ("", True, "empty"),
        ("Explain why Postgres is a good default database.", False, "too_long"),
        ("Explain it.", True, "too_short"),
        (" ".join(["explain"] * 61), True, "too_long"),
        ("{} [] ### 1234 5678 9999 ;;;;", True, "not_text"),
        ("The passage is a great example of writing.", True, "describes_passage"),
        (
            "Every year somebody asks me which database they should use for their new project",
            True,
            "copies_passage",
        ),
        ("Explain why Postgres is a good default database for a new project.", True, None),
    ],
)
def test_instruction_problem(instruction: str, finished: bool, reason: str | None) -> None:
    assert instruction_problem(instruction, PASSAGE, finished, InstructionRules()) == reason


def test_near_duplicates_are_caught_and_distinct_texts_kept() -> None:
    seen = NearDuplicates(0.7)
    assert not seen.seen("Write a short post about the importance of patience in baking bread.")
    assert seen.seen("Write a short post about the importance of patience in baking bread!")
    assert not seen.seen("Explain how an HNSW index finds neighbours in a layered graph.")
    assert not seen.seen("Hi")  # too short for trigrams: compared whole
    assert seen.seen("hi")


@pytest.mark.parametrize(
    ("reply", "finished", "expected"),
    [
        ("A whole answer. It ends well.", True, "A whole answer. It ends well."),
        ("A cut answer. It stops in the mid", False, "A cut answer."),
        ("no sentence end at all", False, "no sentence end at all"),
    ],
)
def test_clean_answer(reply: str, finished: bool, expected: str) -> None:
    assert clean_answer(reply, finished) == expected


@pytest.mark.parametrize(
    ("rejected", "reason"),
    [
        ("", "empty"),
        ("Yes, sure.", "too_short"),
        (PASSAGE, "too_similar"),
        ("Databases are a broad topic and many people like different ones for their own reasons.", None),
    ],
)
def test_rejected_problem(rejected: str, reason: str | None) -> None:
    assert rejected_problem(rejected, PASSAGE, min_words=5, max_similarity=0.5) == reason


@pytest.mark.parametrize(
    ("text", "cut"),
    [
        ("It ends here.", False),
        ("A post without a full stop 🎉", False),
        ("It stops on a comma,", True),
        ("It stops on the", True),
        ("It stops on a dash —", True),
        ("", True),
    ],
)
def test_looks_cut(text: str, cut: bool) -> None:
    assert looks_cut(text) is cut


RETRY_PASSAGE = (
    "Retries need backoff and a deadline. I measure every retry policy on a slow network before I trust it, "
    "and I keep the jobs idempotent so that a retry is never a second charge."
)


@pytest.mark.parametrize(
    ("instruction", "problem"),
    [
        ("How should retries be paced on a slow network?", None),
        ("Why keep a job idempotent when it may be retried?", None),
        # the teacher's phrase three times: a looping reply
        (
            "What is measure first and scale, measure first and scale, measure first and scale?",
            "repeats_phrase",
        ),
        # shares no content word with the passage
        ("What is your favourite sourdough recipe for the weekend?", "off_topic"),
    ],
)
def test_looping_and_off_topic_instructions_are_dropped_by_name(
    instruction: str, problem: str | None
) -> None:
    from llm_twin_assets.datasets.filters import InstructionRules, instruction_problem

    assert instruction_problem(instruction, RETRY_PASSAGE, True, InstructionRules()) == problem


def test_looping_topics_are_dropped_by_name() -> None:
    """A topic is a few words the bundled teacher names (measured: words of the passage are not always
    among them), so only a looping topic is dropped; instructions are also judged off topic."""
    from llm_twin_assets.datasets.filters import topic_problem

    assert topic_problem("retry policies on slow networks", True) is None
    assert topic_problem("retry policy retry policy retry policy", True) == "repeats_phrase"


@pytest.mark.parametrize(
    ("reply", "finished", "expected"),
    [
        ("Done when it says so", True, "Done when it says so"),  # finished: kept as written
        # ran out of budget: cut at the last sentence end, which keeps most of it
        (
            "Retries are cheap. Idempotent jobs make them safe. And then the",
            False,
            "Retries are cheap. Idempotent jobs make them safe.",
        ),
        # no sentence end at all: nothing to cut at (asked again, then dropped)
        ("and so the job goes on and on without ever stopping to", False, None),
        # a sentence end that would keep a stub of what it wrote: not a clean answer
        ("Yes. " + "then the job and the retry and the queue and the worker " * 3, False, None),
        # too few words before the end
        ("Sure. And then", False, None),
    ],
)
def test_a_rejected_answer_that_ran_out_is_cut_at_a_sentence_end_only_when_that_leaves_most_of_it(
    reply: str, finished: bool, expected: str | None
) -> None:
    from llm_twin_assets.datasets.building import ending_cleanly

    assert ending_cleanly(reply, finished, min_words=5) == expected
