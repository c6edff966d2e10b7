"""Layer selection with the label graph on the real-image bank: which stage of a source to read for a linear probe.

    python benchmarks/realbank_layers.py --cache CACHE [--scale default] [--out benchmarks/results/realbank_layers]

For every (target, source) of the bank (the zoo and splits of ``depara bench realbank``, cache filled by it): the
ground truth is the linear-probe test accuracy (as in :mod:`depara.benches.realbank.truth`) of the pooled features of each
stage (``stage1``, ``stage2``, ``stage3``) on the seed's split, mean over the bank's seeds. Scores per stage, from
the labelled set of the first seed only: the frozen default's label-graph score (``E_frozen``: the registered
``depara_labels`` on the stage's edges built as ``configs/defaults.toml`` says — round 3: pooled, standardised
features of every labelled image), the previous frozen default's (``E_label``: Spearman of the stage's flattened,
centred cosine edges on the ``n_probe`` probes with the label graph, i.e.
``rank_sources(build_graphs(...), Graph.from_labels(y))``), and LogME on the stage's pooled features. Reported per scorer: how often the picked stage is the best, the mean
accuracy lost by the pick (points), beside always taking the last stage. No default is chosen here.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

STAGES = ("stage1", "stage2", "stage3")


@torch.no_grad()
def _stage_features(body, x: np.ndarray) -> dict[str, torch.Tensor]:
    outs = {s: [] for s in STAGES}
    for i in range(0, len(x), 256):
        h = torch.from_numpy(x[i:i + 256])
        for name, module in body.named_children():
            h = module(h)
            if name in outs:
                outs[name].append(h)
    return {s: torch.cat(v) for s, v in outs.items()}


def main(argv=None) -> int:
    from threadpoolctl import threadpool_limits

    from depara.io.files import ensure_dir, write_csv, write_json
    from depara.estimators.baselines import logme
    from depara.core.edges import edges_from_features
    from depara.core.labels import edge_similarities, label_edges
    from depara.core.similarity_edges import probe_edges
    from depara.estimators.registry import get_estimator
    from depara.benches.realbank.bench import SCALES, available_targets, load_defaults, target_splits
    from depara.benches.realbank.scoring import probe_rows
    from depara.benches.realbank.truth import linear_probe
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
    t0 = time.perf_counter()
    rows = []
    dflt, _, _ = load_defaults()
    frozen = get_estimator("depara_labels")
    with threadpool_limits(1):
        nets, _, _ = load_or_train_zoo(sc.zoo, Path(args.cache) / "realbank", args.seed)
        for t, pool in available_targets(sc):
            splits = target_splits(sc, t, pool, [args.seed + k for k in range(sc.seeds)])
            tr0 = splits[0].train
            y0 = np.unique(pool.y[tr0], return_inverse=True)[1]
            pick = np.sort(np.random.default_rng([args.seed, 17]).permutation(len(y0))[:sc.n_probe])
            lab = label_edges(y0[pick])
            fr = probe_rows(len(y0), sc.n_probe, dflt.probes, args.seed)
            for n, net in nets.items():
                feats = _stage_features(net.body, pool.x)
                acc = {s: np.mean([linear_probe(feats[s][sp.train].mean(dim=(2, 3)).double().numpy(), pool.y[sp.train],
                                                feats[s][sp.test].mean(dim=(2, 3)).double().numpy(), pool.y[sp.test])
                                   for sp in splits]) for s in STAGES}
                e = edge_similarities([edges_from_features(feats[s][tr0][pick].flatten(1).double().numpy(),
                                                            center=True, edge="cosine") for s in STAGES], lab)
                ef = [frozen.fn(probe_edges(feats[s][tr0][fr].numpy(), pooling=dflt.edge_features,
                                            scale=dflt.edge_scale), y0[fr], dflt.edge_comparison) for s in STAGES]
                lm = [logme(feats[s][tr0].mean(dim=(2, 3)).double().numpy(), y0) for s in STAGES]
                rows.append({"target": t, "source": n, **{f"acc_{s}": float(acc[s]) for s in STAGES},
                             **{f"E_label_{s}": float(v) for s, v in zip(STAGES, e)},
                             **{f"E_frozen_{s}": float(v) for s, v in zip(STAGES, ef)},
                             **{f"LogME_{s}": float(v) for s, v in zip(STAGES, lm)}})
            print(f"[layers {time.perf_counter() - t0:6.1f}s] {t}", file=sys.stderr, flush=True)
    out = ensure_dir(Path(args.out))
    write_csv(out / "layers.csv", rows)
    write_json(out / "run.json", {"scale": args.scale, "seed": args.seed, "seconds": time.perf_counter() - t0,
                                  "command": "python benchmarks/realbank_layers.py --cache CACHE --scale "
                                             f"{args.scale}"})
    return summarize(out)


def summarize(out: Path) -> int:
    """summary.csv from layers.csv: per scorer, the share of (target, source) pairs whose best stage is picked and
    the mean accuracy points lost, with 95 % bootstrap intervals over targets (per-target means resampled)."""
    import csv

    from depara.io.files import write_csv

    with open(out / "layers.csv", newline="") as fh:
        rows = [{k: (v if k in ("target", "source") else float(v)) for k, v in r.items()} for r in csv.DictReader(fh)]
    targets = sorted({r["target"] for r in rows})
    rng = np.random.default_rng(0)
    summary = []
    scorers = [c for c in ("E_frozen", "E_label", "LogME") if f"{c}_stage1" in rows[0]]
    for scorer in (*scorers, "last stage", "oracle"):
        hits, lost = [], []
        for r in rows:
            acc = np.array([r[f"acc_{s}"] for s in STAGES])
            if scorer == "last stage":
                k = 2
            elif scorer == "oracle":
                k = int(np.argmax(acc))
            else:
                sc_ = np.array([r[f"{scorer}_{s}"] for s in STAGES])
                top = np.flatnonzero(sc_ == sc_.max())
                k = int(top[np.argmin(acc[top])])  # pessimistic ties
            hits.append(acc[k] == acc.max())
            lost.append(100 * (acc.max() - acc[k]))
        row = {"scorer": scorer, "pairs": len(rows), "targets": len(targets)}
        for name, v in (("best_stage_picked", hits), ("mean_points_lost", lost)):
            v = np.asarray(v, float)
            per_t = np.array([v[[r["target"] == t for r in rows]].mean() for t in targets])
            boot = per_t[rng.integers(0, len(per_t), size=(2000, len(per_t)))].mean(axis=1)
            row.update({name: float(v.mean()), f"{name}_lo": float(np.percentile(boot, 2.5)),
                        f"{name}_hi": float(np.percentile(boot, 97.5))})
        summary.append(row)
    write_csv(out / "summary.csv", summary)
    for r in summary:
        print(r)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
