"""Ranking bar chart of `depara rank`: one horizontal bar of S = V + λE per source, best on top, with its two
parts (V and λE) marked, so one sees whether nodes or edges decide the ranking."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from ._common import save_figure  # noqa: E402
from ..errors import DeparaError  # noqa: E402


def plot_ranking_bars(rows: Sequence, out: str | os.PathLike, *, lam: float = 1.0, title: str = "Source ranking",
                      target: str | None = None) -> Path:
    """Save a PNG bar chart of ``rows`` (objects or dicts with name, S, V, E; best first) to ``out`` atomically."""
    if not rows:
        raise DeparaError("ranking chart: no rows to plot")

    def get(row, key):
        return row[key] if isinstance(row, dict) else getattr(row, key)

    names = [str(get(r, "name")) for r in rows]
    s = [float(get(r, "S")) for r in rows]
    v = [float(get(r, "V")) for r in rows]
    le = [lam * float(get(r, "E")) for r in rows]
    y = list(range(len(rows)))
    fig, ax = plt.subplots(figsize=(7.0, 1.2 + 0.38 * len(rows)))
    colors = ["tab:green" if i == 0 else "tab:gray" for i in y]
    ax.barh(y, s, color=colors, alpha=0.8, label=f"S = V + {lam:g}·E")
    ax.scatter(v, y, marker="o", color="tab:blue", zorder=3, label="V (nodes)")
    ax.scatter(le, y, marker="D", color="tab:orange", zorder=3, label=f"{lam:g}·E (edges)")
    for yi, si in zip(y, s):
        ax.annotate(f"{si:.3f}", (si, yi), xytext=(4 if si >= 0 else -4, 0), textcoords="offset points",
                    va="center", ha="left" if si >= 0 else "right", fontsize=8)
    ax.set_yticks(y, names)
    ax.invert_yaxis()  # best on top
    ax.axvline(0.0, color="black", linewidth=0.8)
    ax.set_xlabel("DEPARA similarity to the target (higher transfers better)")
    ax.set_ylabel("source")
    ax.set_title(f"{title}" + (f" for target '{target}'" if target else ""))
    ax.legend(loc="best", fontsize=8)
    ax.grid(axis="x", alpha=0.3)
    return save_figure(fig, out, dpi=120)
