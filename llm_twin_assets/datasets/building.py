"""Building the two datasets as polars frames. The author's text is always the target, verbatim.

- instruct: a teacher writes the instruction each passage answers ("instruction back-generation").
- preference: for each instruction, chosen = the author's passage, rejected = the base model's answer.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from llm_twin_assets.datasets.filters import (
    InstructionRules,
    NearDuplicates,
    clean_answer,
    clean_instruction,
    clean_topic,
    instruction_problem,
    rejected_problem,
    tally,
    topic_problem,
)
from llm_twin_assets.datasets.passages import Passage, PassageOptions, spread
from llm_twin_assets.datasets.prompts import (
    TOPIC,
    Message,
    answer_prompt,
    frame_instruction,
    instruction_prompt,
)
from llm_twin_assets.datasets.splits import split_documents
from llm_twin_assets.datasets.teachers import Progress, Teacher
from llm_twin_assets.errors import TwinError

INSTRUCT_SCHEMA = {
    "id": pl.String,
    "author": pl.String,
    "document_id": pl.String,
    "document_url": pl.String,
    "kind": pl.String,
    "source": pl.String,  # 'author', or 'general' for the optional mix
    "instruction": pl.String,
    "answer": pl.String,
}
CORPUS_SCHEMA = {
    "id": pl.String,
    "document_id": pl.String,
    "kind": pl.String,
    "text": pl.String,
}
"""The author's own text for continued pre-training: every passage of every document outside the test split
(passages the teacher gave no usable instruction included), one row each."""
PREFERENCE_SCHEMA = {
    "id": pl.String,
    "author": pl.String,
    "document_id": pl.String,
    "document_url": pl.String,
    "kind": pl.String,
    "prompt": pl.String,
    "chosen": pl.String,
    "rejected": pl.String,
}


class NotEnoughText(TwinError):
    pass


def row_id(*parts: str) -> str:
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:24]


@dataclass(frozen=True)
class InstructOptions:
    passages: PassageOptions = field(default_factory=PassageOptions)
    rules: InstructionRules = field(default_factory=InstructionRules)
    style: str = "instruction"
    """'instruction': the teacher writes the instruction; 'topic': it names the topic, and the instruction
    is framed from it (for small teachers that cannot write instructions)."""
    max_new_tokens: int = 64
    max_passages: int | None = None
    """Use at most this many passages (spread over documents); ``None`` = all."""
    min_examples: int = 10
    test_ratio: float = 0.1
    seed: int = 42


@dataclass
class Built:
    splits: dict[str, pl.DataFrame]
    dropped: dict[str, int]
    considered: int
    stats: dict[str, float] = field(default_factory=dict)
    corpus: pl.DataFrame | None = None


def require_enough(author: str, passages: list[Passage], needed: int, options: PassageOptions) -> None:
    """Fail before any generation when the author's text cannot give ``needed`` examples."""
    if len(passages) >= needed:
        return
    have_words = sum(p.words for p in passages)
    more = (needed - len(passages)) * options.window_words
    raise NotEnoughText(
        f"author {author!r} has {len(passages)} usable passages ({have_words:,} words from "
        f"{len({p.document_id for p in passages})} documents); at least {needed} are needed: about "
        f"{more:,} more words of their writing (add links to their links file), or lower min_examples"
    )


def build_instruct(
    author: str,
    author_name: str,
    passages: list[Passage],
    teacher: Teacher,
    options: InstructOptions,
    *,
    general: pl.DataFrame | None = None,
    progress: Progress | None = None,
) -> Built:
    require_enough(author, passages, options.min_examples, options.passages)
    chosen = spread(passages, options.max_passages)
    if options.style not in ("instruction", "topic"):
        raise ValueError(f"style must be 'instruction' or 'topic', got {options.style!r}")
    prompts = [_prompt(p, author_name, options) for p in chosen]
    replies = teacher.complete(prompts, max_new_tokens=options.max_new_tokens, progress=progress)
    seen = NearDuplicates(options.rules.max_similarity)
    reasons: list[str] = []
    rows = []
    for passage, reply in zip(chosen, replies, strict=True):
        instruction, problem = _instruction(passage, reply.text, reply.finished, options, seen)
        if problem:
            reasons.append(problem)
            continue
        rows.append(
            {
                "id": row_id(passage.document_id, instruction, passage.text),
                "author": author,
                "document_id": passage.document_id,
                "document_url": passage.document_url,
                "kind": passage.kind,
                "source": "author",
                "instruction": instruction,
                "answer": passage.text,
            }
        )
    if len(rows) < options.min_examples:
        raise NotEnoughText(
            f"author {author!r}: only {len(rows)} of {len(chosen)} passages got a usable instruction from "
            f"{teacher.label} (dropped: {tally(reasons)}); at least {options.min_examples} are needed"
        )
    frame = pl.DataFrame(rows, schema=INSTRUCT_SCHEMA)
    splits = split_frame(frame, options.test_ratio, options.seed)
    if general is not None and general.height:
        splits["train"] = pl.concat([splits["train"], general.with_columns(pl.lit(author).alias("author"))])
    corpus = training_corpus(passages, set(splits["test"]["document_id"].to_list()))
    return Built(splits=splits, dropped=tally(reasons), considered=len(chosen), corpus=corpus)


def training_corpus(passages: list[Passage], test_documents: set[str]) -> pl.DataFrame:
    """Every passage of the documents outside the test split (see ``CORPUS_SCHEMA``)."""
    return pl.DataFrame(
        [
            {
                "id": row_id(p.document_id, str(p.ordinal), p.text),
                "document_id": p.document_id,
                "kind": p.kind,
                "text": p.text,
            }
            for p in passages
            if p.document_id not in test_documents
        ],
        schema=CORPUS_SCHEMA,
    )


def _prompt(passage: Passage, author_name: str, options: InstructOptions) -> list[Message]:
    if options.style == "topic":
        return TOPIC.render(passage=passage.text)
    return instruction_prompt(
        passage.kind,
        author=author_name,
        title=passage.title,
        passage=passage.text,
        max_words=options.rules.max_words // 2,
    )


def _instruction(
    passage: Passage, reply: str, finished: bool, options: InstructOptions, seen: NearDuplicates
) -> tuple[str, str | None]:
    """The instruction made of a teacher's reply, and why it is dropped (``None`` = kept)."""
    if options.style == "topic":
        topic = clean_topic(reply)
        problem = topic_problem(topic, finished)
        if problem is None and seen.seen(topic):
            problem = "near_duplicate"
        pick = int(hashlib.sha256(passage.text.encode()).hexdigest()[:8], 16)
        return frame_instruction(passage.kind, topic, passage.title, pick), problem
    instruction = clean_instruction(reply)
    problem = instruction_problem(instruction, passage.text, finished, options.rules)
    if problem is None and seen.seen(instruction):
        problem = "near_duplicate"
    return instruction, problem


def split_frame(frame: pl.DataFrame, test_ratio: float, seed: int) -> dict[str, pl.DataFrame]:
    assignment = split_documents(frame["document_id"].to_list(), test_ratio, seed)
    split = frame.with_columns(
        pl.col("document_id").replace_strict(assignment, return_dtype=pl.String).alias("_split")
    )
    return {
        name: split.filter(pl.col("_split") == name).drop("_split").sort("id") for name in ("train", "test")
    }


def read_general_mix(path: str | Path, rows: int, seed: int) -> pl.DataFrame:
    """Up to ``rows`` general instruction examples from a Parquet or JSONL file.

    Columns ``instruction`` and ``answer`` (or ``prompt``/``response``, ``instruction``/``output``)."""
    source = Path(path).expanduser()
    if not source.is_file():
        raise TwinError(f"general_mix_path {source}: no such file")
    try:
        table = pl.read_parquet(source) if source.suffix == ".parquet" else pl.read_ndjson(source)
    except Exception as exc:  # polars raises several types for a malformed file
        raise TwinError(f"general_mix_path {source}: not readable as Parquet or JSONL ({exc})") from None
    for question, answer in (("instruction", "answer"), ("prompt", "response"), ("instruction", "output")):
        if {question, answer} <= set(table.columns):
            break
    else:
        raise TwinError(
            f"general_mix_path {source}: needs columns instruction+answer, prompt+response or "
            f"instruction+output; it has {table.columns}"
        )
    table = (
        table.select(
            pl.col(question).cast(pl.String).alias("instruction"),
            pl.col(answer).cast(pl.String).alias("answer"),
        )
        .drop_nulls()
        .filter((pl.col("instruction").str.strip_chars() != "") & (pl.col("answer").str.strip_chars() != ""))
    )
    table = table.sample(n=min(rows, table.height), seed=seed, shuffle=True) if rows < table.height else table
    ids = [row_id("general", q, a) for q, a in table.iter_rows()]
    return table.with_columns(
        pl.Series("id", ids),
        pl.lit("").alias("author"),
        pl.Series("document_id", [f"general:{i}" for i in ids]),
        pl.lit(str(source)).alias("document_url"),
        pl.lit("general").alias("kind"),
        pl.lit("general").alias("source"),
    ).select(list(INSTRUCT_SCHEMA))


_SENTENCE_END = re.compile(r"[.!?…][\"')\]”’]*$")


def ending_cleanly(reply: str, finished: bool, min_words: int) -> str | None:
    """A rejected answer that ends cleanly: the reply when it finished, else cut back to its last sentence
    end when that keeps at least ``min_words`` words and half of what it wrote; None when it cannot."""
    text = clean_answer(reply, finished)
    if finished:
        return text
    kept, wrote = len(text.split()), len(reply.split())
    if not _SENTENCE_END.search(text) or kept < min_words or 2 * kept < wrote:
        return None  # no sentence end, or cutting there would leave a stub
    return text


@dataclass(frozen=True)
class PreferenceOptions:
    max_new_tokens: int = 192
    """The base model's budget for a rejected answer. One that runs out of it is cut back to its last
    sentence end when that keeps at least ``min_rejected_words`` and half of what it wrote; one with no
    such cut is asked again with twice the budget (cut the same way), then dropped (``unfinished``): a
    rejected answer cut mid-sentence beside a chosen one that ends cleanly would teach DPO that finishing
    is what makes an answer good. (Dropping every answer that ran out kept 79 pairs of 333 instructions
    for a real author, after 37 minutes of asking again.)"""
    min_rejected_words: int = 5
    max_similarity: float = 0.5
    """Drop a pair whose rejected answer shares this much (word-trigram Jaccard) with the chosen one."""
    min_examples: int = 8


def build_preference(
    instruct: dict[str, pl.DataFrame],
    base: Teacher,
    options: PreferenceOptions,
    *,
    progress: Progress | None = None,
    count_tokens: Callable[[list[str]], list[int]] | None = None,
) -> Built:
    """Pairs for the author's own instruct rows (the general mix is not the author's voice); splits kept.

    ``count_tokens`` (the base model's tokenizer) adds the mean token lengths of chosen and rejected
    answers to the stats: a large gap is a length bias DPO would learn."""
    rows = {name: frame.filter(pl.col("source") == "author") for name, frame in instruct.items()}
    ordered = [(name, row) for name, frame in rows.items() for row in frame.iter_rows(named=True)]
    prompts = [answer_prompt(row["instruction"], len(row["answer"].split())) for _, row in ordered]
    replies = base.complete(prompts, max_new_tokens=options.max_new_tokens, progress=progress)
    texts = [ending_cleanly(reply.text, reply.finished, options.min_rejected_words) for reply in replies]
    cut = [i for i, text in enumerate(texts) if text is None]
    if cut:  # ran out of budget with no sentence end to cut at: once more with twice as much
        again = base.complete([prompts[i] for i in cut], max_new_tokens=2 * options.max_new_tokens)
        for i, reply in zip(cut, again, strict=True):
            texts[i] = ending_cleanly(reply.text, reply.finished, options.min_rejected_words)
    cut_at_sentence = sum(
        1 for reply, text in zip(replies, texts, strict=True) if text and not reply.finished
    )
    reasons: list[str] = []
    kept: dict[str, list[dict[str, str]]] = {name: [] for name in rows}
    for (name, row), text in zip(ordered, texts, strict=True):
        rejected = text or ""
        problem = (
            "unfinished"
            if text is None
            else rejected_problem(rejected, row["answer"], options.min_rejected_words, options.max_similarity)
        )
        if problem:
            reasons.append(problem)
            continue
        kept[name].append(
            {
                "id": row_id(row["id"], rejected),
                "author": row["author"],
                "document_id": row["document_id"],
                "document_url": row["document_url"],
                "kind": row["kind"],
                "prompt": row["instruction"],
                "chosen": row["answer"],
                "rejected": rejected,
            }
        )
    total = sum(len(v) for v in kept.values())
    if total < options.min_examples:
        raise NotEnoughText(
            f"only {total} of {len(ordered)} instructions got a usable rejected answer from {base.label} "
            f"(dropped: {tally(reasons)}); at least {options.min_examples} are needed"
        )
    stats: dict[str, float] = {"regenerated": float(len(cut)), "cut_at_sentence_end": float(cut_at_sentence)}
    if count_tokens is not None:
        pairs = [pair for split in kept.values() for pair in split]
        for side in ("chosen", "rejected"):
            lengths = count_tokens([pair[side] for pair in pairs])
            stats[f"mean_{side}_tokens"] = round(sum(lengths) / len(lengths), 1) if lengths else 0.0
    return Built(
        splits={n: pl.DataFrame(v, schema=PREFERENCE_SCHEMA).sort("id") for n, v in kept.items()},
        dropped=tally(reasons),
        considered=len(ordered),
        stats=stats,
    )
