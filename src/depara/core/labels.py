"""Label-aware target graphs: a DEPARA target graph built from the target's class labels (no target model).

The common case of transfer is a labelled target set and no target model. DEPARA's edge term compares how two
models *group* the probes; the labels themselves say how an ideal model of the target task groups them. So the
label graph takes as features the one-hot labels ``Y`` (N×K) and applies DEPARA's own edge definition (cosine of
the probes' features after centring over probes, :meth:`depara.core.graph.Graph.from_arrays`):

    p_k = n_k / N                      (class shares over the N probes)
    s   = Σ_k p_k²
    e_ij = (δ(y_i, y_j) − p_{y_i} − p_{y_j} + s) / sqrt((1 − 2 p_{y_i} + s)(1 − 2 p_{y_j} + s))

(the inner product of the centred one-hot rows ``e_{y_i} − p`` and ``e_{y_j} − p`` over their norms). Same-class
pairs get exactly 1; different-class pairs a negative value depending on the two class shares. With balanced
classes every different-class pair gets −1/(K−1), so the edge vector is a two-valued class-identity indicator and
its Spearman correlation with a source's edges is the point-biserial rank correlation "are same-class probes closer
than different-class probes in the source's features".

A label graph has **no nodes** (``nodes`` is N×0): attribution maps need a model. :mod:`depara.core.similarity` then
defines S = λ·E (the node term is absent, not zero; see :func:`depara.similarity`).

Regression targets (N×D) give the same construction with the targets as features (:func:`target_edges`).

The **hybrid** target graph of a target model and the labels mixes the two edge similarities (not the edge
vectors, whose scales differ): ``E_hybrid = (1 − w)·E(source, target model) + w·E(source, labels)``
(:func:`hybrid_edge_similarity`); the node term, when used, comes from the target model alone.

numpy only.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np

from ..errors import DeparaError
from .edges import edges_from_features, ranked_correlation, standardized_ranks
from .score import combine


def class_indices(labels: Any) -> np.ndarray:
    """The probes' class labels (integers or strings, N ≥ 3, ≥ 2 classes) as indices 0..K−1; DeparaError naming
    ``labels`` otherwise."""
    y = np.asarray(labels)
    if y.ndim != 1:
        raise DeparaError(f"labels: expected a 1-D array of N class labels, got shape {y.shape}")
    if y.shape[0] < 3:
        raise DeparaError(f"labels: a graph needs at least 3 probes, got {y.shape[0]}")
    if y.dtype.kind == "f" and not np.all(np.isfinite(y)):
        raise DeparaError("labels: contains NaN or inf")
    if y.dtype.kind not in "iubUSOf":
        raise DeparaError(f"labels: expected class labels (integers or strings), got dtype {y.dtype}")
    _, idx = np.unique(y, return_inverse=True)
    if idx.max() == 0:
        raise DeparaError(f"labels: all {y.shape[0]} probes have one class; the label graph needs at least 2 "
                          "classes (its edges would be constant)")
    return idx.reshape(-1)


def class_count(labels: Any) -> int:
    """The number of distinct classes K among the labels."""
    return int(np.unique(np.asarray(labels)).shape[0])


def label_edges(labels: Any) -> np.ndarray:
    """Condensed N(N−1)/2 float32 edges of the label graph (squareform order), by the closed form above.

    Equal to ``Graph.from_arrays(onehot, onehot, center=True).edges`` (cosine of centred one-hot rows).
    """
    idx = class_indices(labels)
    n = idx.shape[0]
    p = np.bincount(idx) / n
    s = float(np.dot(p, p))
    k = p.shape[0]
    table = (np.eye(k) - p[:, None] - p[None, :] + s)
    norm = np.sqrt(np.clip(1.0 - 2.0 * p + s, 0.0, None))
    table /= norm[:, None] * norm[None, :]
    iu = np.triu_indices(n, k=1)
    return np.clip(table[idx[iu[0]], idx[iu[1]]], -1.0, 1.0).astype(np.float32)


def target_edges(targets: Any) -> np.ndarray:
    """Condensed edges of a regression target graph: cosine of the centred target rows (N×D, D ≥ 1)."""
    t = np.asarray(targets, dtype=np.float64)
    if t.ndim == 1:
        t = t[:, None]
    if t.ndim != 2 or t.shape[0] < 3:
        raise DeparaError(f"targets: expected N×D regression targets with N >= 3, got shape {t.shape}")
    if not np.all(np.isfinite(t)):
        raise DeparaError("targets: contains NaN or inf")
    return edges_from_features(t, center=True, edge="cosine")


def edge_similarities(source_edges: Sequence[np.ndarray], target_edge: np.ndarray) -> np.ndarray:
    """Spearman correlation (average ranks for ties) of each source edge vector with one target edge vector: (S,)."""
    t = standardized_ranks(np.asarray(target_edge), "the target graph")
    return np.array([ranked_correlation(standardized_ranks(e, f"source {i}"), t) for i, e in enumerate(source_edges)])


def hybrid_edge_similarity(e_model: Any, e_labels: Any, weight: float) -> np.ndarray:
    """``(1 − w)·E_model + w·E_labels`` (arrays of the same shape); ``w`` in [0, 1]."""
    w = float(weight)
    if not 0.0 <= w <= 1.0:
        raise DeparaError(f"weight: expected a number in [0, 1], got {weight!r}")
    return (1.0 - w) * np.asarray(e_model, dtype=np.float64) + w * np.asarray(e_labels, dtype=np.float64)


def depara_score(v: Any, e: Any, node_weight: float) -> np.ndarray:
    """DEPARA-family score ``α·V + E`` (α = 1/λ of S = V + λE; α = 0 is the edge term alone).

    Written with the weight on V so that "no node term" is α = 0 rather than λ = ∞.
    """
    a = float(node_weight)
    if a < 0:
        raise DeparaError(f"node_weight: expected a number >= 0, got {node_weight!r}")
    e = np.asarray(e, dtype=np.float64)
    if a == 0:  # S = V + λE with λ = ∞: the edge term alone, whatever V is
        return combine(np.full(e.shape, np.nan), e, math.inf)
    return a * combine(v, e, 1.0 / a)


def __getattr__(name: str):
    # label_graph(labels, probe_ids, meta) of release 0.1 is Graph.from_labels; the old name warns for one release.
    if name == "label_graph":
        import importlib
        import warnings

        warnings.warn("depara.core.labels.label_graph is depara.core.graph.Graph.from_labels; the old name goes in "
                      "the next release", DeprecationWarning, stacklevel=2)
        return importlib.import_module("depara.core.graph").Graph.from_labels
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
