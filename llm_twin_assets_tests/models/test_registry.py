import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from llm_twin_assets.errors import ConfigError, ModelError
from llm_twin_assets.llm import generate, load_causal_lm
from llm_twin_assets.models import registry
from llm_twin_assets.models.registry import ModelRef
from llm_twin_assets.settings import TwinSettings, get_settings


def test_bundled_embedding_model_gives_384d_unit_vectors_and_ranks_similar_higher(embedder) -> None:  # type: ignore[no-untyped-def]
    sentences = [
        "I rewrote our data pipeline in polars and it runs ten times faster.",
        "Switching the ETL jobs to polars made them an order of magnitude quicker.",
        "My grandmother's garden is full of tomatoes every August.",
    ]
    vectors = embedder.encode(sentences, normalize_embeddings=True)
    assert vectors.shape == (3, 384)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    similar, unrelated = vectors[0] @ vectors[1], vectors[0] @ vectors[2]
    assert similar > 0.6 and unrelated < 0.2 and similar > unrelated + 0.4


def test_bundled_embedding_model_resolves_inside_its_wheel() -> None:
    ref = registry.embedding_model(get_settings(embedding_model="bundled"))
    assert ref.source == "bundled" and ref.is_local
    assert (Path(ref.name_or_path) / "config.json").is_file()


@pytest.mark.parametrize(
    ("setting", "field"),
    [("LLM_TWIN_EMBEDDING_MODEL", "embedding_model"), ("LLM_TWIN_BASE_MODEL", "base_model")],
)
def test_a_model_path_that_does_not_exist_names_the_setting(setting: str, field: str, tmp_path: Path) -> None:
    settings = get_settings(**{field: str(tmp_path / "missing-model")})
    resolver = registry.embedding_model if field == "embedding_model" else registry.base_model
    with pytest.raises(ConfigError, match=setting) as err:
        resolver(settings)
    assert "does not exist" in str(err.value)


def test_a_hub_id_is_passed_through_and_a_folder_is_used_as_is(tmp_path: Path) -> None:
    assert registry.resolve("HuggingFaceTB/SmolLM2-135M-Instruct", "X") == ModelRef(
        "HuggingFaceTB/SmolLM2-135M-Instruct", False, "hub"
    )
    assert registry.resolve(str(tmp_path), "X") == ModelRef(str(tmp_path), True, "path")


def test_an_embedding_model_of_another_dimension_is_refused(settings: TwinSettings) -> None:
    from llm_twin_assets.embeddings import load_embedder

    with pytest.raises(ConfigError, match="384-d.*holds 768-d"):
        load_embedder(settings.model_copy(update={"embedding_dim": 768}))


@pytest.mark.slow
def test_the_bundled_base_llm_generates_text_from_a_chat_prompt(settings: TwinSettings) -> None:
    lm = load_causal_lm(registry.base_model(settings))
    replies = generate(
        lm,
        [
            [{"role": "user", "content": "What is the capital of France? Answer in one word."}],
            [{"role": "user", "content": "Write one short sentence about rain."}],
        ],
        max_new_tokens=24,
    )
    assert len(replies) == 2
    assert "paris" in replies[0].lower()
    assert len(replies[1].split()) >= 3


def test_the_conversion_is_a_plain_trainable_safetensors_model(settings: TwinSettings) -> None:
    folder = registry.prepare_smollm2(settings.model_cache)
    config = json.loads((folder / "config.json").read_text())
    assert config["architectures"] == ["LlamaForCausalLM"]
    assert "quantization_config" not in config
    assert (folder / "model.safetensors").stat().st_size > 400e6  # fp32, 135M params
    lm = load_causal_lm(ModelRef(str(folder), True, "path"))
    assert all(p.requires_grad for p in lm.model.parameters())


def test_the_tiny_llama_shares_the_tokenizer_and_is_small(
    tiny_model_path: Path, settings: TwinSettings
) -> None:
    tiny = load_causal_lm(ModelRef(str(tiny_model_path), True, "path"))
    base_tok_dir = registry.converted_smollm2_dir(settings.model_cache)
    from transformers import AutoTokenizer

    base_tokenizer = AutoTokenizer.from_pretrained(base_tok_dir)
    text = "Hello, twin! <|im_start|>"
    assert tiny.tokenizer(text)["input_ids"] == base_tokenizer(text)["input_ids"]
    assert sum(p.numel() for p in tiny.model.parameters()) < 10_000_000
    assert len(generate(tiny, [[{"role": "user", "content": "hi"}]], max_new_tokens=4)) == 1


def _fake_cache(cache: Path, *, corrupt: bool) -> Path:
    folder = registry.converted_smollm2_dir(cache)
    folder.mkdir(parents=True)
    (folder / "model.safetensors").write_bytes(b"x" * (10 if corrupt else 100))
    key = registry._smollm2_key(registry.smollm2_gguf())
    (folder / "llm_twin_conversion.json").write_text(
        json.dumps({"key": key, "files": {"model.safetensors": 100}})
    )
    return folder


def test_a_valid_cached_conversion_is_reused(tmp_path: Path) -> None:
    folder = _fake_cache(tmp_path, corrupt=False)
    assert registry.prepare_smollm2(tmp_path) == folder  # returned without converting again


def test_a_corrupt_cached_conversion_gets_a_clear_error_with_the_fix(tmp_path: Path) -> None:
    _fake_cache(tmp_path, corrupt=True)
    with pytest.raises(ModelError, match="LLM_TWIN_MODEL_CACHE") as err:
        registry.prepare_smollm2(tmp_path)
    assert "llm-twin models prepare --force" in str(err.value)


def test_an_unwritable_model_cache_names_the_setting(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(ConfigError, match="LLM_TWIN_MODEL_CACHE"):
        registry.prepare_smollm2(blocker / "cache")


@pytest.mark.slow
def test_two_processes_preparing_at_once_convert_once(tmp_path: Path) -> None:
    code = (
        "import sys, time; from pathlib import Path; from llm_twin_assets.models import registry;"
        "print(registry.prepare_smollm2(Path(sys.argv[1])))"
    )
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code, str(tmp_path)],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        for _ in range(2)
    ]
    outputs = [p.communicate(timeout=600)[0].strip() for p in procs]
    assert [p.returncode for p in procs] == [0, 0]
    assert outputs[0] == outputs[1] == str(registry.converted_smollm2_dir(tmp_path))
    leftovers = [p.name for p in tmp_path.iterdir() if p.name.startswith(".convert-")]
    assert leftovers == []
    assert registry._check_cached(Path(outputs[0]), registry._smollm2_key(registry.smollm2_gguf()))
