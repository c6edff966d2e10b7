"""Baseline and reference rows of the layer-transfer bench (issue 20, Builds 3 and 4).

Beside the peers of :mod:`depara.benches.layers.peers`, every layer gets:

* the shipped labels default (round 6: ``depara_labels_logme``, :data:`depara.selection.scorers.RANK_AVERAGES`): the
  mean of the ``depara_labels`` and ``logme`` ranks across the layers (:func:`depara.selection.scoring.rank_average`,
  as ``depara select`` ranks its candidates); ``depara_labels`` itself is the round-6 kNN member (k = 10);
* the round-4 default's member (:data:`ROUND4_LABELS`): the label graph compared per probe on flattened, centred
  layer outputs (``depara.core.similarity_edges``), read on the same labelled images;
* a static prior that never looks at the target (:data:`PARAMS_PRIOR`): the number of source parameters the
  transfer copies up to that layer;
* reference lines: another transfer seed's accuracies as the scores (the noise ceiling; leave-one-seed-out, as
  :func:`depara.benches.realbank.evaluation.seed_ceiling`) and random (the expectation over permutations), with
  their regret as a fraction like every row of the bench;
* in words, the baselines that cannot apply per layer (:data:`NOT_APPLICABLE`).
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

from ...core.similarity_edges import label_agreement, probe_edges
from ...selection.scorers import RANK_AVERAGES
from ...selection.scoring import with_rank_averages as rank_averages_of

__all__ = ["ROUND4_LABELS", "PARAMS_PRIOR", "NOT_APPLICABLE", "REFERENCE", "add_rank_averages",
           "round4_label_scores", "parameters_up_to", "reference_rows", "not_applicable_rows", "kendall_per_seed"]

#: The round-4 labels default's handling (configs/defaults.toml before round 5).
ROUND4 = {"edge_comparison": "per_probe", "edge_features": "flat", "edge_scale": "centred"}
ROUND4_LABELS = "depara_labels (round 4: per probe, flat, centred)"
PARAMS_PRIOR = "static prior: parameters transferred"
CEILING, RANDOM = "another transfer seed (noise ceiling)", "random"
REFERENCE = (CEILING, RANDOM)
NOT_APPLICABLE = {"static prior: the source's accuracy on its own task":
                  "one source model: the same value at every depth, it cannot rank the layers"}


def add_rank_averages(scores: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """``scores`` plus every rank average of :data:`RANK_AVERAGES` whose parts are all present."""
    made = [n for n, parts in RANK_AVERAGES.items() if all(p in scores for p in parts)]
    if not made:
        return dict(scores)
    parts = list(dict.fromkeys(p for n in made for p in RANK_AVERAGES[n]))
    values = np.array([scores[p] for p in parts], dtype=np.float64)[:, :, None]
    return {**scores, **dict(zip(made, rank_averages_of(values, parts, made)[:, :, 0]))}


def round4_label_scores(flat: Mapping[str, np.ndarray], labels) -> np.ndarray:
    """The round-4 member on each layer: :func:`depara.core.similarity_edges.label_agreement` (per probe) of the
    edges of the layer's flattened, centred outputs (``flat``: {layer: N×D}, in layer order, e.g. from
    :func:`depara.benches.layers.peers.layer_features` with ``flat=True``) with ``labels``. (L,) float array."""
    y = np.asarray(labels)
    return np.array([label_agreement(probe_edges(f, pooling=ROUND4["edge_features"], scale=ROUND4["edge_scale"]), y,
                                     ROUND4["edge_comparison"]) for f in flat.values()])


def parameters_up_to(model, units) -> np.ndarray:
    """The number of parameters the transfer copies up to each unit (cumulative over ``units``, shallow first)."""
    counts = [sum(p.numel() for m in u.modules for p in model.get_submodule(m).parameters()) for u in units]
    return np.cumsum(counts).astype(np.float64)


def _as_layer_row(method: str, family: str, metrics: Mapping[str, float], note: str) -> dict[str, Any]:
    row = {"method": method, "family": family, **{k: float(v) for k, v in metrics.items()}, "note": note}
    row["regret"] = row["regret"] / 100.0  # the realbank helpers give points; the layer bench keeps fractions
    return row


def reference_rows(per_seed: Sequence[Mapping[int, float]], depths: Sequence[int], *, seed: int = 0
                   ) -> list[dict[str, Any]]:
    """The noise ceiling (when ≥ 2 transfer seeds) and random rows from each seed's ``{depth: accuracy}``."""
    from ..realbank.evaluation import random_expectation, seed_ceiling

    acc = np.array([[float(s[d]) for d in depths] for s in per_seed])
    names = [str(d) for d in depths]
    rows = []
    if len(acc) >= 2:
        rows.append(_as_layer_row(CEILING, "reference", seed_ceiling(acc, names),
                                  f"each of {len(acc)} transfer seeds as the scores, the others' mean as the truth"))
    rows.append(_as_layer_row(RANDOM, "reference", random_expectation(acc.mean(axis=0), names,
                                                                      np.random.default_rng([seed, 31])),
                              "expectation over 200 random rankings"))
    return rows


def not_applicable_rows() -> list[dict[str, Any]]:
    """A row per baseline that cannot rank layers, its reason in ``note``."""
    return [{"method": name, "family": "n/a", "note": why} for name, why in NOT_APPLICABLE.items()]


def kendall_per_seed(scores: np.ndarray, per_seed: Sequence[Mapping[int, float]], depths: Sequence[int]) -> str:
    """The spread behind one row's τ: Kendall τ-b of ``scores`` (one per depth) against each transfer seed's
    accuracies alone (``scipy.stats.kendalltau``), as text ``"0.12 / 0.18 / 0.15"`` (``"n/a"`` where undefined)."""
    from scipy.stats import kendalltau

    x = np.asarray(scores, dtype=np.float64)
    taus = [kendalltau(x, [float(s[d]) for d in depths]).statistic for s in per_seed]
    return " / ".join("n/a" if not np.isfinite(t) else f"{t:.2f}" for t in taus)
