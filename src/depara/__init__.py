"""depara: which pretrained model, and which of its layers, to transfer (DEPARA, Deep Attribution Graph, CVPR 2020).

The public API. ``import depara`` stays light (numpy/scipy only): the torch layer (``build_graph``,
``build_graphs``, ``load_model``) is imported on first use.

    >>> import depara
    >>> g = depara.Graph.from_arrays(attributions, features)          # numpy arrays, N×...
    >>> depara.similarity(g_source, g_target, lam=1.0)               # S = V + λE
    >>> depara.rank_sources({"a": g_a, "b": g_b}, g_target)          # rows (name, S, V, E), best first
    >>> depara.build_graph(model, probes, "layer4", depara.GraphOptions(scalar="mean"))   # options: depara.options
    >>> depara.list_estimators(needs_labels=False)                   # DEPARA and its peers: depara.estimators
    >>> depara.rank_quality(truth, scores)                           # Kendall τ, P@K, pick, regret: depara.evaluate

Modules by layer (docs/architecture.md): numpy core (graph, graph_similarity, baselines, estimators, scoring,
evaluate, options, tree), one torch layer (extract, source_features, models, probes), experiments
(harness, taskbank, taskonomy, train), outputs (plots, *_results, report), and the CLI (cli/).
"""

from __future__ import annotations

from typing import Any

from .errors import DeparaError
from .estimators import Estimator, get_estimator, list_estimators, register_estimator
from .evaluate import RankQuality, rank_quality
from .graph import Graph
from .graph_similarity import (
    RankRow,
    SimilarityMatrices,
    edge_similarity,
    node_similarity,
    rank_sources,
    similarity,
    similarity_matrix,
)
from .options import DEFAULT_GRAPH_OPTIONS, GraphOptions

__version__ = "0.1.0"

# name -> module that defines it; imported on first attribute access so `import depara` does not import torch.
_LAZY = {
    "build_graph": "depara.extract",
    "build_graphs": "depara.extract",
    "load_model": "depara.models",
    "select": "depara.selection",
    "Selection": "depara.selection",
}

__all__ = [
    "DEFAULT_GRAPH_OPTIONS",
    "DeparaError",
    "Estimator",
    "Graph",
    "GraphOptions",
    "RankQuality",
    "RankRow",
    "Selection",
    "SimilarityMatrices",
    "build_graph",
    "build_graphs",
    "edge_similarity",
    "get_estimator",
    "list_estimators",
    "load_model",
    "node_similarity",
    "rank_quality",
    "rank_sources",
    "register_estimator",
    "select",
    "similarity",
    "similarity_matrix",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'depara' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
