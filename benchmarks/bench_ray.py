"""Extraction throughput of depara.extraction.engine: Ray with 2 workers vs 1, and Ray (1 worker) vs the local engine.

Each job extracts two layers of a randomly initialised torchvision model (a different seed per job, so every
job is new to the store) on the same probe images. All three runs happen in this one process, interleaved
``--repeats`` times (best of), each into a fresh store, after a warm-up job that has every Ray worker import
torch (a cluster keeps its workers; start-up is not throughput). Torch uses one thread per worker (and in the
local engine), so "1 worker" is one core.

    OMP_NUM_THREADS=1 PYTHONPATH=src nice -n 10 python benchmarks/bench_ray.py              # 8 jobs
    OMP_NUM_THREADS=1 PYTHONPATH=src nice -n 10 python benchmarks/bench_ray.py --jobs 4 --probes 16

Targets (issue 13, on a quiet 2-core machine): 2 workers ≥ 1.7× the throughput of 1; Ray on 1 worker ≤ 1.1×
the local engine's time.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np


def load() -> str:
    return os.popen("uptime").read().strip().split("load average:")[-1].strip()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--jobs", type=int, default=8)
    ap.add_argument("--probes", type=int, default=32)
    ap.add_argument("--size", type=int, default=64, help="probe image side (px)")
    ap.add_argument("--model", default="torchvision:resnet18")
    ap.add_argument("--layers", default="layer2,layer3")
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import ray
    import torch
    from PIL import Image

    from depara.extraction.engine import Job, extract_graphs

    torch.set_num_threads(1)
    tmp = Path(tempfile.mkdtemp(prefix="bench_ray_"))
    rng = np.random.default_rng(0)
    probes = tmp / "probes"
    probes.mkdir()
    for i in range(args.probes):
        Image.fromarray(rng.integers(0, 256, (args.size, args.size, 3), dtype=np.uint8)).save(probes / f"{i:03d}.png")
    layers = tuple(args.layers.split(","))

    def jobs(tag: str, n: int) -> list[Job]:
        return [Job(args.model, layers, str(probes), name=f"{tag}{k}", seed=k + 1000 * sum(map(ord, tag)),
                    preprocess=f"{args.size}x{args.size}", node_size=16, batch_size=16) for k in range(n)]

    def run(engine: str, tag: str) -> float:
        store = tmp / f"store-{tag}"
        t0 = time.perf_counter()
        res = extract_graphs(jobs(tag, args.jobs), store, engine=engine, progress=False)
        dt = time.perf_counter() - t0
        assert all(r.ok for r in res.values()), [r.error for r in res.values() if not r.ok]
        shutil.rmtree(store)
        return dt

    print(f"bench_ray: {args.jobs} jobs of {args.model} [{','.join(layers)}] on "
          f"{args.probes} probes {args.size}px; ray {ray.__version__}, torch {torch.__version__}, "
          f"cpus {os.cpu_count()}; load at start {load()}")
    extract_graphs(jobs("warm-local-", 1), tmp / "warm", progress=False)  # imports, as the Ray workers' warm-up
    shutil.rmtree(tmp / "warm")
    best = {"local": float("inf"), "ray1": float("inf"), "ray2": float("inf")}
    loads = []
    for rep in range(args.repeats):
        best["local"] = min(best["local"], run("local", f"l{rep}-"))
        for workers in (1, 2):
            ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False, configure_logging=False)
            try:
                extract_graphs(jobs(f"w{workers}{rep}-", workers), tmp / "warm", engine="ray", progress=False)
                shutil.rmtree(tmp / "warm")
                best[f"ray{workers}"] = min(best[f"ray{workers}"], run("ray", f"r{workers}{rep}-"))
            finally:
                ray.shutdown()
        loads.append(load())
        print(f"  repeat {rep}: local {best['local']:.2f} s, ray 1 worker {best['ray1']:.2f} s, "
              f"ray 2 workers {best['ray2']:.2f} s (best so far); load {loads[-1]}")
    shutil.rmtree(tmp)
    print(f"local engine:        {best['local']:7.2f} s  ({args.jobs / best['local']:.2f} jobs/s)")
    print(f"ray, 1 worker:       {best['ray1']:7.2f} s  overhead vs local {best['ray1'] / best['local']:.3f}x "
          "(target <= 1.1x)")
    print(f"ray, 2 workers:      {best['ray2']:7.2f} s  throughput vs 1 worker {best['ray1'] / best['ray2']:.3f}x "
          "(target >= 1.7x on a quiet machine)")
    print(f"load averages (1, 5, 15 min) after each repeat: {' | '.join(loads)}")


if __name__ == "__main__":
    main()
