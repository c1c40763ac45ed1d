"""Batched, streaming decoding: many requests, each with its own adapter, sampling, cap and cancellation,
in one forward pass per token.

Prompts are left-padded; position ids count real tokens only, so a row's tokens are the same as when it
runs alone. Each step hands every live row its new text (whole characters only) and a row stops at an
end-of-turn token, at one of its ``stop`` strings, at its own ``max_new_tokens``, or when its client
went away.

A row fails alone: a request that cannot join (its prompt, its seed, a failed prefill) ends with its
error before it touches the running rows, and a row whose sampling fails (non-finite probabilities)
leaves the batch with its error while the others go on. Text that looks like one of the tokenizer's
special tokens (``<|im_end|>``…) is neutralised in every message before tokenization, so no text a
client or a crawled page supplied becomes a control token.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from llm_twin_assets.decoding_rules import Decoding, WordClasses, constrain, word_classes
from llm_twin_assets.llm import LoadedLM, Message, chat_prompt_ids, stop_ids
from llm_twin_assets.prompting import neutralise_messages, special_markers

log = logging.getLogger(__name__)

TOP_P = 0.95


@dataclass
class GenerationRequest:
    messages: list[Message]
    adapter: str
    max_new_tokens: int
    temperature: float = 0.0
    seed: int | None = None
    stop: tuple[str, ...] = ()
    """Strings that end the answer (not included in it), as OpenAI's ``stop``."""
    decoding: Decoding = field(default_factory=Decoding)
    """The release's anti-loop rules (as its evaluation generated), applied to this row's logits."""
    on_text: Callable[[str], None] | None = None
    """Called from the generation thread with each new piece of text."""
    on_done: Callable[[], None] | None = None
    """Called from the generation thread once the request ended (finished, failed or cancelled)."""
    # filled in by the decoder
    prompt_tokens: int = 0
    batch_size: int = 0
    """How many requests shared this one's forward passes."""
    token_ids: list[int] = field(default_factory=list)
    text: str = ""
    """The text handed out so far (a possible start of a stop string is held back)."""
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

    def finish(self, error: BaseException | None = None) -> None:
        if error is not None:
            self.error = error
        self.finished_at = time.perf_counter()
        self.done.set()
        if self.on_done is not None:
            self.on_done()


class RunningBatch:
    """The rows being decoded now. New requests join between steps (continuous batching): they are
    prefilled on their own, then their key/value cache is left-padded to the running one's length (or
    the running one to theirs) and stacked under it; a finished row leaves at once, and padding columns
    no row needs any more are cut. Every row keeps its own positions, so joining changes no row's tokens.
    """

    def __init__(
        self,
        lm: LoadedLM,
        model_of: Callable[[], Any],
        route: Callable[[list[str]], dict[str, Any]] | None = None,
    ) -> None:
        """``model_of``: the model to run now (it changes when the first adapter is installed);
        ``route``: sets the model up for the rows' adapters and returns the forward's extra arguments
        (default: PEFT's per-row ``adapter_names`` when the model has adapters)."""
        self.lm = lm
        self.model_of = model_of
        self.route = route
        self.rows: list[GenerationRequest] = []
        self._generators: list[Any] = []
        self._cache: Any = None
        self._mask: Any = None  # rows x cached positions (+1 per step): 1 where a real token is
        self._next: Any = None  # rows x 1: each row's next input token
        self._positions: Any = None  # rows x 1: that token's position in its own sequence
        self._stops = stop_ids(lm)
        self._markers = special_markers(lm.tokenizer)

    def prompt_ids(self, messages: list[Message]) -> list[int]:
        """The chat prompt's token ids, the messages' own text unable to spell a special token."""
        return chat_prompt_ids(self.lm, neutralise_messages(messages, self._markers))

    def __len__(self) -> int:
        return len(self.rows)

    def admit(self, requests: list[GenerationRequest]) -> None:
        """Prefill ``requests`` together, choose their first tokens, and add them to the running rows.

        A request that cannot start (its prompt, its sampling set-up) ends with its error; a failed
        prefill ends the joining requests with its error. Either way the running rows are untouched."""
        import torch
        from transformers import DynamicCache

        started = time.perf_counter()
        joining: list[GenerationRequest] = []
        prompts: list[list[int]] = []
        generators: list[Any] = []
        for request in requests:
            try:
                prompt, generator = self.prompt_ids(request.messages), _generator(request)
            except Exception as exc:
                log.warning("a request cannot start: %s", exc)
                request.finish(exc)
                continue
            request.prompt_tokens = len(prompt)
            request.started_at = started
            joining.append(request)
            prompts.append(prompt)
            generators.append(generator)
        if not joining:
            return
        requests = joining
        pad = self.lm.tokenizer.pad_token_id
        width = max(len(p) for p in prompts)
        device = self.lm.device
        try:
            ids = torch.tensor([[pad] * (width - len(p)) + p for p in prompts], device=device)
            mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts], device=device)
            positions = (mask.cumsum(-1) - 1).clamp(min=0)
            cache = DynamicCache()
            logits = self._forward(ids, mask, positions, cache, requests)
        except Exception as exc:
            log.exception("prefilling %d joining requests failed; the running rows go on", len(requests))
            for request in requests:
                request.finish(exc)
            return
        chosen, errors = _choose_all(logits, requests, generators, pad, self._words(requests))
        nexts = torch.tensor(chosen, device=device).unsqueeze(1)
        if self._cache is None:
            self._cache, self._mask, self._next = cache, mask, nexts
            self._positions = positions[:, -1:] + 1
        else:
            self._cache, self._mask = _stack(self._cache, self._mask, cache, mask)
            self._next = torch.cat([self._next, nexts])
            self._positions = torch.cat([self._positions, positions[:, -1:] + 1])
        start = len(self.rows)
        self.rows += requests
        self._generators += generators
        self._after_choosing(chosen, start, {start + i: e for i, e in errors.items()})

    def step(self) -> None:
        """One token for every running row."""
        import torch

        self._mask = torch.cat([self._mask, torch.ones_like(self._next)], dim=1)
        logits = self._forward(self._next, self._mask, self._positions, self._cache, self.rows)
        chosen, errors = _choose_all(
            logits, self.rows, self._generators, self.lm.tokenizer.pad_token_id, self._words(self.rows)
        )
        self._next = torch.tensor(chosen, device=self.lm.device).unsqueeze(1)
        self._positions = self._positions + 1
        self._after_choosing(chosen, 0, errors)

    def _words(self, rows: list[GenerationRequest]) -> WordClasses | None:
        """The tokenizer's word classes when a row's rules need them (built once per tokenizer)."""
        needed = any(r.decoding.no_repeat_word_ngram_size for r in rows)
        return word_classes(self.lm.tokenizer) if needed else None

    def fail(self, error: BaseException) -> None:
        """Every running row ends with ``error`` (a failed forward pass); the batch starts afresh."""
        for request in self.rows:
            if not request.done.is_set():
                request.finish(error)
        self.rows, self._generators = [], []
        self._cache = self._mask = self._next = self._positions = None

    def _forward(self, ids: Any, mask: Any, positions: Any, cache: Any, rows: list[GenerationRequest]) -> Any:
        import torch

        model = self.model_of()
        names = [r.adapter for r in rows]
        if self.route is not None:
            adapters = self.route(names)
        else:
            adapters = {"adapter_names": names} if hasattr(model, "peft_config") else {}
        with torch.inference_mode():
            out = model(
                input_ids=ids,
                attention_mask=mask,
                position_ids=positions,
                cache=cache,
                use_cache=True,
                logits_to_keep=1,
                **adapters,
            )
        return out.logits[:, -1, :].float()

    def _after_choosing(
        self, chosen: list[int], start: int = 0, errors: dict[int, BaseException] | None = None
    ) -> None:
        """Hand rows ``start``… their chosen tokens; rows that ended (or failed: ``errors`` by row) leave
        the batch."""
        size = len(self.rows)
        ended = set()
        for i, token in enumerate(chosen, start):
            request = self.rows[i]
            request.batch_size = max(request.batch_size, size)
            if errors and i in errors:
                request.finish(errors[i])
                ended.add(i)
                continue
            if request.cancelled.is_set():
                request.finish_reason = request.finish_reason or "cancelled"
            else:
                _emit(self.lm, request, token, token in self._stops)
            if request.finish_reason is not None:
                request.finish()
                ended.add(i)
        if ended:
            self._select([i for i in range(size) if i not in ended])

    def _select(self, keep: list[int]) -> None:
        import torch

        self.rows = [self.rows[i] for i in keep]
        self._generators = [self._generators[i] for i in keep]
        if not keep:
            self._cache = self._mask = self._next = self._positions = None
            return
        index = torch.tensor(keep, device=self.lm.device)
        self._cache.batch_select_indices(index)
        self._mask, self._next, self._positions = self._mask[index], self._next[index], self._positions[index]
        unused = int((self._mask.sum(dim=0) > 0).int().argmax())  # leading columns no row attends to
        if unused:
            self._mask = self._mask[:, unused:]
            for layer in self._cache.layers:
                layer.keys, layer.values = layer.keys[..., unused:, :], layer.values[..., unused:, :]


def _stack(cache_a: Any, mask_a: Any, cache_b: Any, mask_b: Any) -> tuple[Any, Any]:
    """Two batches' caches as one: the shorter left-padded (masked out) to the longer, rows stacked."""
    import torch
    import torch.nn.functional as F

    length = max(mask_a.shape[1], mask_b.shape[1])

    def pad(tensor: Any, to: int, dim_from_end: int) -> Any:
        missing = to - tensor.shape[-dim_from_end]
        if not missing:
            return tensor
        spec = [0, 0] * (dim_from_end - 1) + [missing, 0]
        return F.pad(tensor, spec)

    for layer_a, layer_b in zip(cache_a.layers, cache_b.layers, strict=True):
        layer_a.keys = torch.cat([pad(layer_a.keys, length, 2), pad(layer_b.keys, length, 2)])
        layer_a.values = torch.cat([pad(layer_a.values, length, 2), pad(layer_b.values, length, 2)])
    return cache_a, torch.cat([pad(mask_a, length, 1), pad(mask_b, length, 1)])


def decode(
    lm: LoadedLM,
    model: Any,
    requests: list[GenerationRequest],
    route: Callable[[list[str]], dict[str, Any]] | None = None,
) -> None:
    """Generate for ``requests`` together, to the end (one batch, nobody joining)."""
    batch = RunningBatch(lm, lambda: model, route)
    try:
        batch.admit(requests)
        while len(batch):
            batch.step()
    except Exception as exc:
        batch.fail(exc)
        for request in requests:
            if not request.done.is_set():
                request.finish(exc)
        raise
    failed = next((r.error for r in requests if r.error is not None), None)
    if failed is not None:
        raise failed


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


def _choose_all(
    logits: Any, rows: list[GenerationRequest], generators: list[Any], pad: int, words: WordClasses | None
) -> tuple[list[int], dict[int, BaseException]]:
    """Each row's next token; a row whose sampling fails gets ``pad`` and its error (it leaves)."""
    chosen: list[int] = []
    errors: dict[int, BaseException] = {}
    for i, request in enumerate(rows):
        try:
            row = constrain(logits[i], request.token_ids, request.decoding, words)
            chosen.append(_choose(row, request.temperature, generators[i]))
        except Exception as exc:
            log.warning("sampling failed for one row (temperature %s): %s", request.temperature, exc)
            chosen.append(pad)
            errors[i] = exc
    return chosen, errors


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
        _flush(lm, request)
        return
    if request.first_token_at is None:
        request.first_token_at = time.perf_counter()
    request.token_ids.append(token)
    text = str(lm.tokenizer.decode(request.token_ids, skip_special_tokens=True))
    if not text.endswith("\ufffd"):  # a character split across tokens waits for its last byte
        _publish(request, text, final=False)
    if request.finish_reason is None and len(request.token_ids) >= request.max_new_tokens:
        request.finish_reason = "length"
        _flush(lm, request)


def _flush(lm: LoadedLM, request: GenerationRequest) -> None:
    _publish(request, str(lm.tokenizer.decode(request.token_ids, skip_special_tokens=True)), final=True)


def _publish(request: GenerationRequest, text: str, final: bool) -> None:
    """Hand out ``text`` past what was handed out: up to a stop string (which ends the row), holding back
    an end that may be the start of one unless ``final``."""
    if request.stop:
        found = [i for i in (text.find(s) for s in request.stop if s) if i >= 0]
        if found:
            text, final = text[: max(min(found), len(request.text))], True
            request.finish_reason = "stop"
        if not final:
            held = max((k for s in request.stop for k in range(1, len(s)) if text.endswith(s[:k])), default=0)
            text = text[: max(len(text) - held, len(request.text))]
    if len(text) > len(request.text):
        new = text[len(request.text) :]
        request.text = text
        if request.on_text is not None:
            request.on_text(new)
