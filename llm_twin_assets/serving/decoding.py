"""Batched, streaming decoding: many requests, each with its own adapter, sampling, cap and cancellation,
in one forward pass per token.

Prompts are left-padded; position ids count real tokens only, so a row's tokens are the same as when it
runs alone. Each step hands every live row its new text (whole characters only) and a row stops at an
end-of-turn token, at its own ``max_new_tokens``, or when its client went away.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from llm_twin_assets.llm import LoadedLM, Message, chat_prompt_ids

TOP_P = 0.95


@dataclass
class GenerationRequest:
    messages: list[Message]
    adapter: str
    max_new_tokens: int
    temperature: float = 0.0
    seed: int | None = None
    on_text: Callable[[str], None] | None = None
    """Called from the generation thread with each new piece of text."""
    # filled in by the decoder
    prompt_tokens: int = 0
    batch_size: int = 0
    """How many requests shared this one's forward passes."""
    token_ids: list[int] = field(default_factory=list)
    text: str = ""
    finish_reason: str | None = None  # "stop" (end of turn), "length" (the cap) or "cancelled"
    error: BaseException | None = None
    queued_at: float = field(default_factory=time.perf_counter)
    started_at: float | None = None
    first_token_at: float | None = None
    finished_at: float | None = None
    cancelled: threading.Event = field(default_factory=threading.Event)
    done: threading.Event = field(default_factory=threading.Event)

    def cancel(self) -> None:
        self.cancelled.set()


def stop_ids(lm: LoadedLM) -> set[int]:
    configured = lm.model.generation_config.eos_token_id
    ids = set(configured if isinstance(configured, list) else [configured] if configured is not None else [])
    if lm.tokenizer.eos_token_id is not None:
        ids.add(lm.tokenizer.eos_token_id)
    return ids


def decode(lm: LoadedLM, model: Any, requests: list[GenerationRequest]) -> None:
    """Generate for every request together; fills each request and sets ``done`` (errors included)."""
    try:
        _decode(lm, model, requests)
    except BaseException as exc:  # a failed batch fails its requests, not the generation thread
        for request in requests:
            if not request.done.is_set():
                request.error = exc
        raise
    finally:
        now = time.perf_counter()
        for request in requests:
            if not request.done.is_set():
                request.finished_at = now
                request.done.set()


def _decode(lm: LoadedLM, model: Any, requests: list[GenerationRequest]) -> None:
    import torch
    from transformers import DynamicCache

    started = time.perf_counter()
    prompts = [chat_prompt_ids(lm, r.messages) for r in requests]
    for request, prompt in zip(requests, prompts, strict=True):
        request.prompt_tokens = len(prompt)
        request.started_at = started
        request.batch_size = len(requests)
    pad = lm.tokenizer.pad_token_id
    width = max(len(p) for p in prompts)
    ids = torch.tensor([[pad] * (width - len(p)) + p for p in prompts], device=lm.device)
    mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts], device=lm.device)
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    adapters = {"adapter_names": [r.adapter for r in requests]} if hasattr(model, "peft_config") else {}
    generators = [_generator(r) for r in requests]
    stops = stop_ids(lm)
    live = [True] * len(requests)
    cache = DynamicCache()
    cap = max(r.max_new_tokens for r in requests)
    with torch.inference_mode():
        for _ in range(cap):
            out = model(
                input_ids=ids,
                attention_mask=mask,
                position_ids=positions,
                cache=cache,
                use_cache=True,
                logits_to_keep=1,
                **adapters,
            )
            logits = out.logits[:, -1, :].float()
            chosen = []
            for i, request in enumerate(requests):
                if not live[i]:
                    chosen.append(pad)
                    continue
                token = _choose(logits[i], request.temperature, generators[i])
                chosen.append(token)
                _emit(lm, request, token, token in stops)
                if request.cancelled.is_set() and request.finish_reason is None:
                    request.finish_reason = "cancelled"
                if request.finish_reason is not None:
                    live[i] = False
                    request.finished_at = time.perf_counter()
                    request.done.set()
            if not any(live):
                break
            ids = torch.tensor(chosen, device=lm.device).unsqueeze(1)
            mask = torch.cat([mask, torch.ones_like(ids)], dim=1)
            positions = positions[:, -1:] + 1


def _generator(request: GenerationRequest) -> Any:
    import torch

    if request.temperature <= 0:
        return None
    generator = torch.Generator()
    if request.seed is not None:
        generator.manual_seed(request.seed)
    else:
        generator.seed()
    return generator


def _choose(logits: Any, temperature: float, generator: Any) -> int:
    """Greedy at temperature 0; else nucleus sampling (top-p 0.95) at that temperature."""
    import torch

    if temperature <= 0:
        return int(torch.argmax(logits))
    probs = torch.softmax(logits / temperature, dim=-1)
    sorted_probs, order = torch.sort(probs, descending=True)
    keep = sorted_probs.cumsum(-1) - sorted_probs < TOP_P  # always keeps the most likely token
    kept = sorted_probs * keep
    pick = torch.multinomial((kept / kept.sum()).cpu(), 1, generator=generator)
    return int(order[int(pick)])


def _emit(lm: LoadedLM, request: GenerationRequest, token: int, stop: bool) -> None:
    if stop:
        request.finish_reason = "stop"
        return
    if request.first_token_at is None:
        request.first_token_at = time.perf_counter()
    request.token_ids.append(token)
    text = str(lm.tokenizer.decode(request.token_ids, skip_special_tokens=True))
    if not text.endswith("\ufffd"):  # a character split across tokens waits for its last byte
        new = text[len(request.text) :]
        request.text = text
        if new and request.on_text is not None:
            request.on_text(new)
    if len(request.token_ids) >= request.max_new_tokens:
        request.finish_reason = "length"
        _flush(lm, request)


def _flush(lm: LoadedLM, request: GenerationRequest) -> None:
    text = str(lm.tokenizer.decode(request.token_ids, skip_special_tokens=True))
    if text != request.text:
        new = text[len(request.text) :]
        request.text = text
        if request.on_text is not None and new:
            request.on_text(new)
