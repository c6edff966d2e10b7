"""The cost-first pilot of the pretrained bank's fine-tuning truth (benchmarks/results/pretrained_bank_finetune/pilot.md).

    nice -n 10 python benchmarks/pretrained_finetune_pilot.py --cache DIR steps     # one step of each top part
    nice -n 10 python benchmarks/pretrained_finetune_pilot.py --cache DIR lr \\
        --sources mobilenet_v2-imagenet,yolox-captcha-det --targets digits10,visda12 --grid 0:1e-2,3e-5:3e-3

``steps``: CPU seconds of one fine-tuning step (batch 32: forward, backward, Adam step) and of a forward pass of each
source's top part, contiguous and channels-last, on the cached layer's output of 4 VisDA photos repeated to 32.
``lr``: test accuracy and CPU seconds of one fine-tune (seed 0, the bank's split) per (top lr:head lr) of --grid,
32 steps of 16. CPU seconds are the process's own; the 1-minute load is printed beside them.
"""

from __future__ import annotations

import argparse
import copy
import time
from pathlib import Path

import torch

from depara.benches.realbank import pretrained as P
from depara.benches.realbank import pretrained_bench as B
from depara.benches.realbank import pretrained_finetune as F
from depara.extraction.extract import capture_features


def load() -> str:
    return Path("/proc/loadavg").read_text().split()[0] if Path("/proc/loadavg").is_file() else "n/a"


def step_costs(sources) -> None:
    images = B.IMAGE_SETS["visda"]()[0][:4]
    for name in sources:
        spec, model = P.get_source(name), P.load_source(name)
        x = capture_features(model, P.preprocess(spec, images), [F.CUTS[name].cached])[F.CUTS[name].cached]
        x = x.repeat(8, 1, 1, 1)
        for fmt in (torch.contiguous_format, torch.channels_last):
            top = copy.deepcopy(F.top_part(name, model)).to(memory_format=fmt).eval()
            xx = x.contiguous(memory_format=fmt)
            opt = torch.optim.Adam(top.parameters(), 1e-3)
            top(xx).mean().backward()  # warm-up
            t0 = time.process_time()
            for _ in range(3):
                opt.zero_grad()
                top(xx).mean().backward()
                opt.step()
            t1 = time.process_time()
            with torch.no_grad():
                for _ in range(3):
                    top(xx)
            print(f"{name} {'channels-last' if fmt is torch.channels_last else 'contiguous'}: step "
                  f"{(t1 - t0) / 3:.3f} s, forward {(time.process_time() - t1) / 3:.3f} s (load {load()})", flush=True)


def lr_grid(cache: Path, sources, targets, grid) -> None:
    cfg = B.BenchConfig()
    for name in sources:
        model = P.load_source(name)
        top = F.top_part(name, model)
        for target in (t for t in B.TARGETS if t.name in targets):
            x = F.cached_input(name, target.image_set, cache, model=model)
            y = target.labels(B.IMAGE_SETS[target.image_set]()[1])
            sp = cfg.split(y, 0)
            for lr_top, lr_head in grid:
                ft = F.FinetuneConfig(steps=32, batch_size=16, lr_top=lr_top, lr_head=lr_head)
                t0 = time.process_time()
                acc = F.finetune(top, x[sp.train], y[sp.train], x[sp.test], y[sp.test], ft, 0)
                print(f"{name} {target.name} top {lr_top:g} head {lr_head:g}: accuracy {acc:.3f}, "
                      f"{time.process_time() - t0:.1f} CPU s (load {load()})", flush=True)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("what", choices=("steps", "lr"))
    ap.add_argument("--cache", type=Path, required=True)
    ap.add_argument("--sources", default=",".join(P.SOURCE_NAMES))
    ap.add_argument("--targets", default="digits10,visda12")
    ap.add_argument("--grid", default="0:1e-2,1e-5:1e-2,3e-5:1e-2,1e-4:1e-2,1e-3:1e-2,3e-5:3e-3")
    args = ap.parse_args(argv)
    sources = [P.get_source(s.strip()).name for s in args.sources.split(",")]
    if args.what == "steps":
        step_costs(sources)
    else:
        grid = [tuple(float(v) for v in g.split(":")) for g in args.grid.split(",")]
        lr_grid(args.cache, sources, args.targets.split(","), grid)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
