"""Time every estimator in ``depara.estimators.baselines`` on one synthetic task, as a ratio to LogME's time in the same run.

Default task: N = 5,000 samples, D = 2,048 features, C = 100 classes (seeded). The features are a 64-dimensional
class-structured latent (class centres plus within-class noise of five times their spread, variance ∝ 1/k along
latent axis k) mapped to D dimensions by a fixed random matrix, plus isotropic noise of standard deviation 0.05,
so that the spectrum decays as real penultimate-layer features do (a PCA keeping 80 % of the variance, as NLEEP
does, keeps a few dozen dimensions, printed as ``nleep_pca_dims``; NLEEP's cost grows with its square). LEEP gets softmax probabilities of
a 1,000-class "source head" (a fixed random linear map of the latent), NCE their argmax; RSA and linear CKA
compare the features with a second representation of the same samples (another random map of the latent).

Estimators are discovered by name from ``depara.estimators.baselines.__all__`` (every callable there: the existing ones, SFDA,
NLEEP, PARC, GBC and those another helper adds, e.g. PACTran, ETran, NCTI, PED), and called with arguments chosen
by the name of their first two parameters (``features``/``labels``, ``source_probs``, ``source_labels``,
``features_a``/``features_b``); one with another signature, or one that returns something other than a number (a components dict, moved
features), is reported as skipped. Each runs once; one that took
under 2 s is rerun up to 3 times and its best time kept. LogME is timed first and last; the ratio divides by the
best of those LogME times. Prints a table and writes ``benchmarks/results/estimators_speed.json``.

    OMP_NUM_THREADS=1 PYTHONPATH=src .venv/bin/python benchmarks/bench_estimators_speed.py \\
        [--n 5000 --d 2048 --classes 100 --only sfda,gbc --skip nleep]
"""

from __future__ import annotations

import argparse
import inspect
import os
import platform
import subprocess
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

from depara.estimators import baselines as B
from depara.io.files import write_json

LATENT = 64
SOURCE_CLASSES = 1000


def make_task(n: int, d: int, n_classes: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Seeded synthetic features, labels, source-head probabilities and a second representation."""
    rng = np.random.default_rng(seed)
    labels = rng.permutation(np.arange(n) % n_classes)
    scale = np.arange(1, LATENT + 1) ** -0.5
    latent = (rng.standard_normal((n_classes, LATENT)) * scale)[labels] + 5.0 * rng.standard_normal((n, LATENT)) * scale
    features = latent @ (rng.standard_normal((LATENT, d)) / np.sqrt(LATENT)) + 0.05 * rng.standard_normal((n, d))
    logits = latent @ rng.standard_normal((LATENT, SOURCE_CLASSES))
    logits -= logits.max(axis=1, keepdims=True)
    probs = np.exp(logits)
    probs /= probs.sum(axis=1, keepdims=True)
    other = np.tanh(latent @ rng.standard_normal((LATENT, 512))) + 0.1 * rng.standard_normal((n, 512))
    return {"features": features, "labels": labels, "source_probs": probs, "source_labels": probs.argmax(axis=1),
            "other": other}


def call_for(fn: Callable, task: dict[str, np.ndarray]) -> Callable[[], float] | None:
    """A zero-argument call of ``fn`` on ``task`` chosen by its parameter names, or None if unknown."""
    params = [p.name for p in inspect.signature(fn).parameters.values()
              if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)][:2]
    first = {"features": task["features"], "source_probs": task["source_probs"],
             "source_labels": task["source_labels"], "features_a": task["features"]}
    second = {"labels": task["labels"], "features_b": task["other"]}
    if len(params) < 2 or params[0] not in first or params[1] not in second:
        return None
    a, b = first[params[0]], second[params[1]]
    return lambda: fn(a, b)


class NotAScore(Exception):
    """The function returned something other than one number (a components dict, moved features, ...)."""


def timed(call: Callable[[], float], quick: float = 2.0, repeat: int = 3) -> tuple[float, float]:
    t0 = time.perf_counter()
    out = call()
    best = time.perf_counter() - t0
    if isinstance(out, bool) or not isinstance(out, (int, float, np.integer, np.floating)):
        raise NotAScore(type(out).__name__)
    value = float(out)
    if best < quick:
        for _ in range(repeat - 1):
            t0 = time.perf_counter()
            call()
            best = min(best, time.perf_counter() - t0)
    return best, value


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=5000)
    ap.add_argument("--d", type=int, default=2048)
    ap.add_argument("--classes", type=int, default=100)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--only", default="", help="comma-separated estimator names (default: all)")
    ap.add_argument("--skip", default="", help="comma-separated estimator names to leave out")
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "estimators_speed.json")
    args = ap.parse_args()

    only = {s for s in args.only.split(",") if s}
    skip = {s for s in args.skip.split(",") if s}
    names = [n for n in B.__all__ if callable(getattr(B, n, None)) and n != "logme"]
    names = [n for n in names if (not only or n in only) and n not in skip]
    task = make_task(args.n, args.d, args.classes, args.seed)
    load_before = os.getloadavg()

    logme_call = call_for(B.logme, task)
    logme_times = []
    t, logme_value = timed(logme_call)
    logme_times.append(t)
    rows: list[dict[str, Any]] = []
    for name in names:
        call = call_for(getattr(B, name), task)
        if call is None:
            rows.append({"name": name, "skipped": "signature not recognised"})
            print(f"{name:16s} skipped (signature)", flush=True)
            continue
        try:
            seconds, value = timed(call)
        except NotAScore as exc:  # e.g. etran_components (dict), ped_features (array): helpers, not scores
            rows.append({"name": name, "skipped": f"returns {exc}, not a score"})
            print(f"{name:16s} skipped (returns {exc})", flush=True)
            continue
        rows.append({"name": name, "seconds": seconds, "value": value})
        print(f"{name:16s} {seconds:9.3f} s  value {value: .6g}", flush=True)
    t, _ = timed(logme_call)
    logme_times.append(t)
    ref = min(logme_times)
    for row in rows:
        if "seconds" in row:
            row["ratio_to_logme"] = row["seconds"] / ref
    rows.insert(0, {"name": "logme", "seconds": ref, "value": logme_value, "ratio_to_logme": 1.0,
                    "seconds_first_and_last": logme_times})

    pca_dims = None
    if "nleep" in names:
        from sklearn.decomposition import PCA
        pca_dims = int(PCA(n_components=0.8).fit(task["features"]).n_components_)

    print(f"\nN = {args.n}, D = {args.d}, C = {args.classes}, seed {args.seed}; LogME {ref:.3f} s "
          f"(first {logme_times[0]:.3f} s, last {logme_times[1]:.3f} s); load average before "
          f"{load_before[0]:.2f}, after {os.getloadavg()[0]:.2f}; OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}")
    if pca_dims is not None:
        print(f"NLEEP's PCA (80 % energy) keeps {pca_dims} dimensions; its mixture has {5 * args.classes} components")
    print(f"{'estimator':16s} {'seconds':>10s} {'x LogME':>9s}")
    for row in sorted(rows, key=lambda r: r.get("seconds", float("inf"))):
        if "seconds" in row:
            print(f"{row['name']:16s} {row['seconds']:10.3f} {row['ratio_to_logme']:9.2f}")
        else:
            print(f"{row['name']:16s} {'-':>10s} {'-':>9s}  ({row['skipped']})")

    uptime = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    write_json(args.out, {
        "command": "OMP_NUM_THREADS=1 PYTHONPATH=src .venv/bin/python benchmarks/bench_estimators_speed.py "
                   f"--n {args.n} --d {args.d} --classes {args.classes} --seed {args.seed}"
                   + (f" --only {args.only}" if args.only else "") + (f" --skip {args.skip}" if args.skip else ""),
        "n": args.n, "d": args.d, "classes": args.classes, "seed": args.seed, "nleep_pca_dims": pca_dims,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "numpy": np.__version__,
                    "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"), "load_average_before": load_before,
                    "uptime_after": uptime},
        "estimators": rows,
    })
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
