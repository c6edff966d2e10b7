"""How sure a ranking is: half-samples of the probes, intervals from them, and each candidate's share of wins.

Why half-samples and not the bootstrap: a bootstrap resample draws probes *with* replacement, so a fitted score
(LogME, H-score, TransRate, ...) sees duplicated images, which look like perfectly separable classes and inflate
the score; its percentile interval then lies above the score itself (LogME 0.110 with "interval"
[0.224, 0.273] on the demo). Here every resample is a **half-sample**: ``m = ⌊N/2⌋`` distinct probes drawn without
replacement (stratified by class when labels are given, so every class keeps about half of its images), and
every score is recomputed on it as it would be on a real probe set of that size.

Rate correction: for a mean of N values, a half-sample mean spreads around the full-sample mean with variance
``s²/m · (1 − m/N)`` (sampling without replacement), which is ``s²/N · (N − m)/m``: the full sample's own
sampling variance times ``(N − m)/m``. So the spread of the half-sample scores, times ``k = √(m/(N − m))``
(1 for even N), estimates the standard error of the full-sample score; the same holds to first order for any
smooth statistic and for the pairwise (U-statistic) terms of DEPARA (delete-d jackknife, d = N/2; Shao & Wu 1989).

The interval (:func:`subsample_intervals`): ``point ± t · k · sd(half-sample scores)`` with ``t`` the Student-t
quantile with N − 1 degrees of freedom: symmetric around the point estimate, so it always contains it. It covers
the score expected at N probes (a fitted score's small-sample bias is not a sampling error and is not in it);
tests/test_uncertainty.py measures its coverage by simulation on data with known truth.

:func:`win_shares`: the share of half-samples in which each candidate scores highest, ties at the top split
evenly, after removing each candidate's half-sample bias (its values recentred on its own point estimate).
It measures probe resampling only; ``benchmarks/calibration.py`` measures what it is worth on a bench.
numpy/scipy only.
"""

from __future__ import annotations

import math
import re
from decimal import ROUND_HALF_UP, Context, Decimal

import numpy as np

from ..errors import DeparaError

__all__ = ["LEVEL", "SHARE_MEANING", "half_samples", "rate_factor", "subsample_intervals", "rank_intervals",
           "recentred", "win_shares", "reliability", "decimals", "rounded", "BENCH_SCORER", "BENCH_RELIABILITY",
           "BENCH_LABEL_FREE_SCORER", "BENCH_RELIABILITY_LABEL_FREE",
           "bench_phrase", "UNDEFINED", "format_number"]

#: The coverage of every interval select reports.
LEVEL = 0.95
#: How every table and sentence a person reads shows an undefined number (NaN): :func:`rounded` here, and
#: :func:`depara.report.html.format_cell` for every CLI table, the HTML and the Markdown report.
UNDEFINED = "undefined"
#: What select's ``p_best`` (a candidate's share of half-samples won) is, in words (ranking.json, the report).
SHARE_MEANING = ("share of probe half-samples in which the candidate ranks first (probe resampling only; "
                 "not the probability that it transfers best)")


def half_samples(n: int, n_rep: int, seed: int, labels: np.ndarray | None = None) -> np.ndarray:
    """``n_rep`` half-samples of ``range(n)``: int array n_rep × ⌊n/2⌋, each row distinct indices in increasing
    order, drawn without replacement under ``default_rng(seed)``.

    With ``labels`` (n class indices) the draw is stratified: each class gives ⌊n_c/2⌋ or ⌈n_c/2⌉ of its n_c
    probes (the odd classes' extra probes go to classes drawn at random so rows total ⌊n/2⌋), so a class of
    at least 2 probes is in every half-sample.
    """
    if n < 2:
        raise DeparaError(f"n: expected at least 2 probes to draw half-samples from, got {n}")
    m = n // 2
    rng = np.random.default_rng(seed)
    keys = rng.random((n_rep, n))
    if labels is None:
        return np.sort(np.argsort(keys, axis=1)[:, :m], axis=1)
    y = np.asarray(labels)
    if y.shape != (n,):
        raise DeparaError(f"labels: expected {n} labels, got shape {y.shape}")
    members = [np.flatnonzero(y == c) for c in np.unique(y)]
    odd = {k: i for i, k in enumerate(k for k, mem in enumerate(members) if len(mem) % 2)}  # class → i-th odd
    n_extra = m - sum(len(mem) // 2 for mem in members)  # how many odd classes give ⌈n_c/2⌉
    out = np.empty((n_rep, m), dtype=np.int64)
    for r in range(n_rep):
        extra = set(rng.permutation(len(odd))[:n_extra].tolist())
        rows = [mem[np.argsort(keys[r, mem])[:len(mem) // 2 + (k in odd and odd[k] in extra)]]
                for k, mem in enumerate(members)]
        out[r] = np.sort(np.concatenate(rows))
    return out


def rate_factor(n: int, m: int) -> float:
    """``√(m/(n − m))``: the spread of size-m subsamples (without replacement) of n → the spread at size n."""
    if not 0 < m < n:
        raise DeparaError(f"m: expected a subsample size 0 < m < n = {n}, got {m}")
    return math.sqrt(m / (n - m))


def subsample_intervals(point: np.ndarray, sub: np.ndarray, n: int, m: int, level: float = LEVEL) -> np.ndarray:
    """(C, 2) intervals ``point ± t · rate_factor(n, m) · sd(sub)`` per candidate (module docstring).

    ``point``: (C,) full-sample scores; ``sub``: (C, R) the scores on R size-m subsamples (NaN where a subsample
    was degenerate; ignored). A candidate whose point is NaN, or with fewer than 2 finite subsample values,
    gets (nan, nan): an undefined score has no interval.
    """
    from scipy.stats import t as student_t

    point = np.asarray(point, dtype=np.float64)
    sub = np.asarray(sub, dtype=np.float64).reshape(point.shape[0], -1)
    finite = np.isfinite(sub)
    count = finite.sum(axis=1)
    out = np.full((point.shape[0], 2), np.nan)
    ok = np.isfinite(point) & (count >= 2)
    if not ok.any():
        return out
    s = sub[ok]
    mean = np.nanmean(s, axis=1, keepdims=True)
    sd = np.sqrt(np.nansum((s - mean) ** 2, axis=1) / (count[ok] - 1))
    half = student_t.ppf((1 + level) / 2, df=n - 1) * rate_factor(n, m) * sd
    out[ok, 0], out[ok, 1] = point[ok] - half, point[ok] + half
    return out


def rank_intervals(point: np.ndarray, sub: np.ndarray, n: int, level: float = LEVEL) -> np.ndarray:
    """(C, 2) intervals of a rank average: ``point ± t · s`` with ``s`` the root mean square of the half-sample
    values' distance from the point (not from their own mean), ``t`` as :func:`subsample_intervals`.

    A rank is not smooth: where candidates are close, a half-sample's rank is pulled towards the middle as well as
    spread, and its spread need not shrink with N (tied candidates rank anywhere at any N). The centred,
    rate-corrected spread of :func:`subsample_intervals` (right for a smooth score) misses the pull and covers the
    expected rank average of 4 tied candidates in 84 % of simulated data sets; the distance from the point
    counts both (92 % tied, 94 % graded; tests/test_uncertainty.py). NaN values are ignored; fewer than 2 finite ones or a NaN point:
    (nan, nan)."""
    from scipy.stats import t as student_t

    point = np.asarray(point, dtype=np.float64)
    sub = np.asarray(sub, dtype=np.float64).reshape(point.shape[0], -1)
    d2 = (sub - point[:, None]) ** 2
    count = np.isfinite(d2).sum(axis=1)
    out = np.full((point.shape[0], 2), np.nan)
    ok = np.isfinite(point) & (count >= 2)
    if ok.any():
        half = student_t.ppf((1 + level) / 2, df=n - 1) * np.sqrt(np.nanmean(d2[ok], axis=1))
        out[ok, 0], out[ok, 1] = point[ok] - half, point[ok] + half
    return out


def recentred(point: np.ndarray, sub: np.ndarray, n: int, m: int) -> np.ndarray:
    """(C, R) subsample scores moved to the full sample's scale: ``point + k · (sub − median(sub))`` per
    candidate (NaN rows stay NaN), so a score's half-sample bias, which differs between candidates, does not
    decide who wins a resample."""
    point = np.asarray(point, dtype=np.float64)
    sub = np.asarray(sub, dtype=np.float64)
    out = np.full(sub.shape, np.nan)
    ok = np.isfinite(point) & np.isfinite(sub).any(axis=1)
    if ok.any():
        med = np.nanmedian(sub[ok], axis=1, keepdims=True)
        out[ok] = point[ok, None] + rate_factor(n, m) * (sub[ok] - med)
    return out


def win_shares(values: np.ndarray) -> np.ndarray:
    """(C,) share of the columns of ``values`` (C × R) in which each candidate scores highest; candidates tied
    at the top of a column share it evenly; NaN never wins, a candidate NaN everywhere gets NaN; columns with
    no finite value are left out (all NaN when none is left)."""
    v = np.asarray(values, dtype=np.float64)
    finite = np.isfinite(v)
    cols = finite.any(axis=0)
    out = np.full(v.shape[0], np.nan)
    if not cols.any():
        return out
    w = np.where(finite, v, -np.inf)[:, cols]
    top = w == w.max(axis=0, keepdims=True)
    share = (top / top.sum(axis=0, keepdims=True)).mean(axis=1)
    defined = finite.any(axis=1)
    out[defined] = share[defined]
    return out


def reliability(prob: np.ndarray, outcome: np.ndarray, bins) -> list[dict]:
    """The reliability diagram's table: for each bin ``[b_i, b_{i+1})`` of announced probabilities (the last bin
    closed), the count, the mean announced probability and the observed rate of ``outcome`` (0/1) among them
    (NaN for an empty bin). Rows with a NaN probability are left out."""
    p = np.asarray(prob, dtype=np.float64)
    o = np.asarray(outcome, dtype=np.float64)
    if p.shape != o.shape:
        raise DeparaError(f"outcome: expected one outcome per probability ({p.shape}), got shape {o.shape}")
    edges = np.asarray(bins, dtype=np.float64)
    if edges.ndim != 1 or edges.size < 2 or np.any(np.diff(edges) <= 0):
        raise DeparaError(f"bins: expected increasing bin edges, got {list(bins)}")
    ok = np.isfinite(p)
    p, o = p[ok], o[ok]
    which = np.clip(np.searchsorted(edges, p, side="right") - 1, 0, edges.size - 2)
    inside = (p >= edges[0]) & (p <= edges[-1])
    rows = []
    for i in range(edges.size - 1):
        sel = inside & (which == i)
        k = int(sel.sum())
        rows.append({"bin_lo": float(edges[i]), "bin_hi": float(edges[i + 1]), "count": k,
                     "mean_p": float(p[sel].mean()) if k else float("nan"),
                     "rate": float(o[sel].mean()) if k else float("nan")})
    return rows


def decimals(lo: float, hi: float) -> int | None:
    """Decimals an interval ``[lo, hi]`` supports: those of the first significant digit of its half-width
    (half-width 0.025 → 2, 3.2 → 0); None without a finite interval of positive width."""
    half = (hi - lo) / 2 if np.isfinite(lo) and np.isfinite(hi) else float("nan")
    if not np.isfinite(half) or half <= 0:
        return None
    return max(0, -math.floor(math.log10(half)))


_NUMBER_SPEC = re.compile(r"\.(\d+)([efg%])")


def format_number(value: float, spec: str) -> str:
    """``format(value, spec)`` for a number a person reads, rounded half away from zero on the decimal digits
    ``repr`` shows: 18.5 at ``.0f`` → "19", 0.125 at ``.2f`` → "0.13", 0.185 at ``.0%`` → "19%", where Python's
    ``format`` rounds the binary value half to even ("18", "0.12", "18%"). The one rounding of the numbers in
    select's sentence, tables and the HTML report; values that are not ties format exactly as ``format``.

    spec : ``.N`` followed by ``f``, ``e``, ``g`` or ``%``. NaN and infinities format as ``format`` does.
    """
    m = _NUMBER_SPEC.fullmatch(spec)
    if m is None:
        raise DeparaError(f"spec: expected .N followed by f, e, g or %, got {spec!r}")
    v = float(value)
    if not math.isfinite(v):
        return format(v, spec)
    n, kind = int(m.group(1)), m.group(2)
    exact = Decimal(repr(v))  # the digits the value prints as, not its binary expansion
    if kind in "f%":
        scale = 100 if kind == "%" else 1
        q = (exact * scale).quantize(Decimal(1).scaleb(-n), rounding=ROUND_HALF_UP)
        return format(float(q) / scale, spec)  # q is no tie any more: format reproduces its digits
    q = Context(prec=max(n, 1) + (kind == "e"), rounding=ROUND_HALF_UP).plus(exact)  # significant digits
    return format(float(q), spec)


def rounded(value: float, lo: float = float("nan"), hi: float = float("nan")) -> tuple[str, str]:
    """(value, interval) as text, rounded to what the interval supports (:func:`decimals`): ``0.5057`` with
    [0.4812, 0.5302] → ("0.51", "[0.48, 0.53]"). Without an interval the value keeps 3 significant digits and the
    interval text is ""; an undefined value is "undefined". Rounded half away from zero (:func:`format_number`)."""
    if not np.isfinite(value):
        return UNDEFINED, ""
    d = decimals(lo, hi)
    if d is None:
        return format_number(value, ".3g"), ""
    spec = f".{d}f"
    return format_number(value, spec), f"[{format_number(lo, spec)}, {format_number(hi, spec)}]"


#: The ranking scorer whose shares the benches measured: select's labels default (round 6: the rank average of the
#: kNN label-graph score and LogME; :data:`depara.selection.scorers.LABELS_DEFAULT`, which tests/test_calibration.py
#: checks this against). Both benches are in-sample for it: it was chosen on them.
BENCH_SCORER = "depara_labels_logme"
#: What a share of half-samples won by :data:`BENCH_SCORER` was worth on each bench (benchmarks/calibration.py,
#: every candidate of every target one case; committed in benchmarks/results/calibration/<bench>/
#: reliability_coarse.csv, which tests/test_uncertainty.py checks this against): bench → (the bench in words,
#: {truth protocol: rows (bin low, bin high, candidates in the bin, truly best, within 1 point of the best,
#: mean regret in points)}).
BENCH_RELIABILITY: dict[str, tuple[str, dict[str, tuple[tuple[float, float, int, int, int, float], ...]]]] = {
    "realbank": ("the 32-px real bank (in-sample)", {
        "linear_probe": ((0.0, 0.1, 157, 5, 11, 14.07398595178162),
                         (0.1, 0.5, 25, 7, 11, 3.808523164279263),
                         (0.5, 1.0, 10, 7, 8, 0.7466666666666683)),
        "fine_tune": ((0.0, 0.1, 157, 6, 9, 18.630456992883104),
                      (0.1, 0.5, 25, 5, 7, 3.7197349335398093),
                      (0.5, 1.0, 10, 6, 9, 0.4816666666666706)),
    }),
    "pretrained_bank": ("the pretrained bank (in-sample)", {
        "linear_probe": ((0.0, 0.1, 197, 7, 20, 11.303319849739148),
                         (0.1, 0.5, 12, 1, 6, 1.3512103232382036),
                         (0.5, 1.0, 7, 3, 5, 1.2900869355228244)),
    }),
}
#: The ranking scorer select ships when a target model is given and no labels (DEPARA's edge term E, λ = ∞;
#: ``DEFAULT_SCORER[("target_model", ...)]``, which tests/test_calibration.py checks this against).
BENCH_LABEL_FREE_SCORER = "depara_e"
#: What a share won by :data:`BENCH_LABEL_FREE_SCORER` was worth, as :data:`BENCH_RELIABILITY` (committed in
#: benchmarks/results/calibration/taskbank_demo/reliability_coarse.csv): the procedural task bank at its demo scale,
#: 3 seeds pooled, truth its measured affinity log(scratch loss / transfer loss) in points of 0.01. In-sample: the
#: label-free default was chosen on the procedural bank.
BENCH_RELIABILITY_LABEL_FREE: dict[str, tuple[str, dict[str, tuple[tuple[float, float, int, int, int, float],
                                                                   ...]]]] = {
    "taskbank_demo": ("the procedural bank at demo scale, 3 seeds (in-sample; 1 point = 0.01 of log loss ratio)", {
        "affinity": ((0.0, 0.1, 283, 15, 19, 29.300565064292375),
                     (0.1, 0.5, 21, 6, 8, 9.525369503297036),
                     (0.5, 1.0, 26, 9, 9, 8.842434190763557)),
    }),
}
#: select's protocol names → the benches'.
_BENCH_PROTOCOL = {"finetune": "fine_tune", "linear": "linear_probe"}


def bench_phrase(share: float, protocol: str = "finetune", scorer: str = BENCH_SCORER) -> str:
    """What a share of half-samples won was worth on the benches, in words: for :data:`BENCH_SCORER`, per bench
    (:data:`BENCH_RELIABILITY`; its truth for ``protocol``, else its linear-probe truth, else its only truth) how
    many candidates with a share in the same bin were truly best, within 1 point, and their mean regret; for
    :data:`BENCH_LABEL_FREE_SCORER` the same from :data:`BENCH_RELIABILITY_LABEL_FREE`. Another scorer was not
    measured, and the phrase says so."""
    measured = {BENCH_SCORER: BENCH_RELIABILITY, BENCH_LABEL_FREE_SCORER: BENCH_RELIABILITY_LABEL_FREE}
    if scorer not in measured or not np.isfinite(share):
        return f"probe resampling only; what it is worth was not measured on a bench for {scorer}"
    benches = measured[scorer]
    parts = []
    for name, tables in benches.values():
        key = _BENCH_PROTOCOL.get(protocol, protocol)
        key = key if key in tables else "linear_probe" if "linear_probe" in tables else next(iter(tables), key)
        rows = tables.get(key, ())
        for lo, hi, count, best, within1, regret in rows:
            if count and (lo <= share < hi or (hi == rows[-1][1] and share == hi)):
                parts.append(f"{best} of {count} on {name}, {key.replace('_', '-')} truth (within 1 point "
                             f"{within1}, mean regret {format_number(regret, '.1f')} points)")
    if not parts:
        return "probe resampling only, not a probability of transferring best"
    lo, hi = next((r[0], r[1]) for _, t in benches.values() for rows in t.values() for r in rows
                  if r[0] <= share < r[1] or (share == r[1] == rows[-1][1]))
    return (f"probe resampling only; measured for {scorer}, candidates first in {format_number(lo, '.0%')}–"
            f"{format_number(hi, '.0%')} of "
            f"half-samples were truly best in " + "; ".join(parts))
