"""Time `depara demo`: a fresh run (empty cache) and a second run (cache reused), in one process.

    python benchmarks/demo_time.py [--out DIR] [--seed N]

Prints the wall time of each pipeline step for both runs and the fresh/cached ratio. Targets (issue 11): the fresh
run within 4 minutes on 2 CPU cores, the cached run within seconds. The cache is a temporary folder, removed at the
end; the results folder is too unless --out names one (then it is kept).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from depara.benches.demo import run_demo


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=None, help="results folder (default: a temporary one)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="depara-demo-time-") as tmp:
        out = args.out or Path(tmp) / "demo"
        cache = Path(tmp) / "cache"
        timings = []
        for label in ("fresh", "cached"):
            start, cpu = time.perf_counter(), time.process_time()
            result = run_demo(out, seed=args.seed, cache_dir=cache, progress=False)
            total = time.perf_counter() - start
            cpu = time.process_time() - cpu
            timings.append(total)
            steps = ", ".join(f"{k} {v:.1f} s" for k, v in result["seconds"].items())
            print(f"{label:>6}: {total:7.1f} s wall, {cpu:7.1f} s CPU (all threads)  ({steps})")
        print(f"summary: {result['summary']}")
        print(f"fresh / cached = {timings[0] / max(timings[1], 1e-9):.1f}x")
        print(f"report: {result['report']}")


if __name__ == "__main__":
    main()
