"""What the asset checks verify on a published dataset version. Pure functions over its splits."""

from __future__ import annotations

import polars as pl

from llm_twin_assets.datasets.building import INSTRUCT_SCHEMA, PREFERENCE_SCHEMA
from llm_twin_assets.kinds import is_prose
from llm_twin_assets.verdicts import Verdict

SCHEMAS = {"instruct": INSTRUCT_SCHEMA, "preference": PREFERENCE_SCHEMA}
TEXT_COLUMNS = {"instruct": ("instruction", "answer"), "preference": ("prompt", "chosen", "rejected")}


def schema(name: str, splits: dict[str, pl.DataFrame]) -> Verdict:
    expected = {c: str(t) for c, t in SCHEMAS[name].items()}
    wrong = {
        split: {c: str(t) for c, t in frame.schema.items()}
        for split, frame in splits.items()
        if {c: str(t) for c, t in frame.schema.items()} != expected
    }
    missing = sorted({"train", "test"} - splits.keys())
    return Verdict(
        not wrong and not missing, {"expected": expected, "wrong": wrong, "missing_splits": missing}
    )


def minimum_size(splits: dict[str, pl.DataFrame], min_examples: int) -> Verdict:
    rows = {split: frame.height for split, frame in splits.items()}
    author_rows = sum(
        frame.filter(pl.col("source") == "author").height if "source" in frame.columns else frame.height
        for frame in splits.values()
    )
    return Verdict(
        author_rows >= min_examples and rows.get("train", 0) > 0,
        {"rows": rows, "author_rows": author_rows, "min_examples": min_examples},
    )


def split_leakage(splits: dict[str, pl.DataFrame]) -> Verdict:
    train = set(splits.get("train", pl.DataFrame({"document_id": []}))["document_id"].to_list())
    test = set(splits.get("test", pl.DataFrame({"document_id": []}))["document_id"].to_list())
    shared = sorted(train & test)
    return Verdict(not shared, {"shared_documents": len(shared), "examples": shared[:10]})


_DANGLING = {"a", "an", "the", "and", "or", "but", "of", "to", "in", "on", "with", "for", "that", "because"}


def looks_cut(text: str) -> bool:
    """True for prose that stops mid-sentence: on a comma or dash, or on a word that cannot end one."""
    text = text.rstrip()
    if not text or text[-1] in ",;-–—(":
        return True
    last = text.split()[-1].lower()
    return last in _DANGLING


def complete_texts(name: str, splits: dict[str, pl.DataFrame]) -> Verdict:
    """No empty text; prose answers do not stop mid-sentence; a preference pair's two answers differ."""
    bad: list[str] = []
    for frame in splits.values():
        for row in frame.iter_rows(named=True):
            texts = [row[c] for c in TEXT_COLUMNS[name]]
            answer = row["answer" if name == "instruct" else "chosen"]
            if any(t is None or not t.strip() for t in texts):
                bad.append(f"{row['id']}: empty text")
            elif is_prose(row["kind"]) and looks_cut(answer):
                bad.append(f"{row['id']}: answer ends mid-sentence")
            elif name == "preference" and row["chosen"].strip() == row["rejected"].strip():
                bad.append(f"{row['id']}: chosen equals rejected")
    return Verdict(not bad, {"problems": len(bad), "examples": bad[:10]})
