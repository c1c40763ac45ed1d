"""An evaluation job: which twin, on which held-out examples (with their retrieved context), how.

The job is complete in itself (a remote GPU task needs no database): the asset retrieves each test
example's context before launching it. Its id hashes everything that decides the results: the model
versions, the examples and their contexts, the generation settings, :data:`METRICS_VERSION` and the
prompts' format (``prompting.PROMPT_VERSION``); the same id is never evaluated twice.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from llm_twin_assets.evaluation import EvaluationError
from llm_twin_assets.evaluation.metrics import METRICS_VERSION
from llm_twin_assets.prompting import PROMPT_VERSION

MIN_EXAMPLES = 10
"""Held-out examples an evaluation should have: below 10, a 95% bootstrap interval is itself unreliable
and too wide to separate a twin from its base; the evaluation says so by name (and the gate fails)."""

MODELS = ("base", "sft", "twin")
VARIANTS = ("plain", "rag")


@dataclass(frozen=True)
class Example:
    id: str
    document_id: str
    instruction: str
    answer: str
    """The author's real answer (held out: no training example comes from its document)."""
    context: list[str] = field(default_factory=list)
    """The author's retrieved passages for the instruction, from other documents than this one."""
    context_ids: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Writing:
    """A passage by another writer than the author (for likeness against other writers)."""

    source: str
    """Who wrote it: another author's slug in the store."""
    group: str
    """Its document (cross-validation keeps a document's passages together)."""
    text: str


@dataclass(frozen=True)
class JudgeSettings:
    """An optional LLM judge through the teacher backends (local model or OpenAI-compatible endpoint)."""

    backend: str = "openai"
    model: str = ""
    base_url: str | None = None
    api_key_env: str | None = None
    max_new_tokens: int = 96


@dataclass(frozen=True)
class EvalJob:
    author: str
    artifacts_url: str
    output_dir: str
    sft_version: str
    dpo_version: str
    base_model: str
    """How the adapters' manifests name their base model (the models are loaded from the adapters)."""
    instruct_version: str
    preference_version: str
    embedding_model: str
    """The embedding model for content similarity, as settings name it ('bundled', a path, a hub id)."""
    examples: list[Example]
    max_new_tokens: int | None = None
    """A fixed generation budget; None: derived from the author's answers (``budget_*``)."""
    budget_factor: float = 2.0
    """The budget is this many times the author's 90th-percentile held-out answer length, in tokens ..."""
    budget_min_tokens: int = 32
    budget_max_tokens: int = 512
    """... bounded to [``budget_min_tokens``, ``budget_max_tokens``]."""
    batch_size: int = 8
    seed: int = 0
    resamples: int = 1000
    """Bootstrap resamples of the examples for each metric's 95% interval."""
    documents: int = 0
    """The author's documents in the instruct dataset (train and test): how many examples could be had."""
    min_examples: int = MIN_EXAMPLES
    other_writers: list[Writing] = field(default_factory=list)
    """Passages by other authors in the store: what likeness against other writers is measured on
    (with a reference text that ships with Python)."""
    decoding: dict[str, Any] = field(default_factory=dict)
    """The configured anti-loop rules (``decoding_rules.Decoding``): the first candidate when the rules are
    chosen on validation, else what every model generates with. What was used is stored with the
    evaluation (results ``decoding``), so the release it passes is served with exactly that."""
    choose_decoding: bool = True
    """Choose the rules on ``validation_examples`` (``evaluation.decoding_choice``) before the test split."""
    validation_examples: list[Example] = field(default_factory=list)
    """The author's examples from the documents the twin's training held out for validation (never the
    test split's): what decoding is chosen on."""
    validation_documents: int = 0
    max_repeat_excess: float = 0.05
    """The choice's loop rule: repeated word 4-gram share at most the author's + this (the gate's margin)."""
    min_finished: float = 0.7
    """The choice's budget rule: at least this share of answers end on their own (the gate's margin)."""
    device: str = "auto"
    threads: int | None = None
    judge: JudgeSettings | None = None
    evaluation_id: str = ""
    stage: str = "evaluation"

    @property
    def module(self) -> str:
        return "llm_twin_assets.evaluation.run"

    @property
    def log_name(self) -> str:
        return "evaluate.log"

    @property
    def label(self) -> str:
        return f"evaluation {self.evaluation_id}"

    def key(self) -> str:
        """The id: what decides the results, hashed (paths and devices are not part of it)."""
        data = asdict(self)
        for name in ("artifacts_url", "output_dir", "device", "threads", "evaluation_id", "stage"):
            data.pop(name)
        if not (self.choose_decoding and self.validation_examples):  # the choice's rule decides nothing
            for name in ("max_repeat_excess", "min_finished"):
                data.pop(name)
        else:  # the candidates tried decide what is chosen: a new grid measures again
            from llm_twin_assets.evaluation.decoding_choice import candidates

            data["decoding_candidates"] = candidates(self.decoding)
        data["metrics_version"] = METRICS_VERSION
        data["prompt_version"] = PROMPT_VERSION  # the prompts decide the answers
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_file(self, path: Path) -> None:
        path.write_text(yaml.safe_dump(self.to_dict(), sort_keys=False, allow_unicode=True))

    def remote(self) -> dict[str, Any]:
        """The job as a remote task gets it: its work folder on the task's own disk."""
        return {**self.to_dict(), "output_dir": f"llm-twin-evaluation/{self.evaluation_id}"}


def job_from_dict(data: Any, source: str) -> EvalJob:
    if not isinstance(data, dict):
        raise EvaluationError(f"{source}: expected a mapping")
    known = {f.name for f in fields(EvalJob)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise EvaluationError(f"{source}: unknown keys {unknown}")
    data = dict(data)
    try:
        data["examples"] = [Example(**e) for e in data.get("examples") or []]
        data["validation_examples"] = [Example(**e) for e in data.get("validation_examples") or []]
        data["other_writers"] = [Writing(**w) for w in data.get("other_writers") or []]
        if data.get("judge"):
            data["judge"] = JudgeSettings(**data["judge"])
        job = EvalJob(**data)
    except TypeError as exc:
        raise EvaluationError(f"{source}: {exc}") from None
    if not job.examples:
        raise EvaluationError(f"{source}: no test examples to evaluate on")
    return job


def load_job(path: Path) -> EvalJob:
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise EvaluationError(f"--config {path}: {exc}") from None
    return job_from_dict(data, f"--config {path}")
