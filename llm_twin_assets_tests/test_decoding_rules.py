"""The anti-loop decoding rules: exact on hand-made rows, and on a real (tiny) model's greedy loop."""

from pathlib import Path

import pytest
import torch

from llm_twin_assets.decoding_rules import Decoding, banned, constrain, logits_processor


def repeated_ngrams(ids: list[int], n: int) -> int:
    grams = [tuple(ids[i : i + n]) for i in range(len(ids) - n + 1)]
    return len(grams) - len(set(grams))


def test_banned_tokens_complete_an_ngram_already_generated() -> None:
    assert banned([5, 6, 7, 5, 6], 3) == {7}  # "5 6 7" exists: after "5 6", 7 is banned
    assert banned([5, 6, 7, 5, 6, 8, 5, 6], 3) == {7, 8}
    assert banned([5, 6], 3) == set()  # no full 3-gram yet
    assert banned([1, 2, 3], 0) == set()
    assert banned([4, 4, 4], 2) == {4}


def test_constrain_applies_the_penalty_and_the_ban_to_one_row() -> None:
    logits = torch.tensor([2.0, -2.0, 1.0, 0.5])
    out = constrain(logits, [0, 1], Decoding(repetition_penalty=2.0))
    assert out.tolist() == [1.0, -4.0, 1.0, 0.5]
    out = constrain(logits, [3, 2, 3], Decoding(no_repeat_ngram_size=2))
    assert out[2] == float("-inf") and out[0] == 2.0  # "3 2" was generated: after 3, 2 is banned
    assert constrain(logits, [1, 2], Decoding()) is logits  # no rule: untouched
    with pytest.raises(ValueError, match="no_repeat_ngram_size must be 0 or at least 2"):
        Decoding(no_repeat_ngram_size=1)


def test_a_looping_model_stops_repeating_trigrams_and_only_the_answer_is_judged(
    tiny_model_path: Path,
) -> None:
    from llm_twin_assets.llm import chat_prompt_ids, load_causal_lm
    from llm_twin_assets.models.registry import ModelRef

    lm = load_causal_lm(ModelRef(str(tiny_model_path), True, "path"))
    # the prompt repeats itself: the rules must not ban the answer from using its words
    prompt = chat_prompt_ids(lm, [{"role": "user", "content": "retry retry retry with backoff " * 3}])
    ids = torch.tensor([prompt])

    def answer(decoding: Decoding | None) -> list[int]:
        extra = {"logits_processor": [logits_processor(decoding, len(prompt))]} if decoding else {}
        with torch.inference_mode():
            out = lm.model.generate(
                input_ids=ids,
                max_new_tokens=48,
                do_sample=False,
                pad_token_id=lm.tokenizer.pad_token_id,
                **extra,
            )
        return list(out[0, len(prompt) :].tolist())

    plain, ruled = answer(None), answer(Decoding(no_repeat_ngram_size=3))
    assert repeated_ngrams(plain, 3) > 0  # the random tiny model loops when greedy
    assert repeated_ngrams(ruled, 3) == 0
    assert ruled[:2] == plain[:2]  # nothing is banned before a trigram could repeat
