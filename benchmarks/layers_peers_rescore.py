"""Rescore the synthetic→real layer bench's peers and baselines against the committed run's measured accuracies.

    DEPARA_CACHE=DIR depara demo layers --scale small --out /tmp/x --peers-out /tmp/y   # stop it once both models
                                                                                         # are trained (run_real/)
    python benchmarks/layers_peers_rescore.py --cache DIR/layers_demo/small-seed0-v1 \
        [--out benchmarks/results/layers_small_peers]

`depara demo layers --scale small` retrains the source and target models from an empty cache (about 10 minutes)
and then reruns 108 transfers (≈ 80 s each at load 8). This script skips the transfers: it checks that the cached
models are the committed run's (their training logs equal ``benchmarks/results/layers_small/train_*_log.csv``,
column by column except the seconds) and calls
:func:`depara.benches.layers.peers.score_layers_with_peers` — the call the demo makes once its transfers are cached —
with the committed ``transfer_<fraction>.csv`` and ``layer_scores.csv``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
RUN = ROOT / "benchmarks" / "results" / "layers_small"


def same_log(a: Path, b: Path) -> bool:
    """Two training logs equal in every column but the wall seconds."""
    from depara.io.files import read_csv

    def rows(p):
        return [{k: v for k, v in r.items() if k != "seconds"} for r in read_csv(p)]
    return rows(a) == rows(b)


def main(argv=None) -> int:
    import torch

    from depara.benches.layers.peers import score_layers_with_peers

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cache", required=True, help="the demo's cache run folder (…/layers_demo/small-seed0-v1)")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "layers_small_peers"))
    args = ap.parse_args(argv)
    root = Path(args.cache)
    for domain in ("synthetic", "real"):
        if not same_log(root / f"run_{domain}" / "log.csv", RUN / f"train_{domain}_log.csv"):
            raise SystemExit(f"{root / f'run_{domain}'}: not the committed run's model (training logs differ)")
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    res = score_layers_with_peers(
        root / "run_synthetic", root / "run_real", root / "split" / "real" / "test",
        {f: RUN / f"transfer_{f}.csv" for f in ("tenth", "hundredth")},
        target_data={f: root / "split" / f"real_{f}" for f in ("tenth", "hundredth")},
        layer_scores=RUN / "layer_scores.csv", out=args.out,
        settings={"scale": "small", "seed": 0, "cache": str(root),
                  "truth": "transfer_<fraction>.csv of benchmarks/results/layers_small (the committed run); the "
                           "source and target models were retrained from an empty cache and are bit-identical to "
                           "that run (training losses equal per epoch; LogME, H-score, RSA and CKA per layer equal "
                           "the previous peers run exactly)",
                  "command": "python benchmarks/layers_peers_rescore.py --cache DIR"},
        title="synth-digits (small): peer estimators vs DEPARA per layer")
    print(res["summary"], f"({time.perf_counter() - t0:.1f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
