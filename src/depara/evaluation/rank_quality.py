"""Model-selection evaluation: one ranking's quality, P@K / R@K as the DEPARA paper counts them, top-1 regret.

:func:`rank_quality` is THE evaluation of one method's ranking of candidates (sources, layers, models) for ONE
target: Kendall τ-b, weighted τ, Spearman, Pearson, P@K (relevant set = the top-K by truth), the pick and its
regret. The harness, the layer-selection experiments and the benchmarks all call it.

The paper's Taskonomy protocol is a different quantity, kept beside it: hits / P@K / R@K summed over targets with a
FIXED relevant set (the best 5 sources by truth) per target. It takes plain square *task × task* matrices (numpy
in, numbers out), so the same code scores the Taskonomy reproduction and the procedural task bank:

* ``scores[t, s]``: a method's score for transferring source ``s`` to target ``t`` (rows = targets,
  columns = sources, **higher = better**);
* ``truth[t, s]``: the ground truth in the same layout (transfer affinity, accuracy, ``19 − position`` from a
  ``sort_gt`` row, ...). A row of ``truth`` that is all NaN is a task that is a source only: it is skipped.

The diagonal (a task as its own source) is never a candidate. For a target ``t`` the *relevant* set is its
``relevant`` best sources by ``truth``; ``hits(K) = Σ_t |top-K by scores ∩ relevant_t|``,
``P@K = hits / (T·K)``, ``R@K = hits / (T·relevant)`` for ``K = 1..S−1``, with ``T`` the number of targets.

Ties, decided deterministically and independently of the task order:

* in ``scores``: ``ties="pessimistic"`` (default; the rule of :func:`pessimistic_order`, shared with
  :func:`rank_quality`) ranks, inside a group of equal scores, the non-relevant sources first, so a method never
  gains from ties (a constant score matrix scores no better than the worst ordering);
  ``ties="expected"`` gives the expected hits under a uniformly random order inside each tied group (fractional).
  The paper's code sorted with ``argsort`` (arbitrary among ties); without ties all three agree.
* in ``truth`` (which sources are relevant when the ``relevant``-th and the next have equal truth): the task
  earlier in ``names`` order by name (or by index when no names are given) wins.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Sequence

import numpy as np
from scipy import stats

from ..core.score import combine  # noqa: F401 - the rule's old home: depara.evaluate.combine
from ..errors import DeparaError

Ties = Literal["pessimistic", "expected"]
_TIES = ("pessimistic", "expected")


# --------------------------------------------------------------------------------------------------- results
@dataclass(frozen=True)
class RankingCurve:
    """Hits, precision and recall at each K, summed over targets.

    Attributes:
        k: (n_k,) the K values (1..S−1 by default).
        hits: (n_k,) total hits over targets at each K (whole numbers unless ``ties="expected"``).
        precision: (n_k,) ``hits / (T·K)``.
        recall: (n_k,) ``hits / (T·relevant)``.
        per_target_hits: (T, n_k) hits of each target at each K.
        targets: names (or indices as strings) of the T evaluated targets, in matrix order.
        relevant: size of each target's relevant set.
        n_candidates: number of candidate sources per target (S−1).
        ties: the tie rule used.
    """

    k: np.ndarray
    hits: np.ndarray
    precision: np.ndarray
    recall: np.ndarray
    per_target_hits: np.ndarray
    targets: tuple[str, ...]
    relevant: int
    n_candidates: int
    ties: str = "pessimistic"

    @property
    def n_targets(self) -> int:
        return len(self.targets)

    def at(self, k: int) -> tuple[float, float, float]:
        """``(hits, P@k, R@k)`` at one K."""
        where = np.flatnonzero(self.k == k)
        if where.size == 0:
            raise DeparaError(f"K={k} not in this curve (K = {int(self.k.min())}..{int(self.k.max())})")
        i = int(where[0])
        return float(self.hits[i]), float(self.precision[i]), float(self.recall[i])

    def rows(self, method: str | None = None) -> list[dict]:
        """One dict per K (``method``, ``K``, ``hits``, ``precision``, ``recall``) for CSV output."""
        out = []
        for i, k in enumerate(self.k):
            row = {} if method is None else {"method": method}
            hits = float(self.hits[i])
            row.update({"K": int(k), "hits": int(hits) if hits.is_integer() else hits,
                        "precision": float(self.precision[i]), "recall": float(self.recall[i])})
            out.append(row)
        return out


@dataclass(frozen=True)
class RankCorrelations:
    """Per-target agreement between a score row and the truth row (over the S−1 candidate sources).

    Arrays are (T,) in the order of ``targets``. ``spearman``, ``kendall`` (τ-b) and ``weighted_tau``
    (``scipy.stats.weightedtau``, hyperbolic weights on rank, which stresses the top of the ranking) are NaN for a
    target whose score row is constant. ``top1_truth``: truth value of the source the scores rank first;
    ``best_truth``: best truth value available; ``relative_accuracy = top1_truth / best_truth`` (meaningful for
    positive truths such as accuracies or affinities); ``regret = best_truth − top1_truth`` (≥ 0);
    ``top1_hit``: whether the pick is a best source. ``per_target``: each target's :class:`RankQuality` (the one
    result type of a ranking; these arrays are its fields gathered over targets).
    """

    targets: tuple[str, ...]
    spearman: np.ndarray
    kendall: np.ndarray
    weighted_tau: np.ndarray
    top1_truth: np.ndarray
    best_truth: np.ndarray
    relative_accuracy: np.ndarray
    regret: np.ndarray
    top1_hit: np.ndarray
    ties: str = "pessimistic"
    mean: dict = field(default_factory=dict)
    per_target: tuple = ()  # the RankQuality of each target (pessimistic ties), in the order of ``targets``

    def rows(self, method: str | None = None) -> list[dict]:
        """One dict per target, for CSV output."""
        out = []
        for i, t in enumerate(self.targets):
            row = {} if method is None else {"method": method}
            row.update({"target": t, "spearman": float(self.spearman[i]), "kendall": float(self.kendall[i]),
                        "weighted_tau": float(self.weighted_tau[i]), "top1_truth": float(self.top1_truth[i]),
                        "best_truth": float(self.best_truth[i]),
                        "relative_accuracy": float(self.relative_accuracy[i]), "regret": float(self.regret[i]),
                        "top1_hit": bool(self.top1_hit[i])})
            out.append(row)
        return out


# ------------------------------------------------------------------------------------------------ validation
def _as_square(matrix, what: str) -> np.ndarray:
    try:
        arr = np.asarray(matrix, dtype=np.float64)
    except (TypeError, ValueError):
        raise DeparaError(f"{what}: not a numeric matrix") from None
    if arr.ndim != 2 or arr.shape[0] != arr.shape[1]:
        raise DeparaError(f"{what}: expected a square task-by-task matrix, got shape {arr.shape}")
    if arr.shape[0] < 2:
        raise DeparaError(f"{what}: need at least 2 tasks, got {arr.shape[0]}")
    return arr


def _check_names(names: Sequence[str] | None, n: int, what: str) -> tuple[str, ...] | None:
    if names is None:
        return None
    names = tuple(str(x) for x in names)
    if len(names) != n:
        raise DeparaError(f"{what}: {len(names)} names for a {n}x{n} matrix")
    if len(set(names)) != len(names):
        dup = sorted({x for x in names if names.count(x) > 1})
        raise DeparaError(f"{what}: duplicate task names {dup}")
    return names


def align_matrix(matrix, names: Sequence[str], order: Sequence[str], what: str = "matrix") -> np.ndarray:
    """Reorder a labelled square ``matrix`` (rows and columns named ``names``) into the task order ``order``.

    Raises a :class:`DeparaError` naming the tasks present in one and not the other.
    """
    arr = _as_square(matrix, what)
    names = _check_names(names, arr.shape[0], what)
    order = tuple(str(x) for x in order)
    missing = [t for t in order if t not in names]
    extra = [t for t in names if t not in set(order)]
    if missing or extra:
        parts = []
        if missing:
            parts.append(f"missing tasks {missing}")
        if extra:
            parts.append(f"unexpected tasks {extra}")
        raise DeparaError(f"{what}: task set differs ({'; '.join(parts)})")
    index = {t: i for i, t in enumerate(names)}
    idx = np.array([index[t] for t in order])
    return arr[np.ix_(idx, idx)]


def _prepare(scores, truth, names, truth_names, what_scores="scores", what_truth="truth"):
    """Validate and align; return (scores, truth, names, target rows)."""
    s = _as_square(scores, what_scores)
    t = _as_square(truth, what_truth)
    names = _check_names(names, s.shape[0], what_scores)
    if truth_names is not None:
        truth_names = _check_names(truth_names, t.shape[0], what_truth)
        if names is None:
            raise DeparaError(f"{what_scores}: truth_names given but no names for the scores")
        t = align_matrix(t, truth_names, names, what_truth)
    elif s.shape != t.shape:
        raise DeparaError(f"{what_scores} shape {s.shape} and {what_truth} shape {t.shape} differ")
    label = names if names is not None else tuple(str(i) for i in range(s.shape[0]))
    n = s.shape[0]
    off = ~np.eye(n, dtype=bool)
    targets = [i for i in range(n) if not np.all(np.isnan(t[i][off[i]]))]
    if not targets:
        raise DeparaError(f"{what_truth}: every row is NaN (no target task)")
    for i in targets:
        bad = np.flatnonzero(~np.isfinite(t[i]) & off[i])
        if bad.size:
            raise DeparaError(f"{what_truth}: target {label[i]} has no truth for source {label[bad[0]]}")
        bad = np.flatnonzero(~np.isfinite(s[i]) & off[i])
        if bad.size:
            raise DeparaError(f"{what_scores}: non-finite score ({s[i, bad[0]]}) for target {label[i]}, "
                              f"source {label[bad[0]]}")
    return s, t, label, names is not None, targets


def _check_ties(ties: str) -> None:
    if ties not in _TIES:
        raise DeparaError(f"ties={ties!r}: expected one of {', '.join(_TIES)}")


def _truth_key(label: tuple[str, ...], by_name: bool) -> np.ndarray:
    """Secondary sort key for truth ties: name order when names are known, else index."""
    if by_name:
        order = np.argsort(np.array(label, dtype=object), kind="stable")
        key = np.empty(len(label), dtype=np.int64)
        key[order] = np.arange(len(label))
        return key
    return np.arange(len(label))


def _relevant_mask(truth_row: np.ndarray, cand: np.ndarray, relevant: int, key: np.ndarray) -> np.ndarray:
    """Boolean mask over ``cand`` of the ``relevant`` best sources by truth (ties: smaller key first)."""
    order = np.lexsort((key[cand], -truth_row[cand]))
    mask = np.zeros(cand.size, dtype=bool)
    mask[order[:relevant]] = True
    return mask


def pessimistic_order(scores: np.ndarray, goodness: np.ndarray) -> np.ndarray:
    """THE tie rule of every ranking evaluation in depara: candidates by descending score, and inside a group of
    equal scores the WORSE candidate first (ascending ``goodness``), so a method never gains from a tie.

    Args:
        scores: (S,) scores of S candidates, higher = better.
        goodness: (S,) how good each candidate truly is (truth values, or relevance 0/1), higher = better.

    Returns:
        (S,) candidate indices, best-scored first. A constant ``scores`` vector therefore ranks the candidates
        worst-first: it scores no better than the worst ordering.
    """
    return np.lexsort((np.asarray(goodness), -np.asarray(scores)))


def _cumulative_hits(score_row: np.ndarray, rel: np.ndarray, ties: str) -> np.ndarray:
    """(S−1,) hits among the top-K sources by score, K = 1..S−1, under the tie rule."""
    if ties == "pessimistic":
        # Sort by descending score; inside a tied group the relevant ones go last.
        order = pessimistic_order(score_row, rel.astype(np.int8))
        return np.cumsum(rel[order]).astype(np.float64)
    # expected: each position in a tied group holds a relevant source with probability r_group / g_group.
    order = np.argsort(-score_row, kind="stable")
    sorted_scores = score_row[order]
    sorted_rel = rel[order].astype(np.float64)
    _, start, counts = np.unique(-sorted_scores, return_index=True, return_counts=True)
    contrib = np.empty_like(sorted_rel)
    for a, g in zip(start, counts):
        contrib[a:a + g] = sorted_rel[a:a + g].mean()
    return np.cumsum(contrib)


# ------------------------------------------------------------------------------------------------ P@K / R@K
def precision_recall_at_k(scores, truth, relevant: int = 5, *, ks: Sequence[int] | None = None,
                          names: Sequence[str] | None = None, truth_names: Sequence[str] | None = None,
                          ties: Ties = "pessimistic") -> RankingCurve:
    """Hits, P@K and R@K of a score matrix against a truth matrix, as the DEPARA paper counts them.

    Args:
        scores: (S, S) rows = targets, columns = sources, higher = better. Must be finite in every evaluated
            target row (the diagonal is ignored).
        truth: (S, S) same layout; all-NaN rows (source-only tasks) are skipped. When ``truth_names`` is given,
            ``truth`` is reordered into the order of ``names`` first.
        relevant: size of the relevant set of each target (its best sources by truth), 1..S−1.
        ks: the K values, each in 1..S−1; default all of 1..S−1.
        names: task names of ``scores`` (used in error messages, truth alignment and truth tie-breaking).
        truth_names: task names of ``truth`` when its order differs from ``names``.
        ties: ``"pessimistic"`` or ``"expected"`` (see the module docstring).

    Returns:
        A :class:`RankingCurve`.
    """
    _check_ties(ties)
    s, t, label, by_name, targets = _prepare(scores, truth, names, truth_names)
    n = s.shape[0]
    n_cand = n - 1
    if isinstance(relevant, bool) or not isinstance(relevant, (int, np.integer)) or not 1 <= relevant <= n_cand:
        raise DeparaError(f"relevant={relevant}: expected an integer in 1..{n_cand}")
    if ks is None:
        k = np.arange(1, n_cand + 1)
    else:
        k = np.asarray(list(ks))
        if k.size == 0 or k.ndim != 1:
            raise DeparaError("ks: expected a non-empty list of K values")
        for v in k:
            if not float(v).is_integer() or not 1 <= v <= n_cand:
                raise DeparaError(f"K={v} out of range: expected an integer in 1..{n_cand}")
        k = k.astype(np.int64)
    key = _truth_key(label, by_name)
    per_target = np.empty((len(targets), k.size), dtype=np.float64)
    for row, i in enumerate(targets):
        cand = np.delete(np.arange(n), i)
        rel = _relevant_mask(t[i], cand, int(relevant), key)
        cum = _cumulative_hits(s[i, cand], rel, ties)
        per_target[row] = cum[k - 1]
    hits = per_target.sum(axis=0)
    n_t = len(targets)
    return RankingCurve(k=k, hits=hits, precision=hits / (n_t * k), recall=hits / (n_t * relevant),
                        per_target_hits=per_target, targets=tuple(label[i] for i in targets),
                        relevant=int(relevant), n_candidates=n_cand, ties=ties)


def random_curve(n_targets: int, n_candidates: int, relevant: int = 5,
                 ks: Sequence[int] | None = None) -> RankingCurve:
    """Expected curve of a random ranking: ``hits(K) = T·K·relevant/(S−1)``, so ``P@K = relevant/(S−1)``."""
    k = np.arange(1, n_candidates + 1) if ks is None else np.asarray(list(ks), dtype=np.int64)
    per = np.tile(k * relevant / n_candidates, (n_targets, 1)).astype(np.float64)
    hits = per.sum(axis=0)
    return RankingCurve(k=k, hits=hits, precision=hits / (n_targets * k), recall=hits / (n_targets * relevant),
                        per_target_hits=per, targets=tuple(str(i) for i in range(n_targets)),
                        relevant=relevant, n_candidates=n_candidates, ties="expected")


def oracle_curve(n_targets: int, n_candidates: int, relevant: int = 5,
                 ks: Sequence[int] | None = None) -> RankingCurve:
    """Curve of a perfect ranking: ``hits(K) = T·min(K, relevant)``, so ``P@K = min(1, relevant/K)``."""
    k = np.arange(1, n_candidates + 1) if ks is None else np.asarray(list(ks), dtype=np.int64)
    per = np.tile(np.minimum(k, relevant), (n_targets, 1)).astype(np.float64)
    hits = per.sum(axis=0)
    return RankingCurve(k=k, hits=hits, precision=hits / (n_targets * k), recall=hits / (n_targets * relevant),
                        per_target_hits=per, targets=tuple(str(i) for i in range(n_targets)),
                        relevant=relevant, n_candidates=n_candidates, ties="pessimistic")



# ---------------------------------------------------------------------------------------- one target's ranking
@dataclass(frozen=True)
class RankQuality:
    """How well one method's scores of S candidates (sources, layers, models) rank them for ONE target.

    Attributes:
        n: number of candidates S.
        kendall: Kendall τ-b between scores and truth (``scipy.stats.kendalltau``).
        weighted_tau: ``scipy.stats.weightedtau`` (hyperbolic rank weights: the top matters most; averaged over
            the ranking by score and by truth).
        spearman, pearson: ``scipy.stats.spearmanr`` / ``pearsonr``.
        p_at_k: {K: P@K} with the relevant set = the top-K candidates by truth, for each requested K ≤ S.
        pick: index of the candidate the scores rank first, ties broken pessimistically
            (:func:`pessimistic_order`: the worst truth among tied top scores).
        pick_name: its name when ``names`` were given, else None.
        best: index of the best candidate by truth (first of tied best); best_name likewise.
        pick_truth, best_truth: truth of the pick and of the best candidate.
        regret: best_truth − pick_truth (≥ 0).
        relative_accuracy: pick_truth / best_truth (NaN when best_truth is 0; meaningful for positive truths
            such as accuracies).

    Correlations are NaN when the scores or the truth are constant (or S < 2).
    """

    n: int
    kendall: float
    weighted_tau: float
    spearman: float
    pearson: float
    p_at_k: dict
    pick: int
    pick_name: str | None
    best: int
    best_name: str | None
    pick_truth: float
    best_truth: float
    regret: float
    relative_accuracy: float

    def as_row(self) -> dict:
        """Flat dict for tables: kendall, weighted_tau, pearson, spearman, p_at_<K>..., pick (name, else index),
        pick_truth, best (name, else index), best_truth, relative_accuracy, regret."""
        row = {"kendall": self.kendall, "weighted_tau": self.weighted_tau, "pearson": self.pearson,
               "spearman": self.spearman}
        row.update({f"p_at_{k}": v for k, v in self.p_at_k.items()})
        row.update({"pick": self.pick if self.pick_name is None else self.pick_name, "pick_truth": self.pick_truth,
                    "best": self.best if self.best_name is None else self.best_name, "best_truth": self.best_truth,
                    "relative_accuracy": self.relative_accuracy, "regret": self.regret})
        return row


def _as_vector(values, what: str) -> np.ndarray:
    try:
        arr = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        raise DeparaError(f"{what}: expected a vector of numbers") from None
    if arr.ndim != 1 or arr.size == 0:
        raise DeparaError(f"{what}: expected a non-empty 1-D vector (one value per candidate), got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise DeparaError(f"{what}: contains NaN or inf (candidate {int(np.flatnonzero(~np.isfinite(arr))[0])})")
    return arr


def _correlation(fn, x: np.ndarray, y: np.ndarray) -> float:
    if x.size < 2 or np.all(x == x[0]) or np.all(y == y[0]):
        return float("nan")
    return float(fn(x, y).statistic)


def rank_quality(truth, scores, *, ks: Sequence[int] = (1, 3, 5), names: Sequence[str] | None = None
                 ) -> RankQuality:
    """THE evaluation of one method's ranking of S candidates for one target against the ground truth.

    Argument order is scikit-learn's (``y_true`` first, then the scores), e.g. ``sklearn.metrics.ndcg_score``.

    Args:
        truth: (S,) ground truth per candidate, higher = better (fine-tuned accuracy, transfer affinity, ...).
        scores: (S,) the method's scores of the same candidates, higher = better.
        ks: the K of P@K; values outside 1..S are dropped.
        names: optional (S,) candidate names (reported as ``pick_name`` / ``best_name``).

    Returns:
        A :class:`RankQuality`. Ties: inside a group of equal scores the candidate with the worse truth ranks first
        (:func:`pessimistic_order`), for the pick and for P@K alike; in the truth, the relevant top-K set takes
        the earlier candidate among equal truths.
    """
    y = _as_vector(truth, "truth")
    x = _as_vector(scores, "scores")
    if x.shape != y.shape:
        raise DeparaError(f"scores: {x.shape[0]} values for {y.shape[0]} truth values (one per candidate)")
    if names is not None:
        names = tuple(str(n) for n in names)
        if len(names) != y.shape[0]:
            raise DeparaError(f"names: {len(names)} names for {y.shape[0]} candidates")
    n = int(y.shape[0])
    # position of each candidate in the truth order (best first; equal truths: earlier candidate first)
    truth_order = np.lexsort((np.arange(n), -y))
    position = np.empty(n, dtype=np.int64)
    position[truth_order] = np.arange(n)
    order = pessimistic_order(x, -position)
    p_at_k = {}
    for k in ks:
        k = int(k)
        if 1 <= k <= n:
            p_at_k[k] = float(np.count_nonzero(position[order[:k]] < k) / k)
    pick, best = int(order[0]), int(truth_order[0])
    pick_truth, best_truth = float(y[pick]), float(y[best])
    return RankQuality(
        n=n, kendall=_correlation(stats.kendalltau, x, y), weighted_tau=_correlation(stats.weightedtau, x, y),
        spearman=_correlation(stats.spearmanr, x, y), pearson=_correlation(stats.pearsonr, x, y), p_at_k=p_at_k,
        pick=pick, pick_name=None if names is None else names[pick], best=best,
        best_name=None if names is None else names[best], pick_truth=pick_truth, best_truth=best_truth,
        regret=best_truth - pick_truth,
        relative_accuracy=pick_truth / best_truth if best_truth != 0 else float("nan"))


# ------------------------------------------------------------------------------------------ rank correlation
def rank_correlations(scores, truth, *, names: Sequence[str] | None = None,
                      truth_names: Sequence[str] | None = None, ties: Ties = "pessimistic") -> RankCorrelations:
    """Per-target Spearman, Kendall τ-b, weighted τ and top-1 relative accuracy / regret, with their means.

    Same inputs as :func:`precision_recall_at_k`. For each target the score row and the truth row are compared
    over the S−1 candidate sources. The top-1 pick under tied top scores is the worst tied source by truth
    (``ties="pessimistic"``) or the mean over the tied sources (``"expected"``). ``mean`` holds the means over
    targets (NaN correlations of constant rows are left out) and ``n_targets``.
    """
    _check_ties(ties)
    s, t, label, _, targets = _prepare(scores, truth, names, truth_names)
    n = s.shape[0]
    cols = {name: np.empty(len(targets)) for name in
            ("spearman", "kendall", "weighted_tau", "top1_truth", "best_truth")}
    per_target = []
    for row, i in enumerate(targets):
        cand = np.delete(np.arange(n), i)
        x, y = s[i, cand], t[i, cand]
        q = rank_quality(y, x, ks=(), names=[label[c] for c in cand])
        per_target.append(q)
        cols["spearman"][row], cols["kendall"][row], cols["weighted_tau"][row] = q.spearman, q.kendall, q.weighted_tau
        cols["top1_truth"][row] = q.pick_truth if ties == "pessimistic" else y[x == x.max()].mean()
        cols["best_truth"][row] = q.best_truth
    best = cols["best_truth"]
    with np.errstate(divide="ignore", invalid="ignore"):
        relative = np.where(best != 0, cols["top1_truth"] / best, np.nan)
    regret = best - cols["top1_truth"]
    hit = cols["top1_truth"] >= best
    mean = {name: _nanmean(v) for name, v in cols.items() if name in ("spearman", "kendall", "weighted_tau")}
    mean.update({"relative_accuracy": _nanmean(relative), "regret": float(np.mean(regret)),
                 "top1_hit_rate": float(np.mean(hit)), "n_targets": len(targets)})
    return RankCorrelations(targets=tuple(label[i] for i in targets), spearman=cols["spearman"],
                            kendall=cols["kendall"], weighted_tau=cols["weighted_tau"],
                            top1_truth=cols["top1_truth"], best_truth=best, relative_accuracy=relative,
                            regret=regret, top1_hit=hit, ties=ties, mean=mean, per_target=tuple(per_target))


def _nanmean(v: np.ndarray) -> float:
    v = np.asarray(v, dtype=np.float64)
    v = v[~np.isnan(v)]
    return float(v.mean()) if v.size else float("nan")


# ------------------------------------------------------------------------------------------------ truth helpers
def truth_from_sort_gt(sort_gt, n_tasks: int | None = None) -> np.ndarray:
    """Turn ``sort_gt`` rows into an (S, S) truth matrix usable by :func:`precision_recall_at_k`.

    Args:
        sort_gt: (T, S) integers; each row is ``[target index]`` followed by the other S−1 task indices sorted by
            descending affinity (the DEPARA evaluation's ``sort_gt.npy``).
        n_tasks: S; default the row length.

    Returns:
        (S, S) float64: ``truth[target, source] = (S−1) − position`` where position 0 is the best source (so the
        best source gets S−1 and the worst 1); NaN on the diagonal and in the rows of tasks that are not targets.
    """
    try:
        arr = np.asarray(sort_gt)
        arr_f = arr.astype(np.float64)
    except (TypeError, ValueError):
        raise DeparaError("sort_gt: not a numeric array") from None
    if arr.ndim != 2 or arr.shape[0] == 0:
        raise DeparaError(f"sort_gt: expected a 2-D array of rows [target, sources...], got shape {arr.shape}")
    n = arr.shape[1] if n_tasks is None else int(n_tasks)
    if arr.shape[1] != n:
        raise DeparaError(f"sort_gt: rows have {arr.shape[1]} entries, expected {n} (target + {n - 1} sources)")
    if not np.all(np.isfinite(arr_f)) or not np.all(arr_f == np.round(arr_f)):
        raise DeparaError("sort_gt: entries must be whole task indices")
    idx = arr_f.astype(np.int64)
    truth = np.full((n, n), np.nan)
    seen: set[int] = set()
    full = np.arange(n)
    for r, row in enumerate(idx):
        if not np.array_equal(np.sort(row), full):
            raise DeparaError(f"sort_gt row {r}: expected a permutation of task indices 0..{n - 1}")
        target = int(row[0])
        if target in seen:
            raise DeparaError(f"sort_gt row {r}: target {target} appears twice")
        seen.add(target)
        truth[target, row[1:]] = (n - 1) - np.arange(n - 1)
    return truth


def relevant_sets(truth, relevant: int = 5, *, names: Sequence[str] | None = None) -> dict[str, list[str]]:
    """The relevant set (best ``relevant`` sources by truth, best first) of every target, by name or index."""
    t = _as_square(truth, "truth")
    label = _check_names(names, t.shape[0], "truth") or tuple(str(i) for i in range(t.shape[0]))
    key = _truth_key(label, names is not None)
    out = {}
    for i in range(t.shape[0]):
        cand = np.delete(np.arange(t.shape[0]), i)
        if np.all(np.isnan(t[i, cand])):
            continue
        order = np.lexsort((key[cand], -t[i, cand]))
        out[label[i]] = [label[c] for c in cand[order[:relevant]]]
    return out


# ------------------------------------------------------------------------------------------- labelled CSV I/O
def write_matrix_csv(path, names: Sequence[str], matrix, corner: str = "target\\source") -> None:
    """Write a labelled square matrix as CSV: header ``corner,<names>``, then ``name,<row>``; NaN as empty.

    This is the layout of the Taskonomy affinity CSVs (rows = targets, columns = sources). Written atomically.
    """
    from ..io.files import write_csv

    arr = _as_square(matrix, str(path))
    names = _check_names(names, arr.shape[0], str(path))
    write_csv(path, [[name, *("" if np.isnan(v) else float(v) for v in row)] for name, row in zip(names, arr)],
              header=[corner, *names])


def read_matrix_csv(path) -> tuple[tuple[str, ...], np.ndarray]:
    """Read a labelled square matrix written by :func:`write_matrix_csv` (or a Taskonomy affinity CSV).

    Returns ``(names, matrix)``; empty cells are NaN. Row names must equal the column names, in the same order.
    """
    from pathlib import Path

    p = Path(path)
    if not p.is_file():
        raise DeparaError(f"{p}: file not found")
    from ..io.readers import read_csv_rows

    rows = [r for r in read_csv_rows(p, "matrix file") if r and not r[0].startswith("#")]
    if len(rows) < 3:
        raise DeparaError(f"{p}: expected a header row and at least 2 task rows")
    cols = tuple(c.strip() for c in rows[0][1:])
    body = rows[1:]
    names = tuple(r[0].strip() for r in body)
    if names != cols:
        raise DeparaError(f"{p}: row names {list(names)[:3]}... differ from column names {list(cols)[:3]}... "
                          "(expected a square task-by-task matrix)")
    values = np.full((len(names), len(names)), np.nan)
    for i, r in enumerate(body):
        cells = r[1:]
        if len(cells) != len(names):
            raise DeparaError(f"{p}: row {names[i]} has {len(cells)} values, expected {len(names)}")
        for j, c in enumerate(cells):
            c = c.strip()
            if c:
                try:
                    values[i, j] = float(c)
                except ValueError:
                    raise DeparaError(f"{p}: row {names[i]}, column {names[j]}: {c!r} is not a number") from None
    _check_names(names, len(names), str(p))
    return names, values


# ------------------------------------------------------------------------------------------------ rank averages
def rank_average(parts) -> np.ndarray:
    """THE rank average of several scorers (select's ``depara_labels_logme``, the pretrained bank's combinations).

    ``parts[p, c, ...]`` (scorer p, candidate c, then any further axes, e.g. probe half-samples) → ``[c, ...]``:
    the mean over the scorers of each candidate's average rank among the candidates (``scipy.stats.rankdata``,
    ties averaged; 1 = the lowest score, so higher is better), separately at every index of the further axes.

    Missing values (NaN or ±inf: a scorer that refused the input or left a candidate undefined): a candidate
    missing from any part has no rank average (NaN there), and the other candidates are ranked without it. Where a
    missing score must still be ordered (a bench's rank measures against the truth), it is placed below the lowest
    finite score afterwards, like a missing single score (:func:`depara.benches.realbank.rule.lowest_for_missing`).
    """
    parts = np.asarray(parts, dtype=np.float64)
    if parts.ndim < 2:
        raise DeparaError(f"parts: expected scorers × candidates [× ...], got shape {parts.shape}")
    flat = parts.reshape(parts.shape[0], parts.shape[1], -1)
    out = np.full(flat.shape[1:], np.nan)
    whole = np.isfinite(flat).all(axis=(0, 1))  # indices where every candidate is defined: ranked in one call
    if whole.any():
        out[:, whole] = stats.rankdata(flat[:, :, whole], method="average", axis=1).mean(axis=0)
    for r in np.flatnonzero(~whole):
        ok = np.isfinite(flat[:, :, r]).all(axis=0)
        if ok.any():
            out[ok, r] = np.mean([stats.rankdata(part[ok, r], method="average") for part in flat], axis=0)
    return out.reshape(parts.shape[1:])


__all__ = [
    "RankQuality", "rank_quality", "pessimistic_order",
    "RankingCurve", "RankCorrelations", "precision_recall_at_k", "random_curve", "oracle_curve",
    "rank_correlations", "truth_from_sort_gt", "relevant_sets", "align_matrix", "combine",
    "read_matrix_csv", "write_matrix_csv", "rank_average",
]
