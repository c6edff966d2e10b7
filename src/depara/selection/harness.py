"""One harness for every transferability estimator: DEPARA beside LogME, LEEP, NCE, H-score, TransRate, RSA, CKA.

:func:`run_harness` chains the layers, each usable alone:

1. :func:`depara.extraction.source_features.extract_inputs` /
   :func:`~depara.extraction.source_features.build_depara_graphs` (torch): run each source model ONCE over the target
   images (each through its own preprocessing) to get its features and head probabilities, and build DEPARA graphs on
   the probe set;
2. :func:`depara.estimators.scoring.score_sources` (numpy): every estimator of the registry
   (:mod:`depara.estimators.registry`) for every source → :class:`~depara.estimators.scoring.ScoreTable`;
3. :func:`depara.estimators.scoring.evaluate_scores`: against ground truth, one
   :func:`depara.evaluation.rank_quality.rank_quality` per method;
4. :func:`depara.report.score_files.write_results`: CSV/JSON, bar charts and a manifest.

The names other modules import from here (``score_sources``, ``SourceInputs``, ``ScoreTable``, ``evaluate_scores``,
``extract_inputs``, ...) are re-exported so ``depara.selection.harness`` stays the one entry point of ``depara score``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence

from .targets import labelled_images
from ..errors import DeparaError
from ..estimators.registry import SourceInputs, estimator_names
from ..options import DEFAULT_LAMBDA, GraphOptions
from ..report.score_files import write_results
from ..estimators.scoring import ScoreTable, as_truth, evaluate_scores, parse_methods, score_sources, summary_line
from ..extraction.source_features import (PreprocessSpec, build_depara_graphs, extract_inputs, last_linear,
    pool_features)

if TYPE_CHECKING:  # pragma: no cover
    import torch
    from torch import nn

    from ..extraction.probes import ProbeSet

__all__ = ["HarnessResult", "run_harness", "ScoreTable", "SourceInputs", "score_sources", "evaluate_scores",
           "summary_line", "parse_methods", "as_truth", "write_results", "extract_inputs", "build_depara_graphs",
           "last_linear", "pool_features", "labelled_images", "estimator_names"]


@dataclass
class HarnessResult:
    """Everything :func:`run_harness` computed."""

    table: ScoreTable
    evaluation: list[dict[str, Any]] | None
    inputs: dict[str, SourceInputs]
    paths: dict[str, Path]


def run_harness(source_models: Mapping[str, "nn.Module"], images: "ProbeSet | torch.Tensor", labels, *,
                methods: str | Sequence[str] | None = None, regression: bool = False,
                target_model: "nn.Module | None" = None, probes=None, truth=None, out=None,
                feature_layer: str | Mapping[str, str] | None = None, target_feature_layer: str | None = None,
                graph_layer: str | None = None, lam: float = DEFAULT_LAMBDA, ks: Sequence[int] = (1, 3, 5),
                batch_size: int = 64, device: Any = None, graph_options: GraphOptions | None = None,
                preprocess: PreprocessSpec = None, target_preprocess: Any = None,
                settings: Mapping[str, Any] | None = None, progress: bool = False) -> HarnessResult:
    """Extract once, score every method, evaluate against ``truth`` (optional), write ``out`` (optional).

    ``images``: the N target images, a :class:`~depara.extraction.probes.ProbeSet` (each model sees them through its own
    preprocessing: ``preprocess`` = one for all or a mapping source name → preprocessing, default the model's
    declared one, :func:`depara.extraction.source_features.default_preprocess`; ``target_preprocess`` for the target
    model) or an N×C×H×W tensor preprocessed for every model. ``labels`` their classes (or targets with ``regression``).
    ``target_model`` (a model trained on the target task) gives the reference representation of rsa/cka (its
    features at ``target_feature_layer``, default the input of its last ``nn.Linear``) and, with ``probes``
    (a ProbeSet or an N×C×H×W tensor), the target graph of ``depara``; source graphs are built on the same
    probes at ``graph_layer`` (default: each model's last ``nn.Linear``) with ``graph_options`` (default THE
    defaults of :mod:`depara.options`). ``truth``: source → ground truth (see
    :func:`depara.estimators.scoring.evaluate_scores`).
    """
    from ..options import check_lam

    check_lam(lam)  # before any forward pass
    wanted = parse_methods(methods) if methods is not None else None
    inputs = extract_inputs(source_models, images, feature_layer=feature_layer, batch_size=batch_size,
                            device=device, progress=progress, preprocess=preprocess)
    target_features = target_graph = None
    target_prep = {"target": target_preprocess} if target_preprocess is not None else None
    if target_model is not None:
        target_features = extract_inputs({"target": target_model}, images, feature_layer=target_feature_layer,
                                         batch_size=batch_size, device=device,
                                         preprocess=target_prep)["target"].features
    graph_methods = set(estimator_names(needs_graph=True))
    need_graphs = (wanted is None and target_model is not None and probes is not None) or \
        (wanted is not None and bool(graph_methods & set(wanted)))
    if need_graphs:
        if target_model is None or probes is None:
            raise DeparaError("method depara: needs a target model and a probe set")
        src_graphs = build_depara_graphs(source_models, probes, layer=graph_layer, options=graph_options,
                                         preprocess=preprocess, device=device, progress=progress)
        target_graph = build_depara_graphs({"target": target_model}, probes, layer=graph_layer,
                                           options=graph_options, preprocess=target_prep, device=device,
                                           progress=progress)["target"]
        for name, g in src_graphs.items():
            inputs[name].graph = g
    table = score_sources(inputs, labels, methods=wanted, regression=regression, target_features=target_features,
                          target_graph=target_graph, lam=lam, progress=progress)
    evaluation = evaluate_scores(table, truth, ks=ks) if truth is not None else None
    paths = write_results(out, table, evaluation, truth=truth, settings=settings) if out is not None else {}
    return HarnessResult(table=table, evaluation=evaluation, inputs=inputs, paths=paths)
