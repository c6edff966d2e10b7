"""Cost of each scorer of the real-image bank on its own, against the bank's ground-truth compute.

    python benchmarks/bench_realbank_cost.py --cache CACHE [--scale default] [--out benchmarks/results]

Needs the bank's cache filled (``depara bench realbank --scale SCALE --cache-dir CACHE``). For every target it
times, in this one run and one scorer (or group) at a time, exactly what that scorer needs from the target's
labelled set and the sources — nothing is shared between scorers, so each time is what a user running only that
scorer would pay:

- each label-based peer: every source's pooled features over the labelled images (LEEP / NCE: its head's
  outputs instead), then the estimator;
- the frozen DEPARA default: :func:`depara.benches.realbank.scoring.frozen_label_scores` (every source's stage output on
  the frozen probes, the frozen edges, the registered ``depara_labels``);
- the previous frozen default and the other label-graph comparisons on today's graph (flattened, centred features
  of the ``n_probe`` subset): each source's forward pass over the probes, its edges, the comparison;
- the scorers that need a target model (DEPARA V + E and E, RSA / CKA against the target model): the quick target
  model's training, its and each source's pass over the probes (with the attribution maps where V is used), the
  comparison.

The ground-truth compute is the sum of the per-entry times recorded in the cache when the ground truth was
measured (source forward passes, linear probes, fine-tunes). Writes ``realbank_cost.json`` and
``realbank_cost.csv`` (one row per scorer: seconds over all targets, fraction of the ground truth, ≤ 1 %?).
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


def main(argv=None) -> int:
    from threadpoolctl import threadpool_limits

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cache", required=True)
    ap.add_argument("--scale", default="default")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    args = ap.parse_args(argv)
    # Check the output folder before the minutes of timing, not after.
    if not Path(args.out).is_dir():
        ap.error(f"--out {args.out}: expected an existing folder")
    torch.set_num_threads(1)
    with threadpool_limits(1):
        return _main(args)


def _main(args) -> int:
    from depara.io.files import write_csv, write_json
    from depara.core.similarity_edges import label_agreement
    from depara.estimators.baselines import linear_cka, rsa
    from depara.estimators.registry import SourceInputs, TargetInputs, get_estimator
    from depara.benches.realbank.bench import SCALES, available_targets, load_defaults, target_splits
    from depara.benches.realbank.models import logits, pooled_features
    from depara.benches.realbank.scoring import (PEER_METHODS, stage_edges, node_maps, node_agreement, frozen_label_scores,
        probe_rows, train_quick_target)
    from depara.benches.realbank.truth import TruthConfig, measure_pair
    from depara.benches.realbank.zoo import load_or_train_zoo
    from depara.core.labels import edge_similarities

    sc = SCALES[args.scale]
    root = Path(args.cache) / "realbank"
    seeds = [args.seed + k for k in range(sc.seeds)]
    defaults, _, _ = load_defaults()
    nets, infos, _ = load_or_train_zoo(sc.zoo, root, args.seed)
    names = list(nets)
    secs: dict[str, float] = {}
    gt = 0.0
    n_targets = 0

    def timed(label: str, fn):
        t0 = time.perf_counter()
        out = fn()
        secs[label] = secs.get(label, 0.0) + time.perf_counter() - t0
        return out

    for t, pool in available_targets(sc):
        n_targets += 1
        splits = target_splits(sc, t, pool, seeds)
        for n in names:  # cached: only reads the recorded times
            r = measure_pair(nets[n], infos[n]["file_sha256"], t, pool, splits, seeds,
                             cfg=TruthConfig(ft_steps=sc.ft_steps), cache_root=root)
            gt += r["seconds_forward"] + r["seconds_lp"] + r["seconds_ft"]
        tr = splits[0].train
        x, y = pool.x[tr], np.unique(pool.y[tr], return_inverse=True)[1].astype(np.int64)
        pick = probe_rows(len(y), sc.n_probe, "subset", args.seed)
        probes = torch.from_numpy(x[pick])
        lab = TargetInputs(labels=y)
        for m in PEER_METHODS:
            est = get_estimator(m)
            if est.needs_source_probs:
                def run(est=est):
                    for n in names:
                        z = logits(nets[n], x)
                        p = np.exp(z - z.max(axis=1, keepdims=True))
                        est.score(SourceInputs(probs=p / p.sum(axis=1, keepdims=True)), lab)
            else:
                def run(est=est):
                    for n in names:
                        est.score(SourceInputs(features=pooled_features(nets[n].body, x)), lab)
            label = est.label + (" (labels)" if m in ("rsa", "cka") else "")
            timed(label, run)
        timed("DEPARA (frozen default)",
              lambda: frozen_label_scores(nets, x, y, defaults, n_probe=sc.n_probe, seed=args.seed))
        for comp, label in (("global", "DEPARA-label (E vs label graph) = previous frozen default"),
                            ("per_probe", "DEPARA-label [per_probe, flat, centred, subset]"),
                            ("knn", "DEPARA-label [knn, flat, centred, subset]")):
            timed(label, lambda comp=comp: [label_agreement(stage_edges(nets[n].body, probes)[0], y[pick], comp)
                                            for n in names])

        def quick():
            return train_quick_target(x, y, steps=sc.quick_steps, width=sc.quick_width, seed=args.seed)

        def e_model():
            tgt = quick()
            te = stage_edges(tgt.body, probes)[0]
            return edge_similarities([stage_edges(nets[n].body, probes)[0] for n in names], te)

        def v_plus_e():
            tgt = quick()
            te, tn = stage_edges(tgt.body, probes)[0], node_maps(tgt.body, probes, "l2", "mean")
            e = edge_similarities([stage_edges(nets[n].body, probes)[0] for n in names], te)
            v = np.array([node_agreement(node_maps(nets[n].body, probes, "l2", "mean"), tn) for n in names])
            return v + e

        def rsa_cka(fn):
            tgt = quick()
            tf = stage_edges(tgt.body, probes)[1]
            return [fn(stage_edges(nets[n].body, probes)[1], tf) for n in names]

        timed("DEPARA-E (target model)", e_model)
        timed("DEPARA V + E (target model; previous default, paper)", v_plus_e)
        timed("RSA (target model)", lambda: rsa_cka(rsa))
        timed("CKA (target model)", lambda: rsa_cka(linear_cka))
        print(f"{t}: done", file=sys.stderr, flush=True)

    rows = [{"scorer": k, "seconds": v, "over_gt": v / gt, "meets_1pct": v / gt <= 0.01}
            for k, v in sorted(secs.items(), key=lambda kv: kv[1])]
    total = sum(secs.values())
    out = Path(args.out)
    write_csv(out / "realbank_cost.csv", rows)
    write_json(out / "realbank_cost.json", {
        "command": f"python benchmarks/bench_realbank_cost.py --cache CACHE --scale {args.scale}",
        "targets": n_targets, "sources": len(names), "ground_truth_seconds": gt, "per_scorer": rows,
        "all_scorers_seconds": total, "all_scorers_over_gt": total / gt,
        "note": "wall-clock seconds on the shared 2-core machine, one thread; each scorer timed on its own (no "
                "forward pass shared with another scorer); the ground-truth times were recorded when it was "
                "measured (at a higher load), so every ratio is if anything overstated"})
    for r in rows:
        print(f"{r['scorer']:60s} {r['seconds']:8.1f} s  {100 * r['over_gt']:6.2f} % of GT")
    print(f"ground truth {gt:.0f} s; all scorers {total:.0f} s = {100 * total / gt:.1f} %")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
