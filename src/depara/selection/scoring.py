"""Step 3 of ``depara select``: every scorer on every candidate, on all probes and on each half-sample, cached
per candidate in the store."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import numpy as np

from ..errors import DeparaError
from ..core.edges import pair_index, ranked_correlation, standardized_ranks
from ..evaluation.rank_quality import rank_average
from ..options import format_lam
from .scorers import GRAPH_OPTIONS, LAM, NODE_SCORERS, RANK_AVERAGES, SCORES_VERSION

if TYPE_CHECKING:  # pragma: no cover
    from ..core.graph import Graph
    from .candidates import ModelResult

__all__ = ["pair_index", "unit_ranks", "spearman_units", "spearman", "peer_score", "peer_halves", "Resamples",
           "score_all", "digest", "cached_scores", "rank_average", "with_rank_averages"]


def unit_ranks(x: np.ndarray) -> np.ndarray | None:
    """:func:`depara.core.edges.standardized_ranks` of ``x``; None when constant (Spearman undefined)."""
    try:
        return standardized_ranks(x)
    except DeparaError:
        return None


def spearman_units(rx: np.ndarray | None, ry: np.ndarray | None) -> float:
    """:func:`depara.core.edges.ranked_correlation` of two :func:`unit_ranks`; NaN when either is None."""
    return ranked_correlation(rx, ry) if rx is not None and ry is not None else float("nan")


def spearman(x: np.ndarray, y: np.ndarray) -> float:
    """Spearman ρ (average ranks for ties) of two vectors; NaN when one is constant."""
    return spearman_units(unit_ranks(x), unit_ranks(y))


# ================================================================================================== scoring
def peer_score(name: str, features: np.ndarray, labels: np.ndarray) -> float:
    """A label-based peer from the estimator registry on one (sub-sampled) layer; NaN where it is undefined
    (one class left, constant features, a singular fit on a small subsample)."""
    from ..estimators.registry import SourceInputs, TargetInputs, get_estimator

    y = np.unique(labels, return_inverse=True)[1]
    if np.unique(y).size < 2:
        return float("nan")
    try:
        with np.errstate(all="ignore"):
            value = get_estimator(name).score(SourceInputs(features=features), TargetInputs(labels=y))
    except (DeparaError, ValueError, ZeroDivisionError, np.linalg.LinAlgError):
        return float("nan")
    return value if np.isfinite(value) else float("nan")


@dataclass
class Resamples:
    """The probe sets every candidate is scored on: row 0 the identity (the point estimate), then ``halves``
    (n_rep × ⌊N/2⌋ distinct probes each, :func:`depara.evaluation.uncertainty.half_samples`)."""

    n: int
    halves: np.ndarray

    @property
    def rows(self) -> list[np.ndarray]:
        return [np.arange(self.n), *self.halves]

    def digest(self) -> str:
        return digest(np.concatenate([[self.n, *self.halves.shape], self.halves.ravel()]).astype(np.int64))

    def at_once(self, est: Any, graph: "Graph", features: np.ndarray, labels: np.ndarray) -> np.ndarray:
        """A score the registry computes for many probe sets at once (``est.resampled``: the label graph's) on
        every row, in ONE call (its edges are built once)."""
        blocks = [np.arange(self.n)[None], *([self.halves] if len(self.halves) else [])]
        return est.resampled(graph, features, labels, blocks)


def peer_halves(est: Any, features: np.ndarray, labels: np.ndarray, halves: np.ndarray) -> np.ndarray:
    """A label-based peer on each half-sample (rows of ``halves``) as :func:`peer_score` gives it row by row
    (NaN where undefined): all at once where the registry can (``est.resampled``: PED), else one fit per row;
    a batch the registry refuses (e.g. a half-sample without some class) goes row by row."""
    if len(halves) and est.resampled is not None:
        try:
            with np.errstate(all="ignore"):
                values = np.asarray(est.resampled(None, features, labels, [halves]), dtype=np.float64)
            return np.where(np.isfinite(values), values, np.nan)
        except (DeparaError, ValueError, ZeroDivisionError, np.linalg.LinAlgError):
            pass
    return np.array([peer_score(est.name, features[idx], labels[idx]) for idx in halves], dtype=np.float64)


def score_all(graphs: list["Graph"], pooled: list[np.ndarray], scorers: list[str], labels: np.ndarray | None,
               target: "Graph | None", res: Resamples, progress: bool, peer_reps: Mapping[str, int]) -> np.ndarray:
    """values[s, c, r]: scorer s, candidate c, probe set r of ``res.rows`` (r = 0: all probes, the point
    estimate). A label-based peer is recomputed on its first ``peer_reps[name]`` rows only (1 if not named; NaN
    after): each costs a fit (tens of ms), the DEPARA scores a re-ranking of the edges."""
    from ..core.similarity import normalized_nodes
    from ..io.progress import progress_bar

    rows = res.rows
    values = np.full((len(scorers), len(graphs), len(rows)), np.nan)
    cos = None
    if target is not None and set(NODE_SCORERS) & set(scorers):
        tn = normalized_nodes(target.nodes)
        cos = [np.einsum("ij,ij->i", normalized_nodes(g.nodes), tn) for g in graphs]
    # What each scorer is, from the registry: DEPARA's scores follow from the probe set's V and E (from_terms);
    # the label graph's score comes for every probe set at once (resampled); the label-based peers are refitted.
    from ..estimators.registry import get_estimator

    ests = [get_estimator(name) for name in scorers]
    # The label graph's score on every probe set at once; a peer's point estimate by its own fit, its first
    # peer_reps - 1 half-samples at once where the registry can (PED), else one fit each.
    at_once = {s: [res.at_once(e, g, pooled[c], labels) for c, g in enumerate(graphs)]
               for s, e in enumerate(ests) if e.resampled is not None and labels is not None
               and e.name not in peer_reps}
    for s, est in enumerate(ests):
        if est.from_terms is None and s not in at_once and labels is not None:
            halves = res.halves[:max(0, peer_reps.get(est.name, 1) - 1)]
            for c in range(len(graphs)):
                values[s, c, 0] = peer_score(est.name, pooled[c], labels)
                values[s, c, 1:1 + len(halves)] = peer_halves(est, pooled[c], labels, halves)
    need_e = target is not None and bool({"depara", "depara_e"} & set(scorers))
    for r in progress_bar(range(len(rows)), desc="intervals", enabled=progress, unit="resample"):
        idx = rows[r]
        pairs = pair_index(idx, res.n) if need_e else None
        tgt_r = unit_ranks(target.edges[pairs]) if need_e else None
        for c, g in enumerate(graphs):
            E = spearman_units(unit_ranks(g.edges[pairs]), tgt_r) if need_e else np.nan
            V = float(np.clip(cos[c][idx].mean(), -1, 1)) if cos is not None else np.nan
            for s, est in enumerate(ests):
                if est.from_terms is not None:
                    values[s, c, r] = est.from_terms(V, E, LAM)
                elif s in at_once:
                    values[s, c, r] = at_once[s][c][r]
    return values


def digest(a: np.ndarray | None) -> str | None:
    """SHA-256 of an array's dtype, shape and bytes (None for None): part of a score entry's key."""
    import hashlib

    if a is None:
        return None
    a = np.ascontiguousarray(a)
    return hashlib.sha256(f"{a.dtype.str}{a.shape}".encode() + a.tobytes()).hexdigest()


def cached_scores(results: Sequence["ModelResult"], scorers: list[str], labels: np.ndarray | None,
                   target: "Graph | None", target_id: Mapping[str, Any] | None, res: Resamples,
                   peer_reps: Mapping[str, int], store: Any, probe_hash: str,
                   progress: bool) -> tuple[np.ndarray, int]:
    """:func:`score_all` over every candidate of ``results``, each candidate's S × R block of values kept in the
    store (kind ``"scores"``) and reused when the same candidate is scored again the same way.

    The key holds everything the block depends on: the candidate's graph (weights hash, layer, probe content
    hash, graph options, preprocessing), the scorers, the labels, the target graph (weights hash, layer,
    preprocessing), the probe sets themselves, ``peer_reps``, λ and the version of the scoring code
    (:data:`SCORES_VERSION`). So a run with one model added scores only that model's candidates.
    Returns (values[s, c, r] as :func:`score_all`, the number of candidates whose values were reused).
    """
    from .. import __version__

    common = {"scorers": list(scorers), "labels": digest(labels), "target": dict(target_id) if target_id else None,
              "resamples": res.digest(), "peer_reps": {k: int(peer_reps[k]) for k in sorted(peer_reps)},
              "lam": format_lam(LAM),
              "version": f"{__version__}/{SCORES_VERSION}"}
    graphs, pooled, keys = [], [], []
    for r in results:
        opts = {**GRAPH_OPTIONS, "preprocess": r.preprocess, **common}
        for layer in r.layers:
            graphs.append(r.graphs[layer])
            pooled.append(r.pooled[layer])
            keys.append(store.key(r.weights_hash, layer, probe_hash, opts, kind="scores"))
    n_rows = 1 + len(res.halves)
    values = np.full((len(scorers), len(keys), n_rows), np.nan)
    todo = []
    for c, key in enumerate(keys):
        block = store.get_array(key)
        if block is not None and block.shape == (len(scorers), n_rows):
            values[:, c] = block
        else:
            todo.append(c)
    if todo:
        fresh = score_all([graphs[c] for c in todo], [pooled[c] for c in todo], scorers, labels, target, res,
                           progress, peer_reps)
        for i, c in enumerate(todo):
            values[:, c] = fresh[:, i]
            store.put_array(keys[c], fresh[:, i])
    return values, len(keys) - len(todo)


# ============================================================================================ rank averages
def with_rank_averages(values: np.ndarray, computed: Sequence[str], chosen: Sequence[str]) -> np.ndarray:
    """values[s, c, r] of the registry scorers ``computed`` → the same for ``chosen``, each rank average
    (:data:`depara.selection.scorers.RANK_AVERAGES`) made from its parts by
    :func:`depara.evaluation.rank_quality.rank_average`."""
    return np.stack([rank_average(values[[computed.index(p) for p in RANK_AVERAGES[name]]])
                     if name in RANK_AVERAGES else values[list(computed).index(name)] for name in chosen])
