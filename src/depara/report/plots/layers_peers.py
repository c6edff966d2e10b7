"""Figure of the per-layer peer comparison (:mod:`depara.benches.layers.peers`): every estimator's score per transfer
depth, z-scored within the method, beside the measured transfer accuracy. Draws what it is given; computes no score."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Mapping, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from ...errors import DeparaError  # noqa: E402
from .common import save_figure  # noqa: E402

_STYLE = {"label-based": "--", "label-free": ":", "depara": "-", "trivial": "-."}


def _z(v: np.ndarray) -> np.ndarray:
    sd = v.std()
    return np.zeros_like(v) if sd == 0 or not np.isfinite(sd) else (v - v.mean()) / sd


def plot_layer_peers(panels: Mapping[str, Mapping[str, object]], out: str | os.PathLike, *,
                     families: Mapping[str, str] | None = None, title: str = "") -> Path:
    """One panel per accuracy column (e.g. ``tenth``, ``hundredth``).

    ``panels[name]`` holds ``depths`` (L,), ``accuracy`` (L,) and ``scores`` (method → (L,) array); each method's
    line is z-scored across layers (methods have different units), the accuracy (z-scored too) is the thick black
    line. ``families`` (method → label-based | label-free | depara | trivial) sets the line style.
    """
    if not panels:
        raise DeparaError("peer figure: nothing to plot")
    fig, axes = plt.subplots(1, len(panels), figsize=(6.2 * len(panels), 4.4), squeeze=False)
    for ax, (name, panel) in zip(axes[0], panels.items()):
        depths = np.asarray(panel["depths"], dtype=float)
        for method, values in panel["scores"].items():  # type: ignore[union-attr]
            style = _STYLE.get((families or {}).get(method, ""), "-")
            ax.plot(depths, _z(np.asarray(values, dtype=float)), style, lw=1.3, marker=".", label=method)
        ax.plot(depths, _z(np.asarray(panel["accuracy"], dtype=float)), color="k", lw=3, alpha=0.7,
                label="transfer accuracy")
        ax.set_xticks(depths)
        ax.set_xlabel("transfer depth k (layers 1..k copied and frozen)")
        ax.set_ylabel("z-score across layers (higher = better)")
        ax.set_title(f"target fraction: {name}", fontsize=10)
        ax.grid(alpha=0.3)
    axes[0][-1].legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))
    if title:
        fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    return save_figure(fig, out)


def panel_from_rows(rows: Sequence[Mapping[str, object]], accuracy_key: str, methods: Sequence[str]) -> dict:
    """A panel for :func:`plot_layer_peers` from ``peer_scores_<fraction>.csv``-like rows."""
    return {"depths": [int(float(r["depth"])) for r in rows],
            "accuracy": [float(r[accuracy_key]) for r in rows],
            "scores": {m: [float(r[m]) for r in rows] for m in methods}}
