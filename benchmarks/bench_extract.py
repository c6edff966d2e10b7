"""Speed of depara's extraction against bare torch loops, measured in one run (issue 2, "Speed").

1. Features + grad×input for ONE layer: ``depara.build_graph`` vs a bare torch loop doing the same forward and
   backward on the same batches (hook on the layer, ``torch.autograd.grad`` of the layer's sum, grad × input, copy
   maps and features to numpy) followed by the same ``Graph.from_arrays``. Target ≤ 1.15×.
   Measured at the network's last layer (both run the full forward) and at a middle layer (the bare loop runs
   the network cut at that layer, ``features[:k+1]``, the fastest thing a hand-written loop can do).
2. All layers of a VGG: ``build_graphs`` with every conv/ReLU/pool layer (one forward per batch) vs one
   ``build_graph`` per layer.

Usage: ``nice -n 10 python benchmarks/bench_extract.py [--probes 128] [--size 64] [--device cpu] [--threads 1]``.
Prints the ratios; the numbers quoted in docs/extraction.md come from one such run (`benchmarks/results/bench_extract.*`).
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch
from torch import nn

from depara.extraction.extract import build_graph, build_graphs
from depara.core.graph import Graph

#: vgg11_bn's layer pattern at a quarter of its widths ("M" = max-pool).
NARROW_VGG11 = [16, "M", 32, "M", 64, 64, "M", 128, 128, "M", 128, 128, "M"]


def narrow_vgg(seed: int = 0, n_classes: int = 12) -> nn.Sequential:
    """VGG11-bn layout, a quarter as wide: ``features`` (conv-bn-relu blocks, max-pools) + global pool + fc."""
    torch.manual_seed(seed)
    layers: list[nn.Module] = []
    c = 3
    for v in NARROW_VGG11:
        if v == "M":
            layers.append(nn.MaxPool2d(2))
        else:
            layers += [nn.Conv2d(c, v, 3, padding=1), nn.BatchNorm2d(v), nn.ReLU(inplace=True)]
            c = v
    model = nn.Sequential()
    model.add_module("features", nn.Sequential(*layers))
    model.add_module("pool", nn.AdaptiveAvgPool2d(1))
    model.add_module("flatten", nn.Flatten())
    model.add_module("fc", nn.Linear(c, n_classes))
    return model.eval()


def bare_loop(model: nn.Module, layer_module: nn.Module, forward, x_all: torch.Tensor, batch_size: int):
    """The hand-written floor: per batch, one forward (hook on the layer) and one backward; maps and features
    copied to numpy arrays; then the same Graph.from_arrays (mean over colour channels, centred cosine)."""
    for p in model.parameters():
        p.requires_grad_(False)
    n = x_all.shape[0]
    feats, maps = [], []
    captured = {}
    handle = layer_module.register_forward_hook(lambda m, i, o: captured.__setitem__("out", o))
    try:
        for a in range(0, n, batch_size):
            x = x_all[a:a + batch_size].clone().requires_grad_(True)
            forward(x)
            out = captured["out"]
            (g,) = torch.autograd.grad(out.sum(), x)
            maps.append((g * x).detach().mean(dim=1).cpu().numpy())
            feats.append(out.detach().cpu().numpy())
    finally:
        handle.remove()
    return Graph.from_arrays(np.concatenate(maps), np.concatenate(feats))


def _timed(fn) -> float:
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    fn()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return time.perf_counter() - t0


def best_times(fns, repeats: int) -> list[float]:
    """Best wall time of each function, the functions run alternately (a shared machine's load hits all)."""
    times = [[] for _ in fns]
    for _ in range(repeats):
        for t, fn in zip(times, fns):
            t.append(_timed(fn))
    return [min(t) for t in times]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--probes", type=int, default=128)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", default=None, help="also write the figures to this JSON file")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    dev = torch.device(args.device)

    model = narrow_vgg().to(dev)
    x = torch.randn(args.probes, 3, args.size, args.size, generator=torch.Generator().manual_seed(0)).to(dev)
    # maps on the input grid (node_size=None), as the bare loop computes them
    opts = dict(batch_size=args.batch_size, device=dev, channel_reduction="mean", node_size=None)
    results: dict[str, float] = {}

    # 1a. the last layer: both run the whole network
    g_ref = bare_loop(model, model.fc, model, x, args.batch_size)
    g_dep = build_graph(model, x, "fc", **opts)
    assert np.allclose(g_ref.nodes, g_dep.nodes, rtol=1e-4, atol=1e-6 * np.abs(g_ref.nodes).max())
    t_bare, t_dep = best_times([lambda: bare_loop(model, model.fc, model, x, args.batch_size),
                                lambda: build_graph(model, x, "fc", **opts)], args.repeats)
    results.update(last_layer_bare_s=t_bare, last_layer_depara_s=t_dep, last_layer_ratio=t_dep / t_bare)

    # 1b. a middle layer: the bare loop runs only features[:k+1]
    k = 13  # relu after the 5th conv (of 8)
    cut = model.features[: k + 1]
    t_bare_mid, t_dep_mid = best_times([lambda: bare_loop(model, model.features[k], cut, x, args.batch_size),
                                        lambda: build_graph(model, x, f"features.{k}", **opts)], args.repeats)
    results.update(mid_layer_bare_s=t_bare_mid, mid_layer_depara_s=t_dep_mid, mid_layer_ratio=t_dep_mid / t_bare_mid)

    # 2. every layer of the VGG: one forward per batch vs one extraction per layer
    layers = [f"features.{i}" for i in range(len(model.features))] + ["fc"]
    t_all, t_each = best_times([lambda: build_graphs(model, x, layers, **opts),
                                lambda: [build_graph(model, x, name, **opts) for name in layers]],
                               max(1, args.repeats // 2))
    results.update(n_layers=len(layers), all_layers_one_pass_s=t_all, all_layers_one_pass_per_layer_s=t_each,
                   one_pass_speedup=t_each / t_all)

    print(f"depara extraction benchmark: narrow VGG11-bn, {args.probes} probes {args.size}x{args.size}, "
          f"batch {args.batch_size}, device {dev}, {args.threads} thread(s), best of {args.repeats}")
    print(f"  one layer (fc, full forward): bare loop {t_bare:.3f} s, depara {t_dep:.3f} s, "
          f"ratio {t_dep / t_bare:.3f} (target <= 1.15)")
    print(f"  one layer (features.{k}): bare loop on the cut net {t_bare_mid:.3f} s, depara {t_dep_mid:.3f} s, "
          f"ratio {t_dep_mid / t_bare_mid:.3f} (target <= 1.15)")
    print(f"  all {len(layers)} layers: one forward per batch {t_all:.3f} s, one pass per layer {t_each:.3f} s, "
          f"speed-up {t_each / t_all:.2f}x")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({**vars(args), **results}, fh, indent=2)


if __name__ == "__main__":
    main()
