"""How well a source's probe graph agrees with a target graph: the DEPARA edge term and two local variants.

DEPARA's edge term (Song et al., CVPR 2020; docs/method.md §2) compares two graphs over the same N probes by the
Spearman correlation of their N(N−1)/2 edges. This module gives that comparison and two *local* alternatives, for
a target graph built from a target model (or regression targets) and for the **label graph** of class labels
(:mod:`depara.core.labels`), plus the feature handling the edges are built from. numpy/scipy only.

Notation: ``S`` is the source's N×N probe similarity matrix (the squareform of its condensed edges; the diagonal
is never used), ``T`` the target's, ``y`` the N class labels, ``S_i`` row i of ``S`` without its diagonal entry.

Comparisons (``comparison=``)
-----------------------------
``"global"``
    Spearman correlation of the two condensed edge vectors (average ranks for ties): DEPARA's E. Against the label
    graph, the target edges are :func:`depara.core.labels.label_edges` (1 within a class, a negative value across).
``"per_probe"``
    Neighbourhood rank agreement, one value per probe, averaged over probes. Against a target graph
    ``a_i = Spearman(S_i, T_i)``; against labels ``a_i = 2·AUC_i − 1`` (the rank-biserial correlation, Somers' D),
    with ``AUC_i`` the probability that a random same-class probe is more similar to i than a random other-class
    probe (ties count ½)::

        AUC_i = (Σ_{j ≠ i, y_j = y_i} r_ij − n⁺_i (n⁺_i + 1)/2) / (n⁺_i · n⁻_i)

    where ``r_ij`` is the average rank of ``S_ij`` within ``S_i`` and ``n⁺_i`` / ``n⁻_i`` count the other probes of
    i's class / of other classes. Probes whose row is undefined (constant row, a class of one probe) are left
    out of the mean. Each probe's value depends on the order of its own row only, so the score is immune to
    per-probe scale and to hubs (a probe similar to everything).
``"knn"``
    Agreement of each probe's k nearest neighbours (largest ``S_ij``; ``k`` given, or ``knn_k(N) = max(1, ⌊√N⌋)``;
    the frozen default passes ``depara.options.DEFAULT_EDGE_KNN_K``), averaged
    over probes, minus its expectation under a random order. Against labels: the fraction of i's k neighbours
    in i's class minus ``n⁺_i/(N−1)``; against a target graph: the overlap ``|kNN_S(i) ∩ kNN_T(i)|/k`` minus
    ``k/(N−1)``. Ties at the k-th value are split fractionally (each tied probe is in the neighbourhood with
    probability (slots left)/(tied probes), the expectation over random tie-breaking), so the value does not
    depend on the probes' order.

All three are invariant to a strictly increasing transform of either graph's edges (they use ranks and orders
only) and to a permutation of the probes (applied to both graphs and the labels).

Feature handling (:func:`probe_features`)
-----------------------------------------
A layer output ``F`` (N×C×H×W or N×D) gives the edges as the cosine of its rows after centring each dimension
over the probes (DEPARA's edge, :meth:`depara.core.graph.Graph.from_arrays`). Before that, ``pooling="flat"`` keeps
every value (N×CHW, DEPARA's graph) and ``"pooled"`` averages the spatial axes (N×C); ``scale="centred"`` leaves
the dimensions as they are and ``"standardised"`` divides each by its standard deviation over the probes (so
high-variance channels do not dominate the cosine; constant dimensions are dropped).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from scipy.spatial.distance import squareform
from scipy.stats import rankdata

from ..errors import DeparaError
from .edges import edges_from_features, pair_index, spearman
from .labels import class_indices, label_edges

__all__ = ["COMPARISONS", "POOLINGS", "EDGE_SCALES", "knn_k", "pooling_kind", "pool_features", "probe_features",
           "probe_edges", "label_agreement", "label_agreement_terms", "graph_agreement", "graph_agreement_terms",
           "resampled_label_agreement"]

COMPARISONS = ("global", "per_probe", "knn")
POOLINGS = ("flat", "pooled")
#: How the probe features are scaled before the edges (``scale=``): centred, or centred and standardised.
EDGE_SCALES = ("centred", "standardised")


def _choice(value: Any, allowed: tuple[str, ...], what: str) -> str:
    if value not in allowed:
        raise DeparaError(f"{what}: expected one of {', '.join(allowed)}, got {value!r}")
    return str(value)


def knn_k(n: int) -> int:
    """The neighbourhood size of ``comparison="knn"`` for N probes: ``max(1, ⌊√N⌋)`` (10 at N = 100, 22 at 500)."""
    return max(1, int(math.isqrt(int(n))))


# ------------------------------------------------------------------------------------------------ features
def pooling_kind(ndim: int) -> str:
    """THE rule of spatial pooling, by the number of axes of a layer output: ``"tokens"`` (3: N×T×D transformer
    tokens, averaged over T), ``"maps"`` (4 or more: channels-first N×C×spatial…, averaged over every axis after
    the second), ``"flat"`` (N×D, kept). :func:`pool_features` applies it to numpy arrays,
    :func:`depara.extraction.source_features.pool_features` to torch tensors."""
    return "tokens" if ndim == 3 else "maps" if ndim >= 4 else "flat"


def pool_features(features: Any) -> np.ndarray:
    """THE spatial pooling of a layer output: N×C×H×W… / N×T×D / N×D → N×C float32 (mean in float64).

    Channels-first maps are averaged over every axis after the second; transformer tokens N×T×D over the tokens
    (axis 1); N×D is returned as is. Used by :func:`probe_features` (``pooling="pooled"``), by ``depara select``
    for its label-based peers and by the Ray engine, so the three agree.
    """
    f = np.asarray(features)
    kind = pooling_kind(f.ndim)
    if kind == "tokens":  # transformer tokens N×T×D: mean over tokens
        return f.mean(axis=1, dtype=np.float64).astype(np.float32)
    if kind == "maps":
        return f.reshape(f.shape[0], f.shape[1], -1).mean(axis=2, dtype=np.float64).astype(np.float32)
    return f.reshape(f.shape[0], -1).astype(np.float32)


def probe_features(features: Any, *, pooling: str = "flat", scale: str = "centred") -> np.ndarray:
    """A layer output (N×C×spatial…, or N×D) prepared for the edges: float32 N×D′ (see the module docstring).

    ``pooling="pooled"``: :func:`pool_features` (channels first: every axis after the second; N×T×D tokens: over
    the tokens); for N×D input it changes nothing.
    ``scale="standardised"`` centres and divides each dimension by its standard deviation over the probes,
    dropping constant ones (all dropped: DeparaError). Memory: one float32 copy of the (pooled) features.
    """
    pooling = _choice(pooling, POOLINGS, "pooling")
    scale = _choice(scale, EDGE_SCALES, "scale")
    f = np.asarray(features)
    if f.ndim < 2 or f.shape[0] < 3:
        raise DeparaError(f"features: expected N×D or N×C×H×W with N >= 3 probes, got shape {f.shape}")
    if pooling == "pooled" and f.ndim > 2:
        f = pool_features(f)
    f = np.array(f.reshape(f.shape[0], -1), dtype=np.float32)
    if not np.all(np.isfinite(f)):
        raise DeparaError("features: contains NaN or inf")
    if scale == "standardised":
        f -= f.mean(axis=0, dtype=np.float64).astype(np.float32)
        sd = np.sqrt((f.astype(np.float64) ** 2).mean(axis=0)) if f.shape[1] <= 65536 else \
            np.sqrt(np.concatenate([(f[:, i:i + 65536].astype(np.float64) ** 2).mean(axis=0)
                                    for i in range(0, f.shape[1], 65536)]))
        keep = sd > 1e-12 * max(float(sd.max(initial=0.0)), np.finfo(float).tiny)
        if not keep.any():
            raise DeparaError("features: every dimension is constant over the probes; no edges can be built")
        f = f[:, keep] / sd[keep].astype(np.float32)
    return f


def probe_edges(features: Any, *, pooling: str = "flat", scale: str = "centred") -> np.ndarray:
    """Condensed N(N−1)/2 float32 edges (centred cosine) of :func:`probe_features` of a layer output."""
    return edges_from_features(probe_features(features, pooling=pooling, scale=scale), center=True,
                                edge="cosine")


# ------------------------------------------------------------------------------------------------ helpers
def _rows(edges: Any, what: str) -> np.ndarray:
    """N×(N−1) float64 matrix of each probe's similarities to the others (row i = S_i, diagonal removed)."""
    e = np.asarray(edges, dtype=np.float64)
    if e.ndim != 1 or e.size < 3:
        raise DeparaError(f"{what}: expected a condensed edge vector of N(N−1)/2 >= 3 values, got shape {e.shape}")
    n = int(round((1 + math.sqrt(1 + 8 * e.size)) / 2))
    if n * (n - 1) // 2 != e.size:
        raise DeparaError(f"{what}: {e.size} values is not N(N−1)/2 for any N")
    if not np.all(np.isfinite(e)):
        raise DeparaError(f"{what}: contains NaN or inf")
    full = squareform(e, checks=False)
    return full[~np.eye(n, dtype=bool)].reshape(n, n - 1)


def _labels_rows(labels: Any, n: int) -> np.ndarray:
    """N×(N−1) boolean same-class matrix (row i: is probe j, j ≠ i, in i's class)."""
    y = class_indices(labels)
    if y.shape[0] != n:
        raise DeparaError(f"labels: {y.shape[0]} labels for a graph of {n} probes")
    same = y[:, None] == y[None, :]
    return same[~np.eye(n, dtype=bool)].reshape(n, n - 1)


def _knn_membership(rows: np.ndarray, k: int) -> np.ndarray:
    """[...×]N×(N−1) probability that each probe is among its row's k largest values (ties split fractionally);
    rows along the last axis, any leading axes (e.g. one per resample)."""
    kth = -np.partition(-rows, k - 1, axis=-1)[..., k - 1:k]  # the k-th largest value of each row
    above = rows > kth
    tied = rows == kth
    slots = k - above.sum(axis=-1, keepdims=True)
    return above + tied * (slots / tied.sum(axis=-1, keepdims=True))


def _check_k(k: int | None, n: int) -> int:
    k = knn_k(n) if k is None else int(k)
    if not 1 <= k <= n - 2:
        raise DeparaError(f"k: expected 1 <= k <= N−2 = {n - 2} neighbours, got {k}")
    return k


# ------------------------------------------------------------------------------------------------ labels
def label_agreement_terms(source_edges: Any, labels: Any, comparison: str = "per_probe",
                          k: int | None = None) -> np.ndarray:
    """Per-probe terms (N,) of a local comparison with the label graph; NaN where a probe's term is undefined.

    ``per_probe``: ``2·AUC_i − 1``; ``knn``: same-class fraction of i's k neighbours minus ``n⁺_i/(N−1)``.
    The score (:func:`label_agreement`) is their mean over the defined terms.
    """
    comparison = _choice(comparison, ("per_probe", "knn"), "comparison")
    rows = _rows(source_edges, "source_edges")
    n = rows.shape[0]
    same = _labels_rows(labels, n)
    n_pos = same.sum(axis=1).astype(np.float64)
    n_neg = (n - 1) - n_pos
    if comparison == "per_probe":
        r = rankdata(rows, method="average", axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            auc = ((r * same).sum(axis=1) - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)
        return np.where((n_pos > 0) & (n_neg > 0), 2.0 * auc - 1.0, np.nan)
    kk = _check_k(k, n)
    hits = (_knn_membership(rows, kk) * same).sum(axis=1) / kk
    return np.where((n_pos > 0) & (n_neg > 0), hits - n_pos / (n - 1), np.nan)


def label_agreement(source_edges: Any, labels: Any, comparison: str = "global", k: int | None = None) -> float:
    """Agreement of a source's probe graph with the label graph of class labels (higher = more transferable).

    Parameters
    ----------
    source_edges : (N(N−1)/2,) condensed edges of the source's graph on N labelled probes (squareform order).
    labels : (N,) class labels of the probes (at least 2 classes).
    comparison : ``"global"`` (Spearman with :func:`depara.core.labels.label_edges`, DEPARA's E against the label
        graph), ``"per_probe"`` (mean rank-biserial ``2·AUC_i − 1``) or ``"knn"`` (mean kNN same-class lift); see the
        module docstring.
    k : neighbours of ``"knn"`` (default :func:`knn_k`).

    Returns
    -------
    float in [−1, 1].
    """
    comparison = _choice(comparison, COMPARISONS, "comparison")
    if comparison == "global":
        e = np.asarray(source_edges)
        lab = label_edges(labels)
        if lab.shape != e.shape:
            raise DeparaError(f"labels: {np.asarray(labels).shape[0]} labels do not match {e.shape[0]} edges")
        return spearman(e, lab, ("label agreement (source)", "label agreement (target)"))
    terms = label_agreement_terms(source_edges, labels, comparison, k)
    if not np.isfinite(terms).any():
        raise DeparaError("labels: no probe has both a same-class and an other-class probe; the agreement is "
                          "undefined")
    return float(np.nanmean(terms))


def resampled_label_agreement(source_edges: Any, labels: Any, comparison: str, idx_sets: np.ndarray,
                              k: int | None = None) -> np.ndarray:
    """:func:`label_agreement` on each resample of the probes (``idx_sets``: R×N indices, repeats allowed): (R,).

    ``global``: the Spearman over the edges of the pairs of *distinct* probes in the resample (the label edges
    of the full set); ``per_probe`` / ``knn``: the score of the resample's own graph, i.e. each term recomputed
    from the edges among the resample's distinct probes (a probe's neighbourhood is the resample, as it would be
    on a real probe set of that size; :func:`depara.selection.job.select` draws half-samples without replacement,
    :mod:`depara.evaluation.uncertainty`). Row 0 of ``idx_sets`` being the identity gives the point estimate
    :func:`label_agreement`. NaN where a resample is degenerate.
    """
    comparison = _choice(comparison, COMPARISONS, "comparison")
    idx_sets = np.asarray(idx_sets, dtype=np.int64)
    out = np.full(idx_sets.shape[0], np.nan)
    if comparison == "global":
        e = np.asarray(source_edges, dtype=np.float64)
        lab = label_edges(labels).astype(np.float64)
        n = np.asarray(labels).shape[0]
        for r, idx in enumerate(idx_sets):
            pairs = pair_index(idx, n)
            try:
                out[r] = spearman(e[pairs], lab[pairs], ("label agreement (source)", "label agreement (target)"))
            except DeparaError:
                pass  # a resample with constant edges: undefined
        return out
    e = np.asarray(source_edges, dtype=np.float64)
    y = np.asarray(labels)
    n = y.shape[0]
    ordered = np.sort(idx_sets, axis=1)
    if comparison == "knn" and idx_sets.shape[1] >= 4 and (np.diff(ordered, axis=1) > 0).all() \
            and np.isfinite(e).all() and y.shape[0] * (y.shape[0] - 1) // 2 == e.shape[0]:  # else row by row
        return _knn_label_resamples(squareform(e, checks=False), class_indices(y), ordered, k)
    for r, idx in enumerate(idx_sets):
        keep = np.unique(idx)  # the resample's distinct probes, in increasing order
        if keep.size < 4:
            continue
        sub = e[pair_index(keep, n)]  # the condensed edges of the resample's own graph
        try:
            t = label_agreement_terms(sub, y[keep], comparison, k)
        except DeparaError:
            continue  # e.g. k too large for a small resample
        if np.isfinite(t).any():
            out[r] = float(np.nanmean(t))
    return out


def _knn_label_resamples(full: np.ndarray, y: np.ndarray, rows: np.ndarray, k: int | None,
                         chunk: int = 2_000_000) -> np.ndarray:
    """The ``knn`` label agreement of each resample of distinct probes (``rows``: R×M, each row increasing) at
    once: for every row what :func:`label_agreement_terms` gives on the resample's own graph, averaged over its
    defined terms; ``full`` the N×N similarity matrix. The diagonal is set to −inf, so it is never among a
    probe's k largest nor tied with the k-th. NaN for a row without a defined term."""
    m = rows.shape[1]
    try:
        kk = _check_k(k, m)
    except DeparaError:
        return np.full(rows.shape[0], np.nan)
    out = np.empty(rows.shape[0])
    eye = np.eye(m, dtype=bool)
    for a in range(0, rows.shape[0], max(1, chunk // (m * m))):
        idx = rows[a:a + max(1, chunk // (m * m))]
        sub = full[idx[:, :, None], idx[:, None, :]]  # B×M×M: each resample's own graph
        sub[:, eye] = -np.inf
        member = _knn_membership(sub, kk)
        lab = y[idx]
        same = (lab[:, :, None] == lab[:, None, :]) & ~eye
        n_pos = same.sum(axis=2).astype(np.float64)
        terms = np.where((n_pos > 0) & (n_pos < m - 1), (member * same).sum(axis=2) / kk - n_pos / (m - 1), np.nan)
        defined = np.isfinite(terms).any(axis=1)
        with np.errstate(invalid="ignore"):
            out[a:a + len(idx)] = np.where(defined, np.nanmean(np.where(defined[:, None], terms, 0.0), axis=1),
                                           np.nan)
    return out


# ------------------------------------------------------------------------------------------- target graphs
def graph_agreement_terms(source_edges: Any, target_edges: Any, comparison: str = "per_probe",
                          k: int | None = None) -> np.ndarray:
    """Per-probe terms (N,) of a local comparison with a target graph (a model's, or regression targets').

    ``per_probe``: ``Spearman(S_i, T_i)`` (NaN where either row is constant); ``knn``: ``|kNN_S(i) ∩ kNN_T(i)|/k``
    (expected over tie-breaking) minus ``k/(N−1)``.
    """
    comparison = _choice(comparison, ("per_probe", "knn"), "comparison")
    s = _rows(source_edges, "source_edges")
    t = _rows(target_edges, "target_edges")
    if s.shape != t.shape:
        raise DeparaError(f"target_edges: a graph of {t.shape[0]} probes vs the source's {s.shape[0]}")
    n = s.shape[0]
    if comparison == "per_probe":
        rs = rankdata(s, method="average", axis=1)
        rt = rankdata(t, method="average", axis=1)
        rs -= rs.mean(axis=1, keepdims=True)
        rt -= rt.mean(axis=1, keepdims=True)
        den = np.sqrt((rs ** 2).sum(axis=1) * (rt ** 2).sum(axis=1))
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(den > 0, np.clip((rs * rt).sum(axis=1) / den, -1.0, 1.0), np.nan)
    kk = _check_k(k, n)
    return (_knn_membership(s, kk) * _knn_membership(t, kk)).sum(axis=1) / kk - kk / (n - 1)


def graph_agreement(source_edges: Any, target_edges: Any, comparison: str = "global", k: int | None = None) -> float:
    """Agreement of a source's probe graph with a target graph over the same N probes (higher = more similar).

    Parameters
    ----------
    source_edges, target_edges : (N(N−1)/2,) condensed edges of the two graphs (squareform order).
    comparison : ``"global"`` (Spearman of the edge vectors: DEPARA's E), ``"per_probe"`` (mean row-wise Spearman)
        or ``"knn"`` (mean kNN overlap lift); see the module docstring.
    k : neighbours of ``"knn"`` (default :func:`knn_k`).
    """
    comparison = _choice(comparison, COMPARISONS, "comparison")
    if comparison == "global":
        s, t = np.asarray(source_edges), np.asarray(target_edges)
        if s.shape != t.shape:
            raise DeparaError(f"target_edges: {t.shape} edges vs the source's {s.shape}")
        return spearman(s, t, ("graph agreement (source)", "graph agreement (target)"))
    terms = graph_agreement_terms(source_edges, target_edges, comparison, k)
    if not np.isfinite(terms).any():
        raise DeparaError("target_edges: every probe's row is constant; the agreement is undefined")
    return float(np.nanmean(terms))


def __getattr__(name: str):
    # SCALES (the edge scalings) is EDGE_SCALES: SCALES names run sizes in the benches; the old name warns for one
    # release.
    if name == "SCALES":
        import warnings

        warnings.warn(f"{__name__}.SCALES is now EDGE_SCALES; the old name goes in the next release",
                      DeprecationWarning, stacklevel=2)
        return EDGE_SCALES
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
