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
    """One scorer on one target: the metrics of :func:`depara.evaluation.rank_quality.rank_quality` (regret in points).

    Every :data:`METRICS` key is present: P@K for a K above the number of sources is NaN (no top-K to find)."""
    row = rank_quality(np.asarray(truth, dtype=np.float64), np.asarray(scores, dtype=np.float64), ks=ks,
                       names=list(sources)).as_row()
    row["regret"] = 100.0 * row["regret"]
    for m in METRICS:
        row.setdefault(m, float("nan"))
    return row


def mean_of_rows(rows: list[dict]) -> dict:
    """Each :data:`METRICS` column's mean over ``rows``, NaN left out (all NaN: NaN, without numpy's warning)."""
    out = {}
    for m in METRICS:
        v = np.array([r[m] for r in rows], dtype=np.float64)
        out[m] = float(np.nanmean(v)) if np.any(~np.isnan(v)) else float("nan")
    return out


def random_expectation(truth: np.ndarray, sources, rng: np.random.Generator, draws: int = 200) -> dict:
    rows = [rank_rows(rng.permutation(len(truth)).astype(float), truth, sources) for _ in range(draws)]
    return mean_of_rows(rows)


def seed_ceiling(per_seed: np.ndarray, sources) -> dict:
    """per_seed: seeds × sources accuracies of one target; leave-one-seed-out agreement."""
    k = per_seed.shape[0]
    if k < 2:
        return {m: float("nan") for m in METRICS}
    rows = [rank_rows(per_seed[s], np.delete(per_seed, s, axis=0).mean(axis=0), sources) for s in range(k)]
    return mean_of_rows(rows)


def bootstrap_mean(values: np.ndarray, rng: np.random.Generator, reps: int = 2000) -> tuple[float, float, float]:
    """(mean, 2.5 %, 97.5 %) of the mean of ``values`` (NaN dropped) under resampling with replacement."""
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return float("nan"), float("nan"), float("nan")
    means = v[rng.integers(0, v.size, size=(reps, v.size))].mean(axis=1)
    return float(v.mean()), float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


def bootstrap_columns(rows: list[dict], metrics, rng: np.random.Generator) -> dict:
    """Each of ``metrics``' mean over ``rows`` with its :func:`bootstrap_mean` interval: ``{m, m_lo, m_hi}`` per
    metric, in order (one draw of ``rng`` per metric)."""
    out = {}
    for m in metrics:
        mean, lo, hi = bootstrap_mean(np.array([r[m] for r in rows], float), rng)
        out.update({m: mean, f"{m}_lo": lo, f"{m}_hi": hi})
    return out


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
        summary.append({"scorer": sc, "n_targets": len(rows), **bootstrap_columns(rows, METRICS, boot)})
    return per_target, summary


def split_halves(k: int) -> list[tuple[tuple[int, ...], tuple[int, ...]]]:
    """Every split of seeds 0..k−1 into two halves (the first holds seed 0 and ⌊k/2⌋ seeds; the second the rest)."""
    from itertools import combinations

    if k < 2:
        return []
    return [(a, tuple(s for s in range(k) if s not in a))
            for a in ((0, *rest) for rest in combinations(range(1, k), k // 2 - 1))]


def split_half_reliability(per_seed: np.ndarray, metric: str = "spearman") -> dict:
    """Reliability of a measured truth from its seeds: split the seeds in halves (every split), correlate the two
    halves' mean accuracies over the candidates with ``metric`` (a :data:`METRICS` correlation), average over
    splits (``r_half``), and correct to the full number of seeds by Spearman–Brown (``reliability`` = 2r/(1+r)).
    ``ceiling`` = √reliability: the correlation a perfect scorer (the truth measured with infinitely many seeds)
    can expect with this truth (classical attenuation; exact for Pearson, an approximation for rank measures).

    per_seed: seeds × candidates. With fewer than 2 seeds or 2 candidates every value is NaN.
    """
    per_seed = np.asarray(per_seed, dtype=np.float64)
    splits = split_halves(per_seed.shape[0])
    if not splits or per_seed.shape[1] < 2:
        return {"r_half": float("nan"), "reliability": float("nan"), "ceiling": float("nan"), "splits": 0}
    names = [str(i) for i in range(per_seed.shape[1])]
    rs = [rank_rows(per_seed[list(a)].mean(axis=0), per_seed[list(b)].mean(axis=0), names)[metric]
          for a, b in splits]
    r = float(np.nanmean(rs))
    rel = 2.0 * r / (1.0 + r) if r > -1.0 else float("nan")
    return {"r_half": r, "reliability": rel, "ceiling": float(np.sqrt(rel)) if rel >= 0 else 0.0,
            "splits": len(splits)}
