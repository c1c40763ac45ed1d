"""Building an evaluation job: the twin to evaluate, its held-out examples, their retrieved context,
and the production retrieval's quality on them.

The twin is the latest DPO adapter on the SFT version it was trained on; the examples are the test split
of the instruct dataset version that SFT adapter was trained on (split by document, so none of its text
was trained on). Each example's context comes from the one retrieval function, minus the example's own
document: the answer is never handed to the model it is asked of.

How many examples: every one in the test split, i.e. every passage of the held-out documents that got
an instruction (one instruction per passage), unless ``max_examples`` caps them. At least
:data:`~llm_twin_assets.evaluation.job.MIN_EXAMPLES` (10) are wanted: with fewer, a 95% bootstrap
interval is too wide (and itself unreliable) to tell a twin from its base. The test split cannot be
widened here without training on less (the twin was trained on every other document), so an author
short of 10 is told so by name, with the ``test_ratio`` that would reach 10 (:func:`held_out_note`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from llm_twin_assets.artifacts import ArtifactStore
from llm_twin_assets.evaluation import EvaluationError
from llm_twin_assets.evaluation.job import MIN_EXAMPLES, EvalJob, Example, JudgeSettings, Writing

Search = Callable[[str, str, int], Sequence[Any]]
"""(query, author, k) -> hits with ``document_id``, ``chunk_id`` and ``text`` (``retrieval.search``)."""

RANKED = 10


@dataclass(frozen=True)
class JobOptions:
    max_examples: int | None = None
    """Evaluate on at most this many held-out examples (the first by id); None = all."""
    max_new_tokens: int | None = None
    """A fixed generation budget; None: ``budget_factor`` x the author's p90 answer length in tokens,
    within [``budget_min_tokens``, ``budget_max_tokens``]."""
    budget_factor: float = 2.0
    budget_min_tokens: int = 32
    budget_max_tokens: int = 512
    batch_size: int = 8
    rag_k: int = 3
    """Passages of the author's writing given with the instruction in the ``+rag`` variants."""
    seed: int = 0
    resamples: int = 1000
    min_examples: int = MIN_EXAMPLES
    judge: JudgeSettings | None = None
    decoding: dict[str, Any] = field(default_factory=dict)
    """The configured anti-loop rules (``decoding_rules.Decoding``): the first candidate of the choice."""
    choose_decoding: bool = True
    """Choose the rules on the validation documents (``evaluation.decoding_choice``)."""
    max_repeat_excess: float = 0.05
    min_finished: float = 0.7


def held_out_note(examples: int, test_documents: int, documents: int, needed: int = MIN_EXAMPLES) -> str:
    """Why there are this many held-out examples, and (when short of ``needed``) what would give more."""
    have = f"{examples} held-out examples from {test_documents} test documents of {documents}"
    if examples >= needed:
        return f"{have} (every passage of the test documents; at least {needed} wanted)"
    per_document = examples / max(test_documents, 1)
    wanted_documents = math.ceil(needed / per_document) if per_document else documents
    if per_document and wanted_documents < documents:
        fix = (
            f"rebuild instruct_dataset with test_ratio {math.ceil(100 * wanted_documents / documents) / 100:.2f}"
            f" (about {wanted_documents} test documents) or without max_passages, then retrain"
        )
    else:
        fix = "the author's text cannot give that many while keeping documents to train on: add more writing"
    return f"only {have}: at least {needed} are needed for intervals that can decide; {fix}"


def retrieval_quality(ranks: Sequence[int | None]) -> dict[str, float]:
    """hit@1, hit@5 and MRR (over the top 10) from each query's rank of its source document (None:
    not in the top 10)."""
    if not ranks:
        raise ValueError("no queries")
    n = len(ranks)
    return {
        "hit@1": sum(1 for r in ranks if r == 1) / n,
        "hit@5": sum(1 for r in ranks if r is not None and r <= 5) / n,
        "mrr": sum(1 / r for r in ranks if r is not None) / n,
    }


def validation_examples(twin: Any, splits: dict[str, Any]) -> tuple[list[Example], int]:
    """The author's training-split examples from the documents the twin's training held out for
    validation (SFT's, and DPO's too when it recorded any: held out of both stages), and how many
    documents they come from. Never the test split. None when the training held none out."""

    def held(adapter: Any) -> set[str] | None:
        validation = (adapter.manifest.get("metrics") or {}).get("validation") or {}
        documents = validation.get("documents")
        return {str(d) for d in documents} if documents else None

    documents = held(twin.sft)
    if not documents or "train" not in splits:
        return [], 0
    dpo = held(twin.dpo) if twin.dpo is not None else None
    if dpo and documents & dpo:
        documents &= dpo
    train = splits["train"]
    if "source" in train.columns:
        train = train.filter(train["source"] == "author")
    rows = [r for r in train.sort("id").to_dicts() if str(r["document_id"]) in documents]
    examples = [
        Example(id=r["id"], document_id=r["document_id"], instruction=r["instruction"], answer=r["answer"])
        for r in rows
    ]
    return examples, len({e.document_id for e in examples})


def _test_examples(
    search: Search, author: str, rows: list[dict[str, Any]], options: JobOptions
) -> tuple[list[Example], list[int | None]]:
    """The test rows as examples, each with its retrieved context (passages of its own document left
    out: the answer is not handed over), and the rank at which search found its own document."""
    examples, ranks = [], []
    for row in rows:
        hits = list(search(row["instruction"], author, RANKED))
        ranks.append(next((i for i, h in enumerate(hits, 1) if h.document_id == row["document_id"]), None))
        context = [h for h in hits if h.document_id != row["document_id"]][: options.rag_k]
        examples.append(
            Example(
                id=row["id"],
                document_id=row["document_id"],
                instruction=row["instruction"],
                answer=row["answer"],
                context=[h.text for h in context],
                context_ids=[h.chunk_id for h in context],
            )
        )
    return examples, ranks


def build_job(
    store: ArtifactStore,
    search: Search,
    author: str,
    *,
    artifacts_url: str,
    work_root: str,
    embedding_model: str,
    options: JobOptions,
    device: str = "auto",
    threads: int | None = None,
    dpo_version: str | None = None,
    other_writers: Sequence[Writing] = (),
) -> tuple[EvalJob, dict[str, float]]:
    """The job (with its id; its work folder ``<work_root>/<author>/<id>``) and the retrieval quality
    measured on its examples. The twin is the latest DPO adapter, or ``dpo_version``, on its SFT parent."""
    from llm_twin_assets.datasets.versions import get_version, read_splits
    from llm_twin_assets.training.adapters import resolve_twin

    twin = resolve_twin(store, author, dpo_version=dpo_version)
    assert twin.dpo is not None
    instruct_version = str(twin.sft.manifest.get("dataset_version", ""))
    preference_version = str(twin.dpo.manifest.get("dataset_version", ""))
    dataset = get_version(store, author, "instruct", instruct_version)
    splits = read_splits(store, dataset)
    test = splits.get("test")
    if test is None or test.height == 0:
        raise EvaluationError(
            f"instruct dataset {instruct_version} of {author!r} (the one sft adapter {twin.sft.version} was "
            "trained on) has no test split: rebuild it with test_ratio > 0 (documents held out for evaluation)"
        )
    authored = [f.filter(f["source"] == "author") if "source" in f.columns else f for f in splits.values()]
    documents = len({d for f in authored for d in f["document_id"]})
    examples, ranks = _test_examples(
        search, author, test.sort("id").to_dicts()[: options.max_examples], options
    )
    validation, validation_documents = validation_examples(twin, splits)
    job = EvalJob(
        author=author,
        artifacts_url=artifacts_url,
        output_dir="",
        sft_version=twin.sft.version,
        dpo_version=twin.dpo.version,
        base_model=str(twin.sft.manifest.get("base_model", "")),
        instruct_version=instruct_version,
        preference_version=preference_version,
        embedding_model=embedding_model,
        examples=examples,
        max_new_tokens=options.max_new_tokens,
        budget_factor=options.budget_factor,
        budget_min_tokens=options.budget_min_tokens,
        budget_max_tokens=options.budget_max_tokens,
        batch_size=options.batch_size,
        seed=options.seed,
        resamples=options.resamples,
        documents=documents,
        min_examples=options.min_examples,
        other_writers=list(other_writers),
        device=device,
        threads=threads,
        judge=options.judge,
        decoding=dict(options.decoding),
        choose_decoding=options.choose_decoding,
        validation_examples=validation if options.choose_decoding else [],
        validation_documents=validation_documents if options.choose_decoding else 0,
        max_repeat_excess=options.max_repeat_excess,
        min_finished=options.min_finished,
    )
    key = job.key()
    return replace(job, evaluation_id=key, output_dir=f"{work_root}/{author}/{key}"), retrieval_quality(ranks)
