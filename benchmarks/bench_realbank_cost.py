"""Cost of the frozen DEPARA default (label graph) and of LogME on the real-image bank, against its ground truth.

    python benchmarks/bench_realbank_cost.py --cache CACHE [--scale default]

Needs the bank's cache filled (``depara bench realbank --scale SCALE --cache-dir CACHE``). For every target it
times, in this one run, exactly what each scorer needs from the labelled set: the label-graph score (each source's
forward pass over the probes, its edges, Spearman against the label graph) and LogME (each source's pooled features
over the labelled images, LogME). The ground-truth compute is the sum of the per-entry times recorded in the cache
when the ground truth was measured (source forward passes, linear probes, fine-tunes). Prints both ratios.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))


def main(argv=None) -> int:
    from threadpoolctl import threadpool_limits

    from depara.baselines import logme
    from depara.labels import edge_similarities, label_edges
    from depara.realbank.bench import SCALES, available_targets, target_splits
    from depara.realbank.models import pooled_features
    from depara.realbank.scoring import _edges
    from depara.realbank.truth import TruthConfig, measure_pair
    from depara.realbank.zoo import load_or_train_zoo

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cache", required=True)
    ap.add_argument("--scale", default="default")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    sc = SCALES[args.scale]
    root = Path(args.cache) / "realbank"
    seeds = [args.seed + k for k in range(sc.seeds)]
    with threadpool_limits(1):
        nets, infos, _ = load_or_train_zoo(sc.zoo, root, args.seed)
        t_label = t_logme = gt = 0.0
        for t, pool in available_targets(sc):
            splits = target_splits(sc, t, pool, seeds)
            for n in nets:  # cached: only reads the recorded times
                r = measure_pair(nets[n], infos[n]["file_sha256"], t, pool, splits, seeds,
                                 cfg=TruthConfig(ft_steps=sc.ft_steps), cache_root=root)
                gt += r["seconds_forward"] + r["seconds_lp"] + r["seconds_ft"]
            tr = splits[0].train
            x, y = pool.x[tr], np.unique(pool.y[tr], return_inverse=True)[1]
            pick = np.sort(np.random.default_rng([args.seed, 17]).permutation(len(y))[:sc.n_probe])
            probes = torch.from_numpy(x[pick])
            t0 = time.perf_counter()
            lab = label_edges(y[pick])
            edge_similarities([_edges(nets[n].body, probes)[0] for n in nets], lab)
            t1 = time.perf_counter()
            for n in nets:
                logme(pooled_features(nets[n].body, x), y)
            t2 = time.perf_counter()
            t_label += t1 - t0
            t_logme += t2 - t1
    out = {"ground_truth_seconds": gt, "label_graph_seconds": t_label, "logme_seconds": t_logme,
           "label_graph_over_gt": t_label / gt, "logme_over_gt": t_logme / gt}
    print(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
