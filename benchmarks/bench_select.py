"""How much `depara select` costs beyond its floor, how much adding a model costs, and its peak memory.

Prints, measured in ONE run (no timed tests), and writes the same lines to ``--out``
(default ``benchmarks/results/bench_select.txt``):

* ``floor``: one forward + backward (input gradient of an l2 scalar of the output) per probe per model, timed
  here directly on the same preprocessed batches (image decoding not included);
* ``select (default)``: ``select`` over M models on an empty cache, labels given, the default scorers
  (``depara_labels`` and the label-based peers, ``n_boot=0``): no node term, so forward passes only.
  ``select / floor``: target ≤ 1.2;
* ``select (nodes)``: the same M models plus a target model, with ``scorers=["depara", "depara_v", "depara_e"]``
  (the node term asked for: an input-gradient pass per candidate layer and batch), against the floor of those
  M + 1 models;
* ``grad loop vs batched``: per model, one batch's per-layer input gradients by the per-layer loop that
  :mod:`depara.extraction.extract` uses, and by one ``torch.autograd.grad(..., is_grads_batched=True)`` over the stacked
  layer scalars (largest difference, and times);
* ``bootstrap``: the scoring time of ``n_boot`` resamples on the cached graphs (numpy work);
* ``added model``: a second run with one model added (the others cached) against that model's own run
  (``select`` of it alone, empty cache). Target ≤ 1.1;
* ``--memory``: the peak RSS of a fresh process running ``select`` over every layer (``layers="all"``) with
  ``feature_memory_mb`` = 0 (features spill to disk) and = 2048, beside the features' total size.

Every time is the minimum over ``--repeats`` runs (CPU seconds of this process, all threads, and wall seconds;
the ratios use CPU seconds). The load average is printed at the start and the end: on a shared machine the
numbers are only as clean as that load. Run with ``OMP_NUM_THREADS=1`` for single-thread numbers.

Usage: ``python benchmarks/bench_select.py [--probes 200] [--size 64] [--models 2] [--repeats 3] [--memory]``
(≈ 2–4 min on 2 CPU cores).
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
TARGET_ARCH = "resnet18"


def load() -> str:
    return ", ".join(f"{v:.2f}" for v in os.getloadavg())


def make_images(root: Path, n: int, size: int) -> Path:
    from PIL import Image

    rng = np.random.default_rng(0)
    for i in range(n):
        c = i % 4
        d = root / f"class{c}"
        d.mkdir(parents=True, exist_ok=True)
        Image.fromarray((rng.random((size, size, 3)) * 160 + 20 * c).astype(np.uint8)).save(d / f"{i:04d}.png")
    return root


def entry(arch: str, size: int, seed: int = 0, name: str | None = None):
    import torch
    from torchvision import models as tvm

    from depara.extraction.zoo import ModelEntry

    torch.manual_seed(seed)
    return ModelEntry(name or arch, f"torchvision:{arch}", preprocessing=f"{size}x{size}",
                      module=tvm.get_model(arch, weights=None, num_classes=10))


def _clock(fn, repeats: int) -> tuple[float, float, object]:
    """(min CPU s, min wall s, last result) of ``repeats`` calls of ``fn(r)``."""
    cpu, wall, out = [], [], None
    for r in range(repeats):
        c0, w0 = time.process_time(), time.perf_counter()
        out = fn(r)
        cpu.append(time.process_time() - c0)
        wall.append(time.perf_counter() - w0)
    return min(cpu), min(wall), out


def floor_fn(entries, x_all: dict, batch_size: int):
    """One forward + backward (input gradient of an l2 scalar of the output) per probe per model."""
    import torch

    models = []
    for e in entries:
        m = e.load().eval()
        for p in m.parameters():
            p.requires_grad_(False)
        models.append((e.name, m))

    def run(_r: int) -> None:
        for name, m in models:
            x_model = x_all[name]
            for b in range(0, len(x_model), batch_size):
                x = x_model[b:b + batch_size].clone().requires_grad_(True)
                out = m(x)
                torch.autograd.grad(torch.linalg.vector_norm(out.flatten(1), dim=1).sum(), x)
    return run


def grad_loop_vs_batched(e, x, repeats: int) -> tuple[int, float, float, float, float]:
    """(layers, max |loop − batched|, max |loop|, loop CPU s, batched CPU s) on one batch of a model's auto
    layers: depara.extraction.extract's per-layer loop against one vmapped backward over the stacked layer scalars."""
    import torch

    from depara.extraction.extract import _attribute_batch, _LayerCapture, _ModelState, _scalar
    from depara.extraction.layers_auto import auto_layers

    model = e.load()
    layers = auto_layers(model)

    def loop(_r=0):
        return _attribute_batch(model, x, layers, "input_x_gradient", "l2")[1]

    def batched(_r=0):
        xg = x.detach().requires_grad_(True)
        with torch.enable_grad(), _LayerCapture(model, layers) as cap:
            outs = cap.run(xg)
            s = torch.stack([_scalar(outs[n], "l2").sum() for n in layers])
            (g,) = torch.autograd.grad(s, xg, torch.eye(len(layers)), is_grads_batched=True)
        return {n: g[k] * x for k, n in enumerate(layers)}

    with _ModelState(model, torch.device("cpu")):
        a, b = loop(), batched()
        diff = max(float((a[n] - b[n]).abs().max()) for n in layers)
        scale = max(float(a[n].abs().max()) for n in layers)
        t_loop = _clock(loop, repeats)[0]
        t_batched = _clock(batched, repeats)[0]
    return len(layers), diff, scale, t_loop, t_batched


def peak_rss_mb(data: Path, arch: str, size: int, budget: float) -> tuple[float, float, float]:
    """(peak RSS MiB, growth in select MiB, total features MiB) of a fresh process, layers="all"."""
    code = f"""
import resource, json
import numpy as np
from depara.selection.job import select
import sys; sys.path.insert(0, {str(Path(__file__).parent)!r})
from bench_select import entry
e = entry({arch!r}, {size})
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
sel = select({str(data)!r}, {{e.name: e}}, layers="all", n_boot=0, cache_dir={tempfile.mkdtemp()!r},
             feature_memory_mb={budget})
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
import torch
from depara.extraction.extract import capture_features
m = e.load().eval()
layers = sel.models[e.name]["layers"]
feats = capture_features(m, torch.zeros(1, 3, {size}, {size}), layers)
total = sum(int(np.prod(f.shape)) * 4 for f in feats.values()) * sel.settings["n_probes"] / 2**20
print(json.dumps([before, after, total]))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    before, after, total = json.loads(out.stdout.strip().splitlines()[-1])
    return after / 1024.0, (after - before) / 1024.0, total


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--probes", type=int, default=200)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--models", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--n-boot", type=int, default=200)
    ap.add_argument("--repeats", type=int, default=3, help="each time is the minimum over this many runs")
    ap.add_argument("--memory", action="store_true", help="also measure peak RSS in fresh processes")
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "bench_select.txt")
    args = ap.parse_args()
    import torch

    from depara.io.files import check_out_file, write_text
    from depara.extraction.probes import ProbeSet
    from depara.selection.job import select

    check_out_file(args.out, "out")
    lines: list[str] = []

    def say(text: str) -> None:
        print(text, flush=True)
        lines.append(text)

    say(f"bench_select: {args.probes} probes at {args.size}px, batch {args.batch_size}, repeats {args.repeats}; "
        f"torch {torch.__version__}, threads {torch.get_num_threads()}, cpus {os.cpu_count()}; "
        f"load at start {load()}")
    say("times: minimum over the repeats, CPU seconds of this process (all threads) / wall seconds; "
        "ratios of CPU seconds")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        data = make_images(tmp / "data", args.probes, args.size)
        entries = [entry(a, args.size) for a in ARCHS[:args.models + 1]]
        base, added = entries[:-1], entries[-1]
        target = entry(TARGET_ARCH, args.size, seed=1, name="target")
        probes = ProbeSet.from_folder(data, f"{args.size}x{args.size}")
        x_all = {e.name: probes.tensor() for e in [*entries, target]}  # every model: the same preprocessing
        kw = dict(batch_size=args.batch_size, probes=args.probes)
        runs = iter(range(10**6))

        def sel_fn(models, scorers=None, target_model=None, cache=None, n_boot=0, new_seed=False):
            def run(r: int):
                folder = cache if cache is not None else tmp / f"cache{next(runs)}"  # empty unless named
                # another seed: other resamples, so no cached score is reused (all probes are used, so the
                # probe set, and with it every cached graph, stays the same)
                return select(data, {e.name: e for e in models}, target_model=target_model, scorers=scorers,
                              cache_dir=folder, n_boot=n_boot, seed=r + 1 if new_seed else 0, **kw)
            return run

        # Warm-up (imports, first-call kernel setup), so neither side pays one-time costs.
        floor_fn(base[:1], x_all, args.batch_size)(0)
        sel_fn(base[:1])(0)
        node_scorers = ["depara", "depara_v", "depara_e"]
        sel_fn(base[:1], node_scorers, target)(0)

        floor, floor_w, _ = _clock(floor_fn(base, x_all, args.batch_size), args.repeats)
        floor_t, floor_t_w, _ = _clock(floor_fn([*base, target], x_all, args.batch_size), args.repeats)
        t_sel, t_sel_w, sel = _clock(sel_fn(base), args.repeats)
        t_nodes, t_nodes_w, sel_nodes = _clock(sel_fn(base, node_scorers, target), args.repeats)
        cands = len(sel.candidates)
        say(f"models {[e.name for e in base]} (+ {added.name}), {cands} candidate (model, layer) pairs: "
            + ", ".join(f"{m} {len(i['layers'])}" for m, i in sel.models.items()) + f"; target model {TARGET_ARCH}")
        say(f"floor, 1 fwd+bwd per probe per model ({len(base)} models):   {floor:7.2f} s / {floor_w:6.2f} s wall")
        say(f"select (default: labels, no node term, n_boot=0), empty cache: {t_sel:7.2f} s / {t_sel_w:6.2f} s wall"
            f"   ratio {t_sel / floor:.2f} (target <= 1.2); nodes computed: {sel.settings['nodes']}; "
            f"scorers {', '.join(sel.scorers)}")
        say(f"floor with the target model ({len(base) + 1} models):               {floor_t:7.2f} s / "
            f"{floor_t_w:6.2f} s wall")
        say(f"select (nodes: scorers {'+'.join(node_scorers)}), empty cache: {t_nodes:7.2f} s / "
            f"{t_nodes_w:6.2f} s wall   ratio {t_nodes / floor_t:.2f}; nodes computed: {sel_nodes.settings['nodes']}")
        for e in base:
            k, diff, scale, t_loop, t_batched = grad_loop_vs_batched(e, x_all[e.name][:args.batch_size],
                                                                     args.repeats)
            say(f"grad loop vs batched, {e.name} ({k} layers, one batch of {args.batch_size}): loop "
                f"{t_loop * 1000:.0f} ms, batched {t_batched * 1000:.0f} ms (x{t_batched / t_loop:.2f}); "
                f"max |difference| {diff:.1e} (max |map| {scale:.1e})")
        cache = tmp / "shared"
        sel_fn(base, cache=cache)(0)
        t_boot, t_boot_w, _ = _clock(sel_fn(base, cache=cache, n_boot=args.n_boot, new_seed=True), args.repeats)
        sel_fn(base, cache=cache, n_boot=args.n_boot)(0)  # fills the scores of seed 0
        t_again, t_again_w, again = _clock(sel_fn(base, cache=cache, n_boot=args.n_boot, new_seed=False),
                                           args.repeats)
        say(f"select, cached graphs, n_boot={args.n_boot}, scores computed: {t_boot:.2f} s / {t_boot_w:.2f} s wall "
            f"({t_boot / cands * 1000:.0f} ms per candidate); the same run again (scores reused for "
            f"{again.settings['scores_reused']} of {cands}): {t_again:.2f} s / {t_again_w:.2f} s wall")
        t_alone, t_alone_w, _ = _clock(sel_fn([added]), args.repeats)

        def plus(r: int):  # each repeat: a copy of the cached base run, then the added model
            import shutil

            folder = tmp / f"plus{r}"
            shutil.copytree(cache, folder)
            c0, w0 = time.process_time(), time.perf_counter()
            s = sel_fn([*base, added], cache=folder)(r)
            return time.process_time() - c0, time.perf_counter() - w0, s
        results = [plus(r) for r in range(args.repeats)]
        t_plus, t_plus_w, sel2 = min(x[0] for x in results), min(x[1] for x in results), results[-1][2]
        say(f"added model {added.name}: alone {t_alone:.2f} s / {t_alone_w:.2f} s wall, added to the cached run "
            f"{t_plus:.2f} s / {t_plus_w:.2f} s wall   ratio {t_plus / t_alone:.2f} (target <= 1.1); every other "
            f"entry reused: {all(not sel2.models[e.name]['extracted'] for e in base)}")
        for budget in ((0, 2048) if args.memory else ()):
            peak, grew, total = peak_rss_mb(data, ARCHS[0], args.size, budget)
            say(f"peak RSS, {ARCHS[0]} layers=all (features {total:.0f} MiB in all), feature_memory_mb={budget}: "
                f"{peak:.0f} MiB (grew {grew:.0f} MiB in select)")
    say(f"load at the end {load()}")
    write_text(args.out, "\n".join(lines) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
