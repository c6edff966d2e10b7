"""The scorers of ``depara select`` and the constants its steps share (imported by every step, importing none).

torch-free.
"""

from __future__ import annotations

import math
from typing import Any

from ..estimators.registry import get_estimator
from ..options import DEFAULT_GRAPH_OPTIONS, DEFAULT_LAMBDA, DEFAULT_NODE_WEIGHT, DEFAULT_RANK_PEER

__all__ = ["DEFAULT_SCORER", "PROTOCOLS", "SCORERS", "LABEL_PEERS", "RANK_AVERAGES", "LABELS_DEFAULT", "LAM",
           "NODE_SCORERS", "GRAPH_OPTIONS", "MAX_BOOT", "SCORES_VERSION", "computed_scorers"]

#: The rank averages ``select`` offers: name → the registry scorers whose ranks across the candidates are averaged
#: (:func:`depara.selection.scoring.rank_average`). The round-6 default (``depara.options.DEFAULT_RANK_PEER``): the
#: label graph's score rank-averaged with that peer (LogME), as the round-6 rule chose it on two real benches.
RANK_AVERAGES: dict[str, tuple[str, ...]] = (
    {f"depara_labels_{DEFAULT_RANK_PEER}": ("depara_labels", DEFAULT_RANK_PEER)} if DEFAULT_RANK_PEER else {})
#: The ranking scorer with labels: the rank average of the frozen defaults, or the label graph's score alone.
LABELS_DEFAULT = next(iter(RANK_AVERAGES), "depara_labels")

#: The scorer that ranks, per case ("target_model": a target model is given; "labels": labels only) and per
#: transfer protocol: ONE constant, from depara's frozen defaults (``depara.options``, frozen in
#: ``configs/defaults.toml``; node weight α = 0, label weight w = 1): with labels, :data:`LABELS_DEFAULT` (round 6:
#: the rank average of the label graph's edge term, ``depara_labels``, and ``logme`` across the candidates); with a
#: target model and no labels, the edge term against the target model (``depara_e``, α = 0). The same for both
#: protocols: the round-6 rule averaged linear-probe and fine-tune truth on the 32-px bank.
DEFAULT_SCORER: dict[tuple[str, str], str] = {
    ("target_model", "finetune"): "depara_e" if DEFAULT_NODE_WEIGHT == 0 else "depara",
    ("target_model", "linear"): "depara_e" if DEFAULT_NODE_WEIGHT == 0 else "depara",
    ("labels", "finetune"): LABELS_DEFAULT,
    ("labels", "linear"): LABELS_DEFAULT,
}
PROTOCOLS = ("finetune", "linear")
#: The scorers ``select`` offers, each with what it is: the estimator registry's own description (DEPARA and its
#: two terms against a target model, the label graph's edge term, and the label-based peers of :data:`LABEL_PEERS`).
SCORERS: dict[str, str] = {}
#: The label-based peers offered beside label-aware DEPARA (registry names, :mod:`depara.estimators.registry`): the
#: established five and the two recent ones that did best on the real-image bank at low cost (NLEEP did as well
#: but fits a 5·C-component Gaussian mixture per candidate and resample; it and the rest are in ``depara score``
#: and the benchmarks).
LABEL_PEERS = ("logme", "hscore", "transrate", "rsa", "cka", "gbc", "ped")
SCORERS.update({name: get_estimator(name).description
                for name in ("depara", "depara_v", "depara_e", "depara_labels", *LABEL_PEERS)})
SCORERS.update({name: "mean of the candidate's ranks (average ranks for ties; higher is better) by "
                + " and by ".join(parts) + " across the candidates, on every probe set"
                for name, parts in RANK_AVERAGES.items()})
#: λ of S = V + λE (depara.options.DEFAULT_LAMBDA; ∞ at the frozen defaults: S = E).
LAM = DEFAULT_LAMBDA
#: The scorers that need attribution maps (backward passes): V, and S when λ is finite.
NODE_SCORERS = ("depara_v",) + (("depara",) if math.isfinite(LAM) else ())
#: Graph options of every graph select builds (part of each cache key): depara's extraction defaults, and one
#: node grid for all models so models with different input sizes give comparable attribution maps.
GRAPH_OPTIONS: dict[str, Any] = DEFAULT_GRAPH_OPTIONS.to_meta()
#: Most half-samples accepted (their indices and values are held in memory).
MAX_BOOT = 100_000
#: Part of the key of every cached block of scores: bump it when a scorer's computation changes.
#: 2: round 3's depara_labels (pooled, standardised); 3-4: round 4's (per_probe, flat, centred); 5: round 5's
#: (knn k = ⌊√N⌋, pooled, standardised), the peer of the default rank average on every probe set; 6: round 6's
#: (knn k = 10, pooled, centred; its peer LogME).
SCORES_VERSION = "6"


def computed_scorers(chosen: list[str]) -> list[str]:
    """The registry scorers behind ``chosen``: each rank average replaced by its parts (each once, in order)."""
    out: list[str] = []
    for name in chosen:
        for part in RANK_AVERAGES.get(name, (name,)):
            if part not in out:
                out.append(part)
    return out
