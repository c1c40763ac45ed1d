"""Building an evaluation job: the twin to evaluate, its held-out examples, their retrieved context,
and the production retrieval's quality on them.

The twin is the latest DPO adapter on the SFT version it was trained on; the examples are the test split
of the instruct dataset version that SFT adapter was trained on (split by document, so none of its text
was trained on). Each example's context comes from the one retrieval function, minus the example's own
document: the answer is never handed to the model it is asked of.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from llm_twin_assets.artifacts import ArtifactStore
from llm_twin_assets.evaluation import EvaluationError
from llm_twin_assets.evaluation.job import EvalJob, Example, JudgeSettings

Search = Callable[[str, str, int], Sequence[Any]]
"""(query, author, k) -> hits with ``document_id``, ``chunk_id`` and ``text`` (``retrieval.search``)."""

RANKED = 10


@dataclass(frozen=True)
class JobOptions:
    max_examples: int | None = None
    """Evaluate on at most this many held-out examples (the first by id); None = all."""
    max_new_tokens: int = 128
    batch_size: int = 8
    rag_k: int = 3
    """Passages of the author's writing given with the instruction in the ``+rag`` variants."""
    seed: int = 0
    judge: JudgeSettings | None = None


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
    test = read_splits(store, dataset).get("test")
    if test is None or test.height == 0:
        raise EvaluationError(
            f"instruct dataset {instruct_version} of {author!r} (the one sft adapter {twin.sft.version} was "
            "trained on) has no test split: rebuild it with test_ratio > 0 (documents held out for evaluation)"
        )
    rows = test.sort("id").to_dicts()[: options.max_examples]
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
        batch_size=options.batch_size,
        seed=options.seed,
        device=device,
        threads=threads,
        judge=options.judge,
    )
    key = job.key()
    return replace(job, evaluation_id=key, output_dir=f"{work_root}/{author}/{key}"), retrieval_quality(ranks)
