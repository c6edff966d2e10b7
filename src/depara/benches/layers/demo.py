"""`depara demo layers`: the whole syn2real layer-selection experiment on the offline synthetic→real digits.

Chain: synth-digits → split 7:2:1 → shrink the real train split (1/10, 1/100) → train a source model on
``synthetic`` and a target-domain model on ``real`` → layer-wise transfer at every depth from the synthetic
source to the shrunk real data → DEPARA per layer on real probes → correlations, figure, manifest.
Expensive steps are cached under ``cache_dir`` (default ``$DEPARA_CACHE`` or ``~/.cache/depara``), each in its
own folder; a second run reuses them, and an entry that fails to load is rebuilt.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path
from typing import Callable

from ...io.files import default_cache_dir, ensure_dir, read_csv, write_csv
from ...errors import DeparaError
from ...report.manifest import read_manifest, write_manifest

SCALES: dict[str, dict] = {
    # the whole chain in well under a minute on one core: checks that everything runs, not a result to read
    "tiny": dict(synthetic_per_class=30, real_per_class=30, size=32, arch="narrow_vgg11_bn", width=0.125,
                 source_epochs=4, target_epochs=4, transfer_epochs={"tenth": 3}, fractions=("tenth",),
                 batch_size=32, lr=0.05, eval_every={"tenth": 1}, transfer_seeds=1, lams=(1.0, 10.0)),
    # depara demo: about a minute on 2 cores; VGG11-bn at 1/4 width (8 conv + 3 FC, depths #1..#10), a source
    # trained to ~95 % val accuracy, the 1/10 fraction only (127 real train images, 120 SGD steps per depth),
    # accuracies averaged over 2 transfer seeds
    "demo": dict(synthetic_per_class=300, real_per_class=None, size=32, arch="narrow_vgg11_bn", width=0.25,
                 source_epochs=15, target_epochs=8, transfer_epochs={"tenth": 30}, fractions=("tenth",),
                 batch_size=32, lr=0.05, eval_every={"tenth": 3}, transfer_seeds=2, lams=(1.0, 10.0)),
    # about 20-30 min on one core: results worth reading
    # VGG19-bn at 1/4 width: 16 conv + 3 FC layers, transfer depths #1..#18 as in the paper
    "small": dict(synthetic_per_class=400, real_per_class=None, size=32, arch="narrow_vgg19_bn", width=0.25,
                  source_epochs=20, target_epochs=20, fractions=("tenth", "hundredth"),
                  # ~80 and 150 SGD steps (126 and 10 train images); accuracies averaged over 3 transfer seeds
                  transfer_epochs={"tenth": 40, "hundredth": 150}, eval_every={"tenth": 4, "hundredth": 15},
                  transfer_seeds=3, batch_size=64, lr=0.02, lams=(1.0, 10.0)),
}
CACHE_VERSION = "v1"


def _cached(path: Path, build: Callable[[], object], what: str):
    """Run ``build`` (which resumes from / reuses ``path``); if it fails on a corrupt entry, wipe it and rebuild
    once."""
    try:
        return build()
    except (DeparaError, RuntimeError, OSError, KeyError, ValueError) as exc:
        if not path.exists():
            raise
        print(f"cache entry {path} ({what}) unusable ({exc}); rebuilding")
        shutil.rmtree(path, ignore_errors=True)
        return build()


def prepare_digits_data(root: Path, cfg: dict, seed: int, progress: bool) -> Path:
    """synth-digits + split + shrink under ``root``; returns the data folder (``root/split``)."""
    from ..data import make_synth_digits, shrink_domain, split_domain
    from ..data.shrink import fraction_ratio

    digits, data = root / "digits", root / "split"
    if not ((digits / "synthetic").is_dir() and (digits / "real").is_dir()):
        shutil.rmtree(digits, ignore_errors=True)
        make_synth_digits(digits, synthetic_per_class=cfg["synthetic_per_class"],
                          real_per_class=cfg["real_per_class"], size=cfg["size"], seed=seed, progress=progress)
    for domain in ("synthetic", "real"):
        if not (data / domain).is_dir():
            split_domain(digits / domain, data, ratios="7:2:1", seed=seed, verify=False)
    for fraction in cfg["fractions"]:
        if not (data / f"real_{fraction}").is_dir():
            shrink_domain(data / "real", data, ratio=fraction_ratio(fraction), seed=seed)
    return data


def average_over_seeds(runs: list[list[dict]], first_seed: int) -> list[dict]:
    """One row per depth: mean and standard deviation over transfer seeds of val/test accuracy, and each seed's."""
    import numpy as np

    out = []
    for rows in zip(*[sorted(r, key=lambda x: int(x["depth"])) for r in runs]):
        test = np.array([float(r["test_acc"]) for r in rows])
        val = np.array([float(r["val_acc"]) for r in rows])
        row = {"depth": int(rows[0]["depth"]), "layer": rows[0]["layer"], "kind": rows[0]["kind"],
               "val_acc": val.mean(), "test_acc": test.mean(), "test_acc_std": test.std(ddof=1) if len(rows) > 1
               else 0.0, "n_seeds": len(rows)}
        for i, r in enumerate(rows):
            row[f"test_acc_seed{first_seed + i}"] = float(r["test_acc"])
        out.append(row)
    return out


def run_layers_demo(scale: str, out: str | os.PathLike, *, seed: int = 0, cache_dir: str | os.PathLike | None = None,
                    progress: bool = True, peers_out: str | os.PathLike | None = None) -> dict:
    """Run the layer-selection experiment on synth-digits at ``scale`` (``tiny`` | ``demo`` | ``small``) into ``out``.

    Returns ``{"out", "summary", "pick", "correlations", "seconds"}``; ``out`` holds ``layer_scores.csv``,
    ``correlations.csv``, ``transfer_<fraction>.csv`` (accuracy per depth, mean over the transfer seeds), the training
    logs, ``layers.png`` and ``manifest.json``
    (kind ``layers-select``). With ``peers_out``, LogME, H-score, TransRate, RSA and CKA also score every layer
    beside DEPARA (:func:`depara.benches.layers.peers.score_layers_with_peers`) into that folder (manifest kind
    ``score``); the result then has ``"peers"`` (its summary line).
    """
    import torch

    from .engine import train_domain, transfer_layers
    from .select import layers_select

    if scale not in SCALES:
        raise DeparaError(f"scale '{scale}': expected one of {', '.join(SCALES)}")
    cfg = SCALES[scale]
    t0 = time.perf_counter()
    out = ensure_dir(out)
    root = ensure_dir(Path(cache_dir or default_cache_dir()) / "layers_demo" / f"{scale}-seed{seed}-{CACHE_VERSION}")
    threads = torch.get_num_threads()
    data = _cached(root / "split", lambda: prepare_digits_data(root, cfg, seed, progress), "data")
    common = dict(arch=cfg["arch"], width=cfg["width"], image_size=cfg["size"], batch_size=cfg["batch_size"],
                  lr=cfg["lr"], seed=seed, progress=progress)
    runs = {}
    for domain, epochs in (("synthetic", cfg["source_epochs"]), ("real", cfg["target_epochs"])):
        run = root / f"run_{domain}"
        runs[domain] = _cached(run, lambda d=domain, r=run, e=epochs: train_domain(data, d, r, epochs=e, **common),
                               f"{domain} model")
    transfer_csvs = {}
    for fraction in cfg["fractions"]:
        per_seed = []
        for s in range(seed, seed + cfg["transfer_seeds"]):
            tdir = root / f"transfer_{fraction}_seed{s}"
            per_seed.append(_cached(tdir, lambda f=fraction, t=tdir, s=s: transfer_layers(
                data, root / "run_synthetic", t, target="real", fraction=f, epochs=cfg["transfer_epochs"][f],
                batch_size=cfg["batch_size"], lr=cfg["lr"], eval_every=cfg["eval_every"][f], seed=s,
                progress=progress), f"transfer to real_{fraction}, seed {s}"))
        transfer_csvs[fraction] = write_csv(out / f"transfer_{fraction}.csv", average_over_seeds(per_seed, seed))
    result = layers_select(root / "run_synthetic", root / "run_real", data / "real" / "test", out,
                           lams=cfg["lams"], transfer=transfer_csvs, progress=progress,
                           title=f"synth-digits ({scale}): synthetic source → real target, DEPARA per layer")
    tables = {"layer_scores": "layer_scores.csv"}
    if result["correlations"]:
        tables["correlations"] = "correlations.csv"
    for fraction in transfer_csvs:
        tables[f"transfer_{fraction}"] = f"transfer_{fraction}.csv"
    for domain in runs:
        write_csv(out / f"train_{domain}_log.csv", read_csv(root / f"run_{domain}" / "log.csv"))
        tables[f"train_{domain}_log"] = f"train_{domain}_log.csv"
    peers = None
    if peers_out is not None:
        from .peers import score_layers_with_peers

        peers = score_layers_with_peers(
            root / "run_synthetic", root / "run_real", data / "real" / "test", transfer_csvs,
            target_data={f: data / f"real_{f}" for f in transfer_csvs}, layer_scores=out / "layer_scores.csv",
            out=peers_out, progress=progress, settings={"scale": scale, "seed": seed, "cache": str(root)},
            title=f"synth-digits ({scale}): peer estimators vs DEPARA per layer")["summary"]
    seconds = time.perf_counter() - t0
    manifest = read_manifest(out)
    write_manifest(out, "layers-select", title=manifest["title"], summary=manifest["summary"],
                   settings={**manifest["settings"], "scale": scale, "seed": seed, "config": cfg,
                             "torch_threads": threads, "cache": str(root)},
                   tables=tables, figures=manifest["figures"],
                   extra={**manifest["extra"], "seconds": seconds,
                          "source_val_acc": runs["synthetic"]["best_val_acc"],
                          "target_val_acc": runs["real"]["best_val_acc"]})
    res = {"out": str(out), "summary": result["summary"], "pick": result["pick"],
           "correlations": result["correlations"], "seconds": seconds}
    if peers is not None:
        res["peers"] = peers
    return res
