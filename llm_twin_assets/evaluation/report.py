"""The comparison tables (one row per model, one column per metric, each value with its 95% interval),
as text for the CLI and as Markdown for the Dagster UI, the differences the gate decides on, and a
side-by-side preview of examples."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from llm_twin_assets.evaluation.metrics import REGISTRY, Table, shown_in
from llm_twin_assets.evaluation.metrics import differences as metric_pairs

if TYPE_CHECKING:
    import polars as pl


def _cell(metrics: dict[str, Any], name: str, fmt: str, intervals: dict[str, Any] | None = None) -> str:
    value = metrics.get(name)
    if value is None:
        return "—"
    interval = (intervals or {}).get(name)
    if not interval:
        return fmt.format(value)
    return f"{fmt.format(value)} [{fmt.format(interval[0])}, {fmt.format(interval[1])}]"


def comparison_rows(
    models: dict[str, dict[str, Any]], table: Table = "voice"
) -> tuple[list[str], list[list[str]]]:
    """Header and rows of one table of the model comparison (the registry's metrics of that table; those
    no model has are left out; retrieval apart); a value measured with an interval shows it as
    ``value [low, high]``."""
    shown = [
        m
        for m in shown_in(table)
        if any(m.name in e["metrics"] for n, e in models.items() if n != "retrieval")
    ]
    if not shown:
        return [], []
    header = ["model", "version", *(m.column_label for m in shown)]
    rows = [
        [
            name,
            str(entry["version"])[:16],
            *(_cell(entry["metrics"], m.name, m.fmt, entry.get("intervals")) for m in shown),
        ]
        for name, entry in models.items()
        if name != "retrieval"
    ]
    return header, rows


def differences_lines(differences: dict[str, dict[str, dict[str, Any]]] | None) -> list[str]:
    """One line per pair (``twin - base``, ``twin - author``): each difference with its 95% interval."""
    lines = []
    pairs: list[str] = list(
        metric_pairs()
    )  # a stored (jsonb) map comes back reordered: shown in the registry's order
    for pair, found in sorted((differences or {}).items(), key=lambda kv: _index(pairs, kv[0])):
        cells = []
        known = {m.difference_name: m for m in REGISTRY}
        order = {name: i for i, name in enumerate(known)}  # a stored (jsonb) map comes back reordered
        for name, entry in sorted(found.items(), key=lambda kv: order.get(kv[0], len(order))):
            metric = known.get(name)  # an evaluation stored by an older version may name another
            label, fmt = (metric.difference_label, metric.difference_fmt) if metric else (name, "{:+.3f}")
            cells.append(
                f"{label} {_cell({name: entry.get('value')}, name, fmt, {name: entry.get('interval')})}"
            )
        if cells:
            lines.append(f"{pair.replace('-', ' − ')} (95% CI): " + ", ".join(cells))
    return lines


def _index(order: list[str], name: str) -> int:
    return order.index(name) if name in order else len(order)


def rag_effect_line(models: dict[str, dict[str, Any]]) -> str:
    """What the author's retrieved passages do to the twin (``twin+rag`` against ``twin``, point
    estimates): the metrics they make worse, then those they make better. Empty when not measured."""
    plain = models.get("twin", {}).get("metrics", {})
    rag = models.get("twin+rag", {}).get("metrics", {})
    worse: list[str] = []
    better: list[str] = []
    for metric in REGISTRY:
        a, b = plain.get(metric.name), rag.get(metric.name)
        if not metric.rag_effect or a is None or b is None or a == b:
            continue
        text = f"{metric.words} {metric.fmt.format(a)} -> {metric.fmt.format(b)}"
        (better if (b > a) == metric.higher_is_better else worse).append(text)
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
    cells = ", ".join(f"{m.label} {_cell(entry['metrics'], m.name, m.fmt)}" for m in shown_in("retrieval"))
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
    header, rows = comparison_rows(models, "degeneration")
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
    header, rows = comparison_rows(models, "degeneration")
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


def auc_line(label: str, classifier: dict[str, Any]) -> str:
    """A classifier's cross-validated AUC with its interval and method, or why it is not measurable."""
    auc = classifier.get("held_out_auc")
    if auc is None:
        return f"{label}: AUC not measurable" + (f" ({classifier['note']})" if classifier.get("note") else "")
    interval = classifier.get("auc_interval")
    shown = f" [{interval[0]:.3f}, {interval[1]:.3f}]" if interval else ""
    method = f", {classifier['method']}" if classifier.get("method") else ""
    return f"{label}: AUC {auc:.3f}{shown}{method}"


def evaluation_lines(record: Any, models: dict[str, dict[str, Any]]) -> list[str]:
    """A stored evaluation (``store.evaluations.EvaluationRecord`` and its metrics per model) as text:
    what was evaluated and how, the tables, the retrieval and RAG-effect lines, the classifiers, then the
    gate's decision (the line starting ``quality gate``) with its reasons (failed) or checks (passed)."""
    from llm_twin_assets.evaluation.gate import CHECKS

    lines = [
        f"evaluation {record.id} of {record.author} ({record.evaluated_at:%Y-%m-%d %H:%M} UTC) on "
        f"{record.examples} held-out examples; twin = sft {record.sft_version} + dpo {record.dpo_version}"
    ]
    settings = record.settings
    budget = settings.get("generation", {})
    lines += [
        settings.get("held_out", {}).get("note", ""),
        f"generation budget: {budget['max_new_tokens']} new tokens ({budget.get('rule', '')})"
        if budget.get("max_new_tokens")
        else "",
        decoding_line(settings.get("decoding_choice")),
        text_table(models, settings.get("differences")),
        retrieval_line(models),
        rag_effect_line(models),
        auc_line("authorship classifier (author vs base model)", record.classifier),
    ]
    writers = record.classifier.get("other_writers")
    if writers:
        lines.append(auc_line("authorship classifier (author vs other writers)", writers))
    checks = record.gate.get("checks", {})
    details = [
        checks[n]["detail"] for n in sorted(checks, key=lambda n: CHECKS.index(n) if n in CHECKS else 99)
    ]
    reasons = record.gate.get("reasons", [])  # a list: in the order the gate made them
    lines.append(f"quality gate {'PASSED' if record.gate_passed else 'FAILED'}")
    lines += [f"  - {line}" for line in (details if record.gate_passed else reasons)]
    return [line for line in lines if line]
