"""Counting the embedder's word-pieces, fast: the tokenizer behind chunking's budgets, and the ids a chunk
carries so the encoder need not tokenize it again (when the tokenizer is additive: see TokenCounter)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence

Counter = Callable[[Sequence[str]], list[int]]


class TokenCounter:
    """Counts word-pieces of many texts at once (without special tokens), with a private copy of the
    Rust tokenizer (batch encoding, no truncation or padding).

    ``ids(texts)`` gives the word-pieces themselves. When the tokenizer is additive (``embedded_ids``
    is not None: a BERT-style one that splits on white space before it cuts words, so that the ids of
    ``context + "\n" + text`` are those of ``context`` followed by those of ``text``), each chunk
    carries the ids the embedder would make of what is embedded, and the encoder reuses them instead
    of tokenizing every chunk a second time."""

    def __init__(self, tokenizer_json: str) -> None:
        from tokenizers import Tokenizer

        self.tokenizer_json = tokenizer_json
        plain = Tokenizer.from_str(tokenizer_json)
        plain.no_truncation()
        plain.no_padding()
        self._encode = getattr(plain, "encode_batch_fast", plain.encode_batch)
        self.digest = tokenizer_digest(tokenizer_json)
        self.prefix: tuple[int, ...] = ()
        self.suffix: tuple[int, ...] = ()
        self.additive = _is_additive(json.loads(tokenizer_json))
        if self.additive:
            bare = plain.encode("x", add_special_tokens=False).ids
            full = plain.encode("x", add_special_tokens=True).ids
            at = next((i for i in range(len(full)) if full[i : i + len(bare)] == bare), None)
            if at is None:
                self.additive = False
            else:
                self.prefix, self.suffix = tuple(full[:at]), tuple(full[at + len(bare) :])

    def __call__(self, texts: Sequence[str]) -> list[int]:
        return [len(ids) for ids in self.ids(texts)]

    def ids(self, texts: Sequence[str]) -> list[list[int]]:
        return [e.ids for e in self._encode(list(texts), add_special_tokens=False)] if texts else []

    def embedded_ids(self, context: Sequence[int], text: Sequence[int]) -> tuple[int, ...] | None:
        """The ids of ``context + "\n" + text`` (or of ``text`` alone), special tokens included;
        None when the tokenizer is not additive."""
        if not self.additive:
            return None
        return (*self.prefix, *context, *text, *self.suffix)


_ADDITIVE_PRE_TOKENIZERS = {"BertPreTokenizer", "Whitespace", "WhitespaceSplit"}
_CHARACTER_NORMALIZERS = {
    "BertNormalizer", "Lowercase", "NFC", "NFD", "NFKC", "NFKD", "StripAccents", "Strip",
}  # fmt: skip


def _is_additive(spec: dict) -> bool:
    """Whether white space splits words before anything merges them (so ids of ``a + "\n" + b`` are
    those of ``a`` then those of ``b``): a BERT-style pre-tokenizer and normalizers that work on
    single characters. Byte-level BPE or SentencePiece ("▁" marks word starts) are not additive."""

    def types(node: dict | None, key: str) -> list[str]:
        if not node:
            return []
        if node.get("type") == "Sequence":
            return [t for child in node.get(key, []) for t in types(child, key)]
        return [str(node.get("type"))]

    pre = types(spec.get("pre_tokenizer"), "pretokenizers")
    normalizers = types(spec.get("normalizer"), "normalizers")
    model = (spec.get("model") or {}).get("type")
    return (
        bool(pre)
        and set(pre) <= _ADDITIVE_PRE_TOKENIZERS
        and set(normalizers) <= _CHARACTER_NORMALIZERS
        and model == "WordPiece"
    )


def tokenizer_digest(tokenizer_json: str) -> str:
    """Names a tokenizer exactly (its vocabulary and rules, not the truncation and padding a caller last
    set on it): stored ids are reused only by the same one."""
    spec = json.loads(tokenizer_json)
    spec.pop("truncation", None)
    spec.pop("padding", None)
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:16]


def token_counter(tokenizer) -> Counter:
    """A :class:`TokenCounter` for a fast (Rust) tokenizer; a plain counter with the Python-side
    ``tokenizer(...)`` otherwise."""
    rust = getattr(tokenizer, "_tokenizer", None)
    if rust is not None:
        return TokenCounter(rust.to_str())

    def count(texts: Sequence[str]) -> list[int]:
        if not texts:
            return []
        encoded = tokenizer(list(texts), add_special_tokens=False, truncation=False, verbose=False)[
            "input_ids"
        ]
        return [len(ids) for ids in encoded]

    return count
