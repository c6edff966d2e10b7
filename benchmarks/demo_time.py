"""Time `depara demo`: a fresh run (empty cache) and a second run (cache reused), in one process.

    python benchmarks/demo_time.py [--out DIR] [--seed N] [--scale demo|tiny]

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=None, help="results folder (default: a temporary one)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--scale", choices=sorted(SELECT_SCALES), default="demo")
    args = parser.parse_args()
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
