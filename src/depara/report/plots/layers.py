"""The layer-selection figure (like the paper's table): DEPARA scores and transfer accuracy per layer #k."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from .common import save_figure

#: Prefix of the ``layer_scores.csv`` column holding S = V + λE for one λ (``S_lam10`` for λ = 10).
SCORE_PREFIX = "S_lam"


def score_column(lam: float) -> str:
    """The ``layer_scores.csv`` column of S = V + λE: ``S_lam<λ>`` (``S_lam1``, ``S_lam10``, ``S_lam0.25``)."""
    return f"{SCORE_PREFIX}{float(lam):g}"


def score_lam(column: str) -> float | None:
    """λ of a :func:`score_column` name, or None for any other column (the one parser of those names)."""
    if not column.startswith(SCORE_PREFIX):
        return None
    try:
        return float(column[len(SCORE_PREFIX):])
    except ValueError:
        return None


def plot_layer_selection(rows: Sequence[Mapping], path: str | os.PathLike, *, lams: Sequence[float] = (1.0, 10.0),
                         accuracy_names: Sequence[str] = (), title: str = "DEPARA per layer") -> Path:
    """Three stacked panels sharing the x axis (layer #k): node/edge similarity (V, E); V+λE for each λ, with
    the top-scored layer marked; and, if given, target accuracy (%) after transferring layers 1..k, with the best
    layer marked (± one standard deviation shaded when ``acc_<name>_std`` is given). ``rows``: dicts with ``depth``,
    ``kind``, ``V``, ``E``, ``S_lam<λ>`` and ``acc_<name>``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    depth = np.array([int(r["depth"]) for r in rows])
    n_panels = 3 if accuracy_names else 2
    fig, axes = plt.subplots(n_panels, 1, figsize=(max(6.0, 0.45 * len(depth) + 2), 2.6 * n_panels), sharex=True)
    ax = axes[0]
    ax.plot(depth, [float(r["V"]) for r in rows], "o-", label="node similarity $S_V$")
    ax.plot(depth, [float(r["E"]) for r in rows], "s-", label="edge similarity $S_E$")
    ax.set_ylabel("similarity")
    ax.legend(loc="best", fontsize=8)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax = axes[1]
    for lam in lams:
        s = np.array([float(r[score_column(lam)]) for r in rows])
        line, = ax.plot(depth, s, "o-", label=f"$S_V + {lam:g}\\,S_E$")
        k = int(np.argmax(s))
        ax.plot(depth[k], s[k], "*", ms=14, color=line.get_color(), markeredgecolor="k")
    ax.set_ylabel("DEPARA score")
    ax.legend(loc="best", fontsize=8, title="★ = top-scored layer", title_fontsize=8)
    ax.grid(alpha=0.3)
    if accuracy_names:
        ax = axes[2]
        for name in accuracy_names:
            acc = np.array([100 * float(r.get(f"acc_{name}", np.nan)) for r in rows])
            line, = ax.plot(depth, acc, "o-", label=f"target {name} of train data")
            if all(f"acc_{name}_std" in r for r in rows):
                sd = np.array([100 * float(r[f"acc_{name}_std"]) for r in rows])
                ax.fill_between(depth, acc - sd, acc + sd, color=line.get_color(), alpha=0.2)
            if np.isfinite(acc).any():
                k = int(np.nanargmax(acc))
                ax.plot(depth[k], acc[k], "*", ms=14, color=line.get_color(), markeredgecolor="k")
        ax.set_ylabel("test accuracy (%)")
        ax.legend(loc="best", fontsize=8, title="★ = best layer", title_fontsize=8)
        ax.grid(alpha=0.3)
    kinds = [str(r.get("kind", "")) for r in rows]
    axes[-1].set_xticks(depth)
    axes[-1].set_xticklabels([f"#{d}\n{'fc' if k == 'fc' else ''}" for d, k in zip(depth, kinds)], fontsize=8)
    axes[-1].set_xlabel("transferred layers 1..#k (conv layers, then fully-connected)")
    fig.tight_layout()
    return save_figure(fig, path, dpi=120, tight=False)


def plot_transfer_accuracy(rows: Sequence[Mapping], path: str | os.PathLike, *, title: str = "layer-wise transfer"
                           ) -> Path:
    """Val and test accuracy (%) per transfer depth k (rows of ``transfer.csv``)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    depth = np.array([int(r["depth"]) for r in rows])
    fig, ax = plt.subplots(figsize=(max(5.0, 0.45 * len(depth) + 2), 3.2))
    for key, label in (("val_acc", "val (best epoch)"), ("test_acc", "test (at best val)")):
        ax.plot(depth, [100 * float(r[key]) for r in rows], "o-", label=label)
    ax.set_xticks(depth)
    ax.set_xticklabels([f"#{d}" for d in depth], fontsize=8)
    ax.set_xlabel("transferred (frozen) layers 1..#k")
    ax.set_ylabel("target accuracy (%)")
    ax.set_title(title)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return save_figure(fig, path, dpi=120, tight=False)
