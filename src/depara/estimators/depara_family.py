"""DEPARA in the registry: S = V + λE against a target model's graph (``depara``), its two terms alone
(``depara_v``, ``depara_e``) and the edge term against the label graph of the target's class labels
(``depara_labels``, the frozen default when labels are given). numpy only; the comparisons are
:mod:`depara.core.similarity` and :mod:`depara.core.similarity_edges`.
"""

from __future__ import annotations

import numpy as np

from ..core.score import combine
from ..core.similarity import edge_similarity, node_similarity, similarity
from ..core.similarity_edges import label_agreement, probe_edges, resampled_label_agreement
from ..errors import DeparaError
from ..options import DEFAULT_EDGE_COMPARISON, DEFAULT_EDGE_FEATURES, DEFAULT_EDGE_KNN_K, DEFAULT_EDGE_SCALE
from .registry import FEATURE_LABEL, GRAPHS, estimator

__all__ = ["depara_labels_edges", "depara_labels_resampled", "frozen_knn_k", "LABEL_EDGES_FROM_GRAPH"]

#: Whether the label-graph score reads the DEPARA graph's own edges (frozen flat, centred features) rather than
#: the pooled features: when False, ``depara select`` with labels only needs no graph edges at all.
LABEL_EDGES_FROM_GRAPH = (DEFAULT_EDGE_FEATURES, DEFAULT_EDGE_SCALE) == ("flat", "centred")

_PAPER = "Song et al., DEPARA, CVPR 2020"


@estimator("depara", tags=GRAPHS, label="DEPARA", reference=_PAPER,
           description="S = V + λE: node (attribution map) plus λ times edge (probe-similarity rank) agreement of "
                       "the source's and the target model's DEPARA graphs",
           adapter=lambda s, t: _depara_parts(s.graph, t.graph, t.lam), from_terms=combine)
def _depara_parts(graph, target_graph, lam: float) -> float:
    return float(similarity(graph, target_graph, lam=lam))


@estimator("depara_v", tags=GRAPHS, label="DEPARA-V", default=False, reference=_PAPER,
           description="node similarity V alone (mean cosine of the probes' attribution maps)",
           adapter=lambda s, t: _depara_v(s.graph, t.graph), from_terms=lambda v, e, lam: v)
def _depara_v(graph, target_graph) -> float:
    return float(node_similarity(graph, target_graph))


@estimator("depara_e", tags=GRAPHS, label="DEPARA-E", default=False, reference=_PAPER,
           description="edge similarity E alone (Spearman of the probe-by-probe feature similarities)",
           adapter=lambda s, t: _depara_e(s.graph, t.graph), from_terms=lambda v, e, lam: e)
def _depara_e(graph, target_graph) -> float:
    return float(edge_similarity(graph, target_graph))


def depara_labels_edges(graph=None, features: np.ndarray | None = None) -> np.ndarray:
    """The source edges the label-graph score compares, built as the frozen defaults say.

    With the frozen ``DEFAULT_EDGE_FEATURES = "flat"`` and ``DEFAULT_EDGE_SCALE = "centred"`` these are the DEPARA
    graph's own edges (``graph.edges``); otherwise :func:`depara.core.similarity_edges.probe_edges` of ``features``
    (the source's layer output on the probes: N×C×H×W, or already pooled N×C for ``"pooled"``).
    """
    if LABEL_EDGES_FROM_GRAPH and graph is not None:
        return np.asarray(graph.edges)
    if features is None:
        raise DeparaError(f"method depara_labels: needs the source's features on the probes (edges of "
                          f"{DEFAULT_EDGE_FEATURES}, {DEFAULT_EDGE_SCALE} features)")
    return probe_edges(features, pooling=DEFAULT_EDGE_FEATURES, scale=DEFAULT_EDGE_SCALE)


# Through the registry (the harness, `depara score`) it reads the source's features on the LABELLED samples: the
# labels belong to those samples, while a source's DEPARA graph there is built on a separate probe set (for the
# target-model terms), so its edges cannot be paired with the labels. With the frozen flat, centred handling the
# edges of the features are the DEPARA graph's own edges at that layer; `depara.select` builds its graphs on the
# labelled images themselves and passes them to depara_labels_edges directly.
@estimator("depara_labels", tags=FEATURE_LABEL, label="DEPARA-labels",
           reference="Song et al., DEPARA, CVPR 2020 (edge term against the label graph)",
           description="agreement of the source's probe graph with the label graph (Graph.from_labels) by the frozen "
                       "edge comparison; needs the samples' class labels, no target model",
           adapter=lambda s, t: _depara_labels(depara_labels_edges(None, s.features), t.labels),
           resampled=lambda graph, features, labels, idx_sets: _labels_resampled(graph, features, labels, idx_sets))
def _depara_labels(edges, labels, comparison: str | None = None) -> float:
    """The label-graph DEPARA score of one source: :func:`depara.core.similarity_edges.label_agreement` of its
    probe edges (:func:`depara_labels_edges`) with the probes' class labels, by the frozen comparison
    (:data:`depara.options.DEFAULT_EDGE_COMPARISON`) unless ``comparison`` is given, with the frozen k
    (:func:`frozen_knn_k`) when it is ``knn``."""
    return label_agreement(edges, labels, comparison or DEFAULT_EDGE_COMPARISON, frozen_knn_k(len(labels)))


def frozen_knn_k(n: int) -> int | None:
    """k of the frozen ``knn`` comparison for ``n`` probes: :data:`depara.options.DEFAULT_EDGE_KNN_K` neighbours,
    at most ``n − 2`` (the most :func:`~depara.core.similarity_edges.label_agreement` accepts; at least 1); None
    (k = ⌊√N⌋) when that option is 0."""
    if not DEFAULT_EDGE_KNN_K:
        return None
    return max(1, min(int(DEFAULT_EDGE_KNN_K), int(n) - 2))


def _labels_resampled(graph, features, labels, idx_sets) -> np.ndarray:
    """The registry's ``resampled`` of ``depara_labels``: the edges built once, then each block of resamples."""
    edges = depara_labels_edges(graph, features)
    return np.concatenate([depara_labels_resampled(edges, labels, block) for block in idx_sets])


def depara_labels_resampled(edges, labels, idx_sets: np.ndarray) -> np.ndarray:
    """``depara_labels`` on each resample of the probes (R×M indices; row 0 the identity = the point estimate),
    by the frozen comparison and k for M probes (:func:`frozen_knn_k`):
    :func:`depara.core.similarity_edges.resampled_label_agreement`. (R,) float array."""
    idx_sets = np.asarray(idx_sets)
    return resampled_label_agreement(edges, labels, DEFAULT_EDGE_COMPARISON, idx_sets, frozen_knn_k(idx_sets.shape[1]))
