"""The task similarity tree: hierarchical clustering of a task-by-task similarity matrix (numpy/scipy).

A similarity matrix (higher = more similar, rows = targets, columns = sources, any diagonal) is symmetrised and
turned into a normalised distance (:func:`similarity_to_distance`), then clustered with
``scipy.cluster.hierarchy.linkage`` (:func:`task_linkage`); :func:`leaf_order` is the dendrogram's leaf order,
used to order heatmaps. :func:`depara.report.plots.ranking.draw_tree` draws the tree these functions compute.
"""

from __future__ import annotations

import numpy as np

from ..errors import DeparaError

__all__ = ["LINKAGE_METHODS", "check_linkage_method", "similarity_to_distance", "task_linkage", "leaf_order"]

LINKAGE_METHODS = ("average", "single", "complete", "weighted", "centroid", "median", "ward")


def similarity_to_distance(similarity) -> np.ndarray:
    """Symmetrise a square similarity matrix and turn it into a distance matrix in [0, 1] (diagonal 0).

    ``d = (max − s) / (max − min)`` over the off-diagonal values of ``s = (M + Mᵀ)/2``; the diagonal (often NaN
    or self-similarity) is ignored.
    """
    m = np.asarray(similarity, dtype=np.float64)
    if m.ndim != 2 or m.shape[0] != m.shape[1] or m.shape[0] < 2:
        raise DeparaError(f"similarity matrix: expected a square matrix of at least 2 tasks, got shape {m.shape}")
    off = ~np.eye(m.shape[0], dtype=bool)
    if not np.all(np.isfinite(m[off])):
        i, j = np.argwhere(~np.isfinite(m) & off)[0]
        raise DeparaError(f"similarity matrix: non-finite value at row {i}, column {j}")
    s = (m + m.T) / 2
    lo, hi = s[off].min(), s[off].max()
    d = np.zeros_like(s) if hi == lo else (hi - s) / (hi - lo)
    np.fill_diagonal(d, 0.0)
    return d


def check_linkage_method(method: str) -> str:
    """``method`` if scipy's linkage knows it; DeparaError naming it otherwise."""
    if method not in LINKAGE_METHODS:
        raise DeparaError(f"linkage method {method!r}: expected one of {', '.join(LINKAGE_METHODS)}")
    return method


def task_linkage(similarity, method: str = "average") -> np.ndarray:
    """scipy linkage matrix ((G−1)×4) of the tasks, from :func:`similarity_to_distance` of a similarity matrix."""
    from scipy.cluster.hierarchy import linkage
    from scipy.spatial.distance import squareform

    check_linkage_method(method)
    d = similarity_to_distance(similarity)
    return linkage(squareform(d, checks=False), method=method)


def leaf_order(similarity, method: str = "average") -> np.ndarray:
    """Task indices in the dendrogram's leaf order (similar tasks next to each other)."""
    from scipy.cluster.hierarchy import leaves_list

    return leaves_list(task_linkage(similarity, method))


def __getattr__(name: str):
    # draw_tree (a figure) moved to depara.report.plots.ranking; the old name warns for one release.
    if name == "draw_tree":
        import importlib
        import warnings

        warnings.warn("depara.core.tree.draw_tree moved to depara.report.plots.ranking.draw_tree", DeprecationWarning,
                      stacklevel=2)
        return importlib.import_module("depara.report.plots.ranking").draw_tree
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
