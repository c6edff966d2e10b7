"""Numbers published in the DEPARA paper (CVPR 2020) and the files that hold them (numpy only).

The paper evaluates source selection on Taskonomy: :data:`TASKONOMY_TARGETS` target tasks, each with a relevant set
of its :data:`TASKONOMY_RELEVANT` best sources by measured affinity, so ``P@K = hits / (18·K)`` and
``R@K = hits / 90``. Its figure's hits(K) per method are stored as a CSV ``method,K1,K2,...`` (``#`` comments,
blank = not read off the figure), read by :func:`read_published_hits`. Both the Taskonomy reproduction and the
task bank draw the published curve beside their own.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..errors import DeparaError

__all__ = ["TASKONOMY_TARGETS", "TASKONOMY_RELEVANT", "TASKONOMY_RELEVANT_TOTAL", "read_published_hits",
           "published_curves"]

#: Target tasks of the paper's Taskonomy evaluation.
TASKONOMY_TARGETS = 18
#: Size of each target's relevant set (its best sources by measured affinity).
TASKONOMY_RELEVANT = 5
#: Relevant sources over all targets (the denominator of R@K): 18 × 5 = 90.
TASKONOMY_RELEVANT_TOTAL = TASKONOMY_TARGETS * TASKONOMY_RELEVANT


def read_published_hits(path: str | os.PathLike) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Published hits(K) per method from a CSV ``method,K1,K2,...`` (``#`` comments; blank = not read).

    Returns method → (K values, hits) with the blanks left out.
    """
    p = Path(path)
    if not p.is_file():
        raise DeparaError(f"{p}: published numbers file not found")
    from ..io.readers import read_csv_rows

    rows = [r for r in read_csv_rows(p, "published numbers file") if r and not r[0].lstrip().startswith("#")]
    if not rows or rows[0][0].strip().lower() != "method":
        raise DeparaError(f"{p}: expected a header 'method,K1,K2,...'")
    try:
        ks = [int(c.strip().lstrip("Kk")) for c in rows[0][1:]]
    except ValueError:
        raise DeparaError(f"{p}: header columns must be K1, K2, ...") from None
    out = {}
    for r in rows[1:]:
        k_vals, hits = [], []
        for k, c in zip(ks, r[1:]):
            if c.strip():
                try:
                    hits.append(float(c))
                except ValueError:
                    raise DeparaError(f"{p}: method {r[0]}, K{k}: {c!r} is not a number") from None
                k_vals.append(k)
        out[r[0].strip()] = (np.array(k_vals, dtype=np.int64), np.array(hits))
    return out


def published_curves(hits: dict[str, tuple[np.ndarray, np.ndarray]] | dict[str, dict[int, float]]
                     ) -> dict[str, dict[str, np.ndarray]]:
    """Published hits → ``{method: {"K", "precision", "recall"}}`` with the paper's denominators."""
    out = {}
    for method, value in hits.items():
        if isinstance(value, dict):
            ks = np.array(sorted(value), dtype=np.int64)
            h = np.array([value[k] for k in ks], dtype=np.float64)
        else:
            ks, h = (np.asarray(v) for v in value)
        out[method] = {"K": ks, "precision": h / (TASKONOMY_TARGETS * ks), "recall": h / TASKONOMY_RELEVANT_TOTAL}
    return out
