"""Held-out perplexity on the tiny Llama: answer tokens only, batching changes nothing, and a model that
memorised the answers finds them far less surprising."""

from pathlib import Path

import pytest

from llm_twin_assets.evaluation.perplexity import answer_ids, perplexity, score_answers
from llm_twin_assets.llm import LoadedLM, load_causal_lm
from llm_twin_assets.models.registry import ModelRef

PROMPTS = [
    [{"role": "user", "content": "Why should a data job be safe to run twice?"}],
    [{"role": "user", "content": "Write a short post about Postgres."}],
    [{"role": "system", "content": "Quoted passages follow."}, {"role": "user", "content": "Backups?"}],
]
ANSWERS = [
    "Because it will run twice. Cron retries, people retry, and the second run must change nothing.",
    "One Postgres database and a cron job. Measure first, scale second.",
    "Restore one every week, or you do not have backups.",
]


@pytest.fixture
def tiny(tiny_model_path: Path) -> LoadedLM:
    import torch

    torch.manual_seed(0)
    return load_causal_lm(ModelRef(str(tiny_model_path), True, "path"))


def test_only_the_answer_tokens_are_scored_whatever_the_prompt(tiny: LoadedLM) -> None:
    prompt, answer = answer_ids(tiny, PROMPTS[0], ANSWERS[0])
    assert tiny.tokenizer.decode(prompt).rstrip().endswith("<|im_start|>assistant")  # the prompt ends there
    text = tiny.tokenizer.decode(answer)
    assert text.startswith(ANSWERS[0]) and text.rstrip().endswith("<|im_end|>")  # the end of turn counts
    longer = [{"role": "user", "content": PROMPTS[0][0]["content"] + " Explain at length, with examples."}]
    [short_scored, long_scored] = score_answers(tiny, [PROMPTS[0], longer], [ANSWERS[0], ANSWERS[0]])
    assert short_scored.tokens == long_scored.tokens == len(answer)
    assert not short_scored.truncated


def test_batching_and_padding_change_nothing(tiny: LoadedLM) -> None:
    together = score_answers(tiny, PROMPTS, ANSWERS)
    one_by_one = [score_answers(tiny, [p], [a])[0] for p, a in zip(PROMPTS, ANSWERS, strict=True)]
    tight = score_answers(tiny, PROMPTS, ANSWERS, token_budget=1)  # every example its own batch
    for a, b, c in zip(together, one_by_one, tight, strict=True):
        assert a.tokens == b.tokens == c.tokens
        assert a.nll == pytest.approx(b.nll, rel=1e-4) and a.nll == pytest.approx(c.nll, rel=1e-4)


def test_an_example_longer_than_the_window_is_cut_and_flagged(tiny: LoadedLM) -> None:
    [scored] = score_answers(tiny, PROMPTS[:1], [ANSWERS[0] * 20], max_length=64)
    assert scored.truncated and 0 < scored.tokens <= 64


@pytest.mark.slow
def test_a_model_that_memorised_the_answers_has_a_far_lower_perplexity(tiny: LoadedLM) -> None:
    import torch

    before = perplexity(score_answers(tiny, PROMPTS, ANSWERS))
    model = tiny.model
    model.train()
    optimiser = torch.optim.AdamW(model.parameters(), lr=3e-3)
    sequences = []
    for messages, answer in zip(PROMPTS, ANSWERS, strict=True):
        prompt, target = answer_ids(tiny, messages, answer)
        ids = torch.tensor([prompt + target])
        labels = ids.clone()
        labels[0, : len(prompt)] = -100
        sequences.append((ids, labels))
    for _ in range(30):
        for ids, labels in sequences:
            optimiser.zero_grad()
            model(input_ids=ids, labels=labels).loss.backward()
            optimiser.step()
    model.eval()
    after = perplexity(score_answers(tiny, PROMPTS, ANSWERS))
    assert after < before / 20, (before, after)
    assert after < 3.0
