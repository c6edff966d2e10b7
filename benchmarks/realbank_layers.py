"""Layer selection with the label graph on the real-image bank: which stage of a source to read for a linear probe.

    python benchmarks/realbank_layers.py --cache CACHE [--scale default] [--out benchmarks/results/realbank_layers]

For every (target, source) of the bank (the zoo and splits of ``depara bench realbank``, cache filled by it): the
ground truth is the linear-probe test accuracy (as in :mod:`depara.benches.realbank.truth`) of the pooled features of
each stage (``stage1``, ``stage2``, ``stage3``) on the seed's split, mean over the bank's seeds (each seed's kept
for the noise ceiling). Scores per stage, from the labelled set of the first seed only (:func:`stage_scores`): the
round-5 default ``depara_labels_ped`` and its kNN member alone, the round-4 default's member (per probe, flat,
centred), the round-2 label graph, LogME, PED and leave-one-out k-NN accuracy. Reported per scorer: how often the
picked stage is the best and the mean accuracy lost by the pick (points), with 95 % bootstrap intervals over
targets, beside always taking the last stage, a random pick and another seed's accuracies (the noise ceiling);
the static priors, which cannot rank the stages of one source, get a row saying why. No default is chosen here.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

STAGES = ("stage1", "stage2", "stage3")


@torch.no_grad()
def stage_features(body, x: np.ndarray) -> dict[str, torch.Tensor]:
    outs = {s: [] for s in STAGES}
    for i in range(0, len(x), 256):
        h = torch.from_numpy(x[i:i + 256])
        for name, module in body.named_children():
            h = module(h)
            if name in outs:
                outs[name].append(h)
    return {s: torch.cat(v) for s, v in outs.items()}


#: The round-4 frozen default's label-graph handling (``configs/defaults.toml`` before round 5): the per-probe
#: comparison of flattened, centred features on the frozen probe subset. Kept as its own row beside round 5's.
ROUND4 = {"edge_comparison": "per_probe", "edge_features": "flat", "edge_scale": "centred", "probes": "subset"}


def stage_scores(feats: dict, tr0: np.ndarray, y0: np.ndarray, pick: np.ndarray, fr: np.ndarray, dflt) -> dict:
    """Every scorer's value per stage (``{column: [stage1, stage2, stage3]}``) from the first seed's labelled set.

    ``R4``: the round-4 member (:data:`ROUND4`); ``K5``: the round-5 member (``depara_labels`` as
    ``configs/defaults.toml`` says: kNN comparison of pooled, standardised features on the frozen probes); ``PED``,
    ``LogME``, ``kNN`` (leave-one-out k-NN accuracy) on the pooled features of every labelled image; ``D5``: the
    round-5 default ``depara_labels_ped``, the mean of the ``K5`` and ``PED`` ranks across the three stages
    (:func:`depara.selection.scoring.rank_average`, as ``depara select`` ranks candidates); ``E_label``: the round-2
    label graph (Spearman of flattened, centred cosine edges on ``pick``)."""
    from depara.core.edges import edges_from_features
    from depara.core.labels import edge_similarities, label_edges
    from depara.core.similarity_edges import probe_edges
    from depara.estimators.registry import get_estimator
    from depara.selection.scoring import rank_average

    member = get_estimator("depara_labels").fn
    pooled = {s: feats[s][tr0].mean(dim=(2, 3)).double().numpy() for s in STAGES}
    out = {"E_label": edge_similarities([edges_from_features(feats[s][tr0][pick].flatten(1).double().numpy(),
                                                             center=True, edge="cosine") for s in STAGES],
                                        label_edges(y0[pick])),
           "R4": [member(probe_edges(feats[s][tr0][fr].numpy(), pooling=ROUND4["edge_features"],
                                     scale=ROUND4["edge_scale"]), y0[fr], ROUND4["edge_comparison"]) for s in STAGES],
           "K5": [member(probe_edges(feats[s][tr0][fr].numpy(), pooling=dflt.edge_features, scale=dflt.edge_scale),
                         y0[fr], dflt.edge_comparison) for s in STAGES]}
    for col, name in (("LogME", "logme"), ("PED", "ped"), ("kNN", "knn")):
        out[col] = [get_estimator(name).fn(pooled[s], y0) for s in STAGES]
    out["D5"] = list(rank_average(np.array([out["K5"], out["PED"]], dtype=np.float64)[:, :, None])[:, 0])
    return {k: [float(v) for v in vals] for k, vals in out.items()}


def stage_accuracies(feats: dict, pool, splits) -> dict:
    """Linear-probe test accuracy of each stage's pooled features on every seed's split: ``{stage: [per seed]}``."""
    from depara.benches.realbank.truth import linear_probe

    return {s: [float(linear_probe(feats[s][sp.train].mean(dim=(2, 3)).double().numpy(), pool.y[sp.train],
                                   feats[s][sp.test].mean(dim=(2, 3)).double().numpy(), pool.y[sp.test]))
                for sp in splits] for s in STAGES}


def main(argv=None) -> int:
    from threadpoolctl import threadpool_limits

    from depara.io.files import ensure_dir, write_csv, write_json
    from depara.benches.realbank.bench import SCALES, available_targets, load_defaults, target_splits
    from depara.benches.realbank.scoring import probe_rows
    from depara.benches.realbank.zoo import load_or_train_zoo

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cache", default=None, help="the realbank cache (required unless --summarize-only)")
    ap.add_argument("--scale", default="default")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "realbank_layers"))
    ap.add_argument("--summarize-only", action="store_true", help="only recompute summary.csv from layers.csv")
    args = ap.parse_args(argv)
    if args.summarize_only:
        return summarize(Path(args.out))
    if args.cache is None:
        ap.error("--cache is required")
    torch.set_num_threads(1)
    sc = SCALES[args.scale]
    t0, cpu0 = time.perf_counter(), time.process_time()
    rows = []
    dflt, _, _ = load_defaults()
    with threadpool_limits(1):
        nets, _, _ = load_or_train_zoo(sc.zoo, Path(args.cache) / "realbank", args.seed)
        for t, pool in available_targets(sc):
            splits = target_splits(sc, t, pool, [args.seed + k for k in range(sc.seeds)])
            tr0 = splits[0].train
            y0 = np.unique(pool.y[tr0], return_inverse=True)[1]
            pick = np.sort(np.random.default_rng([args.seed, 17]).permutation(len(y0))[:sc.n_probe])
            fr = probe_rows(len(y0), sc.n_probe, dflt.probes, args.seed)
            for n, net in nets.items():
                feats = stage_features(net.body, pool.x)
                acc = stage_accuracies(feats, pool, splits)
                scores = stage_scores(feats, tr0, y0, pick, fr, dflt)
                rows.append({"target": t, "source": n, **{f"acc_{s}": float(np.mean(acc[s])) for s in STAGES},
                             **{f"acc_{s}_seed{k}": v for s in STAGES for k, v in enumerate(acc[s])},
                             **{f"{c}_{s}": v for c, vals in scores.items() for s, v in zip(STAGES, vals)}})
            print(f"[layers {time.perf_counter() - t0:6.1f}s] {t}", file=sys.stderr, flush=True)
    out = ensure_dir(Path(args.out))
    write_csv(out / "layers.csv", rows)
    write_json(out / "run.json", {"scale": args.scale, "seed": args.seed, "seconds": time.perf_counter() - t0,
                                  "cpu_seconds": time.process_time() - cpu0, "load_average": list(os.getloadavg()),
                                  "defaults": {"round5": {k: getattr(dflt, k) for k in ROUND4}, "round4": ROUND4},
                                  "command": "python benchmarks/realbank_layers.py --cache CACHE --scale "
                                             f"{args.scale}"})
    return summarize(out)


#: summary.csv's rows: layers.csv column → the scorer's name in the table (round 5's default first; round 4's kept).
SCORERS = {"D5": "round-5 default: depara_labels_ped (kNN member + PED, rank average)",
           "K5": "round-5 member alone: depara_labels (kNN, pooled, standardised)",
           "R4": "round-4 default: depara_labels (per probe, flat, centred)",
           "E_frozen": "round-4 default: depara_labels (per probe, flat, centred)",
           "E_label": "round-2 label graph (global Spearman, flat, centred)",
           "LogME": "LogME", "PED": "PED", "kNN": "k-NN accuracy, leave-one-out, k = 5"}
LAST, RANDOM, CEILING = "always the last stage", "random", "another seed's accuracies (noise ceiling)"
#: Baselines that cannot rank the stages of one source, with the reason the table gives in their place.
NOT_APPLICABLE = {
    "static prior: number of parameters": "a deeper stage always holds more of the source's parameters: this prior "
                                          "is 'always the last stage' (that row)",
    "static prior: the source's accuracy on its own task": "one value per source, the same for its three stages: "
                                                            "it cannot pick a stage"}


def pessimistic_pick(scores: np.ndarray, truth: np.ndarray) -> int:
    """The stage a scorer picks: its highest score, ties broken towards the worst truth (the project's one tie
    rule, :func:`depara.evaluation.rank_quality.pessimistic_order`)."""
    from depara.evaluation.rank_quality import pessimistic_order

    return int(pessimistic_order(scores, truth)[0])


def pair_outcomes(row: dict, scorer: str) -> tuple[float, float]:
    """(best stage picked: 0..1, accuracy points lost) of one (target, source) pair for a scorer or reference line.

    ``random``: the expectation of a uniform pick; the noise ceiling: each seed's accuracies as the scores, judged
    on the mean of the other seeds (averaged over the seeds, as :func:`depara.benches.realbank.evaluation.seed_ceiling`
    does for models)."""
    acc = np.array([row[f"acc_{s}"] for s in STAGES])
    if scorer == RANDOM:
        return float(np.mean(acc == acc.max())), float(np.mean(100 * (acc.max() - acc)))
    if scorer == CEILING:
        seeds = sorted({int(k.rsplit("seed", 1)[1]) for k in row if k.startswith("acc_stage1_seed")})
        per_seed = np.array([[row[f"acc_{s}_seed{k}"] for s in STAGES] for k in seeds])
        if len(seeds) < 2:
            return float("nan"), float("nan")
        out = []
        for i in range(len(seeds)):
            truth = np.delete(per_seed, i, axis=0).mean(axis=0)
            k = pessimistic_pick(per_seed[i], truth)
            out.append((float(truth[k] == truth.max()), 100 * (truth.max() - truth[k])))
        return tuple(float(v) for v in np.mean(out, axis=0))
    if scorer == LAST:
        k = len(STAGES) - 1
    elif scorer == "oracle":
        k = int(np.argmax(acc))
    else:
        k = pessimistic_pick(np.array([row[f"{scorer}_{s}"] for s in STAGES]), acc)
    return float(acc[k] == acc.max()), float(100 * (acc.max() - acc[k]))


def summarize(out: Path) -> int:
    """summary.csv from layers.csv: per scorer, the share of (target, source) pairs whose best stage is picked and
    the mean accuracy points lost, with 95 % bootstrap intervals over targets (per-target means resampled); the
    static priors that cannot rank stages get a row saying why."""
    from depara.io.files import read_csv, write_csv

    rows = [{k: (v if k in ("target", "source") else float(v)) for k, v in r.items()}
            for r in read_csv(out / "layers.csv")]
    targets = sorted({r["target"] for r in rows})
    rng = np.random.default_rng(0)
    summary = []
    scorers = [c for c in SCORERS if f"{c}_stage1" in rows[0]]
    for scorer in (*scorers, LAST, RANDOM, CEILING, "oracle"):
        outcomes = np.array([pair_outcomes(r, scorer) for r in rows])
        row = {"scorer": SCORERS.get(scorer, scorer), "pairs": len(rows), "targets": len(targets), "note": ""}
        for j, name in enumerate(("best_stage_picked", "mean_points_lost")):
            per_t = np.array([outcomes[[r["target"] == t for r in rows], j].mean() for t in targets])
            boot = per_t[rng.integers(0, len(per_t), size=(2000, len(per_t)))].mean(axis=1)
            row.update({name: float(outcomes[:, j].mean()), f"{name}_lo": float(np.percentile(boot, 2.5)),
                        f"{name}_hi": float(np.percentile(boot, 97.5))})
        summary.append(row)
    blank = {k: "" for k in summary[0] if k not in ("scorer", "pairs", "targets", "note")}
    summary += [{"scorer": name, "pairs": len(rows), "targets": len(targets), "note": why, **blank}
                for name, why in NOT_APPLICABLE.items()]
    write_csv(out / "summary.csv", summary)
    write_csv(out / "paired.csv", paired_rows(rows, targets))
    for r in summary:
        print(r)
    return 0


#: Paired comparisons reported: (scorer, minus scorer) columns of layers.csv.
PAIRS = (("D5", "R4"), ("D5", "LogME"), ("D5", "kNN"), ("K5", "R4"), ("K5", "LogME"), ("D5", "K5"))


def paired_rows(rows: list[dict], targets: list[str]) -> list[dict]:
    """Per :data:`PAIRS` present: the difference of the per-target means (best stage picked, points lost), with a
    95 % bootstrap interval over targets (the same targets resampled for both)."""
    rng = np.random.default_rng(1)
    out = []
    for a, b in PAIRS:
        if f"{a}_stage1" not in rows[0] or f"{b}_stage1" not in rows[0]:
            continue
        row = {"scorer": SCORERS[a], "minus": SCORERS[b], "targets": len(targets)}
        for j, name in enumerate(("best_stage_picked", "mean_points_lost")):
            d = np.array([np.mean([pair_outcomes(r, a)[j] - pair_outcomes(r, b)[j] for r in rows if r["target"] == t])
                          for t in targets])
            boot = d[rng.integers(0, len(d), size=(2000, len(d)))].mean(axis=1)
            row.update({name: float(d.mean()), f"{name}_lo": float(np.percentile(boot, 2.5)),
                        f"{name}_hi": float(np.percentile(boot, 97.5))})
        out.append(row)
    return out


if __name__ == "__main__":
    raise SystemExit(main())
