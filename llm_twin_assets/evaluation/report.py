"""The comparison table (one row per model, one column per metric), as text for the CLI and as Markdown
for the Dagster UI, and a side-by-side preview of examples."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import polars as pl

COLUMNS = (
    ("perplexity", "perplexity ↓", "{:.2f}"),
    ("author_likeness", "likeness ↑", "{:.3f}"),
    ("style_distance", "style dist ↓", "{:.3f}"),
    ("content_similarity", "content sim ↑", "{:.3f}"),
    ("finished", "finished", "{:.0%}"),
    ("answer_words", "words", "{:.0f}"),
    ("judge_accuracy", "judge acc ↑", "{:.2f}"),
    ("judge_style", "judge style ↑", "{:.2f}"),
)
RETRIEVAL = (("hit@1", "hit@1", "{:.2f}"), ("hit@5", "hit@5", "{:.2f}"), ("mrr", "MRR", "{:.3f}"))


def _cell(metrics: dict[str, Any], name: str, fmt: str) -> str:
    value = metrics.get(name)
    return "—" if value is None else fmt.format(value)


def comparison_rows(models: dict[str, dict[str, Any]]) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the model comparison (metrics no model has are left out; retrieval apart)."""
    shown = [c for c in COLUMNS if any(c[0] in m["metrics"] for n, m in models.items() if n != "retrieval")]
    header = ["model", "version", *(label for _, label, _ in shown)]
    rows = [
        [
            name,
            str(entry["version"])[:16],
            *(_cell(entry["metrics"], metric, fmt) for metric, _, fmt in shown),
        ]
        for name, entry in models.items()
        if name != "retrieval"
    ]
    return header, rows


def retrieval_line(models: dict[str, dict[str, Any]]) -> str:
    entry = models.get("retrieval")
    if not entry:
        return ""
    cells = ", ".join(f"{label} {_cell(entry['metrics'], m, fmt)}" for m, label, fmt in RETRIEVAL)
    return f"retrieval of each held-out instruction's own document ({entry['version']}): {cells}"


def text_table(models: dict[str, dict[str, Any]]) -> str:
    header, rows = comparison_rows(models)
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = [
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in [header, *rows]
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def markdown_table(models: dict[str, dict[str, Any]]) -> str:
    header, rows = comparison_rows(models)
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    line = retrieval_line(models)
    return "\n".join(lines) + (f"\n\n{line}" if line else "")


def _md_cell(text: str, limit: int = 280) -> str:
    flat = " ".join(str(text).split())
    flat = flat if len(flat) <= limit else flat[:limit].rstrip() + " …"
    return flat.replace("|", "\\|")


def examples_preview(frame: pl.DataFrame, limit: int = 8) -> str:
    """Instruction, the author's answer, the base model's and the twin's, side by side (no retrieval)."""
    plain = frame.filter(frame["variant"] == "plain")
    by = {(r["example_id"], r["model"]): r["answer"] for r in plain.iter_rows(named=True)}
    seen: list[dict[str, Any]] = []
    for row in plain.iter_rows(named=True):
        if row["model"] == "base" and len(seen) < limit:
            seen.append(row)
    lines = ["| instruction | author | base | twin |", "|---|---|---|---|"]
    for row in seen:
        twin = by.get((row["example_id"], "twin"), "")
        cells = [row["instruction"], row["author_answer"], row["answer"], twin]
        lines.append("| " + " | ".join(_md_cell(c) for c in cells) + " |")
    return "\n".join(lines)
