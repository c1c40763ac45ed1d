"""Small pictures for the Dagster UI: histograms and line charts as Markdown images (PNG, inline)."""

from __future__ import annotations

import base64
import io
from collections.abc import Sequence
from typing import Any


def histogram_markdown(values: Sequence[int], title: str, xlabel: str, limit: int | None = None) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(6, 2.6), dpi=90)
    axes.hist(values, bins=30, color="#4c72b0")
    if limit is not None:
        axes.axvline(limit, color="#c44e52", linestyle="--", label=f"limit {limit}")
        axes.legend()
    axes.set_title(title)
    axes.set_xlabel(xlabel)
    axes.set_ylabel("chunks")
    return _as_markdown(figure, title)


def line_chart_markdown(
    xs: Sequence[float], ys: Sequence[float], title: str, xlabel: str, ylabel: str
) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(6, 2.6), dpi=90)
    axes.plot(xs, ys, color="#4c72b0", marker="." if len(xs) < 60 else None)
    axes.set_title(title)
    axes.set_xlabel(xlabel)
    axes.set_ylabel(ylabel)
    return _as_markdown(figure, title)


def bar_chart_markdown(groups: dict[str, dict[str, float]], title: str) -> str:
    """Grouped bars: one panel per metric (``groups[metric][model] = value``), models side by side."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metrics = [m for m, values in groups.items() if values]
    figure, axes = plt.subplots(1, max(len(metrics), 1), figsize=(3.0 * max(len(metrics), 1), 2.8), dpi=90)
    panels = axes if len(metrics) > 1 else [axes]
    palette = ["#8c8c8c", "#4c72b0", "#c44e52", "#bdbdbd", "#8fa9d6", "#e39a9c", "#55a868"]
    for panel, metric in zip(panels, metrics, strict=False):
        names = list(groups[metric])
        panel.bar(range(len(names)), [groups[metric][n] for n in names], color=palette[: len(names)])
        panel.set_xticks(range(len(names)), names, rotation=45, ha="right", fontsize=8)
        panel.set_title(metric, fontsize=9)
    figure.suptitle(title, fontsize=10)
    return _as_markdown(figure, title)


def _as_markdown(figure: Any, title: str) -> str:
    import matplotlib.pyplot as plt

    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    plt.close(figure)
    return f"![{title}](data:image/png;base64,{base64.b64encode(buffer.getvalue()).decode()})"
