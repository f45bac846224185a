"""The bar chart of a run: req/s direct vs gateway per scenario and connection count, and their ratio. matplotlib is
imported only here, and only when a chart is drawn; without it the run still writes its JSON and tables."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

from bench.scenarios import Cell


def draw_chart(cells: list[Cell], path: Path, title: str) -> str | None:
    """Write the chart to ``path``; returns why not, if matplotlib is missing."""
    try:
        # Imported by name, so that type checking passes with and without matplotlib installed.
        mpl: Any = importlib.import_module("matplotlib")
        mpl.use("Agg")
        plt: Any = importlib.import_module("matplotlib.pyplot")
    except ImportError:
        return "matplotlib is not installed (it is in the dev dependencies: uv sync): no chart written"
    labels = [f"{c.title}\nc={c.connections}" for c in cells]
    xs = list(range(len(cells)))
    width = 0.4
    fig, (top, bottom) = plt.subplots(
        2, 1, figsize=(max(8.0, 0.9 * len(cells) + 2), 7.5), sharex=True, gridspec_kw={"height_ratios": [3, 1.4]}
    )
    direct = top.bar([x - width / 2 for x in xs], [c.direct.rps for c in cells], width, label="direct (simulator)")
    gateway = top.bar([x + width / 2 for x in xs], [c.gateway.rps for c in cells], width, label="through the gateway")
    for bars in (direct, gateway):
        top.bar_label(bars, labels=[f"{b.get_height():,.0f}" for b in bars], fontsize=7, padding=2, rotation=90)
    top.set_ylabel("requests / s")
    top.set_title(title, fontsize=10)
    top.legend(loc="upper right")
    top.margins(y=0.25)
    top.grid(axis="y", alpha=0.3)
    ratios = [c.ratio for c in cells]
    bottom.bar(xs, ratios, 0.6, color="tab:gray")
    bottom.axhline(1.0, color="black", linewidth=0.8, linestyle="--")
    for x, ratio in zip(xs, ratios, strict=True):
        bottom.annotate(f"{ratio:.2f}", (x, ratio), ha="center", va="bottom", fontsize=7)
    bottom.set_ylabel("gateway / direct")
    bottom.set_ylim(0, max([1.1, *ratios]) * 1.2)
    bottom.grid(axis="y", alpha=0.3)
    bottom.set_xticks(xs, labels, fontsize=8)
    fig.text(0.01, 0.005, "cache hits, direct: the same seeded body as plain submits (fal has no cache)", fontsize=7)
    fig.tight_layout(rect=(0, 0.02, 1, 1))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return None
