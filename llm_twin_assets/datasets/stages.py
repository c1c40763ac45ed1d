"""The dataset stages as one call each: an author's instruct dataset from their cleaned documents, and
their preference dataset from the latest instruct version. Teacher replies go through the shared reply
cache (PostgreSQL), so a re-run asks only what it has not asked before. The assets map config to options
and a :class:`Stage` to their metadata; publishing and checks are theirs (``defs/datasets``)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from llm_twin_assets.datasets.building import (
    Built,
    InstructOptions,
    PreferenceOptions,
    build_instruct,
    build_preference,
)
from llm_twin_assets.datasets.passages import passages_of_all
from llm_twin_assets.datasets.prompts import PROMPT_VERSION
from llm_twin_assets.datasets.teachers import CachedTeacher, LocalTeacher, Teacher
from llm_twin_assets.store.documents import author_name, cleaned_documents_of
from llm_twin_assets.store.teacher_cache import PostgresReplyCache

if TYPE_CHECKING:
    import polars as pl

    from llm_twin_assets.store.database import Database

Log = Callable[[str], None]


@dataclass(frozen=True)
class Stage:
    built: Built
    teacher: str
    """The teacher's label (for preferences: the base model that wrote the rejected answers)."""
    asked: int
    reused: int
    """Teacher calls made now, and replies reused from the cache."""
    facts: dict[str, Any]
    """What else the stage counted (passages, documents, rows of the general mix)."""


def instruct_stage(
    database: Database,
    author: str,
    teacher: Teacher,
    options: InstructOptions,
    *,
    general: pl.DataFrame | None = None,
    log: Log = lambda _: None,
    progress: Callable[[int, int], None] | None = None,
) -> Stage:
    """The author's instruct dataset: their cleaned documents cut into passages, an instruction for each
    from ``teacher`` (``general``: general examples mixed into the training split)."""
    with database.connect() as conn:
        documents = cleaned_documents_of(conn, author)
        name = author_name(conn, author)
    passages, short = passages_of_all(documents, options.passages)
    writer = CachedTeacher(teacher, PostgresReplyCache(database), PROMPT_VERSION)
    log(
        f"{len(passages)} passages from {len(documents)} documents; teacher {writer.label}, style {options.style}"
    )
    with contextlib.closing(writer):
        built = build_instruct(author, name, passages, writer, options, general=general, progress=progress)
    facts = {
        "passages": len(passages),
        "passages_too_short": short,
        "general_rows": general.height if general is not None else 0,
        "corpus_passages": built.corpus.height if built.corpus is not None else 0,
    }
    return Stage(built, writer.label, writer.asked, writer.reused, facts)


def preference_stage(
    database: Database,
    instruct: dict[str, pl.DataFrame],
    lm: Any,
    label: str,
    batch_size: int,
    options: PreferenceOptions,
    *,
    progress: Callable[[int, int], None] | None = None,
) -> Stage:
    """Preference pairs from the instruct splits: chosen = the author's passage, rejected = the base
    model's (``lm``, a ``llm.LoadedLM``) own answer."""
    base = CachedTeacher(LocalTeacher(lm, label, batch_size), PostgresReplyCache(database), PROMPT_VERSION)

    def count_tokens(texts: list[str]) -> list[int]:
        return [len(ids) for ids in lm.tokenizer(texts, add_special_tokens=False)["input_ids"]]

    built = build_preference(instruct, base, options, progress=progress, count_tokens=count_tokens)
    return Stage(built, base.label, base.asked, base.reused, {})
