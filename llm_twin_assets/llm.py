"""Loading causal LMs and generating from chat messages (transformers, lazily imported)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from llm_twin_assets.decoding_rules import Decoding, logits_processor, word_classes
from llm_twin_assets.errors import ModelError

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

    from llm_twin_assets.models.registry import ModelRef

Message = dict[str, str]


@dataclass
class LoadedLM:
    model: Any  # a PreTrainedModel (its stubs make generate/to uncallable for mypy)
    tokenizer: PreTrainedTokenizerBase
    device: str


def load_causal_lm(ref: ModelRef, device: str = "cpu", dtype: str = "float32") -> LoadedLM:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()  # "Loading weights" bars clutter the CLI and the run logs
    try:
        tokenizer = AutoTokenizer.from_pretrained(ref.name_or_path, local_files_only=ref.is_local)
        model: Any = AutoModelForCausalLM.from_pretrained(
            ref.name_or_path, dtype=getattr(torch, dtype), local_files_only=ref.is_local
        )
    except OSError as exc:
        raise ModelError(
            f"LLM_TWIN_BASE_MODEL: cannot load {ref.name_or_path} ({exc}). Fix: use a local model "
            "folder, 'bundled', or a hub id already in the local hub cache (no downloads here)"
        ) from exc
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model.to(device)
    model.eval()
    return LoadedLM(model=model, tokenizer=tokenizer, device=device)


def chat_prompt_ids(lm: LoadedLM, messages: list[Message]) -> list[int]:
    """Token ids of the chat template with the assistant turn opened.

    SmolLM2's tokenizer adds no BOS by itself and the template already holds every special token, so
    the rendered text is tokenized without adding special tokens.
    """
    text = lm.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    return list(lm.tokenizer(text, add_special_tokens=False)["input_ids"])


@dataclass(frozen=True)
class Reply:
    text: str
    finished: bool
    """False when generation stopped at ``max_new_tokens`` rather than at an end-of-turn token."""


def generate_replies(
    lm: LoadedLM,
    conversations: list[list[Message]],
    *,
    max_new_tokens: int = 128,
    temperature: float = 0.0,
    seed: int = 0,
    decoding: Decoding | None = None,
    **kwargs: Any,
) -> list[Reply]:
    """One reply per conversation, batched with left padding; greedy when temperature is 0; with the
    ``decoding`` rules (no repeated n-gram, repetition penalty) exactly as the service applies them."""
    import torch

    if not conversations:
        return []
    prompts = [chat_prompt_ids(lm, c) for c in conversations]
    pad = lm.tokenizer.pad_token_id
    width = max(len(p) for p in prompts)
    input_ids = torch.tensor([[pad] * (width - len(p)) + p for p in prompts], device=lm.device)
    attention = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts], device=lm.device)
    sampling: dict[str, Any] = {"do_sample": False}
    if temperature > 0:
        torch.manual_seed(seed)
        sampling = {"do_sample": True, "temperature": temperature, "top_p": 0.95}
    if decoding is not None and decoding.active:
        from transformers import LogitsProcessorList

        words = word_classes(lm.tokenizer) if decoding.no_repeat_word_ngram_size else None
        kwargs["logits_processor"] = LogitsProcessorList([logits_processor(decoding, width, words)])
    with torch.inference_mode():
        output = lm.model.generate(
            input_ids=input_ids,
            attention_mask=attention,
            max_new_tokens=max_new_tokens,
            pad_token_id=pad,
            **sampling,
            **kwargs,
        )
    stops = stop_ids(lm)
    replies = []
    for row in output[:, width:].tolist():
        finished = any(t in stops for t in row)
        replies.append(Reply(str(lm.tokenizer.decode(row, skip_special_tokens=True)).strip(), finished))
    return replies


def stop_ids(lm: LoadedLM) -> set[int]:
    """The token ids that end a turn: the generation config's end-of-sequence ids and the tokenizer's."""
    configured = lm.model.generation_config.eos_token_id
    ids = set(configured if isinstance(configured, list) else [configured] if configured is not None else [])
    if lm.tokenizer.eos_token_id is not None:
        ids.add(lm.tokenizer.eos_token_id)
    return ids


def generate(
    lm: LoadedLM,
    conversations: list[list[Message]],
    *,
    max_new_tokens: int = 128,
    temperature: float = 0.0,
    seed: int = 0,
    decoding: Decoding | None = None,
    **kwargs: Any,
) -> list[str]:
    """The text of :func:`generate_replies`."""
    replies = generate_replies(
        lm,
        conversations,
        max_new_tokens=max_new_tokens,
        temperature=temperature,
        seed=seed,
        decoding=decoding,
        **kwargs,
    )
    return [r.text for r in replies]
