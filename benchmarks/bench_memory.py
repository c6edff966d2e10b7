"""Peak memory (RSS) and wall time of ``build_graphs`` on early VGG layers at 224 px (issue: feature memory).

Builds torchvision's ``vgg11_bn`` (random init, no download), feeds ``--probes`` random 224×224 images and builds
graphs at ``features.0``..``features.3`` (64×224×224 / 64×112×112 feature maps: 12.8 MB per probe per layer)
plus ``classifier.6``. Each setting runs in a fresh subprocess, so ``ru_maxrss`` is that run's own peak.

Usage: ``nice -n 10 python benchmarks/bench_memory.py [--probes 64] [--batch-size 8] [--threads 1]
[--budgets 2048,0]``.
To measure another version of depara, put it first on PYTHONPATH. Prints one JSON line per budget.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

LAYERS = ["features.0", "features.1", "features.2", "features.3", "classifier.6"]


def one_run(probes: int, threads: int, budget: float | None, batch_size: int) -> dict:
    import inspect

    import torch
    import torchvision

    from depara.extraction.extract import build_graphs

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = torchvision.models.vgg11_bn(weights=None).eval()
    x = torch.randn(probes, 3, 224, 224)
    options = {"node_size": None}  # maps on the 224 px input grid, as in the committed runs
    if budget is not None and "feature_memory_mb" in inspect.signature(build_graphs).parameters:
        options["feature_memory_mb"] = budget
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**10
    t0 = time.perf_counter()
    graphs = build_graphs(model, x, LAYERS, batch_size=batch_size, **options)
    wall = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**10
    feature_mb = sum(probes * 4 * 64 * s * s for s in (224, 224, 224, 112)) / 2**20
    return {"probes": probes, "batch_size": batch_size, "feature_memory_mb": options.get("feature_memory_mb", "n/a (old code)"),
            "peak_rss_mb": round(peak), "rss_before_call_mb": round(rss_before), "wall_s": round(wall, 1),
            "features_of_all_layers_mb": round(feature_mb),
            "edges_checksum": float(sum(float(g.edges.astype("float64").sum()) for g in graphs.values()))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--probes", type=int, default=64)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=8,
                        help="small, so the autograd activations of a batch do not hide the features' memory")
    parser.add_argument("--budgets", default="2048,0", help="feature_memory_mb values, comma-separated")
    parser.add_argument("--one", type=float, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one is not None:
        print(json.dumps(one_run(args.probes, args.threads, None if args.one < 0 else args.one,
                                 args.batch_size)))
        return
    for budget in args.budgets.split(","):
        out = subprocess.run([sys.executable, __file__, "--probes", str(args.probes), "--threads",
                              str(args.threads), "--batch-size", str(args.batch_size), "--one", budget], check=True, capture_output=True, text=True)
        print(out.stdout.strip().splitlines()[-1], flush=True)


if __name__ == "__main__":
    main()
