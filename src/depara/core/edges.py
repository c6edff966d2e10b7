"""Edge ranks computed once at build time, so comparing thousands of graphs is matrix products only.

The edge similarity E of two graphs is the Spearman correlation of their edge vectors (docs/method.md §2): the dot
product of their *standardised ranks* (average ranks for ties, centred, scaled to unit norm). Ranking an edge
vector of M = N(N−1)/2 values is an O(M log M) sort; for 100 graphs × 1,000 probes it was ~97 % of the time of
:func:`depara.core.similarity.similarity_matrix`. A graph may therefore carry its ranks:

* ``graph.edge_ranks``: int32 array (M,), **twice** the average rank of each edge (1-based, ties averaged), so
  every value is an integer and the stored ranks are exact (no float rounding). ``None`` when not computed.
* :func:`attach_edge_ranks` computes them (once); :meth:`depara.core.graph.Graph.save` writes them as the optional
  safetensors tensor ``edge_ranks`` and :meth:`~depara.core.graph.Graph.load` reads them back, checked by
  :func:`check_edge_ranks`.
* :func:`standardized_edge_ranks` turns them into the unit-norm centred float64 vector in O(M) (an affine map,
  no sort), bit-for-bit what :func:`standardized_ranks` computes from the edges themselves.

numpy/scipy only.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.stats import rankdata

from ..errors import DeparaError

#: Bytes per chunk when reducing/validating large (possibly memory-mapped) attribution arrays (chunks of probes)
#: and when accumulating the edge Gram matrix (chunks of float64 feature columns), so a 1000×256×256×8 float32
#: Taskonomy array (2 GB) or 200 VGG conv1 feature maps (200×64×224×224) never need a full-size temporary.
CHUNK_BYTES = 64 * 2**20
#: Doubled ranks are stored as int32: exact for up to 2**30 edges (N ≈ 46,000 probes).
_MAX_EDGES = 2**30
#: Edge pairs checked against the ranks' order when loading (a cheap guard against ranks of other edges).
_ORDER_CHECKS = 64


def pair_index(idx: np.ndarray, n: int) -> np.ndarray:
    """Condensed-edge indices (the order of ``scipy.spatial.distance.squareform``, N = ``n`` probes) of the pairs
    (a < b) of a resample ``idx`` (probe indices, repeats allowed) whose probes differ: idx[a] ≠ idx[b].

    For the identity resample this is every pair in condensed order; for sorted distinct indices, the edges of
    the subgraph of those probes in its own condensed order.
    """
    a, b = np.triu_indices(len(idx), k=1)
    i, j = idx[a], idx[b]
    keep = i != j
    i, j = np.minimum(i[keep], j[keep]), np.maximum(i[keep], j[keep])
    return n * i - i * (i + 1) // 2 + j - i - 1


def doubled_ranks(edges: np.ndarray) -> np.ndarray:
    """Twice the average ranks (1-based, ties averaged) of an edge vector (M,), as exact int32 values."""
    edges = np.asarray(edges)
    if edges.ndim != 1:
        raise DeparaError(f"edges: expected a 1-D edge vector, got shape {edges.shape}")
    if edges.shape[0] >= _MAX_EDGES:
        raise DeparaError(f"edges: {edges.shape[0]} values; stored ranks support fewer than {_MAX_EDGES}")
    ranks = rankdata(edges, method="average")  # float64, integers or halves: ×2 is exact
    ranks *= 2.0
    return ranks.astype(np.int32)


def constant_edges_error(name: str, m: int) -> DeparaError:
    """The one error for an edge vector without a ranking (all values equal)."""
    return DeparaError(f"edge vector of {name} is constant ({m} equal values): Spearman correlation is undefined "
                       "(are the features constant across probes?)")


def centred_doubled_ranks(edges: np.ndarray, doubled: np.ndarray | None, out: np.ndarray,
                          name: str = "graph") -> np.ndarray:
    """``out[:] = 2·rank − (M+1)`` (integers; exact in float64, and in float32 below 2**24 edges), in one pass.

    These are the standardised ranks times a per-vector constant, so a stack of them multiplied by its transpose
    and divided by the outer product of the square roots of its diagonal is the Spearman matrix — with the
    stack written once, from the stored ranks with no sort. ``doubled``: stored ranks, or None to rank now.
    """
    m = np.shape(edges)[0]
    if doubled is None:
        ranks = rankdata(np.asarray(edges), method="average")
        ranks *= 2.0
        np.subtract(ranks, m + 1, out=out, casting="unsafe")
    else:
        if doubled.shape != np.shape(edges):
            raise DeparaError(f"edge_ranks of {name}: shape {doubled.shape}, expected {np.shape(edges)} like its "
                              "edges")
        np.subtract(doubled, m + 1, out=out, dtype=out.dtype, casting="unsafe")
    return out


def standardize(ranks: np.ndarray, name: str) -> np.ndarray:
    """Average ranks (M,) float64 → centred, unit-norm float64 (in place); DeparaError naming ``name`` if constant.

    The dot product of two such vectors is the Spearman correlation of the vectors they rank.
    """
    # Average ranks always sum to M(M+1)/2, so their mean is exactly (M+1)/2 for every vector.
    ranks -= (ranks.shape[0] + 1) / 2.0
    norm = float(np.linalg.norm(ranks))
    if norm == 0.0 or ranks.shape[0] < 2:
        raise constant_edges_error(name, ranks.shape[0])
    ranks /= norm
    return ranks


def standardized_ranks(values: np.ndarray, name: str = "edges") -> np.ndarray:
    """Average ranks of a vector (M,), centred and scaled to unit norm (float64): THE rank helper of depara.

    The dot product of two such vectors is their Spearman correlation (ties: average ranks;
    :func:`ranked_correlation`). Raises DeparaError naming ``name`` when the vector is constant (Spearman
    undefined).
    """
    return standardize(rankdata(np.asarray(values), method="average"), name)


def ranked_correlation(ranks_a: np.ndarray, ranks_b: np.ndarray) -> float:
    """The Spearman correlation of two vectors from their :func:`standardized_ranks`, clipped to [−1, 1]."""
    return float(np.clip(np.dot(ranks_a, ranks_b), -1.0, 1.0))


def spearman(a: np.ndarray, b: np.ndarray, names: tuple[str, str] = ("source", "target")) -> float:
    """Spearman correlation of two vectors (average ranks for ties); DeparaError naming the constant one."""
    return ranked_correlation(standardized_ranks(a, names[0]), standardized_ranks(b, names[1]))


def standardized_edge_ranks(edges: np.ndarray, doubled: np.ndarray | None = None, name: str = "graph",
                            out: np.ndarray | None = None) -> np.ndarray:
    """Standardised ranks (float64, (M,)) of ``edges``: from their stored ``doubled`` ranks in O(M), else ranked now.

    Bit-for-bit the same vector either way (the stored ranks are exact). ``out``: a float64 (M,) array to
    write into (e.g. a row of a stack), saving a copy.
    """
    if doubled is None:
        ranks = rankdata(np.asarray(edges), method="average")
        if out is not None:
            out[...] = ranks
            ranks = out
    else:
        if doubled.shape != np.shape(edges):
            raise DeparaError(f"edge_ranks of {name}: shape {doubled.shape}, expected {np.shape(edges)} like its "
                              "edges")
        # One pass, exact: the stored values are doubled average ranks.
        ranks = np.multiply(doubled, 0.5, out=out, dtype=np.float64)
    return standardize(ranks, name)


def attach_edge_ranks(graph: Any) -> Any:
    """Compute and keep ``graph.edge_ranks`` (doubled average ranks, int32) if absent; returns the graph.

    Call once when a graph is built; :meth:`~depara.core.graph.Graph.save` then stores them with the graph.
    """
    if getattr(graph, "edge_ranks", None) is None:
        graph.edge_ranks = doubled_ranks(graph.edges)
    return graph


def check_edge_ranks(ranks: Any, edges: np.ndarray, where: str) -> np.ndarray:
    """Validate stored doubled ranks against their edge vector; returns them as int32 (M,).

    Checks the dtype, the length, the range [2, 2M], the sum M(M+1) that every average ranking has, and that
    ``_ORDER_CHECKS`` pseudo-random pairs of edges are ordered as their ranks are (ties included). A failure
    raises a one-line DeparaError naming ``where`` (the file).
    """
    arr = np.asarray(ranks)
    m = edges.shape[0]
    if arr.dtype != np.int32 or arr.shape != (m,):
        raise DeparaError(f"{where}: stored edge_ranks must be int32 of shape ({m},) like the edges, got "
                          f"{arr.dtype} {arr.shape}")
    if m and (int(arr.min()) < 2 or int(arr.max()) > 2 * m or int(arr.sum(dtype=np.int64)) != m * (m + 1)):
        raise DeparaError(f"{where}: stored edge_ranks are not the doubled average ranks of {m} edges "
                          "(corrupt file; rebuild the graph)")
    if m > 1:
        rng = np.random.default_rng(m)  # fixed: the same pairs for the same file
        i = rng.integers(0, m, _ORDER_CHECKS)
        j = rng.integers(0, m, _ORDER_CHECKS)
        if not np.array_equal(np.sign(edges[i] - edges[j]), np.sign(arr[i].astype(np.int64) - arr[j])):
            raise DeparaError(f"{where}: stored edge_ranks do not order the stored edges (ranks of another "
                              "graph?); rebuild the graph")
    return arr


# ------------------------------------------------------------------------------------- features → edges
def column_chunks(n_probes: int, n_columns: int):
    """Column slices of an N×D matrix holding at most ``CHUNK_BYTES`` of float64 each."""
    width = max(1, CHUNK_BYTES // (8 * n_probes))
    return [slice(c, min(n_columns, c + width)) for c in range(0, n_columns, width)]


def edges_from_features(features: np.ndarray, *, center: bool, edge: str) -> np.ndarray:
    """N×D features → condensed N(N−1)/2 float32 cosine similarities (or Pearson correlations) of rows.

    Computed as one N×N Gram matrix accumulated in float64 over column chunks of the features (at most
    ``CHUNK_BYTES`` of float64 each), divided by the products of the row norms. Centring over probes subtracts
    each column's own mean, so it is exact chunk by chunk; no full-size float64 copy is ever made, and a
    memory-mapped input is only read (twice for ``edge="correlation"``: once more for the row means).
    """
    flat = features.reshape(features.shape[0], -1)  # a view for contiguous arrays (and memmaps)
    n, d = flat.shape
    chunks = column_chunks(n, d)

    abs_max = 0.0

    def chunk(cols: slice) -> np.ndarray:
        nonlocal abs_max
        block = np.array(flat[:, cols], dtype=np.float64, copy=True)  # never alter the input
        abs_max = max(abs_max, float(block.max()), -float(block.min()))
        if center:
            block -= block.mean(axis=0, keepdims=True)
        return block

    row_means = None
    if edge == "correlation":
        row_sums = np.zeros(n)
        for cols in chunks:
            row_sums += chunk(cols).sum(axis=1)
        row_means = (row_sums / d)[:, None]
    gram = np.zeros((n, n))
    squares = np.zeros(n)
    for cols in chunks:
        block = chunk(cols)
        if row_means is not None:
            block -= row_means
        gram += block @ block.T
        squares += np.einsum("ij,ij->i", block, block)
    norms = np.sqrt(squares)
    # A row counts as zero when its norm vanishes relative to the features' own magnitude, so rows that are
    # zero only up to the rounding of the centring are caught too.
    tol = 1e-12 * max(abs_max, np.finfo(float).tiny) * np.sqrt(d)
    zero = norms <= tol
    if zero.any():
        idx = np.flatnonzero(zero)
        why = ("constant across feature dimensions (Pearson correlation undefined)" if edge == "correlation"
               else "all zero" + (" after centring over probes" if center else ""))
        raise DeparaError(f"features: {idx.size} probe row(s) are {why}, e.g. probe index {int(idx[0])}; "
                          "cosine/correlation edges are undefined for them")
    # Dot products of the raw rows, divided by the norms afterwards (as scipy's pdist does): exactly orthogonal
    # or identical pairs then give exactly equal values, so ties are not split by normalisation rounding. Every
    # chunk adds its block in the same order for every pair, which keeps those ties exact.
    iu = np.triu_indices(n, k=1)
    dots = gram[iu]
    dots /= norms[iu[0]] * norms[iu[1]]
    return np.clip(dots, -1.0, 1.0).astype(np.float32)
