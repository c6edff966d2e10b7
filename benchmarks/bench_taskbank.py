"""The task-bank benchmark (issue 6) with its headline cost ratio: ranking vs the ground-truth training.

Runs `depara.benches.taskbank.run_bench` (cached: a second run only re-scores) and prints, from that one run, the
seconds DEPARA needs to rank every source for every target (graph extraction of all task encoders on the
in-domain probes + the similarity matrix) against the seconds the measured ground truth took (every target
readout on every frozen source encoder + the from-scratch references; the recorded wall time of each cached
entry), and the top-k agreement of DEPARA, RSA and LogME with the measured top-k.

    nice -n 10 python benchmarks/bench_taskbank.py --scale default --out benchmarks/results/taskbank_default
    python benchmarks/bench_taskbank.py --scale tiny --out /tmp/taskbank_tiny
"""

from __future__ import annotations

import argparse

from depara.benches.taskbank import run_bench
from depara.io.files import read_csv


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scale", default="tiny", choices=["tiny", "demo", "default"])
    ap.add_argument("--out", required=True)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--cache", default=None)
    ap.add_argument("--threads", type=int, default=1,
                    help="torch and BLAS threads during the run (default 1; 0 = leave torch's default)")
    args = ap.parse_args()
    if args.threads < 0:
        ap.error(f"--threads {args.threads}: expected 0 (torch's default) or a positive count")
    res = run_bench(args.scale, args.out, seed=args.seed, cache_dir=args.cache, threads=args.threads or None)
    c = res["costs"]
    print(f"ranking (DEPARA graphs + similarity, {c['n_graphs']} encoders): {c['ranking_seconds_depara']:.2f} s")
    print(f"ground truth ({c['n_transfers']} transfers + scratch references): "
          f"{c['ground_truth_transfer_seconds']:.1f} s (+ {c['task_network_training_seconds']:.1f} s training the "
          "task networks)")
    print(f"ratio ground truth / ranking: {c['ratio_ground_truth_to_depara']:.0f}x")
    rows = [r for r in read_csv(f"{args.out}/summary.csv") if r["probe_set"] == "in-domain"]
    key = next(k for k in rows[0] if k.startswith("P@") and k != "P@1")
    for r in rows:
        print(f"{r['method']:<45} {key} = {float(r[key]):.3f}   mean Spearman = {float(r['mean_spearman']):+.3f}")
    print(res["summary"])


if __name__ == "__main__":
    main()
