"""What select's confidence is worth on a bench with measured truth: its shipped ranking scorer, intervals, shares of
half-samples won and "too close to call", recomputed by select's own code on each target's probes and set against
the truth (``benchmarks/calibration.py`` runs it on the pretrained bank and on the trained-here 32-px bank).

For one target, :func:`shipped_verdict` scores every candidate's pooled features on the probes and on
``n_rep`` stratified half-samples (:func:`depara.evaluation.uncertainty.half_samples`, as select draws them) with
the parts of the labels-case default (:data:`depara.selection.scorers.LABELS_DEFAULT`: the label graph's score from
the registry, each peer refitted on every half-sample by :func:`depara.selection.scoring.peer_score`), forms the rank
average (:func:`depara.selection.scoring.with_rank_averages`) and reads it as select does
(:func:`depara.selection.verdict.verdict`). :func:`candidate_rows` joins that to the truth (accuracy in points) of
every candidate; :func:`reliability_rows` and :func:`pick_rows` are the reliability diagram and the picks' record.

Where a target *model* is given and no labels (the procedural task bank), select ranks by its label-free default
(:data:`LABEL_FREE`, DEPARA's edge term E against the target model's graph, λ = ∞): :func:`label_free_verdict`
scores every source graph against the target graph on the probes and on the same half-samples (unstratified:
there are no labels) with select's own :func:`depara.selection.scoring.score_all`, then reads the verdict the same
way; the rows, diagram and records above apply unchanged.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from ..evaluation.uncertainty import half_samples, reliability
from ..selection.scorers import DEFAULT_SCORER, LABELS_DEFAULT, computed_scorers
from ..selection.scoring import Resamples, score_all, with_rank_averages
from ..selection.verdict import Verdict, verdict

__all__ = ["SHIPPED", "LABEL_FREE", "BINS", "COARSE_BINS", "THRESHOLDS", "shipped_values", "shipped_verdict",
           "label_free_values", "label_free_verdict", "candidate_rows",
           "reliability_rows", "pick_rows", "threshold_rows", "too_close_summary"]

#: The scorer measured: the ranking scorer select ships for the labels case.
SHIPPED = LABELS_DEFAULT
#: The ranking scorer select ships when a target model is given and no labels (the same for both protocols).
LABEL_FREE = DEFAULT_SCORER[("target_model", "linear")]
#: Bins of the share of half-samples won (the reliability diagram), and the wider ones the sentence quotes.
BINS = (0.0, 0.1, 0.3, 0.5, 0.7, 0.9, 1.0)
COARSE_BINS = (0.0, 0.1, 0.5, 1.0)
#: "first in ≥ p of probe half-samples": the announced shares the picks' record is cut at.
THRESHOLDS = (0.0, 0.3, 0.5, 0.7, 0.9)


def shipped_values(features: Sequence[np.ndarray], labels: np.ndarray, halves: np.ndarray,
                   scorer: str = SHIPPED) -> np.ndarray:
    """values[1, c, r] of ``scorer`` (a registry scorer or a rank average of them) for candidates with pooled
    probe features ``features[c]`` (N×D): r = 0 all probes, then one column per row of ``halves``; computed by
    select's :func:`depara.selection.scoring.score_all` (every part on every half-sample)."""
    from ..estimators.registry import get_estimator

    y = np.asarray(labels)
    parts = computed_scorers([scorer])
    refits = {p: len(halves) + 1 for p in parts if get_estimator(p).resampled is None}  # a fit on every row
    res = Resamples(y.shape[0], np.asarray(halves))
    vals = score_all([None] * len(features), list(features), parts, y, None, res, False, refits)
    return with_rank_averages(vals, parts, [scorer])


def shipped_verdict(features: Sequence[np.ndarray], labels: np.ndarray, n_rep: int, seed: int,
                    scorer: str = SHIPPED, keep: str | Path | None = None) -> tuple[np.ndarray, Verdict]:
    """(point values (C,), select's :class:`~depara.selection.verdict.Verdict`) of ``scorer`` on one target.
    ``keep``: a .npy file holding the values (read when there, written when not), so the verdict can be re-read
    without rescoring."""
    y = np.asarray(labels)
    n = y.shape[0]
    vals = _kept(keep, lambda: shipped_values(features, y, half_samples(n, n_rep, seed, y), scorer))
    return vals[0, :, 0], verdict(vals, [scorer], scorer, n, n // 2)


def label_free_values(graphs: Sequence, target, halves: np.ndarray, scorer: str = LABEL_FREE) -> np.ndarray:
    """values[1, c, r] of the label-free ``scorer`` for source graphs ``graphs[c]`` against the target model's
    graph ``target`` (all on the same N probes): r = 0 all probes, then one column per row of ``halves``;
    computed by select's :func:`depara.selection.scoring.score_all` (no labels, no peers)."""
    return score_all(list(graphs), [None] * len(graphs), [scorer], None, target,
                     Resamples(len(target.nodes), np.asarray(halves)), False, {})


def label_free_verdict(graphs: Sequence, target, n_rep: int, seed: int, scorer: str = LABEL_FREE,
                       keep: str | Path | None = None) -> tuple[np.ndarray, Verdict]:
    """(point values (C,), select's verdict) of the label-free ``scorer`` on one target model, as select draws
    its half-samples without labels (:func:`half_samples` with ``labels=None``); ``keep`` as
    :func:`shipped_verdict`."""
    n = len(target.nodes)
    vals = _kept(keep, lambda: label_free_values(graphs, target, half_samples(n, n_rep, seed), scorer))
    return vals[0, :, 0], verdict(vals, [scorer], scorer, n, n // 2)


def _kept(keep: str | Path | None, compute) -> np.ndarray:
    """``compute()``'s values, read from the .npy file ``keep`` when there, written to it when not (None: none)."""
    if keep is not None and Path(keep).is_file():
        return np.load(keep)
    vals = compute()
    if keep is not None:
        np.save(keep, vals)
    return vals


def candidate_rows(target: str, names: Sequence[str], point: np.ndarray, said: Verdict, truth: np.ndarray,
                   scorer: str = SHIPPED) -> list[dict]:
    """One row per candidate: score, interval, share won, pick / too close, truth (points), truly best, within 1
    point of the best, regret (best − its truth, points)."""
    truth = np.asarray(truth, dtype=np.float64)
    best = truth.max()
    iv = said.intervals[scorer]
    pick = said.order[0]
    return [{"target": target, "candidate": name, "score": float(point[c]), "lo": float(iv[c, 0]),
             "hi": float(iv[c, 1]), "share": float(said.shares[c]), "pick": c == pick,
             "too_close": c in said.too_close, "truth": float(truth[c]), "best": bool(truth[c] == best),
             "within1": bool(truth[c] >= best - 1.0), "regret": float(best - truth[c])}
            for c, name in enumerate(names)]


def reliability_rows(rows: list[dict], bins=BINS) -> list[dict]:
    """The reliability diagram of candidate rows (every candidate of every target is a case): per bin of the share
    won, the count, the mean share announced, the share truly best, the share within 1 point of the best and the
    mean regret in points (:func:`depara.evaluation.uncertainty.reliability`)."""
    share = np.array([r["share"] for r in rows], dtype=np.float64)
    cols = {k: reliability(share, np.array([r[k] for r in rows], dtype=np.float64), bins)
            for k in ("best", "within1", "regret")}
    return [{"bin_lo": b["bin_lo"], "bin_hi": b["bin_hi"], "count": b["count"], "mean_share": b["mean_p"],
             "best_rate": b["rate"], "within1_rate": w["rate"], "mean_regret": g["rate"]}
            for b, w, g in zip(cols["best"], cols["within1"], cols["regret"])]


def pick_rows(rows: list[dict]) -> list[dict]:
    """One row per target: the pick, its share won, regret, the size of its too-close set, whether the truly best
    candidate (or one within 1 point of it) is in {pick} ∪ too close, and whether one outside is within 1 point."""
    out = []
    for t in dict.fromkeys(r["target"] for r in rows):
        cand = [r for r in rows if r["target"] == t]
        pick = next(r for r in cand if r["pick"])
        in_set = [r for r in cand if r["pick"] or r["too_close"]]
        outside = [r for r in cand if not (r["pick"] or r["too_close"])]
        out.append({"target": t, "pick": pick["candidate"], "share": pick["share"], "regret": pick["regret"],
                    "best": pick["best"], "within1": pick["within1"], "too_close": len(in_set) - 1,
                    "candidates": len(cand), "best_in_set": any(r["best"] for r in in_set),
                    "within1_in_set": any(r["within1"] for r in in_set),
                    "within1_outside": any(r["within1"] for r in outside)})
    return out


def threshold_rows(picks: list[dict], thresholds=THRESHOLDS) -> list[dict]:
    """The picks announced at "first in ≥ p of half-samples", per threshold p: how many, the share truly best,
    within 1 point, and the mean regret (points); NaN rates where no pick reaches p."""
    out = []
    for p in thresholds:
        sub = [r for r in picks if np.isfinite(r["share"]) and r["share"] >= p]
        k = len(sub)
        out.append({"share_at_least": p, "picks": k,
                    "best_rate": float(np.mean([r["best"] for r in sub])) if k else float("nan"),
                    "within1_rate": float(np.mean([r["within1"] for r in sub])) if k else float("nan"),
                    "mean_regret": float(np.mean([r["regret"] for r in sub])) if k else float("nan")})
    return out


def too_close_summary(picks: list[dict]) -> dict:
    """How "too close to call" did over the targets: the share of targets whose truly best candidate (and one
    within 1 point) is in {pick} ∪ too close, the share with one within 1 point outside it, and the set's mean
    size against the candidates' (a set holding every candidate would hold the best trivially)."""
    return {"targets": len(picks),
            "best_in_set": float(np.mean([r["best_in_set"] for r in picks])),
            "within1_in_set": float(np.mean([r["within1_in_set"] for r in picks])),
            "within1_outside": float(np.mean([r["within1_outside"] for r in picks])),
            "mean_set_size": float(np.mean([1 + r["too_close"] for r in picks])),
            "mean_candidates": float(np.mean([r["candidates"] for r in picks]))}
