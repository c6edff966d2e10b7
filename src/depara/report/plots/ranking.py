"""Figures of model-selection results: PR curve, P@K curve, λ sweep, task similarity tree, heatmap, ranking bars.

matplotlib with the Agg backend; every figure has labelled axes, a legend where it has several series, readable
task names, and is saved atomically (PNG). Plots draw what they are given: they compute no scores and no
clustering (the tree's linkage comes from :mod:`depara.core.tree`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from .common import save_figure  # noqa: E402
from ...core.tree import task_linkage  # noqa: E402
from ...errors import DeparaError  # noqa: E402

_MARKERS = "os^Dvp*hX<>"


_save = save_figure  # PNG, written atomically, figure closed


def _reference_curves(curve) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Random and oracle (K, precision, recall) for the shape of ``curve`` (a RankingCurve)."""
    from ...evaluation.rank_quality import oracle_curve, random_curve

    rnd = random_curve(curve.n_targets, curve.n_candidates, curve.relevant, curve.k)
    orc = oracle_curve(curve.n_targets, curve.n_candidates, curve.relevant, curve.k)
    return {"random": (rnd.k, rnd.precision, rnd.recall), "oracle": (orc.k, orc.precision, orc.recall)}


def _published(ax, published, colours: dict, x: str, n_curves: int) -> None:
    """Published points as open markers, in the colour of the curve named by their ``"match"`` key if any."""
    for i, (label, pts) in enumerate((published or {}).items()):
        colour = colours.get(pts.get("match")) or f"C{(i + n_curves) % 10}"
        ax.scatter(pts[x], pts["precision"], marker=_MARKERS[(i + 5) % len(_MARKERS)], s=40, facecolors="none",
                   edgecolors=colour, linewidths=1.4, label=label, zorder=3)


def _draw_curves(ax, curves: Mapping[str, Any], x: str, published, references: bool) -> None:
    """Precision against ``x`` ("recall" or "K") for each curve, the oracle/random references and the published
    points (in the colour of the curve they match)."""
    ref_index = {"K": 0, "recall": 2}[x]
    colours = {}
    for i, (label, c) in enumerate(curves.items()):
        xs = c.recall if x == "recall" else c.k
        (line,) = ax.plot(xs, c.precision, marker=_MARKERS[i % len(_MARKERS)], ms=4, lw=1.6, label=label)
        colours[label] = line.get_color()
    if references:
        ref = _reference_curves(next(iter(curves.values())))
        ax.plot(ref["oracle"][ref_index], ref["oracle"][1], color="0.2", ls="--", lw=1.2, label="oracle")
        ax.plot(ref["random"][ref_index], ref["random"][1], color="0.5", ls=":", lw=1.4, label="random")
    _published(ax, published, colours, x, len(curves))


def plot_pr_curve(curves: Mapping[str, Any], out: str | os.PathLike, *,
                  published: Mapping[str, Mapping[str, np.ndarray]] | None = None, references: bool = True,
                  title: str = "Precision-recall of source-task selection") -> Path:
    """Precision against recall over K = 1..S−1 for each method.

    Args:
        curves: label → :class:`depara.evaluation.rank_quality.RankingCurve` (all with the same targets and
            relevant size).
        out: PNG path.
        published: label → ``{"precision": ..., "recall": ..., "K": ...}`` points drawn as unconnected open
            markers; an optional ``"match"`` entry names the curve whose colour they take.
        references: add the random (P = relevant/(S−1)) and oracle (P@K = min(1, relevant/K)) curves.
    """
    if not curves:
        raise DeparaError("plot_pr_curve: no curves given")
    fig, ax = plt.subplots(figsize=(6.4, 4.8))
    _draw_curves(ax, curves, "recall", published, references)
    ax.set_xlabel("recall (hits / (targets × relevant))")
    ax.set_ylabel("precision (hits / (targets × K))")
    ax.set_xlim(0, 1.02)
    ax.set_ylim(0, 1.05)
    ax.grid(alpha=0.3)
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=7, loc="lower left", ncol=1 if len(curves) + len(published or {}) < 8 else 2)
    return _save(fig, out)


def plot_precision_at_k(curves: Mapping[str, Any], out: str | os.PathLike, *,
                        published: Mapping[str, Mapping[str, np.ndarray]] | None = None, references: bool = True,
                        title: str = "Precision at K") -> Path:
    """P@K against K for each method (same arguments as :func:`plot_pr_curve`; published needs ``"K"``)."""
    if not curves:
        raise DeparaError("plot_precision_at_k: no curves given")
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    _draw_curves(ax, curves, "K", published, references)
    k_max = int(max(int(c.k.max()) for c in curves.values()))
    ax.set_xlabel("K (top-K predicted sources)")
    ax.set_ylabel("precision P@K")
    ax.set_xticks(range(1, k_max + 1, 1 if k_max <= 20 else max(1, k_max // 10)))
    ax.set_ylim(0, 1.05)
    ax.grid(alpha=0.3)
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=7, loc="upper right")
    return _save(fig, out)


def plot_lambda_sweep(rows: Sequence[Mapping[str, float]], out: str | os.PathLike, *, chosen: float | None = None,
                      title: str = "Sensitivity to λ") -> Path:
    """Metrics of V + λE against λ (symmetric-log x axis, so λ = 0 is shown).

    Args:
        rows: one mapping per λ with key ``"lambda"`` and any metric columns (e.g. ``"P@1"``, ``"P@5"``,
            ``"mean_spearman"``), as written by :func:`depara.benches.taskonomy.lambda_sweep`.
        chosen: λ to mark with a vertical line.
    """
    if not rows:
        raise DeparaError("plot_lambda_sweep: no rows given")
    lams = np.array([r["lambda"] for r in rows], dtype=np.float64)
    order = np.argsort(lams)
    metrics = [k for k in rows[0] if k != "lambda"]
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for i, m in enumerate(metrics):
        vals = np.array([rows[j][m] for j in order], dtype=np.float64)
        ax.plot(lams[order], vals, marker=_MARKERS[i % len(_MARKERS)], ms=3, lw=1.4, label=m)
    positive = lams[lams > 0]
    ax.set_xscale("symlog", linthresh=float(positive.min()) if positive.size else 1e-3)
    if chosen is not None:
        ax.axvline(chosen, color="0.3", ls="--", lw=1, label=f"chosen λ = {chosen:g}")
    ax.set_xlabel("λ (weight of edge similarity E in V + λE)")
    ax.set_ylabel("metric value")
    ax.grid(alpha=0.3)
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=7)
    return _save(fig, out)


def plot_tree(names: Sequence[str], linkage, out: str | os.PathLike, *, method: str = "average",
              title: str = "Task similarity tree") -> Path:
    """Dendrogram of a given hierarchical clustering (``linkage``: scipy's (G−1)×4 matrix, e.g.
    :func:`depara.core.tree.task_linkage`; ``method`` only labels the axis). ``names``: the G leaves."""
    from scipy.cluster.hierarchy import dendrogram

    names = [str(n) for n in names]
    z = np.asarray(linkage, dtype=np.float64)
    if z.ndim != 2 or z.shape[1] != 4:
        raise DeparaError(f"plot_tree: expected a scipy linkage matrix (G−1)×4, got shape {z.shape}")
    if len(names) != z.shape[0] + 1:
        raise DeparaError(f"plot_tree: {len(names)} names for a {z.shape[0] + 1}-task similarity matrix")
    fig, ax = plt.subplots(figsize=(6.4, max(3.0, 0.28 * len(names) + 1.0)))
    dendrogram(z, labels=names, orientation="right", ax=ax, color_threshold=0.7 * float(z[:, 2].max()),
               leaf_font_size=8)
    ax.set_xlabel(f"dissimilarity (normalised, {method} linkage)")
    ax.set_ylabel("task")
    ax.set_title(title, fontsize=10)
    return _save(fig, out)


def plot_heatmap(names: Sequence[str], matrix, out: str | os.PathLike, *, title: str = "Task similarity",
                 order: Sequence[int] | None = None, colorbar_label: str = "similarity",
                 xlabel: str = "source task", ylabel: str = "target task") -> Path:
    """Heatmap of a task-by-task matrix (rows = targets, columns = sources), its tasks in ``order`` (e.g. the tree's
    leaf order, :func:`depara.core.tree.leaf_order`; default as given)."""
    names = [str(n) for n in names]
    m = np.array(matrix, dtype=np.float64)
    if m.ndim != 2 or m.shape != (len(names), len(names)):
        raise DeparaError(f"plot_heatmap: matrix shape {m.shape} does not match {len(names)} task names")
    order = np.arange(len(names)) if order is None else np.asarray(order, dtype=np.int64)
    m = m[np.ix_(order, order)]
    np.fill_diagonal(m, np.nan)  # self-similarity would dominate the colour scale
    size = max(4.0, 0.32 * len(names) + 2.0)
    fig, ax = plt.subplots(figsize=(size + 1.0, size))
    im = ax.imshow(np.ma.masked_invalid(m), cmap="viridis")
    labels = [names[i] for i in order]
    ax.set_xticks(range(len(labels)), labels, rotation=90, fontsize=7)
    ax.set_yticks(range(len(labels)), labels, fontsize=7)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    fig.colorbar(im, ax=ax, label=colorbar_label, shrink=0.8)
    return _save(fig, out)


def plot_ranking(rows: Sequence[Any], out: str | os.PathLike, *, title: str = "Source ranking",
                 lam: float | None = None, target: str | None = None) -> Path:
    """Horizontal bars of each source's score S, best on top (the one ranking bar chart: `depara rank --out`, ...).

    ``rows``: objects or mappings with ``name`` and ``S`` (optionally ``V`` and ``E``, e.g.
    :class:`depara.core.similarity.RankRow`). With V, E and ``lam`` the two parts of S = V + λE are marked on each
    bar (V as a dot, λ·E as a diamond), so one sees whether nodes or edges decide the ranking; the best bar is
    green. ``target`` names the target in the title.
    """
    def get(r, k):
        return r.get(k) if isinstance(r, Mapping) else getattr(r, k, None)

    if not rows:
        raise DeparaError("plot_ranking: no rows given")
    rows = sorted(rows, key=lambda r: -float(get(r, "S")))
    names = [str(get(r, "name")) for r in rows]
    s = np.array([float(get(r, "S")) for r in rows])
    y = np.arange(len(rows))[::-1]
    fig, ax = plt.subplots(figsize=(7.0, max(2.5, 0.38 * len(rows) + 1.2)))
    v = [get(r, "V") for r in rows]
    e = [get(r, "E") for r in rows]
    parts = lam is not None and np.isfinite(lam) and all(x is not None for x in v + e)
    colours = ["tab:green"] + ["tab:gray"] * (len(rows) - 1)
    ax.barh(y, s, color=colours, alpha=0.8, label=f"S = V + {lam:g}·E" if parts else "S")
    if parts:
        ax.scatter(np.array(v, dtype=float), y, marker="o", color="tab:blue", zorder=3, label="V (node similarity)")
        ax.scatter(lam * np.array(e, dtype=float), y, marker="D", color="tab:orange", zorder=3,
                   label=f"λ·E (edge similarity, λ = {lam:g})")
    for yi, si in zip(y, s):
        ax.annotate(f"{si:.3f}", (si, yi), xytext=(4 if si >= 0 else -4, 0), textcoords="offset points",
                    va="center", ha="left" if si >= 0 else "right", fontsize=8)
    ax.set_yticks(y, names, fontsize=8)
    ax.set_xlabel("transferability score S (higher transfers better)")
    ax.set_ylabel("source")
    ax.axvline(0, color="0.3", lw=0.8)
    ax.legend(fontsize=7, loc="best")
    ax.set_title(title + (f" for target '{target}'" if target else ""), fontsize=10)
    return _save(fig, out)


__all__ = ["plot_pr_curve", "plot_precision_at_k", "plot_lambda_sweep", "plot_tree", "plot_heatmap",
           "plot_ranking", "draw_tree"]


def draw_tree(names: Sequence[str], similarity, out: str | os.PathLike, *, method: str = "average",
              title: str = "Task similarity tree", heatmap: str | os.PathLike | None = None,
              heatmap_title: str = "Task similarity", colorbar_label: str = "similarity") -> dict[str, Path]:
    """Cluster ``similarity`` and draw the dendrogram to ``out`` (and, with ``heatmap``, the matrix in the tree's
    leaf order). Returns {"tree": path[, "heatmap": path]}."""
    from scipy.cluster.hierarchy import leaves_list

    z = task_linkage(similarity, method)
    paths = {"tree": plot_tree(names, z, out, method=method, title=title)}
    if heatmap is not None:
        paths["heatmap"] = plot_heatmap(names, similarity, heatmap, order=leaves_list(z),
                                        title=heatmap_title, colorbar_label=colorbar_label)
    return paths
