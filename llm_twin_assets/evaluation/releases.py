"""What may be served: a twin is released only from an evaluation whose gate passed, and whatever serves
an author (``llm-twin generate``, the service) serves that author's current release and nothing else."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llm_twin_assets.artifacts import ArtifactStore
from llm_twin_assets.evaluation import EvaluationError
from llm_twin_assets.store import evaluations, releases
from llm_twin_assets.store.database import Database
from llm_twin_assets.store.releases import Release
from llm_twin_assets.training.adapters import (
    Twin,
    adapter_folder,
    check_lineage,
    exists,
    get_adapter,
    latest_adapter,
    verify_twin_files,
)


def release_latest(database: Database, store: ArtifactStore, author: str) -> tuple[Release, bool]:
    """Release the author's latest twin, if its latest evaluation passed the gate; returns the release and
    whether it is new (the same twin released before is made current again under its number)."""
    dpo = latest_adapter(store, author, "dpo")
    with database.connect() as conn:
        evaluation = evaluations.latest(conn, author, dpo.version)
        if evaluation is None:
            raise EvaluationError(
                f"{author!r}'s twin (dpo {dpo.version}) has not been evaluated: materialize twin_evaluation "
                "first; nothing released"
            )
        if not evaluation.gate_passed:
            reasons = "; ".join(evaluation.gate.get("reasons", [])) or "see the evaluation"
            raise EvaluationError(
                f"the quality gate did not pass for {author!r}'s twin (evaluation {evaluation.id}): {reasons}; "
                "nothing released"
            )
        _require_adapters(store, author, evaluation.sft_version, evaluation.dpo_version)
        verify_twin_files(store, author, evaluation.sft_version, evaluation.dpo_version)
        return releases.record(conn, evaluation)


def rollback(database: Database, store: ArtifactStore, author: str, version: str) -> Release:
    """Serve ``version`` of the author again: a release number, or the DPO adapter version it released."""
    with database.connect() as conn:
        known = releases.all_releases(conn, author)
        chosen = next((r for r in known if str(r.release) == version or r.dpo_version == version), None)
        if chosen is None:
            listed = ", ".join(f"{r.release} (dpo {r.dpo_version})" for r in known) or "none"
            raise EvaluationError(f"{author!r} has no release {version!r}; its releases: {listed}")
        _require_adapters(store, author, chosen.sft_version, chosen.dpo_version)
        # Every file the release needs, weights included, against its checksum: before anything changes.
        verify_twin_files(store, author, chosen.sft_version, chosen.dpo_version)
        return releases.rollback(conn, author, chosen.release)


def serving(database: Database, store: ArtifactStore, author: str) -> tuple[Release, Twin]:
    """The author's current release and its adapters (checked to belong together)."""
    with database.connect() as conn:
        current = releases.current(conn, author)
    if current is None:
        raise EvaluationError(
            f"{author!r} has no released twin: materialize twin_evaluation and twin_release (the quality gate "
            "must pass), or roll back to an earlier release"
        )
    _require_adapters(store, author, current.sft_version, current.dpo_version)
    sft = get_adapter(store, author, "sft", current.sft_version)
    dpo = get_adapter(store, author, "dpo", current.dpo_version)
    check_lineage(sft, dpo)
    return current, Twin(sft, dpo)


@dataclass(frozen=True)
class ReleasedTwin:
    """An author's current release with its adapters on local disk, ready to load and generate with."""

    release: Release
    sft: Path
    dpo: Path

    @property
    def decoding(self) -> Any:
        """The decoding rules the release's evaluation generated with (``decoding_rules.Decoding``)."""
        from llm_twin_assets.decoding_rules import Decoding

        return Decoding.from_dict(self.release.decoding)

    def load(self) -> Any:
        """The twin: its base model with the SFT and DPO adapters applied (``llm.LoadedLM``)."""
        from llm_twin_assets.training.twin import load_twin

        return load_twin(self.sft, self.dpo)

    def load_base(self) -> Any:
        """The base model the twin was trained from, to compare with (``llm.LoadedLM``)."""
        from llm_twin_assets.llm import load_causal_lm
        from llm_twin_assets.models.registry import ModelRef
        from llm_twin_assets.training.twin import trained_base

        return load_causal_lm(ModelRef(str(trained_base(self.sft)), True, "path"))


def released_twin(database: Database, store: ArtifactStore, author: str, cache: Path) -> ReleasedTwin:
    """The author's current release, its adapters fetched (checked) into ``cache``: what ``llm-twin
    generate`` answers with."""
    release, twin = serving(database, store, author)
    assert twin.dpo is not None  # a release names both adapters
    return ReleasedTwin(
        release, adapter_folder(store, twin.sft, cache), adapter_folder(store, twin.dpo, cache)
    )


def _require_adapters(store: ArtifactStore, author: str, sft: str, dpo: str) -> None:
    missing = [f"{s} {v}" for s, v in (("sft", sft), ("dpo", dpo)) if not exists(store, author, s, v)]
    if missing:
        raise EvaluationError(
            f"{author!r}'s {' and '.join(missing)} adapter(s) are no longer in the artifact store: "
            "this twin cannot be served"
        )
