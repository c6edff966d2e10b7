"""Step 4 of ``depara select``: what the scores say — intervals, the order, ties, each candidate's share of
half-samples won, what is too close to call (:mod:`depara.evaluation.uncertainty`)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import DeparaError
from .scorers import RANK_AVERAGES

__all__ = ["Verdict", "verdict"]


# ============================================================================================ uncertainty
@dataclass
class Verdict:
    """What the scores say: intervals of every scorer, the order by the ranking scorer, each candidate's share of
    half-samples won, what is tied with or too close to the pick."""

    intervals: dict[str, np.ndarray]
    order: list[int]
    ranked: int
    shares: np.ndarray
    tied: list[int]
    too_close: list[int]


def verdict(vals: np.ndarray, scorers: list[str], default: str, n: int, m: int) -> Verdict:
    """Intervals (:func:`depara.evaluation.uncertainty.subsample_intervals`; NaN for an undefined score), the order (defined
    scores best first, undefined ones after, unranked), the pick's ties (equal score), the shares of half-samples
    won (:func:`depara.evaluation.uncertainty.win_shares`, ties split) and the candidates too close to call (a tie, or an
    interval overlapping the pick's)."""
    from ..evaluation.uncertainty import recentred, win_shares

    has_halves = vals.shape[2] > 1
    intervals = {s: _interval(vals[i], s in RANK_AVERAGES, n, m) if has_halves else
                 np.full((vals.shape[1], 2), np.nan) for i, s in enumerate(scorers)}
    main = vals[scorers.index(default), :, 0]
    finite = [c for c in range(len(main)) if np.isfinite(main[c])]
    if not finite:
        raise DeparaError(f"{default}: undefined (NaN) for every candidate on these images, so nothing can be "
                          "ranked (e.g. constant features, or too few images per class)")
    order = sorted(finite, key=lambda c: -main[c]) + [c for c in range(len(main)) if c not in finite]
    pick = order[0]
    tied = [c for c in order[1:len(finite)] if main[c] == main[pick]]
    if has_halves:
        sub = vals[scorers.index(default), :, 1:]
        shares = win_shares(recentred(main, sub, n, m))
    else:
        shares = np.full(len(main), np.nan)
    lo_p = intervals[default][pick][0]
    overlap = [c for c in order[1:len(finite)] if np.isfinite(lo_p) and intervals[default][c][1] >= lo_p]
    too_close = [c for c in order[1:len(finite)] if c in tied or c in overlap]
    return Verdict(intervals, order, len(finite), shares, tied, too_close)


def _interval(vals: np.ndarray, rank_average: bool, n: int, m: int) -> np.ndarray:
    """(C, 2) intervals of one scorer from its values[c, r] (r = 0: the point, then the half-samples):
    :func:`~depara.evaluation.uncertainty.subsample_intervals` for a score,
    :func:`~depara.evaluation.uncertainty.rank_intervals` for a rank average, which lies in [1, ranked candidates]
    and is cut there (NaN stays NaN)."""
    from ..evaluation.uncertainty import rank_intervals, subsample_intervals

    if not rank_average:
        return subsample_intervals(vals[:, 0], vals[:, 1:], n, m)
    return np.clip(rank_intervals(vals[:, 0], vals[:, 1:], n), 1.0, max(1.0, float(np.isfinite(vals[:, 0]).sum())))
