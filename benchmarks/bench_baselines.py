"""Time each depara.estimators.baselines estimator on the same features (default N = 5,000, D = 2,048, 100 classes,
1,000 source classes for LEEP/NCE) beside the reference implementation timed in the same run.

References are loaded from files under ``--reference-dir`` (default /tmp/ref), when present:

* ``logme_repo/LogME.py``, ``LEEP.py``, ``NCE.py``: thuml/LogME (``git show HEAD:<file>``);
* ``tllib_ranking/{logme,leep,nce,hscore,transrate}.py``: ``tllib/ranking`` of thuml/Transfer-Learning-Library.

A missing reference is reported as "-" (nothing fails). If numba is not installed, an identity ``njit`` stub is
registered so the references run as plain numpy (their numba-compiled loops are then slower than with numba;
the bulk of their time is BLAS/LAPACK either way). RSA is compared with scipy (pdist + spearmanr), CKA with the
N×N Gram (HSIC) formula. Prints one table; ``--out`` also writes it as JSON.

    nice -n 10 .venv/bin/python benchmarks/bench_baselines.py [--n 5000 --d 2048 --classes 100]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import time
import types
import warnings
from pathlib import Path
from typing import Any, Callable

import numpy as np

from depara.estimators import baselines as B


def _load(path: Path, name: str):
    if not path.is_file():
        return None
    if "numba" not in sys.modules and importlib.util.find_spec("numba") is None:
        stub = types.ModuleType("numba")
        stub.njit = lambda f=None, **kw: f if f is not None else (lambda g: g)
        sys.modules["numba"] = stub
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _timed(fn: Callable[[], float], repeat: int) -> tuple[float, float]:
    best, value = float("inf"), float("nan")
    for _ in range(repeat):
        t0 = time.perf_counter()
        value = float(fn())
        best = min(best, time.perf_counter() - t0)
    return best, value


def make_inputs(n: int, d: int, n_classes: int, n_source: int, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = rng.permutation(np.arange(n) % n_classes)
    features = rng.standard_normal((n, d)) + 0.3 * rng.standard_normal((n_classes, d))[labels]
    logits = rng.standard_normal((n, n_source)) + 2.0 * rng.standard_normal((n_classes, n_source))[labels]
    logits -= logits.max(axis=1, keepdims=True)
    probs = np.exp(logits)
    probs /= probs.sum(axis=1, keepdims=True)
    target = features[:, : d // 4] @ rng.standard_normal((d // 4, 64)) + rng.standard_normal((n, 64))
    return {"features": features, "labels": labels, "probs": probs, "source_labels": probs.argmax(axis=1),
            "target": target}


def references(ref_dir: Path) -> dict[str, tuple[str, Callable]]:
    """method -> (reference label, callable(inputs) -> float), for the references found."""
    out: dict[str, tuple[str, Callable]] = {}
    logme_repo = _load(ref_dir / "logme_repo" / "LogME.py", "ref_thuml_logme")
    if logme_repo is not None:
        out["logme"] = ("thuml/LogME LogME().fit", lambda x: logme_repo.LogME().fit(x["features"], x["labels"]))
    leep_repo = _load(ref_dir / "logme_repo" / "LEEP.py", "ref_thuml_leep")
    if leep_repo is not None:
        out["leep"] = ("thuml/LogME LEEP", lambda x: leep_repo.LEEP(x["probs"], x["labels"]))
    nce_repo = _load(ref_dir / "logme_repo" / "NCE.py", "ref_thuml_nce")
    if nce_repo is not None:
        out["nce"] = ("thuml/LogME NCE", lambda x: nce_repo.NCE(x["source_labels"], x["labels"]))
    tl = ref_dir / "tllib_ranking"
    hscore = _load(tl / "hscore.py", "ref_tllib_hscore")
    if hscore is not None:
        out["hscore"] = ("tllib h_score", lambda x: hscore.h_score(x["features"], x["labels"]))
    transrate = _load(tl / "transrate.py", "ref_tllib_transrate")
    if transrate is not None:
        out["transrate"] = ("tllib transrate", lambda x: transrate.transrate(x["features"], x["labels"]))
    tllib_logme = _load(tl / "logme.py", "ref_tllib_logme")
    if tllib_logme is not None:
        out["logme (ICML route)"] = ("tllib log_maximum_evidence",
                                     lambda x: tllib_logme.log_maximum_evidence(x["features"], x["labels"]))
    return out


def _scipy_rsa(x):
    from scipy.spatial.distance import pdist
    from scipy.stats import spearmanr

    return spearmanr(pdist(x["features"], "correlation"), pdist(x["target"], "correlation")).statistic


def _gram_cka(x):
    a = x["features"] - x["features"].mean(0)
    b = x["target"] - x["target"].mean(0)
    k, l_ = a @ a.T, b @ b.T
    return np.sum(k * l_) / np.sqrt(np.sum(k * k) * np.sum(l_ * l_))


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=5000)
    ap.add_argument("--d", type=int, default=2048)
    ap.add_argument("--classes", type=int, default=100)
    ap.add_argument("--source-classes", type=int, default=1000)
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--reference-dir", type=Path, default=Path("/tmp/ref"))
    ap.add_argument("--skip-reference", action="append", default=[], help="method whose reference not to run")
    ap.add_argument("--out", type=Path, default=None, help="also write the table as JSON")
    ap.add_argument("--threads", type=int, default=1, help="BLAS threads for both sides (threadpoolctl)")
    args = ap.parse_args(argv)
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=args.threads):
        return _run(args)


def _run(args: argparse.Namespace) -> list[dict[str, Any]]:

    warnings.filterwarnings("ignore", category=RuntimeWarning)  # the references' NaN-division warnings
    x = make_inputs(args.n, args.d, args.classes, args.source_classes)
    ours: dict[str, Callable] = {
        "logme": lambda: B.logme(x["features"], x["labels"]),
        "leep": lambda: B.leep(x["probs"], x["labels"]),
        "nce": lambda: B.nce(x["source_labels"], x["labels"]),
        "hscore": lambda: B.h_score(x["features"], x["labels"]),
        "transrate": lambda: B.transrate(x["features"], x["labels"]),
        "rsa": lambda: B.rsa(x["features"], x["target"]),
        "cka": lambda: B.linear_cka(x["features"], x["target"]),
    }
    refs = {k: v for k, v in references(args.reference_dir).items() if k not in args.skip_reference}
    refs["rsa"] = ("scipy pdist+spearmanr", _scipy_rsa)
    refs["cka"] = ("N×N Gram (HSIC) formula", _gram_cka)
    print(f"N={args.n} D={args.d} classes={args.classes} source classes={args.source_classes} "
          f"BLAS threads={args.threads}; "
          f"references from {args.reference_dir}" + ("" if refs.keys() - {"rsa", "cka"} else " (none found)"))
    # Warm up every code path (imports, first LAPACK calls) on a small input so timings are steady-state.
    small = make_inputs(200, 32, 5, 20, seed=1)
    big, x = x, small
    for fn in ours.values():
        fn()
    for _, ref_fn in refs.values():
        ref_fn(small)
    x = big
    rows = []
    for method, fn in ours.items():
        t_ours, v_ours = _timed(fn, args.repeat)
        row: dict[str, Any] = {"method": method, "depara_s": t_ours, "value": v_ours}
        for key in [k for k in refs if k == method or k.startswith(method + " ")]:
            label, ref_fn = refs[key]
            t_ref, v_ref = _timed(lambda: ref_fn(x), args.repeat)
            row = {**row, "reference": label, "reference_s": t_ref, "reference_value": v_ref,
                   "speedup": t_ref / t_ours, "rel_diff": abs(v_ours - v_ref) / max(abs(v_ref), 1e-300)}
            rows.append(row)
            print(f"{key:<20} depara {t_ours:8.3f}s   {label:<28} {t_ref:8.3f}s   x{t_ref / t_ours:6.1f}   "
                  f"value {v_ours:.8g} vs {v_ref:.8g} (rel diff {row['rel_diff']:.1e})", flush=True)
            row = {"method": method, "depara_s": t_ours, "value": v_ours}
        if not any(r["method"] == method for r in rows):
            rows.append(row)
            print(f"{method:<20} depara {t_ours:8.3f}s   reference not found", flush=True)
    if args.out is not None:
        args.out.write_text(json.dumps({"settings": vars(args) | {"reference_dir": str(args.reference_dir),
                                                                    "out": str(args.out)}, "rows": rows}, indent=2))
    return rows


if __name__ == "__main__":
    main()
