"""Comparing DEPARA graphs (docs/method.md §2): node similarity, edge similarity, S = V + λE, batched matrices, ranking.

* Node similarity ``V(g1, g2) = (1/N) Σ_i cos(a_i^1, a_i^2)`` over the probes' attribution maps. An all-zero
  map has no direction; its cosine with anything is taken as **0** (it carries no attribution agreement), so
  ``V`` of a graph with itself is 1 minus the fraction of all-zero maps.
* Edge similarity ``E(g1, g2)`` = Spearman rank correlation of the two edge vectors, with average ranks for ties
  (``scipy.stats.rankdata``): the Pearson correlation of the ranks. A constant edge vector has no ranking, so
  Spearman is undefined and a :class:`~depara.errors.DeparaError` names the graph.
* ``S = V + λE`` with λ ≥ 0.
* A graph without nodes (N×0 nodes, e.g. the label graph of :meth:`Graph.from_labels`) has no node term: its
  ``V`` with anything is undefined — :func:`node_similarity` raises, matrices hold NaN, ranking rows hold NaN —
  and its ``S`` is ``λE`` alone (the node term is absent, not zero; with λ = 0 every such S is 0).

Many graphs at once (:func:`similarity_matrix`, from Graphs or straight from graph files): each graph's edge
ranks (stored at build time, :mod:`depara.core.edges`, else ranked once) are written as one row of a stack,
and all Spearman values are one matrix product of it; all node similarities are one product of the stacked
per-probe-normalised maps (Σ_i ⟨â_i, b̂_i⟩ is the dot product of the concatenated maps), in probe blocks when
they do not fit beside the edge stack. Rows are written in place, from the files' byte ranges
(:mod:`depara.core.graph_rows`). Results are float64 (``dtype=np.float32`` for the stacks and products).

numpy/scipy only: nothing here knows about torch.
"""

from __future__ import annotations

from typing import Any, Mapping, NamedTuple, Sequence

import numpy as np

from .edges import (centred_doubled_ranks, constant_edges_error, ranked_correlation, standardized_edge_ranks,
                    standardized_ranks)
from ..errors import DeparaError
from .score import combine
from .graph import Graph
from .graph_rows import Scratch, graph_rows, normalize_rows_into
from ..options import DEFAULT_LAMBDA, check_lam

# Upper bound of the float64 block of normalised node maps multiplied at once in node_similarity_matrix.
_NODE_BLOCK_BYTES = 256 * 2**20


class SimilarityMatrices(NamedTuple):
    """G×G float64 matrices of total (S = V + λE), node (V) and edge (E) similarity; ``names[i]`` labels row i.

    Field order (names, S, V, E) is that of :class:`RankRow` (name, S, V, E).
    """

    names: tuple[str, ...]
    S: np.ndarray
    V: np.ndarray
    E: np.ndarray


class RankRow(NamedTuple):
    """One source in a ranking: its name, S = V + λE, node similarity V, edge similarity E."""

    name: str
    S: float
    V: float
    E: float


# ---------------------------------------------------------------------------------------------------- helpers
_check_lam = check_lam  # the one λ validation (depara.options)


def _label(graph: Graph, fallback: str) -> str:
    name = graph.name
    return f"{fallback} ({name})" if name and name != fallback else fallback


def _check_graph(graph: Any, what: str) -> Graph:
    if not isinstance(graph, Graph):
        raise DeparaError(f"{what}: expected a depara Graph, got {type(graph).__name__}")
    return graph


#: Metadata keys that define how a graph's nodes were computed: graphs that both record a key must agree on it.
NODE_OPTION_KEYS = ("method", "scalar", "channel_reduction")
#: Metadata keys that define how a graph's edges were computed (the edge metric and the centring over probes).
EDGE_OPTION_KEYS = ("edge", "center")


def _first_differing_probe(g1: Graph, g2: Graph) -> str:
    """' (first differing probe: ID)' from the short per-probe digests in meta, or '' when not recorded."""
    d1, d2 = g1.meta.get("probe_digests_short"), g2.meta.get("probe_digests_short")
    if not (isinstance(d1, list) and isinstance(d2, list) and len(d1) == len(d2) == len(g1.probe_ids)):
        return ""
    for pid, a, b in zip(g1.probe_ids, d1, d2):
        if a != b:
            return f"; first differing probe: {pid!r}"
    return ""


def check_comparable(g1: Graph, g2: Graph, name1: str, name2: str, *, nodes: bool = True,
                      edges: bool = True) -> None:
    """Refuse to compare graphs that are not over the same probes or not built the same way.

    * the same probe ids in the same order (always);
    * the same probe **content**: when both graphs record ``meta["probe_hash"]`` (the SHA-256 of the probe images,
      :meth:`depara.extraction.probes.ProbeSet.content_hash`, written by :func:`depara.build_graphs`), the hashes must
      be equal; the first differing probe is named when both also record ``meta["probe_digests_short"]``. Graphs
      without a recorded hash (files written before it was recorded, :meth:`Graph.from_arrays` without one) are
      compared on their ids only;
    * for nodes (``nodes=True``): the same node size and, for each key of :data:`NODE_OPTION_KEYS` that both
      record as a value other than None, the same value (attribution method, per-image scalar, channel
      reduction). None counts as not recorded: :meth:`Graph.from_arrays` stores ``channel_reduction=None`` when
      it reduced nothing itself, the maps may have been reduced before;
    * for edges (``edges=True``): for each key of :data:`EDGE_OPTION_KEYS` that both record (not None), the same
      value (edge metric cosine/correlation, centring over probes). Option checks are skipped when either graph
      is a label graph (``meta["kind"] == "labels"``, :meth:`Graph.from_labels`).
    """
    if g1.probe_ids != g2.probe_ids:
        if len(g1.probe_ids) != len(g2.probe_ids):
            why = f"{len(g1.probe_ids)} vs {len(g2.probe_ids)} probes"
        elif set(g1.probe_ids) == set(g2.probe_ids):
            why = "same probe ids in a different order"
        else:
            i = next(k for k, (a, b) in enumerate(zip(g1.probe_ids, g2.probe_ids)) if a != b)
            why = f"probe {i} is {g1.probe_ids[i]!r} vs {g2.probe_ids[i]!r}"
        raise DeparaError(f"graphs {name1} and {name2} are over different probes ({why}); build both on one "
                          "probe set")
    h1, h2 = g1.meta.get("probe_hash"), g2.meta.get("probe_hash")
    if h1 is not None and h2 is not None and h1 != h2:
        raise DeparaError(f"graphs {name1} and {name2} are over different probe images with the same ids (probe "
                          f"content hash {str(h1)[:12]}… vs {str(h2)[:12]}…{_first_differing_probe(g1, g2)}); "
                          "build both on one probe set")
    # A label graph (Graph.from_labels, meta kind "labels") has a fixed construction of its own; the sources'
    # options are the user's choice against it, so only graphs built from models are held to each other's options.
    labels = "labels" in (g1.meta.get("kind"), g2.meta.get("kind"))
    keys = () if labels else (NODE_OPTION_KEYS if nodes else ()) + (EDGE_OPTION_KEYS if edges else ())
    for key in keys:
        a, b = g1.meta.get(key), g2.meta.get(key)
        if a is not None and b is not None and a != b:
            part = "nodes" if key in NODE_OPTION_KEYS else "edges"
            raise DeparaError(f"graphs {name1} and {name2} were built with different {key} ({a!r} vs {b!r}), "
                              f"so their {part} are not comparable; build both with one {key}")
    if nodes and g1.node_size != g2.node_size:
        raise DeparaError(f"graphs {name1} and {name2} have different node sizes ({g1.node_size} vs "
                          f"{g2.node_size} values per attribution map); resample the maps to one node grid "
                          "(build_graph(..., node_size=...))")


def normalized_nodes(nodes: np.ndarray) -> np.ndarray:
    """Each row of an N×P node array scaled to unit L2 norm (float64); all-zero rows stay zero (cosine 0)."""
    x = np.array(nodes, dtype=np.float64, copy=True)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    np.divide(x, norms, out=x, where=norms > 0)  # rows with norm 0 are all zero already
    return x


# ---------------------------------------------------------------------------------------------------- pairs
def _nodeless(g: Graph) -> bool:
    """True for a graph without nodes (N×0, e.g. a label graph): its node term is undefined."""
    return g.node_size == 0


def node_similarity(g1: Graph, g2: Graph) -> float:
    """V = mean over probes of the cosine similarity of the two graphs' attribution maps (all-zero map → 0)."""
    g1, g2 = _check_graph(g1, "g1"), _check_graph(g2, "g2")
    for what, g in (("g1", g1), ("g2", g2)):
        if _nodeless(g):
            raise DeparaError(f"{what}: graph {_label(g, what)} has no nodes (a label graph, or one built with "
                              "nodes=False): the node similarity is undefined; compare its edges (edge_similarity)")
    check_comparable(g1, g2, _label(g1, "g1"), _label(g2, "g2"), edges=False)
    x1, x2 = normalized_nodes(g1.nodes), normalized_nodes(g2.nodes)
    return float(np.clip(np.einsum("ij,ij->i", x1, x2).mean(), -1.0, 1.0))


def edge_similarity(g1: Graph, g2: Graph) -> float:
    """E = Spearman rank correlation (average ranks for ties) of the two graphs' edge vectors."""
    g1, g2 = _check_graph(g1, "g1"), _check_graph(g2, "g2")
    n1, n2 = _label(g1, "g1"), _label(g2, "g2")
    check_comparable(g1, g2, n1, n2, nodes=False)
    return ranked_correlation(standardized_ranks(g1.edges, f"graph {n1}"),
                                       standardized_ranks(g2.edges, f"graph {n2}"))


def similarity(g1: Graph, g2: Graph, lam: float = DEFAULT_LAMBDA) -> float:
    """DEPARA score S = V + λE of two graphs over the same probes (the rule: :func:`depara.core.score.combine`).

    The default λ = ∞ (:data:`depara.options.DEFAULT_LAMBDA`, the frozen node weight α = 0) gives S = E: V is
    then not computed, so node-less graphs compare too. A finite λ (the paper: 0.25) adds the node term.
    """
    lam = _check_lam(lam)
    if np.isinf(lam) or _nodeless(_check_graph(g1, "g1")) or _nodeless(_check_graph(g2, "g2")):
        return combine(np.nan, edge_similarity(g1, g2), lam)  # no node term: E (λ = ∞) or λE (label graph)
    return combine(node_similarity(g1, g2), edge_similarity(g1, g2), lam)


# ---------------------------------------------------------------------------------------------------- batches
def _names_and_graphs(graphs: Mapping[str, Graph] | Sequence[Graph], what: str) -> tuple[list[str], list[Graph]]:
    """Names from Mapping keys, else from meta (model:layer), else the index; duplicates get '#i' appended."""
    if isinstance(graphs, Graph):
        raise DeparaError(f"{what}: expected several graphs (a dict or a list), got a single Graph")
    if isinstance(graphs, Mapping):
        names = [str(k) for k in graphs.keys()]
        items = list(graphs.values())
    elif isinstance(graphs, (str, bytes)) or not isinstance(graphs, Sequence):
        try:
            items = list(graphs)  # any other iterable of graphs
        except TypeError:
            raise DeparaError(f"{what}: expected a dict or a list of graphs, got {type(graphs).__name__}") from None
        names = []
    else:
        items = list(graphs)
        names = []
    if not items:
        raise DeparaError(f"{what}: no graphs given")
    for i, g in enumerate(items):
        _check_graph(g, f"{what}[{names[i] if names else i}]")
    if not names:
        names = [g.name or str(i) for i, g in enumerate(items)]
        counts = {n: names.count(n) for n in names}
        names = [f"{n}#{i}" if counts[n] > 1 else n for i, n in enumerate(names)]
    return names, items


def _edge_gram(fill, g: int, m: int, dtype: Any, names: Sequence[str]) -> np.ndarray:
    """G×G Spearman matrix from a stack whose row k ``fill(k, row)`` writes as ``2·rank − (M+1)``.

    Each row is written once, in place; the rows are the standardised ranks up to a per-row scale, and the
    scales come from the product's own diagonal (the rows' squared norms), so no normalising pass is needed.
    """
    stacked = np.empty((g, m), dtype=dtype)
    for k in range(g):
        fill(k, stacked[k])
    gram = (stacked @ stacked.T).astype(np.float64)  # a @ a.T: numpy uses the symmetric rank-k product
    del stacked
    norms = np.sqrt(np.diag(gram).copy())
    if m < 2 or not norms.all():
        k = 0 if m < 2 else int(np.flatnonzero(norms == 0)[0])
        raise constant_edges_error(f"graph {names[k]}", m)
    gram /= norms[:, None]
    gram /= norms[None, :]
    return np.clip(gram, -1.0, 1.0)


def _node_gram(fill, g: int, n: int, p: int, dtype: Any, block_bytes: int) -> np.ndarray:
    """G×G mean per-probe cosine from node-map blocks: ``fill(k, row, start, stop)`` writes probes start:stop.

    Σ_i ⟨â_i, b̂_i⟩ is the dot product of the concatenated unit-norm maps, so each block of probes adds one
    product; blocks hold at most ``block_bytes`` (all probes at once when they fit).
    """
    step = max(1, min(n, block_bytes // max(1, g * p * np.dtype(dtype).itemsize)))
    total = np.zeros((g, g))
    block = np.empty((g, step * p), dtype=dtype)
    for start in range(0, n, step):
        stop = min(n, start + step)
        width = (stop - start) * p
        for k in range(g):
            fill(k, block[k, :width], start, stop)
        view = block if width == block.shape[1] else block[:, :width]
        total += view @ view.T
    return np.clip(total / n, -1.0, 1.0)


def _node_block_budget(g: int, m: int, dtype: Any) -> int:
    """Bytes of node maps multiplied at once after the G×M edge stack is freed: as much as that stack took."""
    return max(_NODE_BLOCK_BYTES, g * m * np.dtype(dtype).itemsize)


def node_similarity_matrix(nodes_list: Sequence[np.ndarray], names: Sequence[str] | None = None,
                           dtype: Any = np.float64) -> np.ndarray:
    """G×G float64 node similarities of G node arrays (each N×P, same shape): one batched product per chunk.

    dtype: of the normalised maps and the products (``np.float32``: half the memory and time, error ~1e-6).
    """
    arrays = [np.asarray(a) for a in nodes_list]
    names = list(names) if names is not None else [str(i) for i in range(len(arrays))]
    if not arrays:
        raise DeparaError("nodes_list: no node arrays given")
    shape = arrays[0].shape
    for name, a in zip(names, arrays):
        if a.ndim != 2 or a.shape != shape:
            raise DeparaError(f"nodes of {name}: shape {a.shape}, expected {shape} like {names[0]} (N×P, same "
                              "probes and node grid)")

    def fill(k, row, start, stop):
        normalize_rows_into(arrays[k][start:stop], row.reshape(stop - start, shape[1]), f"nodes of {names[k]}")

    return _node_gram(fill, len(arrays), shape[0], shape[1], dtype, _NODE_BLOCK_BYTES)


def edge_similarity_matrix(edges_list: Sequence[np.ndarray], names: Sequence[str] | None = None,
                           dtype: Any = np.float64, ranks_list: Sequence[np.ndarray | None] | None = None
                           ) -> np.ndarray:
    """G×G float64 Spearman correlations of G edge vectors (same length): rank each once, one matrix product.

    ranks_list: optional stored ranks of each edge vector (``Graph.edge_ranks``, doubled average ranks, see
        :mod:`depara.core.edges`; ``None`` entries are ranked here). With stored ranks no sort is done: each
        row of the stack is written once (``2·rank − (M+1)``, integers) and the matrix is one product divided by
        the outer product of its diagonal's square roots — identical results whether ranks are stored or not.
    dtype: of the stacked ranks and the product; ``np.float32`` halves memory and time of the product
        (max error ~1e-6, see ``benchmarks/bench_similarity_scale.py``).
    """
    arrays = [np.asarray(e) for e in edges_list]
    names = list(names) if names is not None else [str(i) for i in range(len(arrays))]
    if not arrays:
        raise DeparaError("edges_list: no edge vectors given")
    stored = list(ranks_list) if ranks_list is not None else [None] * len(arrays)
    if len(stored) != len(arrays):
        raise DeparaError(f"ranks_list: {len(stored)} entries for {len(arrays)} edge vectors")
    m = arrays[0].shape
    for name, e in zip(names, arrays):
        if e.ndim != 1 or e.shape != m:
            raise DeparaError(f"edges of {name}: shape {e.shape}, expected {m} like {names[0]} (same probes)")

    def fill(k, row):
        centred_doubled_ranks(arrays[k], None if stored[k] is None else np.asarray(stored[k]), row,
                              f"graph {names[k]}")

    return _edge_gram(fill, len(arrays), m[0], dtype, names)


def similarity_matrix(graphs: Mapping[str, Any] | Sequence[Any], lam: float = DEFAULT_LAMBDA,
                      dtype: Any = np.float64) -> SimilarityMatrices:
    """V, E and S = V + λE for every pair of ``graphs``, computed in batch as two matrix products.

    Parameters
    ----------
    graphs : dict or list
        Graphs (:class:`Graph`) or graph **files** (paths, e.g. ``GraphStore.path(key)``), or a mix; a dict maps
        names to them. Files are never loaded as Graphs: their stored edge ranks and node maps are read straight
        into the stacks (:mod:`depara.core.graph_rows`), which is what keeps 1,000 graphs × 1,000 probes bound by the
        products (``benchmarks/bench_similarity_scale.py``).
    lam : float
        λ ≥ 0 of S = V + λE.
    dtype : float64 (default) or float32
        Of the stacks and products. ``np.float32``: half the memory, faster products, max error ~1e-6.

    Returns
    -------
    SimilarityMatrices
        G×G float64 ``S``, ``V``, ``E``. Graphs that carry stored edge ranks (``Graph.edge_ranks``,
        :mod:`depara.core.edges`) are not re-ranked; results are bit-identical either way.

    Memory: the edge stack G×M (M = N(N−1)/2) in ``dtype``, freed before the node stack G×N·P is built (in probe
    blocks no larger than the edge stack). For more graphs than fit in RAM see
    :func:`depara.core.similarity_blocked.similarity_matrix_blocked`.
    """
    lam = _check_lam(lam)
    names, items = graph_rows(graphs, "graphs")
    with_nodes = [k for k, g in enumerate(items) if not _nodeless(g)]
    for name, g in zip(names[1:], items[1:]):
        check_comparable(items[0], g, repr(names[0]), repr(name), nodes=False)
    for k in with_nodes[1:]:
        check_comparable(items[with_nodes[0]], items[k], repr(names[with_nodes[0]]), repr(names[k]))
    quoted = [repr(n) for n in names]
    scratch = Scratch()
    m = items[0].n_edges
    e = _edge_gram(lambda k, row: items[k].ranks_into(row, scratch, f"graph {quoted[k]}"), len(items), m, dtype,
                   quoted)
    v = np.full_like(e, np.nan)  # NaN wherever a nodeless graph (label graph) is involved
    if with_nodes:
        first = items[with_nodes[0]]
        v[np.ix_(with_nodes, with_nodes)] = _node_gram(
            lambda k, row, start, stop: items[with_nodes[k]].nodes_into(row, scratch, start, stop),
            len(with_nodes), first.n_probes, first.node_size, dtype, _node_block_budget(len(items), m, dtype))
    return SimilarityMatrices(tuple(names), S=combine(v, e, lam), V=v, E=e)


def rank_sources(sources: Mapping[str, Graph] | Sequence[Graph], target: Graph, lam: float = DEFAULT_LAMBDA) -> list[RankRow]:
    """Score every source graph against ``target``; rows (name, S, V, E) best first (ties: by name).

    The target's edge ranks and normalised maps are computed once; each source's once.
    """
    lam = _check_lam(lam)
    target = _check_graph(target, "target")
    names, items = _names_and_graphs(sources, "sources")
    for name, g in zip(names, items):
        check_comparable(target, g, "target", f"source {name!r}",
                          nodes=not (_nodeless(target) or _nodeless(g)))
    target_ranks = standardized_edge_ranks(target.edges, getattr(target, "edge_ranks", None), "the target graph")
    target_nodes = None if _nodeless(target) else normalized_nodes(target.nodes)
    rows = []
    for name, g in zip(names, items):
        e = ranked_correlation(
            standardized_edge_ranks(g.edges, getattr(g, "edge_ranks", None), f"source {name!r}"), target_ranks)
        if target_nodes is None or _nodeless(g):  # no node term (label graph): V undefined
            rows.append(RankRow(name, combine(np.nan, e, lam), float("nan"), e))
            continue
        v = float(np.clip(np.einsum("ij,ij->i", normalized_nodes(g.nodes), target_nodes).mean(), -1.0, 1.0))
        rows.append(RankRow(name, combine(v, e, lam), v, e))
    rows.sort(key=lambda r: (-r.S, r.name))
    return rows
