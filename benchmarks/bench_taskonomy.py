"""Time and peak memory of `depara.benches.taskonomy.compute_matrices` on synthetic data in the published formats.

Writes 20 tasks of N probes (features N×D, gradXinput N×H×W×C float32) to a scratch folder, then measures in
separate processes: first run (graphs built, cached), second run (from the cache), and the streaming path
(V from memory-mapped cached nodes). Prints one line per run: seconds, peak RSS (file-backed pages of
memory-mapped files included) and
the sampled peak of anonymous memory (what the process itself holds).

    python benchmarks/bench_taskonomy.py --n 200 --hw 64 --c 8 --d 2048 --scratch /tmp/depara_bench_tx
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

TASKS = 20


def write_data(root: Path, n: int, hw: int, c: int, d: int, seed: int = 0) -> int:
    rng = np.random.default_rng(seed)
    total = 0
    for t in range(TASKS):
        tdir = root / f"task{t:02d}"
        tdir.mkdir(parents=True, exist_ok=True)
        np.save(tdir / "task_feature.npy", rng.normal(size=(n, d)).astype(np.float32))
        # written probe block by probe block into a memory-mapped .npy, as a full-size file would have to be
        arr = np.lib.format.open_memmap(tdir / "gradXinput.npy", mode="w+", dtype=np.float32, shape=(n, hw, hw, c))
        for i in range(0, n, 64):
            arr[i:i + 64] = rng.normal(size=arr[i:i + 64].shape).astype(np.float32)
        arr.flush()
        del arr
        total += (tdir / "gradXinput.npy").stat().st_size + (tdir / "task_feature.npy").stat().st_size
    (root / "tasks.txt").write_text("\n".join(f"task{t:02d}" for t in range(TASKS)) + "\n")
    return total


def _rss_anon_mib() -> float:
    """Anonymous resident memory (not file-backed pages such as memory-mapped inputs), MiB; Linux only."""
    try:
        for line in open("/proc/self/status"):
            if line.startswith("RssAnon:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def child(root: str, cache: str, max_node_bytes: int) -> None:
    import threading

    from depara.benches.taskonomy import compute_matrices

    peak_anon = [0.0]
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak_anon[0] = max(peak_anon[0], _rss_anon_mib())
            time.sleep(0.02)

    threading.Thread(target=sample, daemon=True).start()
    t0 = time.perf_counter()
    m = compute_matrices(root, cache_dir=cache, progress=False, max_node_bytes=max_node_bytes)
    dt = time.perf_counter() - t0
    done.set()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # MiB on Linux, file-backed pages included
    print(json.dumps({"seconds": dt, "peak_rss_mib": peak, "peak_anon_mib": peak_anon[0], "v00": float(m.V[0, 1])}))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--hw", type=int, default=64)
    ap.add_argument("--c", type=int, default=8)
    ap.add_argument("--d", type=int, default=2048)
    ap.add_argument("--scratch", default="/tmp/depara_bench_taskonomy")
    ap.add_argument("--child", nargs=3)
    args = ap.parse_args()
    if args.child:
        child(args.child[0], args.child[1], int(args.child[2]))
        return
    scratch = Path(args.scratch)
    shutil.rmtree(scratch, ignore_errors=True)
    total = write_data(scratch / "data", args.n, args.hw, args.c, args.d)
    print(f"20 tasks, N={args.n}, attributions {args.hw}x{args.hw}x{args.c}, D={args.d}: "
          f"{total / 2**20:.0f} MiB of inputs")
    runs = [("first run (build + cache), in-memory V", "cache_a", 2**62),
            ("second run (from cache), in-memory V", "cache_a", 2**62),
            ("first run (build + cache), streaming V", "cache_b", 0),
            ("second run (from cache), streaming V", "cache_b", 0)]
    values = []
    for label, cache, limit in runs:
        out = subprocess.run([sys.executable, __file__, "--child", str(scratch / "data"), str(scratch / cache),
                              str(limit)], check=True, capture_output=True, text=True).stdout
        r = json.loads(out.strip().splitlines()[-1])
        values.append(r["v00"])
        print(f"{label:45s} {r['seconds']:7.2f} s   peak RSS {r['peak_rss_mib']:6.0f} MiB   "
              f"peak anonymous (sampled) {r['peak_anon_mib']:6.0f} MiB")
    print(f"V[0,1] identical across runs: {len(set(values)) == 1}")
    shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
