"""The comparison tables (one row per model, one column per metric, each value with its 95% interval),
as text for the CLI and as Markdown for the Dagster UI, the differences the gate decides on, and a
side-by-side preview of examples."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import polars as pl

COLUMNS = (
    ("perplexity", "perplexity ↓", "{:.2f}"),
    ("author_likeness", "likeness ↑", "{:.3f}"),
    ("writer_likeness", "vs writers ↑", "{:.3f}"),
    ("style_distance", "style dist ↓", "{:.3f}"),
    ("content_similarity", "content sim ↑", "{:.3f}"),
    ("judge_accuracy", "judge acc ↑", "{:.2f}"),
    ("judge_style", "judge style ↑", "{:.2f}"),
)
DEGENERATION = (
    ("finished", "finished ↑", "{:.0%}"),
    ("answer_words", "words", "{:.0f}"),
    ("length_ratio", "length ×", "{:.2f}"),
    ("repeated_4gram_share", "repeats 4g ↓", "{:.1%}"),
    ("distinct_1", "distinct-1", "{:.2f}"),
    ("distinct_2", "distinct-2", "{:.2f}"),
    ("markup_echo", "markup ↓", "{:.0%}"),
)
RETRIEVAL = (("hit@1", "hit@1", "{:.2f}"), ("hit@5", "hit@5", "{:.2f}"), ("mrr", "MRR", "{:.3f}"))
DIFFERENCE_LABELS = {
    "perplexity_gain": ("perplexity gain", "{:+.1%}"),
    "author_likeness": ("likeness", "{:+.3f}"),
    "writer_likeness": ("likeness vs writers", "{:+.3f}"),
    "style_distance": ("style distance", "{:+.3f}"),
    "repeated_4gram_share": ("repeated 4-grams", "{:+.1%}"),
}


def _cell(metrics: dict[str, Any], name: str, fmt: str, intervals: dict[str, Any] | None = None) -> str:
    value = metrics.get(name)
    if value is None:
        return "—"
    interval = (intervals or {}).get(name)
    if not interval:
        return fmt.format(value)
    return f"{fmt.format(value)} [{fmt.format(interval[0])}, {fmt.format(interval[1])}]"


def comparison_rows(
    models: dict[str, dict[str, Any]], columns: tuple[tuple[str, str, str], ...] = COLUMNS
) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the model comparison (metrics no model has are left out; retrieval apart);
    a value measured with an interval shows it as ``value [low, high]``."""
    shown = [c for c in columns if any(c[0] in m["metrics"] for n, m in models.items() if n != "retrieval")]
    if not shown:
        return [], []
    header = ["model", "version", *(label for _, label, _ in shown)]
    rows = [
        [
            name,
            str(entry["version"])[:16],
            *(_cell(entry["metrics"], metric, fmt, entry.get("intervals")) for metric, _, fmt in shown),
        ]
        for name, entry in models.items()
        if name != "retrieval"
    ]
    return header, rows


def differences_lines(differences: dict[str, dict[str, dict[str, Any]]] | None) -> list[str]:
    """One line per pair (``twin - base``, ``twin - author``): each difference with its 95% interval."""
    lines = []
    for pair, found in (differences or {}).items():
        cells = []
        ordered = [n for n in DIFFERENCE_LABELS if n in found] + [
            n for n in found if n not in DIFFERENCE_LABELS
        ]
        for name in ordered:
            entry = found[name]
            label, fmt = DIFFERENCE_LABELS.get(name, (name, "{:+.3f}"))
            cells.append(
                f"{label} {_cell({name: entry.get('value')}, name, fmt, {name: entry.get('interval')})}"
            )
        if cells:
            lines.append(f"{pair.replace('-', ' − ')} (95% CI): " + ", ".join(cells))
    return lines


RAG_EFFECT = (
    ("perplexity", "perplexity", "{:.2f}", -1),
    ("author_likeness", "likeness", "{:.3f}", 1),
    ("style_distance", "style distance", "{:.3f}", -1),
    ("repeated_4gram_share", "repeated 4-grams", "{:.1%}", -1),
    ("markup_echo", "markup echoes", "{:.0%}", -1),
    ("finished", "finished", "{:.0%}", 1),
)


def rag_effect_line(models: dict[str, dict[str, Any]]) -> str:
    """What the author's retrieved passages do to the twin (``twin+rag`` against ``twin``, point
    estimates): the metrics they make worse, then those they make better. Empty when not measured."""
    plain = models.get("twin", {}).get("metrics", {})
    rag = models.get("twin+rag", {}).get("metrics", {})
    worse: list[str] = []
    better: list[str] = []
    for name, label, fmt, sign in RAG_EFFECT:
        a, b = plain.get(name), rag.get(name)
        if a is None or b is None or a == b:
            continue
        text = f"{label} {fmt.format(a)} -> {fmt.format(b)}"
        (better if (b - a) * sign > 0 else worse).append(text)
    if not plain or not rag:
        return ""
    if not worse and not better:
        return "twin+rag against twin: the same on every metric (no passages changed an answer)"
    parts = []
    if worse:
        parts.append("WORSE with the author's passages: " + ", ".join(worse))
    if better:
        parts.append("better: " + ", ".join(better))
    return "twin+rag against twin: " + "; ".join(parts)


def decoding_line(choice: dict[str, Any] | None) -> str:
    """The decoding rules the models generated with, and how they were chosen."""
    if not choice or "chosen" not in choice:
        return ""
    from llm_twin_assets.decoding_rules import Decoding

    rules = ", ".join(f"{k} {v}" for k, v in Decoding.from_dict(choice["chosen"]).as_dict().items())
    where = (
        f"chosen on {choice['validation_examples']} validation examples of "
        f"{choice['validation_documents']} documents: {choice['rule']}"
        if choice.get("on") == "validation"
        else choice.get("rule", "")
    )
    return f"decoding: {rules} ({where})"


def retrieval_line(models: dict[str, dict[str, Any]]) -> str:
    entry = models.get("retrieval")
    if not entry:
        return ""
    cells = ", ".join(f"{label} {_cell(entry['metrics'], m, fmt)}" for m, label, fmt in RETRIEVAL)
    return f"retrieval of each held-out instruction's own document ({entry['version']}): {cells}"


def _text(header: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = [
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in [header, *rows]
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return lines


def text_table(
    models: dict[str, dict[str, Any]], differences: dict[str, dict[str, dict[str, Any]]] | None = None
) -> str:
    """The voice table, then (when measured) the degeneration table and the differences."""
    lines = _text(*comparison_rows(models))
    header, rows = comparison_rows(models, DEGENERATION)
    if header:
        lines += ["", *_text(header, rows)]
    extra = differences_lines(differences)
    if extra:
        lines += ["", *extra]
    return "\n".join(lines)


def _markdown(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(row) + " |" for row in rows]


def markdown_table(
    models: dict[str, dict[str, Any]], differences: dict[str, dict[str, dict[str, Any]]] | None = None
) -> str:
    lines = _markdown(*comparison_rows(models))
    header, rows = comparison_rows(models, DEGENERATION)
    if header:
        lines += ["", *_markdown(header, rows)]
    extra = differences_lines(differences)
    if extra:
        lines += ["", *(f"{line}  " for line in extra)]
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


def examples_text(frame: pl.DataFrame, limit: int, width: int = 600) -> str:
    """The first ``limit`` held-out examples as text: the instruction, the author's answer, then what the
    base model and the twin wrote (no retrieval), each cut at ``width`` characters."""

    def flat(text: str) -> str:
        one = " ".join(str(text).split())
        return one if len(one) <= width else one[:width].rstrip() + " …"

    plain = frame.filter(frame["variant"] == "plain")
    by = {(r["example_id"], r["model"]): r["answer"] for r in plain.iter_rows(named=True)}
    rows = [r for r in plain.iter_rows(named=True) if r["model"] == "twin"][:limit]
    blocks = []
    for i, row in enumerate(rows, 1):
        blocks.append(
            "\n".join(
                [
                    f"held-out example {i}: {flat(row['instruction'])}",
                    f"  author: {flat(row['author_answer'])}",
                    f"  base:   {flat(by.get((row['example_id'], 'base'), ''))}",
                    f"  twin:   {flat(row['answer'])}",
                ]
            )
        )
    return "\n\n".join(blocks)
