"""Small pictures for the Dagster UI: histograms and line charts as Markdown images (PNG, inline)."""

from __future__ import annotations

import base64
import io
from collections.abc import Sequence


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
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    plt.close(figure)
    return f"![{title}](data:image/png;base64,{base64.b64encode(buffer.getvalue()).decode()})"


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
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    plt.close(figure)
    return f"![{title}](data:image/png;base64,{base64.b64encode(buffer.getvalue()).decode()})"
