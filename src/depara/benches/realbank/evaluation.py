"""Rank quality of every scorer on the real-image bank, with bootstrap intervals over targets.

Per target and protocol the truth is the mean accuracy over seeds; each scorer's scores of the sources are judged
by :func:`depara.evaluation.rank_quality.rank_quality` (Kendall τ-b, weighted τ, Spearman, P@K with the top-K by truth as the
relevant set, the pick with pessimistic ties, top-1 regret in accuracy points). The means over targets get 95 %
percentile-bootstrap intervals (targets resampled with replacement). Reference lines:

- ``random``: the expectation over random rankings (Monte Carlo, 200 permutations per target);
- ``oracle``: the truth itself (τ = 1, regret 0);
- ``another seed``: one seed's measured accuracies as the scores, the mean of the *other* seeds as the truth,
  averaged over seeds: how well the ground truth predicts itself (the noise ceiling).
"""

from __future__ import annotations

import numpy as np

from ...evaluation.rank_quality import rank_quality

METRICS = ("weighted_tau", "kendall", "spearman", "regret", "p_at_1", "p_at_3")
RANDOM, ORACLE, SEED_CEILING = "random", "oracle", "another seed (noise ceiling)"


def rank_rows(scores: np.ndarray, truth: np.ndarray, sources, ks=(1, 3)) -> dict:
    """One scorer on one target: the metrics of :func:`depara.evaluation.rank_quality.rank_quality` (regret in points)."""
    row = rank_quality(np.asarray(truth, dtype=np.float64), np.asarray(scores, dtype=np.float64), ks=ks,
                       names=list(sources)).as_row()
    row["regret"] = 100.0 * row["regret"]
    return row


def random_expectation(truth: np.ndarray, sources, rng: np.random.Generator, draws: int = 200) -> dict:
    rows = [rank_rows(rng.permutation(len(truth)).astype(float), truth, sources) for _ in range(draws)]
    return {m: float(np.nanmean([r[m] for r in rows])) for m in METRICS}


def seed_ceiling(per_seed: np.ndarray, sources) -> dict:
    """per_seed: seeds × sources accuracies of one target; leave-one-seed-out agreement."""
    k = per_seed.shape[0]
    if k < 2:
        return {m: float("nan") for m in METRICS}
    rows = [rank_rows(per_seed[s], np.delete(per_seed, s, axis=0).mean(axis=0), sources) for s in range(k)]
    return {m: float(np.nanmean([r[m] for r in rows])) for m in METRICS}


def bootstrap_mean(values: np.ndarray, rng: np.random.Generator, reps: int = 2000) -> tuple[float, float, float]:
    """(mean, 2.5 %, 97.5 %) of the mean of ``values`` (NaN dropped) under resampling with replacement."""
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return float("nan"), float("nan"), float("nan")
    means = v[rng.integers(0, v.size, size=(reps, v.size))].mean(axis=1)
    return float(v.mean()), float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


def paired_difference(a: np.ndarray, b: np.ndarray, rng: np.random.Generator, reps: int = 2000):
    """Bootstrap (mean, lo, hi) of the per-target difference a − b (targets where both are finite)."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    ok = np.isfinite(a) & np.isfinite(b)
    return bootstrap_mean(a[ok] - b[ok], rng, reps)


def evaluate(truth: dict[str, np.ndarray], per_seed: dict[str, np.ndarray], scores: dict[str, dict[str, np.ndarray]],
             sources, *, seed: int = 0) -> tuple[list[dict], list[dict]]:
    """Per-target rows and the summary (mean + bootstrap interval) of every scorer and reference line.

    truth: target → (S,) mean accuracy; per_seed: target → seeds × S; scores: target → {scorer: (S,)}.
    """
    rng = np.random.default_rng([seed, 555])
    targets = list(truth)
    scorers = list(next(iter(scores.values())))
    per_target = []
    for t in targets:
        for sc in scorers:
            r = rank_rows(scores[t][sc], truth[t], sources)
            per_target.append({"scorer": sc, "target": t, **{m: r[m] for m in METRICS}, "pick": r["pick"],
                               "pick_truth": r["pick_truth"], "best_truth": r["best_truth"],
                               "best": sources[int(np.argmax(truth[t]))]})
        per_target.append({"scorer": RANDOM, "target": t, **random_expectation(truth[t], sources, rng)})
        oracle = rank_rows(truth[t], truth[t], sources)
        per_target.append({"scorer": ORACLE, "target": t, **{m: oracle[m] for m in METRICS}})
        per_target.append({"scorer": SEED_CEILING, "target": t, **seed_ceiling(per_seed[t], sources)})
    summary = []
    boot = np.random.default_rng([seed, 556])
    for sc in [*scorers, RANDOM, ORACLE, SEED_CEILING]:
        rows = [r for r in per_target if r["scorer"] == sc]
        out = {"scorer": sc, "n_targets": len(rows)}
        for m in METRICS:
            mean, lo, hi = bootstrap_mean(np.array([r[m] for r in rows], float), boot)
            out.update({m: mean, f"{m}_lo": lo, f"{m}_hi": hi})
        summary.append(out)
    return per_target, summary
