"""Time `depara demo`: a fresh run (empty cache) and a second run (cache reused), in one process.

    python benchmarks/demo_time.py [--out DIR] [--seed N] [--scale demo|tiny]
    python benchmarks/demo_time.py --summarize DIR     # DIR/seed*/ (results folders): DIR/seeds.csv, mean ± sd

Prints the wall time and the CPU time (this process, all threads) of each run and its steps, the load average
before and after (on a shared machine the wall times are only as clean as that load; the CPU seconds are what
the run itself used), and the fresh/cached ratio. Targets (issue 21): the fresh run within 4 minutes on 2 CPU
cores, the cached run within 15 s. The cache is a temporary folder, removed at the end; the results folder is
too unless --out names one (then it is kept).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from depara.benches.demo import SELECT_SCALES, run_demo


def load() -> str:
    return ", ".join(f"{v:.2f}" for v in os.getloadavg())


COLUMNS = ("pick", "pick_interval", "pick_accuracy", "pick_runner_up", "pick_runner_up_accuracy", "truth_best",
           "truth_best_accuracy", "regret", "truth_worst", "truth_worst_accuracy", "truth_spread",
           "truth_best_untrained_accuracy", "spearman")


def summarize(folder: Path) -> None:
    """One row per ``folder/seed*`` results folder (its manifest's extra), then mean ± sd (ddof 1) of the numbers:
    written to ``folder/seeds.csv`` and printed."""
    import numpy as np

    from depara.io.files import write_csv
    from depara.report.manifest import read_manifest

    rows = []
    for sub in sorted(p for p in folder.glob("seed*") if p.is_dir()):
        manifest = read_manifest(sub)
        rows.append({"seed": manifest["settings"]["seed"], **{k: manifest["extra"].get(k) for k in COLUMNS}})
    numeric = [k for k in COLUMNS if all(isinstance(r[k], (int, float)) for r in rows)]
    spread = {"seed": "mean ± sd"}
    for k in numeric:
        v = np.array([float(r[k]) for r in rows])
        spread[k] = f"{v.mean():.2f} ± {v.std(ddof=1):.2f}" if len(v) > 1 else f"{v.mean():.2f}"
    write_csv(folder / "seeds.csv", [*rows, spread])
    for r in [*rows, spread]:
        print(", ".join(f"{k} {r.get(k)}" for k in ("seed", *numeric)))
    print(f"wrote {folder / 'seeds.csv'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=None, help="results folder (default: a temporary one)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--scale", choices=sorted(SELECT_SCALES), default="demo")
    parser.add_argument("--summarize", type=Path, default=None, metavar="DIR",
                        help="summarize the results folders DIR/seed* instead of running")
    args = parser.parse_args()
    if args.summarize is not None:
        summarize(args.summarize)
        return
    print(f"cpus {os.cpu_count()}, load average (1, 5, 15 min) at the start: {load()}", flush=True)
    with tempfile.TemporaryDirectory(prefix="depara-demo-time-") as tmp:
        out = args.out or Path(tmp) / "demo"
        cache = Path(tmp) / "cache"
        timings = []
        for label in ("fresh", "cached"):
            start, cpu = time.perf_counter(), time.process_time()
            result = run_demo(out, seed=args.seed, cache_dir=cache, progress=False, scale=args.scale)
            total = time.perf_counter() - start
            cpu = time.process_time() - cpu
            timings.append(total)
            steps = ", ".join(f"{k} {v:.1f} s" for k, v in result["seconds"].items())
            print(f"{label:>6}: {total:7.1f} s wall, {cpu:7.1f} s CPU (all threads)  ({steps}); load {load()}",
                  flush=True)
        print(f"summary: {result['summary']}")
        print(f"fresh / cached = {timings[0] / max(timings[1], 1e-9):.1f}x")
        print(f"report: {result['report']}")


if __name__ == "__main__":
    main()
