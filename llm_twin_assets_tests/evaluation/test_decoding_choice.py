"""Decoding chosen on validation: the rule (no loops, enough finished, then closest style), measured on
real text with the evaluation's own measures."""

import pytest

from llm_twin_assets.decoding_rules import Decoding
from llm_twin_assets.evaluation.decoding_choice import GRID, candidates, choose, kept, trial

AUTHOR = [
    "Measure first. Then scale, and only what the numbers tell you to scale.",
    "A job that runs twice must leave the same rows behind: write it so, or do not schedule it.",
    "Retries are cheap when the work is idempotent and ruinous when it is not.",
    "I keep my pipelines boring. Boring is what you can fix at three in the morning.",
]
BACKGROUND = [
    *AUTHOR,
    "The committee shall convene quarterly to review the aforementioned procedures in full.",
    "Once upon a time there was a little fox who lived at the edge of a very old forest.",
    "Click the button labelled Settings, then choose Advanced and scroll to the bottom of the page.",
]
LOOP = "I think the most important thing is to measure. " * 6
CLOSE = [
    "Measure first, then scale what the numbers ask for.",
    "Write the job so a second run leaves the same rows. Otherwise do not schedule it.",
    "Retries cost little when the work is idempotent; when it is not, they ruin you.",
    "Keep pipelines boring: boring is what you fix at three in the morning.",
]
FAR = [
    "The committee shall convene to review the aforementioned procedures accordingly herein.",
    "Pursuant to the foregoing, the parties shall henceforth observe the aforementioned terms.",
    "The undersigned hereby acknowledges the receipt of the aforementioned documentation in full.",
    "Notwithstanding the foregoing, the committee reserves the right to amend these procedures.",
]


def measured(name: dict[str, object], answers: list[str], finished: list[bool]):  # type: ignore[no-untyped-def]
    return trial(name, answers, finished, AUTHOR, BACKGROUND, max_repeat_excess=0.05, min_finished=0.7)


def test_the_candidates_start_with_the_configured_rules_and_never_repeat_one() -> None:
    configured = {"no_repeat_ngram_size": 3, "repetition_penalty": 1.0}
    tried = candidates(configured)
    assert tried[0] == configured
    assert len(tried) == len(GRID) and len({tuple(sorted(c.items())) for c in tried}) == len(tried)
    assert candidates({"no_repeat_ngram_size": 5})[0] == Decoding(no_repeat_ngram_size=5).as_dict()
    assert len(candidates({"no_repeat_ngram_size": 5})) == len(GRID) + 1


def test_a_looping_candidate_is_never_chosen_over_one_that_does_not_loop() -> None:
    looping = measured({"name": "greedy"}, [LOOP] * 4, [True] * 4)
    plain = measured({"name": "ngram3"}, CLOSE, [True] * 4)
    assert looping.repeated_4gram_share > 0.5 and not looping.met_rules
    assert plain.repeated_4gram_share == 0 and plain.met_rules
    chosen, reason = choose([looping, plain])
    assert chosen is plain and "neither loop nor run out of budget" in reason


def test_among_candidates_that_meet_the_rules_the_closest_style_wins() -> None:
    far = measured({"name": "far"}, FAR, [True] * 4)
    close = measured({"name": "close"}, CLOSE, [True] * 4)
    assert far.met_rules and close.met_rules
    assert close.style_distance is not None and far.style_distance is not None
    assert close.style_distance < far.style_distance
    chosen, reason = choose([far, close])
    assert chosen is close and f"delta {close.style_distance:.3f}" in reason


def test_answers_that_run_out_of_budget_fail_the_rule_and_the_least_degenerate_is_chosen() -> None:
    cut = measured({"name": "cut"}, CLOSE, [False, False, False, True])  # 25% finished
    loops = measured({"name": "loops"}, [LOOP] * 4, [False] * 4)
    assert not cut.met_rules and cut.finished == 0.25
    chosen, reason = choose([loops, cut])
    assert chosen is cut and reason.startswith("no candidate met the rules")
    assert cut.as_dict()["met_rules"] is False and cut.as_dict()["finished"] == 0.25


def test_without_validation_examples_the_configured_rules_are_kept_with_the_reason() -> None:
    summary = kept({"no_repeat_ngram_size": 3}, "as configured: no validation documents")
    assert summary["chosen"] == {"no_repeat_ngram_size": 3, "repetition_penalty": 1.0}
    assert summary["on"] == "configuration" and summary["candidates"] == []


def test_the_choice_rule_is_part_of_an_evaluation_id_only_when_it_decides_something() -> None:
    from dataclasses import replace

    from llm_twin_assets.evaluation.job import Example
    from llm_twin_assets_tests.evaluation.helpers import eval_job

    example = Example(id="e1", document_id="d1", instruction="Why retry?", answer="Because networks fail.")
    job = eval_job(examples=[example], choose_decoding=False)
    # not choosing: the gate's margins change nothing measured, so the evaluation is reused
    assert replace(job, min_finished=0.0).key() == job.key()
    choosing = replace(job, choose_decoding=True, validation_examples=[replace(example, id="v1")])
    assert replace(choosing, min_finished=0.0).key() != choosing.key()  # they pick the decoding


def test_another_prompt_format_is_another_evaluation(monkeypatch: pytest.MonkeyPatch) -> None:
    from llm_twin_assets.evaluation import job as job_module
    from llm_twin_assets.evaluation.job import Example
    from llm_twin_assets_tests.evaluation.helpers import eval_job

    example = Example(id="e1", document_id="d1", instruction="Why retry?", answer="Because networks fail.")
    job = eval_job(examples=[example], choose_decoding=False)
    before = job.key()
    monkeypatch.setattr(job_module, "PROMPT_VERSION", job_module.PROMPT_VERSION + 1)
    assert job.key() != before  # the prompts decide the answers: an old evaluation is not reused
