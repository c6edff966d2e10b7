"""The DEPARA score S = V + λE, written once for scalars and arrays (numpy only).

:func:`combine` is used by every comparison of graphs (:mod:`depara.core.similarity`, the blocked matrices, the
benches, ``depara select``); :func:`depara.core.labels.depara_score` is the same rule with the weight on V.
"""

from __future__ import annotations

import numpy as np

from ..errors import DeparaError
from ..options import check_lam

__all__ = ["combine"]


def combine(node, edge, lam: float):
    """THE DEPARA combination rule S = V + λE (docs/method.md §2), for scalars or arrays of any shape.

    - λ = ∞ (the default, :data:`depara.options.DEFAULT_LAMBDA`, from the frozen node weight α = 0): S = E, the
      edge term alone (the limit of S/λ, which ranks like S for every finite λ). V may then be absent (NaN).
    - V NaN (a node-less graph, e.g. a label graph, is involved): S = λE, the node term is absent, not zero.
    - otherwise S = V + λE.
    """
    lam = check_lam(lam)
    v = np.asarray(node, dtype=np.float64)
    e = np.asarray(edge, dtype=np.float64)
    if v.shape != e.shape:
        raise DeparaError(f"node similarity shape {v.shape} and edge similarity shape {e.shape} differ")
    if np.isinf(lam):
        s = e.copy()
    else:
        s = np.where(np.isnan(v), lam * e, v + lam * e)
    return float(s) if s.ndim == 0 else s
