"""The baseline rows of the procedural task bank (issue 20): the noise ceiling from a second seed's ground truth,
and, in words, the baselines that cannot apply to a bank whose targets are task networks.

The noise ceiling: another run of the whole bank (task networks retrained and every transfer remeasured with
another seed) gives its own affinity matrix; used as the scores against this run's truth, it says how well the
ground truth predicts itself, i.e. the most a scorer can be expected to reach. It is evaluated exactly as every
method of the bank (:func:`depara.evaluation.rank_quality.precision_recall_at_k` and
:func:`depara.evaluation.rank_quality.rank_correlations`, pessimistic ties).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from ...errors import DeparaError
from ...evaluation.rank_quality import precision_recall_at_k, rank_correlations

__all__ = ["CEILING", "not_applicable_rows", "ranking_row", "noise_ceiling_row"]

CEILING = "another seed's measured affinities (noise ceiling)"


def ranking_row(method: str, scores: np.ndarray, truth: np.ndarray, names: Sequence[str],
                ks: Sequence[int] = (1, 3, 5)) -> dict:
    """One row of the bank's tables for a score matrix (rows = targets, columns = sources) against ``truth``:
    P@K for each of ``ks``, mean Spearman, Kendall and weighted τ over the targets, the top-1 regret, each target's
    Spearman (the spread behind the mean, as text); ``note`` empty."""
    curve = precision_recall_at_k(scores, truth, max(ks), ks=ks, names=names)
    corr = rank_correlations(scores, truth, names=names)
    row = {"method": method, "n_targets": curve.n_targets}
    row.update({f"P@{k}": float(curve.at(k)[1]) for k in ks})
    row.update({"mean_spearman": corr.mean["spearman"], "mean_kendall": corr.mean["kendall"],
                "mean_weighted_tau": corr.mean["weighted_tau"], "top1_regret": corr.mean["regret"],
                "spearman_per_target": "; ".join(f"{t} {v:.2f}" for t, v in zip(corr.targets, corr.spearman)),
                "note": ""})
    return row


def noise_ceiling_row(truth: np.ndarray, other: np.ndarray, names: Sequence[str], other_names: Sequence[str],
                      ks: Sequence[int] = (1, 3, 5), note: str = "") -> dict:
    """The noise ceiling: ``other`` (a second seed's affinity matrix, tasks ``other_names``) as the scores of
    ``truth`` (tasks ``names``). Both must cover the same tasks; every target of ``truth`` needs its row in
    ``other``."""
    if sorted(names) != sorted(other_names):
        raise DeparaError(f"other: tasks {sorted(other_names)} differ from the truth's {sorted(names)}")
    order = [list(other_names).index(n) for n in names]
    scores = np.asarray(other, dtype=np.float64)[np.ix_(order, order)]
    targets = ~np.all(np.isnan(np.where(np.eye(len(names), dtype=bool), np.nan, truth)), axis=1)
    missing = [names[i] for i in np.flatnonzero(targets) if np.isnan(np.delete(scores[i], i)).any()]
    if missing:
        raise DeparaError(f"other: no measured affinities for target {missing[0]!r}")
    scores = np.where(np.isfinite(scores), scores, 0.0)  # the diagonal and non-target rows are never read
    return {**ranking_row(CEILING, scores, truth, names, ks), "note": note}


def not_applicable_rows(reasons: dict[str, str], ks: Sequence[int] = (1, 3, 5)) -> list[dict]:
    """A row per baseline that cannot apply, with its reason in ``note`` and its numbers empty."""
    blank = {"n_targets": "", **{f"P@{k}": "" for k in ks}, "mean_spearman": "", "mean_kendall": "",
             "mean_weighted_tau": "", "top1_regret": "", "spearman_per_target": ""}
    return [{"method": name, **blank, "note": why} for name, why in reasons.items()]
