"""depara: which pretrained model, and which of its layers, to transfer (DEPARA, Deep Attribution Graph, CVPR 2020).

The public API. ``import depara`` stays light (numpy/scipy only): the torch layer (``build_graph``,
``build_graphs``, ``load_model``) is imported on first use.

    >>> import depara
    >>> g = depara.Graph.from_arrays(attributions, features)          # numpy arrays, N×...
    >>> depara.similarity(g_source, g_target, lam=1.0)               # S = V + λE
    >>> depara.rank_sources({"a": g_a, "b": g_b}, g_target)          # rows (name, S, V, E), best first
    >>> depara.build_graph(model, probes, "layer4", depara.GraphOptions(scalar="mean"))   # options: depara.options
    >>> depara.list_estimators(needs_labels=False)                   # DEPARA and its peers: depara.estimators.registry
    >>> depara.rank_quality(truth, scores)                           # Kendall τ, P@K, pick, regret: depara.evaluation

Subpackages by layer (docs/architecture.md), each importing only the ones below it: ``core`` (the method in
numpy) → ``evaluation``, ``estimators`` → ``extraction`` (torch) → ``report``, ``selection`` (the main jobs) →
``benches`` → ``cli``; ``io``, ``options`` and ``errors`` serve all of them.

The module paths of release 0.1 (``depara.graph``, ``depara.baselines``, ``depara.train``, …) still import, with a
DeprecationWarning, as aliases of their new modules (:data:`MOVED_MODULES`); they go in the next release.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
import warnings
from typing import Any

from .core.graph import Graph
from .core.similarity import (RankRow, SimilarityMatrices, edge_similarity, node_similarity, rank_sources,
                              similarity, similarity_matrix)
from .errors import DeparaError
from .estimators.registry import Estimator, get_estimator, list_estimators, register_estimator
from .evaluation.rank_quality import RankQuality, rank_quality
from .options import DEFAULT_GRAPH_OPTIONS, GraphOptions

__version__ = "0.1.0"

#: Module paths of release 0.1 → their modules now (``depara.<old>`` → ``depara.<new>``); importing an old path
#: warns (DeprecationWarning) and gives the new module itself. Folders moved whole map every module below them.
MOVED_MODULES = {
    "_io": "io.files",
    "_threads": "extraction.threads",
    "agreement": "core.similarity_edges",
    "baselines": "estimators.baselines",
    "data": "benches.data",
    "data.folders": "extraction.folders",
    "data.shrink": "benches.data.shrink",
    "data.split": "benches.data.split",
    "data.synth_digits": "benches.data.synth_digits",
    "data.targets": "selection.targets",
    "demo": "benches.demo",
    "edge_ranks": "core.edges",
    "engine": "extraction.engine",
    "evaluate": "evaluation.rank_quality",
    "extract": "extraction.extract",
    "graph": "core.graph",
    "graph_results": "report.graph_files",
    "graph_rows": "core.graph_rows",
    "graph_similarity": "core.similarity",
    "plots._common": "report.plots.common",
    "harness": "selection.harness",
    "ids": "core.ids",
    "labels": "core.labels",
    "layers_auto": "extraction.layers_auto",
    "models": "extraction.models",
    "probes": "extraction.probes",
    "published": "evaluation.published",
    "readers": "io.readers",
    "results": "report.manifest",
    "score_results": "report.score_files",
    "scoring": "estimators.scoring",
    "similarity_blocked": "core.similarity_blocked",
    "source_features": "extraction.source_features",
    "store": "extraction.store",
    "taskonomy": "benches.taskonomy",
    "tree": "core.tree",
    "zoo": "extraction.zoo",
}
MOVED_PACKAGES = {
    "plots": "report.plots",
    "realbank": "benches.realbank",
    "taskbank": "benches.taskbank",
    "train": "benches.layers",
}

# name -> module that defines it; imported on first attribute access so `import depara` does not import torch.
_LAZY = {
    "build_graph": "depara.extraction.extract",
    "build_graphs": "depara.extraction.extract",
    "load_model": "depara.extraction.models",
    "select": "depara.selection.job",
    "Selection": "depara.selection.job",
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


def _moved(fullname: str) -> str | None:
    """The new full name of an old module path ``depara.<old>``, or None."""
    old = fullname[len("depara."):] if fullname.startswith("depara.") else None
    if old is None:
        return None
    if old in MOVED_MODULES:
        return "depara." + MOVED_MODULES[old]
    for before, now in MOVED_PACKAGES.items():
        if old == before or old.startswith(before + "."):
            return f"depara.{now}{old[len(before):]}"
    return None


class _MovedModuleFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Resolves the old module paths of :data:`MOVED_MODULES` to the new modules (one module object under two
    names), with a DeprecationWarning naming the new path."""

    def find_spec(self, fullname, path=None, target=None):  # noqa: ARG002 - the finder protocol
        new = _moved(fullname)
        return None if new is None else importlib.machinery.ModuleSpec(fullname, self)

    def create_module(self, spec):
        new = _moved(spec.name)
        warnings.warn(f"{spec.name} moved to {new}; the old path goes in the next release", DeprecationWarning,
                      stacklevel=2)
        module = importlib.import_module(new)
        self._specs = {**getattr(self, "_specs", {}), spec.name: module.__spec__}
        return module

    def exec_module(self, module):
        module.__spec__ = self._specs.pop(module.__spec__.name, module.__spec__)  # keep the module's own spec


if not any(isinstance(f, _MovedModuleFinder) for f in sys.meta_path):
    sys.meta_path.insert(0, _MovedModuleFinder())


def __getattr__(name: str) -> Any:
    if _moved(f"depara.{name}") is not None:  # `import depara; depara.graph` of release 0.1
        return importlib.import_module(f"depara.{name}")
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'depara' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
