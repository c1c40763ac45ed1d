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


def test_the_word_rule_sees_a_line_repeated_with_other_spacing_and_quoting_as_a_repeat() -> None:
    from llm_twin_assets.decoding_rules import WordClasses

    # token texts: 0 "echo", 1 " $", 2 "HOME", 3 " is", 4 " here", 5 "\n", 6 ' "$', 7 '"', 8 " Here", 9 " there"
    words = WordClasses(["echo", " $", "HOME", " is", " here", "\n", ' "$', '"', " Here", " there"])
    assert words.of[1] == words.of[5] == words.of[6] == words.of[7] == -1  # no letters: not a word
    first, again = [0, 1, 2, 3, 4, 5], [0, 6, 2, 7, 3]  # echo $HOME is here / echo "$HOME" is
    # The token 3-gram rule sees no repeat: the second line's tokens differ.
    assert banned(first + again, 3) == set()
    # The word rule does: "echo HOME is" was followed by "here", in any case or spacing.
    assert words.banned(first + again, 4) == [4, 8]
    logits = torch.zeros(10)
    out = constrain(logits, first + again, Decoding(no_repeat_word_ngram_size=4), words)
    assert out[4] == out[8] == float("-inf") and out[9] == 0.0
    with pytest.raises(ValueError, match="needs the tokenizer's word classes"):
        constrain(logits, first + again, Decoding(no_repeat_word_ngram_size=4))
    with pytest.raises(ValueError, match="no_repeat_word_ngram_size must be 0 or at least 2"):
        Decoding(no_repeat_word_ngram_size=1)


def test_the_word_rule_travels_in_the_rules_dict_and_older_dicts_still_read() -> None:
    rules = Decoding(no_repeat_ngram_size=3, no_repeat_word_ngram_size=4)
    assert Decoding.from_dict(rules.as_dict()) == rules
    # releases stored before the rule existed hold only the two older keys; they read as the rule off
    assert Decoding(no_repeat_ngram_size=3).as_dict() == {
        "no_repeat_ngram_size": 3,
        "repetition_penalty": 1.0,
    }
    assert Decoding.from_dict({"no_repeat_ngram_size": 3}).no_repeat_word_ngram_size == 0


def test_with_the_real_tokenizer_a_requoted_line_cannot_be_finished_the_same_way(
    tiny_model_path: Path,
) -> None:
    from transformers import AutoTokenizer

    from llm_twin_assets.decoding_rules import word_classes

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_path)  # SmolLM2's vocabulary
    words = word_classes(tokenizer)
    ids = tokenizer('echo $HOME is here\necho "$HOME" is', add_special_tokens=False)["input_ids"]
    assert banned(ids, 3) == set()  # the token rule: '"$' and '"' break every repeated token 3-gram
    ban = {tokenizer.convert_ids_to_tokens(t) for t in words.banned(ids, 3)}
    assert {"here", "Ġhere", "ĠHere"} <= ban  # "echo HOME is" ended in "here": every spelling of it is out
    assert all(t.lstrip("ĠĊ").lower() == "here" for t in ban)
    logits = torch.zeros(len(tokenizer))
    out = constrain(logits, ids, Decoding(no_repeat_word_ngram_size=3), words)
    assert int(torch.isinf(out).sum()) == len(ban)
