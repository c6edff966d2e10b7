"""Node definitions on the layer-selection benchmark: an out-of-sample check of the task bank's node choice.

Rebuilds the models of `depara demo layers --scale small` (synth-digits split, the synthetic source and the
real target-domain model; cached, deterministic under --seed) and runs `depara.train.select.layers_select` once
per node option below, against the committed transfer accuracies of `benchmarks/results/layers_small/`
(mean of 3 transfer seeds per depth). Writes `correlations_by_node_option.csv` (Spearman / Kendall between each
score and the accuracy over the 18 depths, and the top-scored layer) and `manifest.json` (kind `node-options`).
The first option is `layers-select`'s default, so its rows must equal `benchmarks/results/layers_small/
correlations.csv`; the script checks that and says so.

    nice -n 10 python benchmarks/bench_layers_node_options.py --out benchmarks/results/layers_small_node_options

About 10 minutes on one core from an empty cache (training the two models), seconds per option after that.
"""

from __future__ import annotations

import argparse
import math
import tempfile
import time
from pathlib import Path

import torch

from depara._io import default_cache_dir, ensure_dir, read_csv, write_csv
from depara.results import write_manifest
from depara.train.demo import CACHE_VERSION, SCALES, prepare_digits_data
from depara.train.engine import train_domain
from depara.train.select import layers_select

ROOT = Path(__file__).resolve().parents[1]
LAYERS_SMALL = ROOT / "benchmarks" / "results" / "layers_small"
# (scalar, channel reduction, centre the features): layers-select's default (the original layer-selection code),
# the task bank's library default without and with centring, the paper's Taskonomy node, and l2 with |.| channels
OPTIONS = [("mean", "abs_mean", False), ("l2", "mean", False), ("l2", "mean", True), ("sum", "mean", True),
           ("l2", "abs_mean", False)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True, help="results folder (created)")
    ap.add_argument("--cache", default=None, help="cache folder (default $DEPARA_CACHE or ~/.cache/depara)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads (the committed run used 1)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    cfg = SCALES["small"]
    out = ensure_dir(args.out)
    # the same cache layout as `depara demo layers --scale small`, so either reuses the other's data and models
    root = ensure_dir(Path(args.cache or default_cache_dir()) / "layers_demo" / f"small-seed{args.seed}-{CACHE_VERSION}")
    data = prepare_digits_data(root, cfg, args.seed, progress=True)
    for domain, epochs in (("synthetic", cfg["source_epochs"]), ("real", cfg["target_epochs"])):
        train_domain(data, domain, root / f"run_{domain}", arch=cfg["arch"], width=cfg["width"],
                     image_size=cfg["size"], batch_size=cfg["batch_size"], lr=cfg["lr"], epochs=epochs,
                     seed=args.seed, progress=True)
    transfer = {f: LAYERS_SMALL / f"transfer_{f}.csv" for f in cfg["fractions"]}
    rows = []
    with tempfile.TemporaryDirectory(prefix="depara-node-options-") as tmp:
        for scalar, reduction, center in OPTIONS:
            res = layers_select(root / "run_synthetic", root / "run_real", data / "real" / "test",
                                Path(tmp) / f"{scalar}_{reduction}_{center}", lams=cfg["lams"], transfer=transfer,
                                scalar=scalar, channel_reduction=reduction, center=center, progress=False)
            for c in res["correlations"]:
                rows.append({"scalar": scalar, "channel_reduction": reduction, "center": center,
                             "fraction": c["accuracy"], "score": c["score"], "spearman": c["spearman"],
                             "kendall": c["kendall"], "top_layer": c["top_layer"]})
            print(f"{scalar}/{reduction}/center={center}: " + "; ".join(
                f"{c['accuracy']} {c['score']} rho {c['spearman']:.2f} top #{c['top_layer']}"
                for c in res["correlations"] if c["score"] == "S_lam1"))
    write_csv(out / "correlations_by_node_option.csv", rows)
    committed = {(r["accuracy"], r["score"]): float(r["spearman"]) for r in read_csv(LAYERS_SMALL / "correlations.csv")}
    default = {(r["fraction"], r["score"]): r["spearman"] for r in rows if r["scalar"] == OPTIONS[0][0]
               and r["channel_reduction"] == OPTIONS[0][1] and r["center"] == OPTIONS[0][2]}
    diff = max(abs(default[k] - committed[k]) for k in committed)
    same = math.isfinite(diff) and diff < 1e-9
    print(f"default option vs {LAYERS_SMALL.relative_to(ROOT)}/correlations.csv: max |Δ Spearman| = {diff:.2e} "
          f"({'reproduced' if same else 'NOT reproduced: other models than the committed run'})")
    write_manifest(out, "node-options", title="Node definitions on the layer-selection benchmark (synth-digits, small)",
                   summary="Spearman / Kendall of each DEPARA score with the transfer accuracy over 18 depths, "
                           "per node option (scalar / channel reduction / centring)",
                   settings={"options": [list(o) for o in OPTIONS], "seed": args.seed, "scale": "small",
                             "torch_threads": torch.get_num_threads(),
                             "transfer": {k: str(v.relative_to(ROOT)) for k, v in transfer.items()}},
                   tables={"correlations_by_node_option": "correlations_by_node_option.csv"},
                   extra={"default_reproduces_layers_small": bool(same), "max_abs_diff_vs_layers_small": diff,
                          "seconds": time.perf_counter() - t0})


if __name__ == "__main__":
    main()
