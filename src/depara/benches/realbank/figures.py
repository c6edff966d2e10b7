"""Figures of the real-image bank: rank quality with intervals per scorer and protocol; picks vs truth per target."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ...report.plots.common import save_figure

PROTOCOL_LABELS = {"linear_probe": "linear probe", "fine_tune": "fine-tuning"}


def plot_intervals(summary: dict[str, list[dict]], path: Path, highlight=()) -> Path:
    """Mean weighted τ, Kendall τ and top-1 regret over targets with 95 % bootstrap intervals, per protocol."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    protocols = list(summary)
    metrics = (("weighted_tau", "mean weighted τ"), ("kendall", "mean Kendall τ"),
               ("regret", "mean top-1 regret (points, lower = better)"))
    scorers = [r["scorer"] for r in summary[protocols[0]] if r["scorer"] != "oracle"]
    fig, axes = plt.subplots(len(protocols), len(metrics), figsize=(17, 0.42 * len(scorers) * len(protocols) + 2),
                             squeeze=False, sharey=True)
    ys = np.arange(len(scorers))[::-1]
    for i, p in enumerate(protocols):
        rows = {r["scorer"]: r for r in summary[p]}
        for j, (m, label) in enumerate(metrics):
            ax = axes[i][j]
            for y, sc in zip(ys, scorers):
                r = rows[sc]
                colour = ("tab:red" if sc in highlight else "tab:blue" if sc.startswith("DEPARA") else
                          "grey" if sc.startswith(("random", "another")) else "black")
                ax.errorbar(r[m], y, xerr=[[r[m] - r[f"{m}_lo"]], [r[f"{m}_hi"] - r[m]]], fmt="o", color=colour,
                            capsize=3)
            ax.axvline(0 if m != "regret" else rows["random"][m], color="grey", lw=0.8, ls=":")
            ax.set_title(f"{PROTOCOL_LABELS.get(p, p)}: {label}", fontsize=10)
            ax.grid(axis="x", alpha=0.3)
        axes[i][0].set_yticks(ys)
        axes[i][0].set_yticklabels(scorers, fontsize=8)
    fig.suptitle("Real-image bank: rank quality over targets (95 % bootstrap intervals over targets)")
    return save_figure(fig, path)


def plot_picks(truth: dict[str, np.ndarray], sources, picks: dict[str, dict[str, str]], path: Path,
               title: str) -> Path:
    """Heatmap targets × sources of the truth (accuracy, min–max scaled per target), with each scorer's pick."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    targets = list(truth)
    m = np.array([truth[t] for t in targets])
    lo, hi = m.min(axis=1, keepdims=True), m.max(axis=1, keepdims=True)
    scaled = (m - lo) / np.where(hi > lo, hi - lo, 1.0)
    fig, ax = plt.subplots(figsize=(0.55 * len(sources) + 4, 0.42 * len(targets) + 3))
    ax.imshow(scaled, cmap="viridis", aspect="auto")
    markers = ["o", "s", "^", "D", "v", "P"]
    for k, (scorer, per_target) in enumerate(picks.items()):
        xs = [list(sources).index(per_target[t]) for t in targets]
        off = (k - (len(picks) - 1) / 2) * 0.18
        ax.scatter(np.array(xs) + off, np.arange(len(targets)), marker=markers[k % len(markers)], s=38,
                   facecolors="white" if k == 0 else "none",
                   edgecolors=["black", "red", "orange", "cyan", "magenta", "yellow"][k % 6], linewidths=1.4,
                   label=scorer)
    best = m.argmax(axis=1)
    ax.scatter(best, np.arange(len(targets)), marker="*", s=90, color="white", edgecolors="black", label="best (truth)")
    ax.set_xticks(range(len(sources)))
    ax.set_xticklabels(sources, rotation=70, ha="right", fontsize=7)
    ax.set_yticks(range(len(targets)))
    ax.set_yticklabels(targets, fontsize=8)
    ax.set_title(title + "\n(colour: accuracy scaled per target, yellow = best)", fontsize=10)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return save_figure(fig, path)
