"""The chunk encoder: OpenVINO matches sentence-transformers; a missing backend falls back cleanly."""

import numpy as np
import pytest

from llm_twin_assets.embeddings import load_encoder
from llm_twin_assets.features.encoding import Encoder
from llm_twin_assets.settings import TwinSettings

TEXTS = [
    "Idempotence is a habit, not a feature you add later.",
    "Your data probably fits on a laptop; measure before you scale.",
    "🙂 short",
    "A much longer text about boring Postgres, pgvector and HNSW indexes, " * 20,
    "Tests should fail for the same reasons production fails.",
]


def test_openvino_matches_sentence_transformers_in_input_order(settings: TwinSettings, embedder) -> None:  # type: ignore[no-untyped-def]
    encoder = load_encoder(
        settings.model_copy(update={"embedding_backend": "openvino", "device": "cpu"}), embedder
    )
    assert encoder.backend == "openvino"
    ours = encoder.encode(TEXTS)
    plain = embedder.encode(TEXTS, normalize_embeddings=True)
    assert ours.shape == (5, 384) and ours.dtype == np.float32
    assert np.allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-5)
    assert (ours * plain).sum(axis=1).min() > 0.999  # same vectors, in the same order
    assert encoder.encode([]).shape == (0, 384)


def test_auto_falls_back_to_torch_with_the_reason(settings: TwinSettings, embedder, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import sys

    monkeypatch.setitem(sys.modules, "openvino", None)  # as if the package were not installed
    encoder = Encoder(embedder, device="cpu", backend="auto")
    assert encoder.backend == "torch"
    assert "ModuleNotFoundError" in (encoder.fallback_reason or "") and "openvino" in (
        encoder.fallback_reason or ""
    )
    vectors = encoder.encode(TEXTS)
    assert (vectors * embedder.encode(TEXTS, normalize_embeddings=True)).sum(axis=1).min() > 0.9999
    with pytest.raises(ImportError):
        Encoder(embedder, device="cpu", backend="openvino")  # asked for explicitly: no silent fallback


def test_auto_uses_openvino_only_where_the_cpu_gives_it_bf16(settings: TwinSettings, embedder) -> None:  # type: ignore[no-untyped-def]
    import openvino as ov

    bf16 = "BF16" in ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")
    encoder = load_encoder(
        settings.model_copy(update={"embedding_backend": "auto", "device": "cpu"}), embedder
    )
    if bf16:  # AMX / AVX512-BF16: OpenVINO's bf16 is the fast path
        assert encoder.backend == "openvino" and encoder.fallback_reason is None
    else:  # fp32 OpenVINO is no faster than torch: torch, and the reason says why
        assert encoder.backend == "torch"
        assert "no BF16" in (encoder.fallback_reason or "")


@pytest.mark.gpu
def test_cuda_encoding_matches_the_cpu(settings: TwinSettings, embedder) -> None:  # type: ignore[no-untyped-def]
    from llm_twin_assets.embeddings import load_embedder

    gpu = load_encoder(
        settings.model_copy(update={"device": "cuda"}),
        load_embedder(settings.model_copy(update={"device": "cuda"})),
    )
    assert gpu.backend == "torch-cuda-fp16" and gpu.device == "cuda"
    assert (gpu.encode(TEXTS) * embedder.encode(TEXTS, normalize_embeddings=True)).sum(axis=1).min() > 0.999


def test_the_fast_tokenizer_path_gives_the_same_ids(embedder) -> None:  # type: ignore[no-untyped-def]
    encoder = Encoder(embedder, device="cpu", backend="torch")
    texts = [*TEXTS, "x" * 3000, "数据管道 🙂"]
    ours = encoder._tokenize(texts)
    reference = embedder.tokenizer(texts, padding=True, truncation=True, max_length=256, return_tensors="np")
    for name in ("input_ids", "attention_mask", "token_type_ids"):
        assert (ours[name] == reference[name]).all(), name
