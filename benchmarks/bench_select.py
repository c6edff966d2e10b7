"""How much `depara select` costs beyond its floor, how much adding a model costs, and its peak memory.

Prints, measured in ONE run (no timed tests), and writes the same lines to ``--out``
(default ``benchmarks/results/bench_select.txt``):

* ``floor``: the forward passes of every candidate model up to its deepest candidate layer (a hook stops the
  pass there), in batches of ``--batch-size`` under ``torch.inference_mode``, timed here directly on the same
  decoded, preprocessed batches: the work no ranking of these layers can avoid (image decoding not included).
  (Before issue 21 the floor was a forward + backward per probe through the whole model: 2.2x too high.)
* ``select (default)``: ``select`` over the zoo on an empty cache, labels given, every default — scorers
  (the ranking scorer, ``depara_labels_logme`` since round 6, and the label-based peers), ``n_boot=200`` (the
  ranking score's interval, its peer refitted on every half-sample) and ``peer_boot=0`` (the other peers: ranks
  only) — and its split: extraction (forward passes, decoding, store writes) and scoring (the half-samples).
  ``select / floor``: target <= 1.2 (issue 21);
* ``--profile``: the ``select`` run again under cProfile, its top functions by cumulative time;
* ``--peer-boot 20``: the same comparison with the other peers' intervals too (what they cost);
* ``--extras``: the earlier measurements (the node term; per-layer gradient loop vs batched; the bootstrap on
  cached graphs; an added model; with ``--memory`` the peak RSS of ``layers="all"``).

Zoos (``--zoo``): ``demo``, the architectures of `depara demo` (ResNet-18, MobileNetV3-small) on its own
images (32 px, 100 real digits; untrained weights: the time does not depend on them); ``tv224``: five
torchvision classifiers (ResNet-18, ResNet-50, MobileNetV3-large, EfficientNet-B0, ConvNeXt-tiny; weights
none) on ``--probes`` random images at 224 px; ``small``: the first ``--models`` of ResNet-18,
MobileNetV3-small, EfficientNet-B0 at ``--size`` px (the earlier default).

Every time is the minimum over ``--repeats`` runs (CPU seconds of this process, all threads, and wall seconds;
the ratios use CPU seconds). The load average is printed at the start and the end: on a shared machine the
numbers are only as clean as that load. Run with ``OMP_NUM_THREADS=1`` for single-thread numbers.

Usage: ``python benchmarks/bench_select.py [--zoo demo|tv224|small] [--probes 200] [--repeats 3] [--profile]``
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
TV224 = ["resnet18", "resnet50", "mobilenet_v3_large", "efficientnet_b0", "convnext_tiny"]
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


def entry(arch: str, size: int, seed: int = 0, name: str | None = None, preprocessing: str | None = None):
    import torch
    from torchvision import models as tvm

    from depara.extraction.zoo import ModelEntry

    torch.manual_seed(seed)
    return ModelEntry(name or arch, f"torchvision:{arch}", preprocessing=preprocessing or f"{size}x{size}",
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


class _Stop(Exception):
    """Raised by the hook on a model's deepest candidate layer: the forward pass ends there."""


def floor_fn(entries, deepest: dict, x_all: dict, batch_size: int):
    """The floor: each model's forward passes up to its deepest candidate layer ``deepest[name]``, batch by
    batch, on the decoded batches ``x_all[name]`` (plain torch: a forward hook that raises stops the pass)."""
    import torch

    models = []
    for e in entries:
        m = e.load().eval()
        models.append((e.name, m, m.get_submodule(deepest[e.name])))

    def stop(_m, _i, _o):
        raise _Stop

    def run(_r: int) -> None:
        for name, m, last in models:
            handle = last.register_forward_hook(stop)
            try:
                with torch.inference_mode():
                    for b in range(0, len(x_all[name]), batch_size):
                        try:
                            m(x_all[name][b:b + batch_size])
                        except _Stop:
                            pass
            finally:
                handle.remove()
    return run


def grad_floor_fn(entries, x_all: dict, batch_size: int):
    """One forward + backward (input gradient of an l2 scalar of the output) per probe per model: the floor of
    the node term (attribution maps), used by ``--extras``."""
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

    from depara.extraction.extract import LayerCapture, ModelState, attribute_batch
    from depara.extraction.layers_auto import auto_layers

    model = e.load()
    layers = auto_layers(model)

    def loop(_r=0):
        return attribute_batch(model, x, layers, "input_x_gradient", "l2")[1]

    def batched(_r=0):  # the l2 scalar of each layer's output (scalar="l2"), all layers in one vmapped backward
        xg = x.detach().requires_grad_(True)
        with torch.enable_grad(), LayerCapture(model, layers) as cap:
            outs = cap.run(xg)
            s = torch.stack([torch.linalg.vector_norm(outs[n].flatten(1), dim=1).sum() for n in layers])
            (g,) = torch.autograd.grad(s, xg, torch.eye(len(layers)), is_grads_batched=True)
        return {n: g[k] * x for k, n in enumerate(layers)}

    with ModelState(model, torch.device("cpu")):
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


def build_zoo(args, tmp: Path):
    """(data folder, base entries, the added entry (``--extras``), title) of ``--zoo``."""
    if args.zoo == "demo":
        from depara.benches.demo import DEMO_PREPROCESS, DEMO_SIZE, DEMO_ZOO, SELECT_SCALES, demo_images

        data, _ = demo_images(tmp / "data", SELECT_SCALES["demo"], 0)
        entries = [entry(arch, DEMO_SIZE, seed=i, name=name, preprocessing=DEMO_PREPROCESS)
                   for i, (name, (arch, _t, _k)) in enumerate(DEMO_ZOO.items())]
        return data, entries, entry("efficientnet_b0", DEMO_SIZE, preprocessing=DEMO_PREPROCESS), \
            f"the demo zoo ({DEMO_SIZE} px, its 100 images)"
    archs, size = (TV224, 224) if args.zoo == "tv224" else (ARCHS[:args.models + 1], args.size)
    data = make_images(tmp / "data", args.probes, size)
    entries = [entry(a, size) for a in archs]
    if args.zoo == "tv224":
        return data, entries, entry("resnet34", size), f"{len(entries)} torchvision nets at {size} px"
    return data, entries[:-1], entries[-1], f"{len(entries) - 1} nets at {size} px"


def default_vs_floor(args, data: Path, base, tmp: Path, say) -> object:
    """The floor and `select` at its defaults (intervals included) on an empty cache; returns the selection."""
    from depara.extraction.probes import ProbeSet
    from depara.selection.job import select

    runs = iter(range(10**6))
    boot = {} if args.peer_boot is None else {"peer_boot": args.peer_boot}  # default: select's own

    def sel_fn(models):
        def run(_r: int):
            return select(data, {e.name: e for e in models}, cache_dir=tmp / f"cache{next(runs)}",
                          batch_size=args.batch_size, probes=args.probes, **boot)
        return run

    sel_fn(base[:1])(0)  # warm-up (imports, first-call kernel setup), so neither side pays one-time costs
    first = sel_fn(base)(0)
    deepest = {m: info["layers"][-1] for m, info in first.models.items()}
    probes = ProbeSet.from_folder(data, base[0].preprocessing)
    if len(probes) > args.probes:  # select draws args.probes of them: time the floor on as many
        probes = probes.subset(range(args.probes))
    x_all = {e.name: probes.tensor(e.preprocessing) for e in base}
    floor_fn(base[:1], deepest, x_all, args.batch_size)(0)
    floor, floor_w, _ = _clock(floor_fn(base, deepest, x_all, args.batch_size), args.repeats)
    sels: list = []

    def timed(r: int):
        sels.append(sel_fn(base)(r))
        return sels[-1]
    t_sel, t_sel_w, sel = _clock(timed, args.repeats)
    fastest = min((x.settings["seconds"] for x in sels), key=lambda d: d["total"])
    zoo = ", ".join(f"{m} {len(i['layers'])} (deepest {deepest[m]})" for m, i in sel.models.items())
    say(f"zoo: {zoo}; {len(sel.candidates)} candidates, {sel.settings['n_probes']} probes")
    say(f"floor, forward passes up to each model's deepest candidate layer: {floor:7.2f} s / {floor_w:6.2f} s wall")
    say(f"select (defaults: labels, n_boot={sel.settings['n_boot']}, peer_boot={sel.settings['peer_boot']}), "
        f"empty cache: {t_sel:7.2f} s / {t_sel_w:6.2f} s wall   ratio {t_sel / floor:.2f} (target <= 1.2); "
        f"scorers {', '.join(sel.scorers)}")
    say(f"  of which (fastest run, wall): extraction {fastest['extract']:.2f} s, scoring and the rest "
        f"{fastest['total'] - fastest['extract']:.2f} s")
    return sel


def profile_select(args, data: Path, base, tmp: Path, say) -> None:
    import cProfile
    import io
    import pstats

    from depara.selection.job import select

    prof = cProfile.Profile()
    prof.enable()
    select(data, {e.name: e for e in base}, cache_dir=tmp / "profiled", batch_size=args.batch_size,
           probes=args.probes)
    prof.disable()
    text = io.StringIO()
    pstats.Stats(prof, stream=text).sort_stats("cumulative").print_stats(args.profile_lines)
    say("profile of one select run (cumulative seconds, wall, under cProfile):")
    for line in text.getvalue().splitlines():
        if line.strip() and ("/" in line or "{" in line) and "ncalls" not in line:
            parts = line.split()
            say(f"  {parts[3]:>8} s  {parts[0]:>8} calls  {' '.join(parts[5:])[-90:]}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--zoo", choices=["demo", "tv224", "small"], default="demo")
    ap.add_argument("--probes", type=int, default=200)
    ap.add_argument("--size", type=int, default=64, help="image size of --zoo small")
    ap.add_argument("--models", type=int, default=2, help="models of --zoo small")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--n-boot", type=int, default=200, help="resamples of the --extras bootstrap timing")
    ap.add_argument("--repeats", type=int, default=3, help="each time is the minimum over this many runs")
    ap.add_argument("--peer-boot", type=int, default=None,
                    help="select's peer_boot in the default comparison (default: select's own, 0); e.g. 20 "
                         "measures what the other peers' interval refits cost")
    ap.add_argument("--profile", action="store_true", help="profile one select run")
    ap.add_argument("--profile-lines", type=int, default=25)
    ap.add_argument("--extras", action="store_true", help="also the node-term, bootstrap and added-model timings")
    ap.add_argument("--memory", action="store_true", help="with --extras: peak RSS in fresh processes")
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "bench_select.txt")
    args = ap.parse_args()
    import torch

    from depara.io.files import check_out_file, write_text

    check_out_file(args.out, "out")
    lines: list[str] = []

    def say(text: str) -> None:
        print(text, flush=True)
        lines.append(text)

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        data, base, added, title = build_zoo(args, tmp)
        say(f"bench_select: {title}; batch {args.batch_size}, repeats {args.repeats}; torch {torch.__version__}, "
            f"threads {torch.get_num_threads()}, cpus {os.cpu_count()}; load at start {load()}")
        say("times: minimum over the repeats, CPU seconds of this process (all threads) / wall seconds; "
            "ratios of CPU seconds")
        default_vs_floor(args, data, base, tmp, say)
        if args.profile:
            profile_select(args, data, base, tmp, say)
        if args.extras:
            extras(args, data, base, added, tmp, say)
    say(f"load at the end {load()}")
    write_text(args.out, "\n".join(lines) + "\n")
    print(f"wrote {args.out}")


def extras(args, data: Path, base, added, tmp: Path, say) -> None:
    """The earlier measurements: the node term against the forward+backward floor, the per-layer gradient loop
    against one batched backward, the bootstrap on cached graphs, an added model, peak memory."""
    from depara.extraction.probes import ProbeSet
    from depara.selection.job import select

    target = entry(TARGET_ARCH, 224 if args.zoo == "tv224" else args.size, seed=1, name="target",
                   preprocessing=base[0].preprocessing)
    probes = ProbeSet.from_folder(data, base[0].preprocessing)
    x_all = {e.name: probes.tensor(e.preprocessing) for e in [*base, added, target]}
    kw = dict(batch_size=args.batch_size, probes=args.probes)
    runs = iter(range(10**6))

    def sel_fn(models, scorers=None, target_model=None, cache=None, n_boot=0, new_seed=False):
        def run(r: int):
            folder = cache if cache is not None else tmp / f"x{next(runs)}"  # empty unless named
            return select(data, {e.name: e for e in models}, target_model=target_model, scorers=scorers,
                          cache_dir=folder, n_boot=n_boot, seed=r + 1 if new_seed else 0, **kw)
        return run

    node_scorers = ["depara", "depara_v", "depara_e"]
    sel_fn(base[:1], node_scorers, target)(0)
    floor_t, floor_t_w, _ = _clock(grad_floor_fn([*base, target], x_all, args.batch_size), args.repeats)
    t_nodes, t_nodes_w, sel_nodes = _clock(sel_fn(base, node_scorers, target), args.repeats)
    say(f"floor of the node term, 1 fwd+bwd per probe per model ({len(base) + 1} models): {floor_t:7.2f} s / "
        f"{floor_t_w:6.2f} s wall")
    say(f"select (nodes: scorers {'+'.join(node_scorers)}, n_boot=0), empty cache: {t_nodes:7.2f} s / "
        f"{t_nodes_w:6.2f} s wall   ratio {t_nodes / floor_t:.2f}; nodes computed: {sel_nodes.settings['nodes']}")
    for e in base:
        k, diff, scale, t_loop, t_batched = grad_loop_vs_batched(e, x_all[e.name][:args.batch_size], args.repeats)
        say(f"grad loop vs batched, {e.name} ({k} layers, one batch of {args.batch_size}): loop "
            f"{t_loop * 1000:.0f} ms, batched {t_batched * 1000:.0f} ms (x{t_batched / t_loop:.2f}); "
            f"max |difference| {diff:.1e} (max |map| {scale:.1e})")
    cache = tmp / "shared"
    sel = sel_fn(base, cache=cache)(0)
    cands = len(sel.candidates)
    t_boot, t_boot_w, _ = _clock(sel_fn(base, cache=cache, n_boot=args.n_boot, new_seed=True), args.repeats)
    sel_fn(base, cache=cache, n_boot=args.n_boot)(0)  # fills the scores of seed 0
    t_again, t_again_w, again = _clock(sel_fn(base, cache=cache, n_boot=args.n_boot), args.repeats)
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


if __name__ == "__main__":
    main()
