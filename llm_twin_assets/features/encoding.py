"""Encoding chunks into unit-norm 384-d vectors, fast.

Backends (``LLM_TWIN_EMBEDDING_BACKEND``):
- ``openvino`` (CPU): the model exported once with ``torch.onnx.export`` and compiled by OpenVINO
  (bf16 on CPUs with AMX, fp32 elsewhere); mean pooling and L2 normalisation in NumPy. The export is
  cached in the machine-wide model cache (``LLM_TWIN_MODEL_CACHE``), keyed by the model folder.
- ``torch``: sentence-transformers itself; on CUDA in fp16.
- ``auto``: ``torch`` on CUDA; on CPU ``openvino`` when it is installed, the CPU gives it bf16 (AMX or
  AVX512-BF16) and the export works; else ``torch``, with the reason logged (a clean fallback, never a
  failure). Without bf16, OpenVINO runs fp32 and is no faster than torch (figures: ``bench/README.md``).

Either way texts are sorted by length and batched (length bucketing: little padding; on the CPU's
torch path sentence-transformers does it over the whole input), and torch's thread count is set
deliberately.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from filelock import FileLock

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

log = logging.getLogger(__name__)
Backend = Literal["auto", "torch", "openvino"]


class Encoder:
    """``encode(texts) -> (n, dim) float32`` unit vectors, in the input order."""

    def __init__(
        self,
        model: SentenceTransformer,
        *,
        device: str = "cpu",
        backend: Backend = "auto",
        batch_size: int = 32,
        threads: int | None = None,
        cache_dir: Path | None = None,
        model_path: str | None = None,
    ) -> None:
        import torch

        self.model = model
        self.device = device
        self.batch_size = batch_size
        dimension = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
        self.dim = int(dimension() or 0)
        self.max_tokens = int(model.max_seq_length or 0)
        if threads:
            torch.set_num_threads(threads)
        self.threads = threads or torch.get_num_threads()
        self.backend = "torch"
        self._compiled: Any = None
        self._rust = _rust_tokenizer(model.tokenizer, self.max_tokens)
        self.tokenizer_digest: str | None = None
        """Token ids stored under this digest (the chunker's) are this encoder's own: reused as they are."""
        if self._rust is not None and _is_mean_pooled_normalised(model):
            from llm_twin_assets.features.tokens import tokenizer_digest

            self.tokenizer_digest = tokenizer_digest(model.tokenizer._tokenizer.to_str())
        self.fallback_reason: str | None = None
        if device.startswith("cuda"):
            if backend == "openvino":
                raise ValueError(
                    "the openvino backend runs on the CPU; set LLM_TWIN_DEVICE=cpu or backend torch"
                )
            self.model.half()
            self.backend = "torch-cuda-fp16"
            # Big sorted batches keep the GPU busy; tokenization stays on the CPU, once per chunk.
            self.batch_size = max(batch_size, 512)
        elif backend in ("auto", "openvino"):
            try:
                if backend == "auto" and not _openvino_runs_bf16():
                    raise RuntimeError(
                        "OpenVINO would run in fp32 on this CPU (no BF16 among its capabilities), "
                        "where it is no faster than torch"
                    )
                self._compiled = _openvino_model(model, cache_dir, model_path, self.threads)
                self.backend = "openvino"
            except Exception as exc:
                if backend == "openvino":
                    raise
                self.fallback_reason = f"{type(exc).__name__}: {exc}"
                log.info("OpenVINO not used (%s); encoding with torch", self.fallback_reason)

    def encode(
        self, texts: Sequence[str], token_ids: Sequence[np.ndarray | None] | None = None
    ) -> np.ndarray:
        """Unit vectors of ``texts``. ``token_ids[i]``, when given, is ``texts[i]`` as this encoder's
        tokenizer reads it, special tokens included (the chunker made them while it counted, stored
        under :attr:`tokenizer_digest`): such a text is not tokenized again."""
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        if token_ids is not None and len(token_ids) != len(texts):
            raise ValueError(f"{len(token_ids)} token id lists for {len(texts)} texts")
        reuse = token_ids is not None and any(ids is not None for ids in token_ids)
        if self.backend == "torch" and not reuse:  # sentence-transformers sorts by length itself
            vectors = self.model.encode(
                list(texts),
                batch_size=self.batch_size,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=False,
            )
            return np.asarray(vectors, dtype=np.float32)
        # Length bucketing (by word-pieces when known, else characters: a good proxy, and free): each
        # batch holds texts of similar length, so little compute goes to padding.
        ids = list(token_ids) if token_ids is not None else [None] * len(texts)
        lengths = [len(i) * 4 if i is not None else len(t) for t, i in zip(texts, ids, strict=True)]
        order = np.argsort(lengths, kind="stable")
        batches = [order[start : start + self.batch_size] for start in range(0, len(texts), self.batch_size)]

        def inputs(index: np.ndarray) -> dict[str, np.ndarray]:
            return self._inputs([texts[i] for i in index], [ids[i] for i in index])

        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        if self.backend.startswith("torch"):
            self._encode_torch_all(inputs, batches, out)
            return out
        for index in batches:
            out[index] = self._encode_openvino(inputs(index))
        return out

    def _inputs(self, batch: list[str], ids: list[np.ndarray | None]) -> dict[str, np.ndarray]:
        """The model's inputs for ``batch``: the given ids where they are usable, tokenized otherwise."""
        usable = [i is not None and 0 < len(i) <= self.max_tokens for i in ids]
        if not any(usable):
            return self._tokenize(batch)
        made = iter(self._token_ids([t for t, ok in zip(batch, usable, strict=True) if not ok]))
        rows = [np.asarray(i) if ok else next(made) for i, ok in zip(ids, usable, strict=True)]
        width = max(len(r) for r in rows)
        input_ids = np.full((len(rows), width), self.model.tokenizer.pad_token_id or 0, dtype=np.int64)
        mask = np.zeros((len(rows), width), dtype=np.int64)
        for j, row in enumerate(rows):  # right padding, as the tokenizer pads
            input_ids[j, : len(row)] = row
            mask[j, : len(row)] = 1
        arrays = {"input_ids": input_ids, "attention_mask": mask}
        if "token_type_ids" in self.model.tokenizer.model_input_names:
            arrays["token_type_ids"] = np.zeros_like(input_ids)
        return arrays

    def _token_ids(self, texts: list[str]) -> list[np.ndarray]:
        """Each text's ids, truncated as the model reads it, unpadded."""
        if not texts:
            return []
        encoded = self.model.tokenizer(texts, truncation=True, max_length=self.max_tokens)["input_ids"]
        return [np.asarray(e, dtype=np.int64) for e in encoded]

    def _tokenize(self, batch: list[str]) -> dict[str, np.ndarray]:
        """input_ids, attention_mask (and token_type_ids), padded to the batch's longest, int64.

        The Rust tokenizer's own batch encoding runs on all cores and skips the Python-side work of
        ``tokenizer(...)``: about twice as fast, same ids (checked in the tests).
        """
        if self._rust is None:
            encoded = self.model.tokenizer(
                batch, padding=True, truncation=True, max_length=self.max_tokens, return_tensors="np"
            )
            return {k: np.asarray(v, dtype=np.int64) for k, v in encoded.items()}
        encode = getattr(self._rust, "encode_batch_fast", self._rust.encode_batch)
        encodings = encode(batch, add_special_tokens=True)
        arrays = {
            "input_ids": np.array([e.ids for e in encodings], dtype=np.int64),
            "attention_mask": np.array([e.attention_mask for e in encodings], dtype=np.int64),
        }
        if "token_type_ids" in self.model.tokenizer.model_input_names:
            arrays["token_type_ids"] = np.array([e.type_ids for e in encodings], dtype=np.int64)
        return arrays

    def _encode_openvino(self, inputs: dict[str, np.ndarray]) -> np.ndarray:
        hidden = self._compiled(inputs)[0]
        mask = inputs["attention_mask"][..., None].astype(np.float32)
        pooled = (hidden * mask).sum(axis=1) / np.clip(mask.sum(axis=1), 1e-9, None)
        return (pooled / np.clip(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12, None)).astype(
            np.float32
        )

    def _encode_torch_all(
        self,
        inputs: Callable[[np.ndarray], dict[str, np.ndarray]],
        batches: list[np.ndarray],
        out: np.ndarray,
    ) -> None:
        """The transformer, mean pooling and normalisation (what sentence-transformers does for this
        model) on ready inputs; on CUDA in fp16, the next batch's inputs made on a CPU thread while
        this one runs."""
        from concurrent.futures import ThreadPoolExecutor

        import torch

        cuda = self.device.startswith("cuda")

        def prepare(index: np.ndarray) -> dict[str, Any]:
            tensors = {name: torch.from_numpy(array) for name, array in inputs(index).items()}
            return {k: v.pin_memory() for k, v in tensors.items()} if cuda else tensors

        results = []
        transformer: Any = self.model[0].auto_model
        with ThreadPoolExecutor(max_workers=1) as pool, torch.inference_mode():
            pending = pool.submit(prepare, batches[0])
            for i in range(len(batches)):
                encoded = {k: v.to(self.device, non_blocking=True) for k, v in pending.result().items()}
                if i + 1 < len(batches):
                    pending = pool.submit(prepare, batches[i + 1])
                hidden = transformer(**encoded).last_hidden_state
                mask = encoded["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
                results.append(torch.nn.functional.normalize(pooled.float(), dim=1))
        vectors = torch.cat(results).cpu().numpy()  # one transfer back at the end
        out[np.concatenate(batches)] = vectors


def _rust_tokenizer(tokenizer: Any, max_tokens: int) -> Any:
    """A private copy of the fast tokenizer with truncation and padding built in (None if not fast)."""
    rust = getattr(tokenizer, "_tokenizer", None)
    if rust is None or tokenizer.pad_token_id is None:
        return None
    from tokenizers import Tokenizer

    copy = Tokenizer.from_str(rust.to_str())
    copy.enable_truncation(max_length=max_tokens)
    copy.enable_padding(pad_id=tokenizer.pad_token_id, pad_token=tokenizer.pad_token)
    return copy


def _is_mean_pooled_normalised(model: SentenceTransformer) -> bool:
    names = [type(module).__name__ for module in model]
    pooling = model[1] if len(model) > 1 else None
    mode = getattr(pooling, "pooling_mode_mean_tokens", None)
    if mode is None:
        mode = getattr(pooling, "pooling_mode", None) == "mean"
    return names[:1] == ["Transformer"] and bool(mode) and "Normalize" in names


def _openvino_runs_bf16() -> bool:
    import openvino as ov

    return "BF16" in ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")


def _openvino_model(
    model: SentenceTransformer, cache_dir: Path | None, model_path: str | None, threads: int
) -> Any:
    import openvino as ov

    if not _is_mean_pooled_normalised(model):
        raise ValueError("the OpenVINO path supports mean-pooled, normalised models only")
    if cache_dir is None or model_path is None:
        raise ValueError("no model cache or model path to keep the export in")
    key = hashlib.sha256(
        json.dumps({"model": str(Path(model_path).resolve()), "ov": ov.__version__, "format": 1}).encode()
    ).hexdigest()[:16]
    folder = cache_dir / f"openvino-{Path(model_path).name}-{key}"
    xml = folder / "model.xml"
    if not xml.is_file():
        cache_dir.mkdir(parents=True, exist_ok=True)
        with FileLock(str(cache_dir / ".openvino.lock"), timeout=600):
            if not xml.is_file():
                _export(model, ov, folder)
    core = ov.Core()
    return core.compile_model(core.read_model(xml), "CPU", {"INFERENCE_NUM_THREADS": threads})


def _export(model: SentenceTransformer, ov: Any, folder: Path) -> None:
    import torch
    from transformers import AutoModel

    source: Any = model[0].auto_model
    eager = AutoModel.from_config(source.config, attn_implementation="eager")
    eager.load_state_dict(source.state_dict())
    eager.eval()
    staging = Path(tempfile.mkdtemp(prefix=".ov-", dir=folder.parent))
    try:
        sample = model.tokenizer(["an example sentence", "another"], padding=True, return_tensors="pt")
        names = [n for n in ("input_ids", "attention_mask", "token_type_ids") if n in sample]
        axes = {n: {0: "batch", 1: "sequence"} for n in names}
        axes["last_hidden_state"] = {0: "batch", 1: "sequence"}

        class Wrapped(torch.nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.inner = eager

            def forward(self, *args: torch.Tensor) -> torch.Tensor:
                return self.inner(**dict(zip(names, args, strict=True))).last_hidden_state

        onnx_path = staging / "model.onnx"
        with torch.no_grad():
            torch.onnx.export(
                Wrapped(),
                tuple(sample[n] for n in names),
                str(onnx_path),
                input_names=names,
                output_names=["last_hidden_state"],
                dynamic_axes=axes,
                opset_version=17,
                dynamo=False,
            )
        ov.save_model(ov.convert_model(str(onnx_path)), str(staging / "model.xml"))
        onnx_path.unlink()
        if folder.exists():
            shutil.rmtree(folder)
        staging.rename(folder)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
