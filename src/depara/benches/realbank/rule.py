"""The rules that choose the frozen defaults: round 5's on the pretrained bank (benchmarks/results/pretrained_bank/
RULE.md: :func:`rule_score`, :func:`choose`) and round 6's on it and the 32-px bank at once
(benchmarks/results/default_choice_two_benches/RULE.md: :func:`two_bench_score`, the same :func:`choose`), and the
rank-quality measures they read. Pure numpy on the bank's tables:

- ``truth[target][source][layer]``: per-seed linear-probe accuracies (list);
- ``scores[target][source][scorer][layer]``: each scorer's value of each (source, candidate layer).

Model truth = a source's best candidate layer (seed-mean accuracy); layer truth = each layer's seed-mean accuracy.
A scorer ranks models through a **layer read** (``last``: the deepest candidate; ``below``: the one under it;
``max``: its best-scored layer) and ranks a source's layers by its scores of them. A **combination** of a DEPARA
member and a peer averages their ranks (over the sources for models, over a source's layers for layers, over every
(source, layer) pair for the joint pick) with select's own rank average
(:func:`depara.evaluation.rank_quality.rank_average`: a candidate missing from a part has none, and is then ranked
below the lowest finite score by :func:`lowest_for_missing`, like a missing single score).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy.stats import rankdata

from ...evaluation.rank_quality import rank_average
from .evaluation import rank_rows

READS = ("last", "below", "max")


@dataclass(frozen=True)
class Candidate:
    """A scorer of the rule: one scorer, or the rank average of a DEPARA member and a peer, with a layer read."""

    parts: tuple[str, ...]
    read: str

    @property
    def name(self) -> str:
        return " + ".join(self.parts) + f" @ {self.read}"


def lowest_for_missing(values: np.ndarray) -> np.ndarray:
    """``values`` with every NaN/inf (a scorer that refused the input, a static prior unknown for a source) set
    below the lowest finite value, so it ranks last; all missing → all equal."""
    v = np.asarray(values, dtype=np.float64).copy()
    ok = np.isfinite(v)
    v[~ok] = v[ok].min() - 1.0 if ok.any() else 0.0
    return v


def layer_values(scores_t: dict, sources, scorer: str, layers_of) -> list[np.ndarray]:
    """Per source, the scorer's values over its candidate layers (in the source's layer order)."""
    return [np.array([scores_t[s][scorer].get(layer, np.nan) for layer in layers_of(s)], float) for s in sources]


def read_layers(values: np.ndarray, read: str) -> float:
    """One source's model score from its per-layer scores (``READS``)."""
    if read == "last":
        return float(values[-1])
    if read == "below":
        return float(values[-2])
    finite = values[np.isfinite(values)]
    return float(finite.max()) if finite.size else float("nan")


def candidate_views(scores_t: dict, sources, cand: Candidate, layers_of):
    """(model scores over sources, per-source layer scores, joint scores over every (source, layer) pair)."""
    per_part = [layer_values(scores_t, sources, p, layers_of) for p in cand.parts]
    models = [np.array([read_layers(v, cand.read) for v in part]) for part in per_part]
    if len(cand.parts) == 1:
        joint = np.concatenate(per_part[0])
        return models[0], per_part[0], joint
    model = rank_average(np.stack(models))
    layers = [rank_average(np.stack([part[i] for part in per_part])) for i in range(len(sources))]
    joint = rank_average(np.stack([np.concatenate(part) for part in per_part]))
    return model, layers, joint


def truth_views(truth_t: dict, sources, layers_of):
    """(model truth over sources, per-source layer truths, joint truth, per-seed model truth seeds × sources)."""
    layer_means = [np.array([np.mean(truth_t[s][layer]) for layer in layers_of(s)]) for s in sources]
    model = np.array([m.max() for m in layer_means])
    per_seed = np.array([[max(truth_t[s][layer][i] for layer in layers_of(s)) for s in sources]
                         for i in range(len(truth_t[sources[0]][layers_of(sources[0])[0]]))])
    return model, layer_means, np.concatenate(layer_means), per_seed


@lru_cache(maxsize=200_000)
def _rank_measures(score_ranks: tuple, truth: tuple) -> tuple[float, float, float]:
    row = rank_rows(np.array(score_ranks), np.array(truth), [str(i) for i in range(len(truth))])
    return row["weighted_tau"], row["kendall"], row["regret"]


def rank_measures(scores: np.ndarray, truth: np.ndarray) -> tuple[float, float, float]:
    """(weighted τ, Kendall τ-b, regret in points) of :func:`~.evaluation.rank_rows`, memoised on the scores'
    ranks: every one of them depends on the scores only through their order and ties, so equal orders share it."""
    return _rank_measures(tuple(rankdata(scores, method="average")), tuple(np.asarray(truth, float)))


def target_measures(truth_t: dict, scores_t: dict, sources, cand: Candidate, layers_of, views=None,
                    model_truths: dict[str, np.ndarray] | None = None) -> dict:
    """Model ranking (weighted τ, Kendall τ, regret in points), layer ranking (mean weighted τ over sources, best
    layer picked share) and the joint pick's regret for one target. ``views``: :func:`truth_views` of this target
    when the caller already has them (they do not depend on the candidate).

    ``model_truths`` (protocol → truth over ``sources``): a bench whose model truth is measured apart from its
    layer truth (the 32-px bank: its representation probed and fine-tuned). The model ranking is then judged
    against each of them (``model_wtau_<protocol>``, ``model_kendall_<protocol>``, ``model_regret_<protocol>``)
    and ``model_wtau`` / ``model_kendall`` / ``model_regret`` are their means over the protocols; the layer
    measures and the joint pick still read ``truth_t``."""
    t_model, t_layers, t_joint, _ = views if views is not None else truth_views(truth_t, sources, layers_of)
    s_model, s_layers, s_joint = candidate_views(scores_t, sources, cand, layers_of)
    s_model, s_joint = lowest_for_missing(s_model), lowest_for_missing(s_joint)
    s_layers = [lowest_for_missing(v) for v in s_layers]
    per_protocol = {}
    if model_truths:
        for protocol, truth in model_truths.items():
            w, k, r = rank_measures(s_model, truth)
            per_protocol.update({f"model_wtau_{protocol}": w, f"model_kendall_{protocol}": k,
                                 f"model_regret_{protocol}": r})
        m_wtau, m_kendall, m_regret = (float(np.mean([per_protocol[f"model_{m}_{p}"] for p in model_truths]))
                                       for m in ("wtau", "kendall", "regret"))
    else:
        m_wtau, m_kendall, m_regret = rank_measures(s_model, t_model)
    lw, lpick = [], []
    for s_l, t_l in zip(s_layers, t_layers):
        lw.append(rank_measures(s_l, t_l)[0])
        lpick.append(float(t_l[int(np.argmax(s_l))] >= t_l.max()))
    joint_pick = int(np.argmax(s_joint))
    return {"model_wtau": m_wtau, "model_kendall": m_kendall, "model_regret": m_regret, **per_protocol,
            "layer_wtau": float(np.nanmean(lw)), "layer_pick": float(np.mean(lpick)),
            "joint_regret": 100.0 * float(t_joint.max() - t_joint[joint_pick])}


def rule_score(rows: list[dict]) -> float:
    """THE rule's score of a candidate: ½·(mean over targets of model weighted τ) + ½·(mean over targets of the
    mean layer weighted τ over that target's sources)."""
    return 0.5 * float(np.nanmean([r["model_wtau"] for r in rows])) + \
        0.5 * float(np.nanmean([r["layer_wtau"] for r in rows]))


def two_bench_score(*benches: list[dict]) -> float:
    """Round 6's score of a candidate (benchmarks/results/default_choice_two_benches/RULE.md): the WORSE of its
    :func:`rule_score` on each bench (``benches``: the per-target rows of each), so a candidate is only as good
    as on the bench where it does worst."""
    return min(rule_score(rows) for rows in benches)


def eligible(results: dict[Candidate, float], members=None) -> dict[Candidate, float]:
    """The candidates the rule may choose (``results``: candidate → rule score, singles included): a single whose
    scorer is in ``members`` (all singles when None) with any read; a combination only where its rule score beats
    both of its parts' (each part alone with the same read, looked up in ``results``)."""
    singles = {(c.parts[0], c.read): v for c, v in results.items() if len(c.parts) == 1}
    out = {}
    for c, v in results.items():
        if len(c.parts) == 1:
            if members is None or c.parts[0] in members:
                out[c] = v
            continue
        parts = [singles.get((p, c.read), np.nan) for p in c.parts]
        if all(np.isfinite(p) and v > p for p in parts):
            out[c] = v
    return out


def choose(results: dict[Candidate, float], members=None) -> tuple[Candidate, list[str]]:
    """The rule's choice among scored candidates (``results``: candidate → rule score, singles included) and why:
    the :func:`eligible` candidate with the highest rule score; ties go to the earlier candidate (singles are
    listed before combinations)."""
    ok = eligible(results, members)
    best = max(ok, key=lambda c: (ok[c], -list(results).index(c)))
    return best, [f"{len(results)} candidates, {len(ok)} eligible; chosen {best.name}: {ok[best]:.4f}"]
