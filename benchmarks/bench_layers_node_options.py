"""Node definitions on the layer-selection benchmark: an out-of-sample check of the task bank's node choice.

Runs `depara demo layers --scale small` (`depara.benches.layers.demo.run_layers_demo`: synth-digits, a synthetic source
and a real target-domain model, layer-wise transfer at 18 depths to 1/10 and 1/100 of the real training split,
3 transfer seeds; every step cached) and then `depara.benches.layers.select.layers_select` once per node option below,
on the same models, probes and measured transfer accuracies. Writes into --out:

- `correlations_by_node_option.csv`: per option, fraction and score (V, E, V+E, V+10E), the Spearman and Kendall
  correlation with the transfer accuracy over the 18 depths and the top-scored layer;
- `transfer_tenth.csv`, `transfer_hundredth.csv`: the accuracies the scores were compared with (mean of 3 seeds);
- `manifest.json` (kind `node-options`), which `depara report` renders.

The first option is `layers-select`'s default, so its rows are the run's `layers_small` correlations; at
`--scale small --seed 0` the script also prints how far they are from the committed
`benchmarks/results/layers_small/correlations.csv` (models trained on other hardware or library versions differ,
and so do the numbers).

    nice -n 10 python benchmarks/bench_layers_node_options.py --out benchmarks/results/layers_small_node_options

About 20-30 minutes on one core from an empty cache (`run_layers_demo`'s estimate for `small`), a minute or two
per option once the demo's cache exists.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import torch

from depara.io.files import ensure_dir, read_csv, write_csv
from depara.report.manifest import read_manifest, write_manifest
from depara.benches.layers.demo import SCALES, run_layers_demo
from depara.benches.layers.select import layers_select

ROOT = Path(__file__).resolve().parents[1]
COMMITTED = ROOT / "benchmarks" / "results" / "layers_small" / "correlations.csv"
# (scalar, channel reduction, centre the features): layers-select's default (the original layer-selection code),
# the task bank's library default without and with centring, the paper's Taskonomy node, and l2 with |.| channels
OPTIONS = [("mean", "abs_mean", False), ("l2", "mean", False), ("l2", "mean", True), ("sum", "mean", True),
           ("l2", "abs_mean", False)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True, help="results folder (created; its parent must exist)")
    ap.add_argument("--cache", default=None, help="cache folder (default $DEPARA_CACHE or ~/.cache/depara)")
    ap.add_argument("--scale", default="small", choices=list(SCALES),
                    help="the layers demo's scale (default small; tiny checks the script in about a minute)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1, as the committed runs)")
    args = ap.parse_args()
    if args.threads < 1:
        ap.error(f"--threads {args.threads}: expected a positive count")
    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    cfg = SCALES[args.scale]
    out = ensure_dir(args.out)
    rows = []
    with tempfile.TemporaryDirectory(prefix="depara-node-options-") as tmp:
        demo = Path(tmp) / f"layers_{args.scale}"
        run_layers_demo(args.scale, demo, seed=args.seed, cache_dir=args.cache, progress=True)
        root = Path(read_manifest(demo)["settings"]["cache"])  # the demo's cache: data split and trained models
        transfer = {}
        for f in cfg["fractions"]:
            transfer[f] = out / f"transfer_{f}.csv"
            shutil.copyfile(demo / f"transfer_{f}.csv", transfer[f])
        for scalar, reduction, center in OPTIONS:
            res = layers_select(root / "run_synthetic", root / "run_real", root / "split" / "real" / "test",
                                Path(tmp) / f"{scalar}_{reduction}_{center}", lams=cfg["lams"], transfer=transfer,
                                scalar=scalar, channel_reduction=reduction, center=center, progress=False)
            for c in res["correlations"]:
                rows.append({"scalar": scalar, "channel_reduction": reduction, "center": center,
                             "fraction": c["accuracy"], "score": c["score"], "spearman": c["spearman"],
                             "kendall": c["kendall"], "top_layer": c["top_layer"]})
            print(f"{scalar}/{reduction}/center={center}: " + "; ".join(
                f"{c['accuracy']} V+E Spearman {c['spearman']:.2f}, top #{c['top_layer']}"
                for c in res["correlations"] if c["score"] == "S_lam1"))
    write_csv(out / "correlations_by_node_option.csv", rows)
    default = {(r["fraction"], r["score"]): r["spearman"] for r in rows
               if (r["scalar"], r["channel_reduction"], r["center"]) == OPTIONS[0]}
    diff = None
    if args.scale == "small" and args.seed == 0:
        committed = {(r["accuracy"], r["score"]): float(r["spearman"]) for r in read_csv(COMMITTED)}
        diff = max(abs(default[k] - v) for k, v in committed.items())
        print(f"default option vs the committed {COMMITTED.relative_to(ROOT)}: max |Δ Spearman| = {diff:.3g}")
    seconds = time.perf_counter() - t0
    write_manifest(out, "node-options",
                   title=f"Node definitions on the layer-selection benchmark (synth-digits, {args.scale})",
                   summary="Spearman / Kendall of each DEPARA score with the measured transfer accuracy over "
                           f"the transfer depths, for {len(OPTIONS)} node options (scalar / channel reduction / centring)",
                   settings={"options": [list(o) for o in OPTIONS], "scale": args.scale, "seed": args.seed,
                             "torch_threads": torch.get_num_threads(), "lams": list(cfg["lams"]),
                             "command": f"python benchmarks/bench_layers_node_options.py --scale {args.scale} --out OUT"},
                   tables={"correlations_by_node_option": "correlations_by_node_option.csv",
                           **{f"transfer_{f}": f"transfer_{f}.csv" for f in cfg["fractions"]}},
                   extra={"max_abs_spearman_diff_vs_committed_layers_small": diff, "seconds": seconds})
    print(f"wrote {out} in {seconds:.0f} s")


if __name__ == "__main__":
    main()
