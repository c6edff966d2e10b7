"""How much `depara.select` costs beyond its floor, how much adding a model costs, and its peak memory.

Prints ratios measured in ONE run (no timed tests):

* ``select / floor``: the CPU time of ``select`` over M models (empty cache, ``n_boot=0``) divided by the floor,
  one forward + backward (gradient to the input) per probe per model, timed here on the same batches. Target ≤ 1.2.
* ``bootstrap``: the extra time of the default ``n_boot`` on the same candidates (reported separately: it is
  numpy work on the cached graphs, O(n_boot × candidates × N²)).
* ``added model``: a second run with one model added (the others cached) divided by that model's own extraction
  (``select`` of it alone on an empty cache). Target ≤ 1.1.
* ``peak RSS``: of a fresh process running ``select`` with ``feature_memory_mb`` = 0 (features spill to disk)
  and = 2048, showing that the budget bounds the memory of the features.

Usage: ``python benchmarks/bench_select.py [--probes 96] [--size 96] [--models 3]`` (≈ 1–3 min on 2 CPU cores).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ARCHS = ["resnet18", "mobilenet_v3_small", "efficientnet_b0", "resnet34", "mobilenet_v2"]


def make_images(root: Path, n: int, size: int) -> Path:
    from PIL import Image

    rng = np.random.default_rng(0)
    for i in range(n):
        c = i % 4
        d = root / f"class{c}"
        d.mkdir(parents=True, exist_ok=True)
        Image.fromarray((rng.random((size, size, 3)) * 160 + 20 * c).astype(np.uint8)).save(d / f"{i:04d}.png")
    return root


def entry(arch: str, size: int):
    import torch
    from torchvision import models as tvm

    from depara.zoo import ModelEntry

    torch.manual_seed(0)
    return ModelEntry(arch, f"torchvision:{arch}", preprocessing=f"{size}x{size}",
                      module=tvm.get_model(arch, weights=None, num_classes=10))


def floor_seconds(entries, data: Path, size: int, batch_size: int) -> float:
    """One forward + backward (input gradient of an l2 scalar of the output) per probe per model."""
    import torch

    from depara.probes import ProbeSet

    probes = ProbeSet.from_folder(data, f"{size}x{size}")
    x_all = probes.tensor()
    total = 0.0
    for e in entries:
        model = e.load()
        for p in model.parameters():
            p.requires_grad_(False)
        start = time.process_time()
        for b in range(0, len(x_all), batch_size):
            x = x_all[b:b + batch_size].clone().requires_grad_(True)
            out = model(x)
            (torch.autograd.grad(torch.linalg.vector_norm(out.flatten(1), dim=1).sum(), x))
        total += time.process_time() - start
    return total


def timed_select(data: Path, entries, cache: Path, **kw) -> tuple[float, object]:
    """CPU seconds of this process (all threads) for one select call: less sensitive to other jobs than wall."""
    from depara.selection import select

    start = time.process_time()
    sel = select(data, {e.name: e for e in entries}, cache_dir=cache, **kw)
    return time.process_time() - start, sel


def peak_rss_mb(data: Path, arch: str, size: int, budget: float) -> float:
    code = f"""
import resource, json
from depara.selection import select
import sys; sys.path.insert(0, {str(Path(__file__).parent)!r})
from bench_select import entry
e = entry({arch!r}, {size})
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
select({str(data)!r}, {{e.name: e}}, layers="all", n_boot=0, cache_dir={tempfile.mkdtemp()!r},
       feature_memory_mb={budget})
print(json.dumps([before, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss]))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    before, after = json.loads(out.stdout.strip().splitlines()[-1])
    return after / 1024.0, (after - before) / 1024.0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--probes", type=int, default=96)
    ap.add_argument("--size", type=int, default=96)
    ap.add_argument("--models", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--n-boot", type=int, default=200)
    ap.add_argument("--memory", action="store_true", help="also measure peak RSS in fresh processes")
    args = ap.parse_args()
    import torch

    torch.set_num_threads(max(1, torch.get_num_threads()))
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        data = make_images(tmp / "data", args.probes, args.size)
        entries = [entry(a, args.size) for a in ARCHS[:args.models + 1]]
        base, added = entries[:-1], entries[-1]
        kw = dict(batch_size=args.batch_size, probes=args.probes)
        # Warm-up (imports, first-call kernel setup) on the first model, so neither side pays one-time costs.
        floor_seconds(base[:1], data, args.size, args.batch_size)
        timed_select(data, base[:1], tmp / "warmup", n_boot=0, **kw)
        floor = floor_seconds(base, data, args.size, args.batch_size)
        t_sel, sel = timed_select(data, base, tmp / "c1", n_boot=0, **kw)
        t_boot, _ = timed_select(data, base, tmp / "c1", n_boot=args.n_boot, **kw)  # cached graphs: scoring only
        t_alone, _ = timed_select(data, [added], tmp / "c2", n_boot=0, **kw)
        t_plus, sel2 = timed_select(data, [*base, added], tmp / "c1", n_boot=0, **kw)
        cands = len(sel.candidates)
        print(f"probes {args.probes} at {args.size}px, models {[e.name for e in base]} (+ {added.name}), "
              f"{cands} candidates, torch threads {torch.get_num_threads()}")
        print("times are CPU seconds of this process (all threads), not wall time")
        print(f"floor (1 fwd+bwd per probe per model): {floor:.2f} s")
        print(f"select, empty cache, n_boot=0:          {t_sel:.2f} s   ratio {t_sel / floor:.2f} (target <= 1.2)")
        print(f"select, cached, n_boot={args.n_boot}:            {t_boot:.2f} s   "
              f"({t_boot / cands * 1000:.0f} ms per candidate)")
        print(f"added model {added.name}: alone {t_alone:.2f} s, added to the cached run {t_plus:.2f} s   "
              f"ratio {t_plus / t_alone:.2f} (target <= 1.1); reused: "
              f"{all(not sel2.models[e.name]['extracted'] for e in base)}")
        for budget in ((0, 2048) if args.memory else ()):
            peak, grew = peak_rss_mb(data, ARCHS[0], args.size, budget)
            print(f"peak RSS, layers=all, feature_memory_mb={budget}: {peak:.0f} MiB (grew {grew:.0f} MiB in select)")


if __name__ == "__main__":
    main()
