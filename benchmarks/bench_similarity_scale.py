"""similarity_matrix of many stored graphs (with stored edge ranks) against the two-GEMM floor; peak memory.

Graphs: ``--graphs`` random graphs over ``--probes`` probes (edges tanh of Gaussians, float32; Gaussian node
maps of ``--node-size`` values), each saved once with its edge ranks (``depara.core.edges``), in ``--dir``
(kept between runs; 1,000 × 1,000 × 256 is ~5 GB). Every phase runs in its own subprocess so that its peak
resident memory (``ru_maxrss``) is its own:

* ``floor``: (best of ``--repeats``) the standardised ranks and normalised maps are stacked (streamed from the files, untimed), then
  ONLY the two matrix products R Rᵀ and X Xᵀ are timed: the least any batched implementation must do;
* ``impl``: (best of ``--repeats``) ``similarity_matrix(graph_files, dtype=...)`` is timed whole: the files'
  headers and stored ranks / node maps read straight into the stacks (:mod:`depara.core.graph_rows`), the two
  products, the normalisation — the path a user runs on a store;
* ``blocked``: ``similarity_matrix_blocked(files, memory_mb=--block-mb)`` from the files, timed whole (stack
  build + block products), with the cost per block pair (for the cluster calculation in docs/ray.md);
* ``rank``: ``scipy.stats.rankdata`` of a few edge vectors: the per-graph cost that stored ranks remove.

Each of floor/impl runs in float64 and float32; the float32 error is against float64.

    OMP_NUM_THREADS=1 PYTHONPATH=src nice -n 10 python benchmarks/bench_similarity_scale.py   # 1000 x 1000
    OMP_NUM_THREADS=1 PYTHONPATH=src python benchmarks/bench_similarity_scale.py --graphs 100 --dir /tmp/s100

Target (issue 13): similarity_matrix ≤ 1.3× the two-GEMM floor at 1,000 graphs × 1,000 probes.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np


def load_avg() -> str:
    return os.popen("uptime").read().strip().split("load average:")[-1].strip()


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def files(args) -> list[Path]:
    return sorted(Path(args.dir).glob("g*.safetensors"))[: args.graphs]


def make(args) -> dict:
    """Write the graphs that are missing (with their ranks); returns the ranking time spent."""
    from depara.core.edges import attach_edge_ranks
    from depara.core.graph import Graph

    folder = Path(args.dir)
    folder.mkdir(parents=True, exist_ok=True)
    m = args.probes * (args.probes - 1) // 2
    ids = [f"p{i}" for i in range(args.probes)]
    made, t_rank = 0, 0.0
    for k in range(args.graphs):
        path = folder / f"g{k:05d}.safetensors"
        if path.exists():
            continue
        rng = np.random.default_rng(k)
        g = Graph(rng.standard_normal((args.probes, args.node_size), dtype=np.float32),
                  np.tanh(rng.standard_normal(m, dtype=np.float32)), ids, {"model": f"m{k}", "layer": "l"})
        t0 = time.perf_counter()
        attach_edge_ranks(g)
        t_rank += time.perf_counter() - t0
        g.save(path)
        made += 1
    return {"made": made, "rank_s": t_rank}


def phase_floor(args, dtype) -> dict:
    from depara.core.edges import standardized_edge_ranks
    from depara.core.graph import Graph
    from depara.core.similarity import normalized_nodes

    paths = files(args)
    g0 = Graph.load(paths[0])
    n, p = g0.nodes.shape
    r = np.empty((len(paths), g0.edges.shape[0]), dtype=dtype)
    x = np.empty((len(paths), n * p), dtype=dtype)
    for k, path in enumerate(paths):
        g = Graph.load(path)
        r[k] = standardized_edge_ranks(g.edges, g.edge_ranks)
        x[k] = normalized_nodes(g.nodes).reshape(-1)
    del g
    best = (float("inf"),)
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        e = r @ r.T
        t1 = time.perf_counter()
        v = x @ x.T / n
        t2 = time.perf_counter()
        if t2 - t0 < best[0]:
            best = (t2 - t0, t1 - t0, t2 - t1)
    t0, t1, t2 = 0.0, best[1], best[0]
    np.save(Path(args.dir) / f"floor_E_{np.dtype(dtype).name}.npy", e.astype(np.float64))
    np.save(Path(args.dir) / f"floor_V_{np.dtype(dtype).name}.npy", v.astype(np.float64))
    return {"seconds": t2 - t0, "edge_gemm_s": t1 - t0, "node_gemm_s": t2 - t1, "peak_mb": peak_mb()}


def phase_impl(args, dtype) -> dict:
    from depara.core.similarity import similarity_matrix

    paths = files(args)  # the whole path: graph files → stacks → products, nothing loaded beforehand
    times = []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        mats = similarity_matrix(paths, dtype=dtype)
        times.append(time.perf_counter() - t0)
    name = np.dtype(dtype).name
    np.save(Path(args.dir) / f"impl_E_{name}.npy", mats.E)
    np.save(Path(args.dir) / f"impl_V_{name}.npy", mats.V)
    return {"seconds": min(times), "first_s": times[0], "peak_mb": peak_mb()}


def phase_blocked(args, dtype) -> dict:
    from depara.core.similarity_blocked import block_product, block_size_for, build_stack, similarity_matrix_blocked

    work = Path(args.dir) / "blocked_work"
    t0 = time.perf_counter()
    stack = build_stack(files(args), work, dtype)
    t1 = time.perf_counter()
    mats = similarity_matrix_blocked(None, workdir=work, memory_mb=args.block_mb, stack=stack)
    t2 = time.perf_counter()
    b = block_size_for(stack, args.block_mb)
    # One off-diagonal block pair on its own, for the per-block cost (b × b × (M + N·P) multiply-adds).
    t3 = time.perf_counter()
    if stack.n_graphs >= 2 * b:
        block_product(stack, (0, b), (b, 2 * b))
    t4 = time.perf_counter()
    np.save(Path(args.dir) / "blocked_E.npy", mats.E)
    for f in work.iterdir():
        f.unlink()
    work.rmdir()
    return {"seconds": t2 - t0, "stack_s": t1 - t0, "blocks_s": t2 - t1, "block_rows": b,
            "offdiag_block_s": t4 - t3 if stack.n_graphs >= 2 * b else None, "peak_mb": peak_mb(),
            "stack_bytes": stack.n_graphs * (stack.n_edges + stack.node_width) * np.dtype(dtype).itemsize}


def phase_rank(args) -> dict:
    from scipy.stats import rankdata

    from depara.core.graph import Graph

    paths = files(args)[:10]
    t = 0.0
    for p in paths:
        edges = Graph.load(p).edges
        t0 = time.perf_counter()
        r = rankdata(edges)
        r -= r.mean()
        r /= np.linalg.norm(r)
        t += time.perf_counter() - t0
    return {"per_graph_s": t / len(paths), "peak_mb": peak_mb()}


def child(args) -> None:
    dtype = {"float64": np.float64, "float32": np.float32}[args.dtype]
    fn = {"floor": lambda: phase_floor(args, dtype), "impl": lambda: phase_impl(args, dtype),
          "blocked": lambda: phase_blocked(args, dtype), "rank": lambda: phase_rank(args)}[args.phase]
    out = fn()
    out["load"] = load_avg()
    print("RESULT " + json.dumps(out))


def run_phase(args, phase: str, dtype: str) -> dict:
    cmd = [sys.executable, __file__, "--phase", phase, "--dtype", dtype, "--graphs", str(args.graphs),
           "--probes", str(args.probes), "--node-size", str(args.node_size), "--dir", args.dir,
           "--block-mb", str(args.block_mb), "--repeats", str(args.repeats)]
    done = subprocess.run(cmd, capture_output=True, text=True)
    line = [x for x in done.stdout.splitlines() if x.startswith("RESULT ")]
    if done.returncode or not line:
        raise SystemExit(f"phase {phase} {dtype} failed:\n{done.stdout[-3000:]}{done.stderr[-3000:]}")
    return json.loads(line[-1][len("RESULT "):])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--graphs", type=int, default=1000)
    ap.add_argument("--probes", type=int, default=1000)
    ap.add_argument("--node-size", type=int, default=256, help="values per attribution map (16x16 grid)")
    ap.add_argument("--dir", default="/tmp/depara_bench_similarity_scale")
    ap.add_argument("--block-mb", type=float, default=1024, help="RAM per block pair of the blocked variant")
    ap.add_argument("--repeats", type=int, default=2, help="best of this many runs of the timed part (floor, impl)")
    ap.add_argument("--phase", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--dtype", default="float64", help=argparse.SUPPRESS)
    ap.add_argument("--skip", default="", help="comma-separated phases to skip (floor64,impl64,...)")
    args = ap.parse_args()
    if args.phase:
        return child(args)

    g, n = args.graphs, args.probes
    m = n * (n - 1) // 2
    print(f"similarity at scale: {g} graphs x {n} probes ({m} edges), node size {args.node_size}; "
          f"numpy {np.__version__}, cpus {os.cpu_count()}, OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}; "
          f"load {load_avg()} (shared machine: contended)")
    t0 = time.perf_counter()
    info = make(args)
    print(f"graphs written: {info['made']} new in {time.perf_counter() - t0:.1f} s (ranking {info['rank_s']:.1f} s "
          "of it, paid once at build time)")
    skip = set(filter(None, args.skip.split(",")))
    res = {}
    for phase, dtype in (("rank", "float64"), ("floor", "float64"), ("impl", "float64"), ("floor", "float32"),
                         ("impl", "float32"), ("blocked", "float32")):
        tag = f"{phase}{dtype[-2:]}"
        if tag in skip:
            continue
        res[tag] = run_phase(args, phase, dtype)
        print(f"  {tag:10s} {json.dumps(res[tag])}", flush=True)
    d = Path(args.dir)
    for bits in ("64", "32"):
        if f"floor{bits}" in res and f"impl{bits}" in res:
            fl, im = res[f"floor{bits}"], res[f"impl{bits}"]
            err = max(float(np.abs(np.load(d / f"impl_{k}_float{bits}.npy") - np.load(d / f"floor_{k}_float{bits}.npy")
                                   ).max()) for k in ("E", "V"))
            print(f"float{bits}: similarity_matrix {im['seconds']:.2f} s vs two-GEMM floor {fl['seconds']:.2f} s "
                  f"(edge {fl['edge_gemm_s']:.2f} + node {fl['node_gemm_s']:.2f}): ratio {im['seconds'] / fl['seconds']:.3f}x "
                  f"(target <= 1.3x); peak RSS impl {im['peak_mb']:.0f} MB, floor {fl['peak_mb']:.0f} MB; "
                  f"max |impl - floor| {err:.1e}; load {im['load']}")
    if "impl64" in res and "impl32" in res:
        err = max(float(np.abs(np.load(d / f"impl_{k}_float32.npy") - np.load(d / f"impl_{k}_float64.npy")).max())
                  for k in ("E", "V"))
        print(f"float32 vs float64: {res['impl64']['seconds'] / res['impl32']['seconds']:.2f}x faster, "
              f"max |error| {err:.1e}")
    if "rank" in res and "impl64" in res:
        old = res["rank"]["per_graph_s"] * g
        print(f"ranking at comparison time (before stored ranks): {res['rank']['per_graph_s']:.3f} s/graph x {g} = "
              f"{old:.1f} s, i.e. {old / (old + res['impl64']['seconds']):.0%} of a matrix computed without stored ranks")
    if "blocked32" in res:
        b = res["blocked32"]
        extra = ""
        if "impl64" in res:
            extra = f"; max |E_blocked32 - E_impl64| {float(np.abs(np.load(d / 'blocked_E.npy') - np.load(d / 'impl_E_float64.npy')).max()):.1e}"
        print(f"blocked float32 ({args.block_mb:.0f} MB/block pair, {b['block_rows']} rows/block): {b['seconds']:.2f} s "
              f"(stack {b['stack_s']:.2f} s + blocks {b['blocks_s']:.2f} s), one off-diagonal block pair "
              f"{b['offdiag_block_s']} s, peak RSS {b['peak_mb']:.0f} MB, stack on disk {b['stack_bytes'] / 2**30:.2f} GiB"
              f"{extra}; load {b['load']}")


if __name__ == "__main__":
    main()
