"""Held-out perplexity of the author's real answers under a model, on the answer's tokens only.

An example is the chat template over the instruction (and any retrieved context) with the assistant turn
opened, then the author's answer and the end of the turn, exactly as SFT trained on it. Only the
answer's tokens (end of turn included) are scored, never the prompt's. Examples are batched by length
with left padding (explicit position ids, so padding changes nothing), and only the last positions'
logits are computed, so memory follows the answers, not the prompts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from llm_twin_assets.llm import Message, chat_prompt_ids

if TYPE_CHECKING:
    from llm_twin_assets.llm import LoadedLM


@dataclass(frozen=True)
class Scored:
    nll: float
    """Summed negative log-likelihood (nats) of the answer's tokens."""
    tokens: int
    truncated: bool
    """The example was longer than the model's window: its answer was cut to fit (and scored so)."""


def answer_ids(lm: LoadedLM, messages: list[Message], answer: str) -> tuple[list[int], list[int]]:
    """The prompt's token ids (assistant turn opened) and the answer's (end of turn included)."""
    prompt = chat_prompt_ids(lm, messages)
    text = str(
        lm.tokenizer.apply_chat_template(
            [*messages, {"role": "assistant", "content": answer}], tokenize=False
        )
    )
    full = list(lm.tokenizer(text, add_special_tokens=False)["input_ids"])
    if full[: len(prompt)] == prompt:
        return prompt, full[len(prompt) :]
    # The template merged a token across the boundary: score the answer's text as its own tokens.
    prompt_text = str(lm.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True))
    rest = text[len(prompt_text) :] if text.startswith(prompt_text) else answer
    return prompt, list(lm.tokenizer(rest, add_special_tokens=False)["input_ids"])


def score_answers(
    lm: LoadedLM,
    prompts: list[list[Message]],
    answers: list[str],
    *,
    token_budget: int = 4096,
    max_length: int | None = None,
) -> list[Scored]:
    """The answer's summed NLL and token count for each (prompt, answer), in the given order.

    ``token_budget`` bounds batch size x longest answer (the logits kept); ``max_length`` the tokens of
    one example (default: the model's window)."""
    import torch

    if len(prompts) != len(answers):
        raise ValueError(f"{len(prompts)} prompts but {len(answers)} answers")
    window = max_length or int(getattr(lm.model.config, "max_position_embeddings", 4096) or 4096)
    encoded: list[tuple[list[int], list[int], bool]] = []
    for messages, answer in zip(prompts, answers, strict=True):
        prompt, target = answer_ids(lm, messages, answer)
        truncated = len(prompt) + len(target) > window
        if truncated:
            prompt = prompt[-(window // 2) :] if len(prompt) > window // 2 else prompt
            target = target[: window - len(prompt)]
        encoded.append((prompt, target, truncated))
    order = sorted(range(len(encoded)), key=lambda i: len(encoded[i][0]) + len(encoded[i][1]))
    results: dict[int, Scored] = {}
    pad = lm.tokenizer.pad_token_id if lm.tokenizer.pad_token_id is not None else 0
    start = 0
    while start < len(order):
        batch = [order[start]]
        while start + len(batch) < len(order):
            candidate = [*batch, order[start + len(batch)]]
            if len(candidate) * max(len(encoded[i][1]) for i in candidate) > token_budget:
                break
            batch = candidate
        start += len(batch)
        width = max(len(encoded[i][0]) + len(encoded[i][1]) for i in batch)
        keep = max(len(encoded[i][1]) for i in batch)
        ids, mask = [], []
        for i in batch:
            sequence = encoded[i][0] + encoded[i][1]
            ids.append([pad] * (width - len(sequence)) + sequence)
            mask.append([0] * (width - len(sequence)) + [1] * len(sequence))
        input_ids = torch.tensor(ids, device=lm.device)
        attention = torch.tensor(mask, device=lm.device)
        positions = (attention.cumsum(-1) - 1).clamp(min=0)
        with torch.inference_mode():
            # Logits at the last keep+1 positions predict the last keep tokens (+1: the one before them).
            logits = lm.model(
                input_ids=input_ids,
                attention_mask=attention,
                position_ids=positions,
                logits_to_keep=keep + 1,
            ).logits[:, :-1, :]
            log_probs = torch.log_softmax(logits.float(), dim=-1)
            targets = input_ids[:, -keep:]
            picked = log_probs.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
        for row, i in enumerate(batch):
            n = len(encoded[i][1])
            nll = -float(picked[row, keep - n :].sum()) if n else 0.0
            results[i] = Scored(nll=nll, tokens=n, truncated=encoded[i][2])
    return [results[i] for i in range(len(encoded))]


def perplexity(scored: list[Scored]) -> float:
    """exp(total NLL / total tokens) over a set of examples (token-weighted, as a corpus)."""
    tokens = sum(s.tokens for s in scored)
    if tokens == 0:
        raise ValueError("no answer tokens to score")
    return math.exp(sum(s.nll for s in scored) / tokens)
