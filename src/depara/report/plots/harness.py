"""Figures of the estimator harness (`depara score`): how well each method agrees with the ground truth, and each
method's (standardised) scores per source. Plots draw what they are given; they compute no transferability."""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any, Mapping, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from .common import save_figure  # noqa: E402
from ...errors import DeparaError  # noqa: E402

_AGREEMENT = (("kendall", "Kendall τ"), ("weighted_tau", "weighted τ"), ("pearson", "Pearson r"),
              ("relative_accuracy", "top-1 relative accuracy"))


_save = save_figure  # PNG, written atomically, figure closed


def plot_method_agreement(evaluation: Sequence[Mapping[str, Any]], out: str | os.PathLike, *,
                          title: str = "Agreement of each estimator with the ground truth") -> Path:
    """Grouped bars: per method, Kendall τ, weighted τ, Pearson r and the top-1 pick's relative accuracy.

    ``evaluation``: rows of :func:`depara.selection.harness.evaluate_scores`. NaN values (constant scores) are drawn as
    a hatched empty slot labelled "n/a".
    """
    if not evaluation:
        raise DeparaError("agreement chart: no evaluation rows to plot")
    methods = [str(r["method"]) for r in evaluation]
    x = np.arange(len(methods))
    width = 0.8 / len(_AGREEMENT)
    fig, ax = plt.subplots(figsize=(max(6.0, 1.1 * len(methods) + 2), 4.2))
    for j, (key, label) in enumerate(_AGREEMENT):
        vals = np.array([float(r.get(key, float("nan"))) for r in evaluation])
        pos = x - 0.4 + width * (j + 0.5)
        ax.bar(pos, np.nan_to_num(vals), width, label=label)
        for p, v in zip(pos, vals):
            if math.isnan(v):
                ax.annotate("n/a", (p, 0), ha="center", va="bottom", fontsize=6, rotation=90)
    ax.axhline(0, color="0.3", lw=0.8)
    ax.set_xticks(x, methods)
    ax.set_xlabel("transferability estimator")
    ax.set_ylabel("agreement with ground truth")
    ax.set_ylim(min(-0.05, ax.get_ylim()[0]), 1.05)
    ax.grid(axis="y", alpha=0.3)
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=7, loc="lower right")
    return _save(fig, out)


def plot_source_scores(table: Any, out: str | os.PathLike, *, truth: Mapping[str, float] | None = None,
                       title: str = "Scores per source (z-scored within each method; higher = better)") -> Path:
    """Grouped bars: for each source, each method's score standardised across sources (methods have different
    units); the ground truth, when given, is drawn standardised the same way as black markers."""
    sources = list(table.sources)
    if not sources or not table.methods:
        raise DeparaError("score chart: no scores to plot")

    def z(v: np.ndarray) -> np.ndarray:
        sd = v.std()
        return np.zeros_like(v) if sd == 0 or not np.isfinite(sd) else (v - v.mean()) / sd

    x = np.arange(len(sources))
    width = 0.8 / len(table.methods)
    fig, ax = plt.subplots(figsize=(max(6.0, 0.9 * len(sources) * max(1, len(table.methods) / 3) + 2), 4.2))
    for j, m in enumerate(table.methods):
        ax.bar(x - 0.4 + width * (j + 0.5), z(np.asarray(table.scores[m], dtype=float)), width, label=m)
    if truth is not None:
        ax.scatter(x, z(np.array([truth[s] for s in sources], dtype=float)), color="k", marker="D", zorder=3,
                   label="ground truth")
    ax.axhline(0, color="0.3", lw=0.8)
    ax.set_xticks(x, sources, rotation=30 if max(len(s) for s in sources) > 8 else 0, ha="right"
                  if max(len(s) for s in sources) > 8 else "center")
    ax.set_xlabel("source model")
    ax.set_ylabel("score (z-score across sources)")
    ax.grid(axis="y", alpha=0.3)
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=7, ncol=2 if len(table.methods) > 4 else 1)
    return _save(fig, out)
