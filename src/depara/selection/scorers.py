"""The scorers of ``depara select`` and the constants its steps share (imported by every step, importing none).

torch-free.
"""

from __future__ import annotations

import math
from typing import Any

from ..estimators.registry import get_estimator
from ..options import DEFAULT_GRAPH_OPTIONS, DEFAULT_LAMBDA, DEFAULT_NODE_WEIGHT

__all__ = ["DEFAULT_SCORER", "PROTOCOLS", "SCORERS", "LABEL_PEERS", "LAM", "NODE_SCORERS", "GRAPH_OPTIONS",
           "MAX_BOOT", "SCORES_VERSION"]

#: The scorer that ranks, per case ("target_model": a target model is given; "labels": labels only) and per
#: transfer protocol: ONE constant. The ranking scorer per (case, protocol), from depara's frozen defaults (``depara.options``: node weight α = 0,
#: label weight w = 1, chosen on the procedural task bank only and frozen in ``configs/defaults.toml`` before the
#: real-image bank's out-of-sample run): with labels, the label graph's edge term (``depara_labels``, w = 1); with
#: a target model and no labels, the edge term against the target model (``depara_e``, α = 0). The same for both
#: protocols: the procedural bank measured fine-tuning only, and the real-image bank found no reason to differ.
DEFAULT_SCORER: dict[tuple[str, str], str] = {
    ("target_model", "finetune"): "depara_e" if DEFAULT_NODE_WEIGHT == 0 else "depara",
    ("target_model", "linear"): "depara_e" if DEFAULT_NODE_WEIGHT == 0 else "depara",
    ("labels", "finetune"): "depara_labels",
    ("labels", "linear"): "depara_labels",
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
SCORES_VERSION = "4"  # 2: depara_labels on pooled, standardised features (round-3 frozen defaults); 3: round 4's
