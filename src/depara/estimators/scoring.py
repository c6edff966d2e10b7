"""Scoring candidate sources with every registered estimator, from precomputed arrays (numpy only).

Given each candidate source's arrays on the target data (:class:`~depara.estimators.registry.SourceInputs`: features
N×D, optional source-head probabilities N×Cs, optional DEPARA graph on the probe set), the target labels (or regression
targets), and optionally the target model's own features and graph, :func:`score_sources` computes every requested
estimator of :mod:`depara.estimators.registry` for every source → :class:`ScoreTable` (higher = better throughout).
:func:`evaluate_scores` judges each method's column against ground truth with
:func:`depara.evaluation.rank_quality.rank_quality` (one row per method). The task-bank and layer-transfer benchmarks
call these directly with arrays they already hold; :func:`depara.selection.harness.run_harness` chains them after the
torch extraction.

Method conventions (see ``docs/sections/baselines.md``):

* ``logme``, ``hscore``, ``transrate``: source features on the target samples + target labels.
* ``leep``: source-head probabilities + labels; ``nce``: argmax of those probabilities + labels.
* ``rsa``, ``cka``: source features vs a *reference representation* of the same target samples: the target
  model's features when given, otherwise the one-hot labels (classification) or the targets (regression).
* ``depara``: S = S_V + λ·S_E between each source's graph and the target model's graph on the probe set
  (``depara_v`` / ``depara_e``: V or E alone, on request).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np

from ..errors import DeparaError
from .registry import SourceInputs, TargetInputs, get_estimator, list_estimators, parse_estimators
from ..evaluation.rank_quality import rank_quality
from ..options import DEFAULT_LAMBDA

__all__ = ["ScoreTable", "SourceInputs", "score_sources", "evaluate_scores", "summary_line", "as_truth",
           "parse_methods"]


def parse_methods(methods: str | Sequence[str] | None) -> list[str]:
    """Normalise ``"logme,leep"`` / ``["logme", "leep,nce"]`` / ``"all"`` / None (= all default estimators) to
    registry names, in order (see :func:`depara.estimators.registry.parse_estimators`)."""
    return parse_estimators(methods, "methods")


@dataclass
class ScoreTable:
    """Scores of every method for every source (higher = better).

    Attributes:
        sources: source names, in input order.
        methods: method names, in request order.
        scores: method → float64 array (S,), aligned with ``sources``.
        meta: how the scores were made (reference representation of rsa/cka, λ, regression, N, ...).
    """

    sources: tuple[str, ...]
    methods: tuple[str, ...]
    scores: dict[str, np.ndarray]
    meta: dict[str, Any] = field(default_factory=dict)

    def ranking(self, method: str) -> list[str]:
        """Source names best first by ``method`` (stable among ties)."""
        order = np.argsort(-self.scores[method], kind="stable")
        return [self.sources[i] for i in order]

    def rows(self) -> list[dict[str, Any]]:
        """One row per source: ``source`` then one column per method."""
        return [{"source": s, **{m: float(self.scores[m][i]) for m in self.methods}}
                for i, s in enumerate(self.sources)]

    def to_dict(self) -> dict[str, Any]:
        return {"sources": list(self.sources), "methods": list(self.methods),
                "scores": {m: {s: float(v) for s, v in zip(self.sources, self.scores[m])} for m in self.methods},
                "rankings": {m: self.ranking(m) for m in self.methods}, "meta": self.meta}


def _as_sources(sources: Mapping[str, SourceInputs | np.ndarray]) -> dict[str, SourceInputs]:
    if not isinstance(sources, Mapping) or not sources:
        raise DeparaError("sources: expected a non-empty mapping name -> SourceInputs (or features array)")
    return {str(name): item if isinstance(item, SourceInputs) else SourceInputs(features=np.asarray(item))
            for name, item in sources.items()}


def _check_rows(name: str, what: str, arr: np.ndarray | None, n: int) -> None:
    if arr is not None and np.shape(arr)[0] != n:
        raise DeparaError(f"source {name}: {what} has {np.shape(arr)[0]} rows but there are {n} target labels")


def _maybe_progress(items: list, enabled: bool, desc: str):
    if not enabled:
        return items
    from tqdm.auto import tqdm

    return tqdm(items, desc=desc, leave=False)


def score_sources(sources: Mapping[str, SourceInputs | np.ndarray], labels, *,
                  methods: str | Sequence[str] | None = None, regression: bool = False,
                  target_features=None, target_graph=None, lam: float = DEFAULT_LAMBDA,
                  transrate_eps: float = 1e-4, progress: bool = False) -> ScoreTable:
    """Score every source with every method from precomputed arrays.

    Args:
        sources: name → :class:`SourceInputs` (or a bare N×D features array).
        labels: N target class indices 0..C−1, or with ``regression=True`` N or N×T targets.
        methods: registry names or a comma list (:func:`depara.estimators.registry.list_estimators`); None = every
            default estimator the inputs allow.
        target_features: N×Dt features of a model trained on the target (reference for rsa/cka); None uses
            the one-hot labels / targets.
        target_graph: the target model's DEPARA graph on the same probes as the sources' graphs (``depara``).
        lam: λ of S = S_V + λ·S_E.
        transrate_eps: distortion ε of TransRate.

    Returns:
        A :class:`ScoreTable`. Raises DeparaError naming the method and source when an input a method needs is
        missing or bad.
    """
    srcs = _as_sources(sources)
    target = TargetInputs(labels=labels, regression=bool(regression), features=target_features, graph=target_graph,
                          lam=lam, transrate_eps=transrate_eps)
    if methods is None:
        wanted = [e.name for e in list_estimators(default=True) if e.available(srcs, target)]
    else:
        wanted = parse_methods(methods)
    n = int(np.shape(labels)[0]) if np.ndim(labels) >= 1 else 0
    for name, item in srcs.items():
        _check_rows(name, "features", item.features, n)
        _check_rows(name, "probs", item.probs, n)
    if target_features is not None and np.shape(target_features)[0] != n:
        raise DeparaError(f"target_features: has {np.shape(target_features)[0]} rows but there are {n} labels")
    estimators = [get_estimator(m) for m in wanted]
    for est in estimators:
        est.check(srcs, target)
    names = list(srcs)
    table = {m: np.full(len(names), np.nan) for m in wanted}
    jobs = [(e, i) for e in estimators for i in range(len(names))]
    for est, i in _maybe_progress(jobs, progress, "scoring"):
        try:
            table[est.name][i] = est.score(srcs[names[i]], target)
        except DeparaError as exc:
            raise DeparaError(f"{est.name} on source {names[i]}: {exc}") from None
    meta = {"n_samples": n, "regression": bool(regression), "lam": float(lam), "transrate_eps": transrate_eps}
    if any(e.uses_target_features for e in estimators):
        meta["rsa_cka_reference"] = target.reference()[1]
    return ScoreTable(sources=tuple(names), methods=tuple(wanted), scores=table, meta=meta)


# -------------------------------------------------------------------------------------------- evaluation
def as_truth(truth, sources: Sequence[str]) -> np.ndarray:
    """Ground truth as an (S,) float64 array in ``sources`` order, from a mapping source → value or an array."""
    if isinstance(truth, Mapping):
        missing = [s for s in sources if s not in truth]
        if missing:
            raise DeparaError(f"truth: no ground-truth value for source {missing[0]!r}")
        values = np.array([float(truth[s]) for s in sources])
    else:
        values = np.asarray(truth, dtype=np.float64).reshape(-1)
        if values.shape[0] != len(sources):
            raise DeparaError(f"truth: {values.shape[0]} values for {len(sources)} sources")
    if not np.all(np.isfinite(values)):
        raise DeparaError("truth: contains NaN or inf")
    return values


def evaluate_scores(table: ScoreTable, truth, *, ks: Sequence[int] = (1, 3, 5)) -> list[dict[str, Any]]:
    """Agreement of each method's scores with the ground truth: one
    :func:`depara.evaluation.rank_quality.rank_quality` per method.

    Args:
        table: from :func:`score_sources`.
        truth: source → ground-truth value (higher = better, e.g. fine-tuned accuracy), or an (S,) array in
            ``table.sources`` order.
        ks: the K of P@K (values larger than the number of sources are dropped); relevant set = top-K by truth.

    Returns:
        Rows ``{"method": m, **rank_quality(...).as_row()}``: kendall (τ-b), weighted_tau, pearson, spearman,
        p_at_<K>, pick (the source ranked first; tied top scores pick the worst tied source), pick_truth, best,
        best_truth, relative_accuracy = pick_truth / best_truth, regret = best_truth − pick_truth. Correlations are
        NaN when the scores (or truth) are constant.
    """
    y = as_truth(truth, table.sources)
    return [{"method": m, **rank_quality(y, table.scores[m], ks=ks, names=table.sources).as_row()}
            for m in table.methods]


def _firsts(table: ScoreTable, method: str) -> list[str]:
    """The sources with ``method``'s highest finite score (several when tied; none when every score is NaN)."""
    v = np.asarray(table.scores[method], dtype=np.float64)
    ok = np.isfinite(v)
    return [s for s, x, f in zip(table.sources, v, ok) if f and x == v[ok].max()] if ok.any() else []


def summary_line(table: ScoreTable, evaluation: Sequence[Mapping[str, Any]] | None = None) -> str:
    """One line: what to pick. A method whose top score is shared by several sources picks none of them: the line
    says they are tied, and says "too close to call" when the methods' votes tie."""
    firsts = {m: _firsts(table, m) for m in table.methods}
    if evaluation:
        scored = [r for r in evaluation if not math.isnan(r["kendall"])]
        if scored:
            best = max(scored, key=lambda r: r["kendall"])
            return (f"{best['method']} agrees best with the ground truth (Kendall tau = {best['kendall']:.2f}); "
                    f"it picks source {best['pick']} (relative accuracy {best['relative_accuracy']:.3f})")

    def said(m: str) -> str:
        f = firsts[m]
        return f[0] if len(f) == 1 else f"tied: {', '.join(f)}" if f else "undefined"

    if len(firsts.get("depara", [])) == 1:
        return f"pick source {said('depara')} (DEPARA); " + ", ".join(f"{m}: {said(m)}" for m in firsts
                                                                    if m != "depara")
    votes: dict[str, int] = {}
    for f in firsts.values():
        if len(f) == 1:
            votes[f[0]] = votes.get(f[0], 0) + 1
    unsure = [m for m, f in firsts.items() if len(f) != 1]
    if not votes:
        return "no pick: no method ranks one source first (" + "; ".join(f"{m}: {said(m)}" for m in firsts) + ")"
    most = max(votes.values())
    top = [s for s, n in votes.items() if n == most]
    rest = f"; {', '.join(f'{m} {said(m)}' for m in unsure)}" if unsure else ""
    if len(top) > 1:
        return (f"too close to call: {', '.join(top)} are each ranked first by {most} of {len(firsts)} methods"
                + rest)
    return f"pick source {top[0]} ({most} of {len(firsts)} methods rank it first)" + rest
