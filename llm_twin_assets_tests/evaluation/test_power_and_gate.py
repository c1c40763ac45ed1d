"""An evaluation with power and a gate that cannot be fooled: degeneration metrics on hand-made texts,
bootstrap intervals, the classifier by grouped cross-validation, and the gate on synthetic answers
(a looping twin, a twin whose style is worse than the base's) measured by the real metric code."""

import json
import random
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest
from typer.testing import CliRunner

from llm_twin_assets.evaluation.authorship import AuthorshipClassifier, grouped_auc
from llm_twin_assets.evaluation.degeneration import counts, markup_echoes
from llm_twin_assets.evaluation.gate import GateSettings, decide
from llm_twin_assets.evaluation.intervals import Bootstrap
from llm_twin_assets.evaluation.job import Example
from llm_twin_assets.evaluation.prepare import held_out_note
from llm_twin_assets.evaluation.reference import reference_passages
from llm_twin_assets.evaluation.report import text_table
from llm_twin_assets.evaluation.summary import summarize
from llm_twin_assets.store import evaluations
from llm_twin_assets.store.database import Database
from llm_twin_assets_tests.evaluation.helpers import eval_job
from llm_twin_assets_tests.evaluation.test_metrics import formal, terse, voices
from llm_twin_assets_tests.store.helpers import add_author, seed_chunks, unit_vectors

LOOP = "I think the most important thing you can do is measure first and scale second."

# --- degeneration, exact values on hand-made texts -------------------------------------------------


def test_repeated_4grams_and_distinct_n_on_hand_made_texts() -> None:
    looped = counts("a b c d a b c d")  # 4-grams: abcd bcda cdab dabc abcd -> 5, one repeat
    assert (looped.word_4grams, looped.repeated_4grams) == (5, 1)
    assert looped.repeated_4gram_share == pytest.approx(1 / 5)
    assert looped.distinct_1 == pytest.approx(4 / 8)
    assert looped.distinct_2 == pytest.approx(4 / 7)  # ab bc cd da ab bc cd: 4 distinct of 7

    fresh = counts("Measure first. Then fix it, and ship small!")  # punctuation and case ignored
    assert fresh.repeated_4gram_share == 0.0 and fresh.distinct_1 == 1.0 and fresh.words == 8

    twice = counts(f"{LOOP} {LOOP}")  # 15 words each: 27 4-grams; the second copy's own 12 repeat
    assert twice.word_4grams == 27 and twice.repeated_4grams == 12
    assert twice.distinct_1 == pytest.approx(15 / 30)
    assert counts("").repeated_4gram_share == 0.0 and counts("short one").word_4grams == 0


def test_echoes_of_prompt_markup_are_counted() -> None:
    assert markup_echoes('<passage n="4">\nRetries are fine.\n</passage>') == 2
    assert markup_echoes("Excerpt 2:\nRetries are fine.") == 1 and markup_echoes("An excerpt: fine.") == 0
    assert markup_echoes("<|im_start|>assistant\nSure.<|im_end|>") == 2
    assert markup_echoes("Hello\nassistant\nagain") == 1  # a bare chat-role line
    assert markup_echoes("<div><p><span>x</span></p></div>") == 2  # two runs of three tags
    assert markup_echoes("<p>One</p> and <p>two</p>") == 0  # tags in prose are not a run
    assert markup_echoes("A <b>bold</b> claim, and a passage about retries.") == 0


# --- intervals -------------------------------------------------------------------------------------


def test_bootstrap_intervals_cover_the_estimate_narrow_with_more_examples_and_repeat_with_the_seed() -> None:
    rng = np.random.default_rng(7)
    values = rng.normal(0.5, 0.2, size=400)
    widths = []
    for n in (10, 40, 400):
        boot = Bootstrap.draw(n, 1000, seed=3)
        low, high = boot.interval(boot.mean(values[:n]))  # type: ignore[misc]
        assert low <= values[:n].mean() <= high
        widths.append(high - low)
    assert widths[0] > widths[1] > widths[2]
    assert widths[2] < widths[0] / 4  # about 1/sqrt(n)
    again = Bootstrap.draw(10, 1000, seed=3)
    assert again.interval(again.mean(values[:10])) == Bootstrap.draw(10, 1000, seed=3).interval(
        Bootstrap.draw(10, 1000, seed=3).mean(values[:10])
    )
    assert (Bootstrap.draw(10, 1000, seed=3).weights.sum(axis=1) == 10).all()


# --- the authorship classifier by grouped cross-validation ---------------------------------------


def test_the_classifier_is_measurable_on_a_small_author_by_grouped_cross_validation() -> None:
    rng = random.Random(5)
    topics = ["retries", "backups", "queues"]  # three documents, two passages and two base answers each
    author = [terse(rng, topics[i // 2]) for i in range(6)]
    base = [formal(rng, topics[i // 2]) for i in range(6)]
    groups = [f"d{i // 2}" for i in range(6)]
    # A single held-out split by document can lack a voice (here: no held-out base answers at all).
    split = AuthorshipClassifier.fit(author[:4], base[:4])
    assert split.auc(author[4:], []) is None
    cv = grouped_auc(author, groups, base, groups, seed=0)
    assert cv.auc is not None and cv.auc >= 0.9, cv
    assert (cv.folds, cv.groups) == (3, 3) and len(cv.scores) == 12
    one_document = grouped_auc(author[:2], ["d0", "d0"], base[:2], ["d0", "d0"])
    assert one_document.auc is None and "1 documents" in one_document.note


def test_the_reference_text_of_other_writers_ships_with_python() -> None:
    found = reference_passages()
    assert len(found) == 60 and len({w.group for w in found}) > 20
    assert all(30 <= len(w.text.split()) <= 200 and ">>>" not in w.text for w in found)


def test_other_authors_in_the_store_are_other_writers_shared_evenly(db: Database) -> None:
    with db.connect() as conn:
        seed_chunks(conn, unit_vectors(7), ["ada", "ada", "bob", "bob", "bob", "cy", "cy"])
        picked = evaluations.other_writers(conn, "ada", limit=4, min_words=1)
        assert sorted(a for a, _, _ in picked) == ["bob", "bob", "cy", "cy"]
        assert evaluations.other_writers(conn, "ada", limit=4, min_words=1) == picked  # the same picks
        assert evaluations.other_writers(conn, "ada", limit=4) == []  # chunks of 3 words: too short


# --- how many examples, and why -------------------------------------------------------------------


def test_an_author_short_of_ten_examples_is_told_so_with_the_fix() -> None:
    note = held_out_note(3, 2, 20)
    assert note.startswith("only 3 held-out examples from 2 test documents of 20")
    assert "test_ratio 0.35 (about 7 test documents)" in note
    assert "cannot give that many" in held_out_note(2, 1, 3)
    assert held_out_note(12, 3, 30).startswith("12 held-out examples from 3 test documents of 30")


def test_the_generation_budget_follows_the_authors_answer_lengths(tiny_model_path: Path) -> None:
    from llm_twin_assets.evaluation.run import generation_budget
    from llm_twin_assets.llm import load_causal_lm
    from llm_twin_assets.models.registry import ModelRef

    lm = load_causal_lm(ModelRef(str(tiny_model_path), True, "path"), device="cpu")
    answers = [" ".join(["word"] * n) for n in (10, 20, 30, 40, 200)]
    lengths = sorted(len(lm.tokenizer(a, add_special_tokens=False)["input_ids"]) for a in answers)
    job = eval_job(
        base_model="b", examples=[Example(f"e{i}", "d", "Say it.", a) for i, a in enumerate(answers)]
    )
    budget = generation_budget(lm, job)
    p90 = float(np.percentile(lengths, 90))
    assert budget["author_p90_tokens"] == pytest.approx(p90)
    assert budget["max_new_tokens"] == min(max(int(np.ceil(2 * p90)), 32), 512)
    assert "p90" in budget["rule"]
    assert generation_budget(lm, replace(job, max_new_tokens=64))["max_new_tokens"] == 64


# --- the gate on synthetic answers, measured by the real metric code -------------------------------

N = 12


def _frame(models: dict[str, dict[str, Any]], rag: dict[str, dict[str, Any]] | None = None) -> pl.DataFrame:
    """Each model's answers without retrieval, then with it (``rag``'s spec, else the same answers)."""
    rows = []
    for variant, specs in (("plain", models), ("rag", {**models, **(rag or {})})):
        rows += _rows(specs, variant)
    return pl.DataFrame(rows)


def _rows(models: dict[str, dict[str, Any]], variant: str) -> list[dict[str, Any]]:
    rows = []
    for model, spec in models.items():
        for i in range(N):
            rows.append(
                {
                    "model": model,
                    "variant": variant,
                    "answer": spec["answers"][i],
                    "nll": spec["nll"] * (1 + 0.1 * ((i % 3) - 1)),
                    "tokens": 20,
                    "finished": spec["finished"][i],
                    "p_author": spec["p_author"][i],
                    "p_writer": spec["p_writer"][i],
                    "content_similarity": 0.5,
                }
            )
    return rows


def _results(
    twin: dict[str, Any], base: dict[str, Any], n: int = N, twin_with_rag: dict[str, Any] | None = None
) -> dict[str, Any]:
    author, other = voices(11, 20)
    held_out, _ = voices(12, N)
    boot = Bootstrap.draw(N, 1000, seed=0)
    models, differences = summarize(
        _frame({"base": base, "twin": twin}, {"twin": twin_with_rag} if twin_with_rag else None),
        held_out,
        author,
        author + other,
        boot,
        versions={"base": "b", "twin": "t", "author": "a"},
        author_scores={"author_likeness": [0.9] * N, "writer_likeness": [0.9] * N},
    )
    return {
        "examples": n,
        "models": models,
        "differences": differences,
        "classifier": {"held_out_auc": 0.95},
        "writer_classifier": {"held_out_auc": 0.99},
    }


def _spec(answers: list[str], nll: float, like: float, finished: bool = True) -> dict[str, Any]:
    jitter = [0.05 * ((i % 3) - 1) for i in range(N)]
    return {
        "answers": answers,
        "nll": nll,
        "finished": [finished] * N,
        "p_author": [like + j for j in jitter],
        "p_writer": [like + j for j in jitter],
    }


def _base() -> dict[str, Any]:
    _, formal_answers = voices(13, N)
    return _spec(formal_answers, nll=60.0, like=0.2)


def test_the_gate_passes_a_twin_that_sounds_like_the_author_on_every_check() -> None:
    twin_answers, _ = voices(14, N)
    results = _results(_spec(twin_answers, nll=40.0, like=0.85), _base())
    decision = decide(results, GateSettings())
    assert decision.passed, decision.reasons
    assert set(decision.checks) == {
        "examples",
        "perplexity",
        "author_likeness",
        "writer_likeness",
        "style_vs_base",
        "style_to_author",
        "repetition",
        "finished",
        "rag_style_vs_base",
        "rag_repetition",
        "rag_finished",
    }
    twin = results["models"]["twin"]
    for metric in ("perplexity", "author_likeness", "finished", "repeated_4gram_share", "length_ratio"):
        low, high = twin["intervals"][metric]
        assert low <= twin["metrics"][metric] <= high, metric
    assert twin["intervals"]["style_distance"] is not None
    assert twin["metrics"]["repeated_4gram_share"] == 0.0 and twin["metrics"]["finished"] == 1.0
    assert results["differences"]["twin-base"]["perplexity_gain"]["value"] == pytest.approx(1 - np.exp(2 - 3))


def test_the_gate_fails_a_looping_twin_and_says_by_how_much() -> None:
    looping = _spec([f"{LOOP} {LOOP} {LOOP}"] * N, nll=30.0, like=0.9, finished=False)
    results = _results(looping, _base())
    decision = decide(results, GateSettings())
    assert not decision.passed
    repetition = decision.checks["repetition"]
    share = counts(f"{LOOP} {LOOP} {LOOP}").repeated_4gram_share
    assert share == pytest.approx(27 / 42)  # 45 words, 42 4-grams, 15 distinct
    assert results["models"]["twin"]["metrics"]["repeated_4gram_share"] == pytest.approx(share)
    assert repetition["value"] == pytest.approx(
        share - results["models"]["author"]["metrics"]["repeated_4gram_share"]
    )
    assert repetition["missed_by"] == pytest.approx(repetition["interval"][1] - 0.05)
    assert decision.checks["finished"]["missed_by"] == pytest.approx(0.7)  # none finished: [0, 0]
    reasons = " | ".join(decision.reasons)
    assert (
        "repeated 4-gram share 64.3%" in reasons and "needs upper end <= +5.0%): missed by +59.3%" in reasons
    )
    assert "finished within the budget 0% (95% CI [0%, 0%]; needs lower end >= 70%): missed by 70%" in reasons
    assert decision.checks["perplexity"]["passed"]  # a better perplexity does not buy a pass


def test_the_gate_fails_a_twin_that_loops_only_when_it_answers_with_retrieval() -> None:
    # The path the service takes by default is gated too: sound without retrieval is not enough.
    twin_answers, _ = voices(14, N)
    looping = _spec([f"{LOOP} {LOOP} {LOOP}"] * N, nll=30.0, like=0.9, finished=False)
    results = _results(_spec(twin_answers, nll=40.0, like=0.85), _base(), twin_with_rag=looping)
    decision = decide(results, GateSettings())
    assert not decision.passed
    failed = {name for name, check in decision.checks.items() if not check["passed"]}
    assert failed == {"rag_repetition", "rag_finished"}
    share = counts(f"{LOOP} {LOOP} {LOOP}").repeated_4gram_share
    served = results["differences"]["twin+rag-author"]["repeated_4gram_share"]
    assert decision.checks["rag_repetition"]["value"] == pytest.approx(served["value"])
    assert served["value"] == pytest.approx(
        share - results["models"]["author"]["metrics"]["repeated_4gram_share"]
    )
    assert decision.checks["rag_finished"]["missed_by"] == pytest.approx(0.7)
    assert any(r.startswith("with retrieval: repeated 4-gram share 64.3%") for r in decision.reasons)
    # The served path's differences are measured with intervals like the plain path's, and shown.
    assert set(results["differences"]) == {"twin-base", "twin-author", "twin+rag-base+rag", "twin+rag-author"}
    assert results["differences"]["twin+rag-base+rag"]["style_distance"]["interval"] is not None
    assert "twin+rag − base+rag (95% CI): perplexity gain" in text_table(
        results["models"], results["differences"]
    )


def test_the_gate_fails_a_twin_whose_style_is_worse_than_the_bases() -> None:
    author_like, formal_answers = voices(15, N)
    base = _spec(author_like, nll=60.0, like=0.2)  # a base model that happens to write like her
    twin = _spec(formal_answers, nll=40.0, like=0.8)  # a twin that does not
    results = _results(twin, base)
    decision = decide(results, GateSettings())
    assert not decision.passed
    style = decision.checks["style_vs_base"]
    models = results["models"]
    assert style["value"] == pytest.approx(
        models["twin"]["metrics"]["style_distance"] - models["base"]["metrics"]["style_distance"]
    )
    assert style["value"] > 0.5 and style["missed_by"] == pytest.approx(style["interval"][1])
    assert any(
        r.startswith("style distance") and "twin - base" in r and "missed by" in r for r in decision.reasons
    )
    assert not decision.checks["style_to_author"]["passed"]  # and far from the author's


def test_the_gate_decides_on_the_interval_not_the_point_estimate() -> None:
    twin_answers, _ = voices(14, N)
    # The mean likeness gain is +0.10, but half the examples say +0.50 and half -0.30: not shown.
    twin = _spec(twin_answers, nll=40.0, like=0.3)
    twin["p_author"] = [0.7 if i % 2 else -0.1 for i in range(N)]
    results = _results(twin, _base())
    check = decide(results, GateSettings()).checks["author_likeness"]
    assert check["value"] == pytest.approx(0.1) and not check["passed"]
    assert check["interval"][0] < 0.05 < check["interval"][1]


def test_too_few_examples_fail_the_gate_by_name() -> None:
    twin_answers, _ = voices(14, N)
    results = _results(_spec(twin_answers, nll=40.0, like=0.85), _base(), n=3)
    results["held_out"] = {"note": held_out_note(3, 2, 20)}
    decision = decide(results, GateSettings())
    assert not decision.passed and decision.checks["examples"]["missed_by"] == 7
    assert decision.reasons[0].startswith("only 3 held-out examples from 2 test documents of 20")
    assert decision.reasons[0].endswith("(the gate needs 10): short by 7")


def test_intervals_are_stored_and_shown_by_eval_show_in_the_table_and_json(db: Database) -> None:
    from llm_twin_assets.cli import app

    twin_answers, _ = voices(14, N)
    results = _results(_spec(twin_answers, nll=40.0, like=0.85), _base())
    decision = decide(results, GateSettings())
    with db.connect() as conn:
        add_author(conn, "ada")
        record = evaluations.EvaluationRecord(
            id="e1",
            author="ada",
            base_model="b",
            sft_version="s",
            dpo_version="t",
            instruct_version="i",
            preference_version="p",
            examples=N,
            examples_key="k",
            settings={"differences": results["differences"], "held_out": {"note": held_out_note(N, 3, 30)}},
            classifier={"held_out_auc": 0.95, "auc_interval": [0.9, 1.0], "method": "grouped 3-fold"},
            gate=decision.as_dict(),
            gate_passed=decision.passed,
        )
        evaluations.save(conn, record, results["models"])
        stored = evaluations.metrics(conn, "e1")
    twin = results["models"]["twin"]
    assert stored["twin"]["intervals"]["perplexity"] == pytest.approx(twin["intervals"]["perplexity"])

    shown = CliRunner().invoke(app, ["eval", "show", "--author", "ada", "--json"])
    assert shown.exit_code == 0, shown.output
    table = {entry["model"]: entry for entry in json.loads(shown.stdout)}
    assert table["twin"]["intervals"]["style_distance"] == pytest.approx(twin["intervals"]["style_distance"])
    assert table["author"]["intervals"]["repeated_4gram_share"] is not None

    text = CliRunner().invoke(app, ["eval", "show", "--author", "ada"])
    assert text.exit_code == 0, text.output
    low, high = twin["intervals"]["perplexity"]
    perplexity = twin["metrics"]["perplexity"]
    assert f"{perplexity:.2f} [{low:.2f}, {high:.2f}]" in text.stdout
    assert "repeats 4g ↓" in text.stdout and "twin − base (95% CI): perplexity gain +63.2%" in text.stdout
    assert "12 held-out examples from 3 test documents of 30" in text.stdout
    assert "AUC 0.950 [0.900, 1.000], grouped 3-fold" in text.stdout
    assert "quality gate PASSED" in text.stdout
    assert text_table(stored, results["differences"]) in text.stdout
