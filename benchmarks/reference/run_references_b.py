"""Run the authors' reference code of PACTran-Gaussian, ETran, NCTI and PED on fixed seeded inputs and write
the expected values, with their provenance, to tests/data/estimator_references_b.json.

The reference repositories are NOT part of depara and none of their code is copied here: each is given as a
git directory (a bare mirror or a checkout), its HEAD is extracted into a temporary folder, and its functions
are imported from there and called. Modules the references import at the top but that the called functions
never use are replaced by empty stand-ins (named in the JSON): TensorFlow and absl for pactran_metrics (only
its ``main`` reads files with them), and the torchvision model zoo ``models.group1`` imported by the
ETran/NCTI/PED ``utils.py`` (only their feature-extraction scripts use it).

    PYTHONPATH=src python benchmarks/reference/run_references_b.py \
        --pactran /work/.mirror/google-research+pactran_metrics/repo \
        --etran /work/.mirror/mgholamikn+ETran/repo \
        --ncti /work/.mirror/BUserName+NCTI/repo \
        --ped /work/.mirror/lixiaotong97+PED/repo

Inputs are ``classification_case`` of tests/_baselines_helpers.py (numpy PCG64 streams, stable across
versions); the runner needs numpy, scipy, scikit-learn and torch (the references import torch).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import io
import platform
import subprocess
import sys
import tarfile
import tempfile
import types
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))
from _baselines_helpers import general_features, scaled_case  # noqa: E402

from depara.io.files import write_json  # noqa: E402

# name -> kwargs of tests/_baselines_helpers.classification_case (plus an optional feature scale)
CASES = {
    "tall": dict(seed=0, n=300, d=24, n_classes=5),
    "wide": dict(seed=1, n=40, d=96, n_classes=4),
    "many": dict(seed=2, n=500, d=64, n_classes=10, shift=0.3),
    "many_small": dict(seed=2, n=500, d=64, n_classes=10, shift=0.3, scale=0.1),
    "big": dict(seed=7, n=800, d=128, n_classes=8),
}
GENERAL = dict(seed_offset=100, n=200, loc=0.5, scale=1.5)  # PED's "general dataset" features


def make_case(name: str) -> tuple[np.ndarray, np.ndarray]:
    return scaled_case(CASES[name])


def make_general(name: str) -> np.ndarray:
    return general_features(CASES[name], GENERAL)


def _stub(name: str, **attrs) -> types.ModuleType:
    mod = types.ModuleType(name)
    mod.__dict__.update(attrs)
    sys.modules[name] = mod
    return mod


def _extract(git_dir: str, dest: Path) -> str:
    commit = subprocess.run(["git", f"--git-dir={git_dir}", "rev-parse", "HEAD"], check=True,
                            capture_output=True, text=True).stdout.strip()
    data = subprocess.run(["git", f"--git-dir={git_dir}", "archive", "--format=tar", "HEAD"], check=True,
                          capture_output=True).stdout
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        # Plain files only: links (NCTI's ``data`` points to an absolute path) are not needed and not followed.
        tar.extractall(dest, members=[m for m in tar.getmembers() if m.isfile() or m.isdir()], filter="data")
    return commit


def _import(folder: Path, filename: str, alias: str):
    """Import ``folder/filename`` as module ``alias`` with ``folder`` first on sys.path (fresh utils/metrics)."""
    for name in ("utils", "metrics", "models", "models.group1"):
        sys.modules.pop(name, None)
    models = _stub("models")
    models.group1 = _stub("models.group1")
    sys.path.insert(0, str(folder))
    try:
        spec = importlib.util.spec_from_file_location(alias, folder / filename)
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
    finally:
        sys.path.remove(str(folder))
    return mod


def _quiet(fn, *args, **kwargs):
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()), \
            warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*args, **kwargs)


def run_pactran(folder: Path) -> dict:
    flags = _stub("absl.flags", DEFINE_string=lambda *a, **k: None, DEFINE_integer=lambda *a, **k: None,
                  FLAGS=None)
    _stub("absl", app=_stub("absl.app", run=None), flags=flags)
    v1 = _stub("tensorflow.compat.v1")
    _stub("tensorflow", compat=_stub("tensorflow.compat", v1=v1))
    mod = _import(folder, "compute_metrics.py", "pactran_compute_metrics")
    out = {}
    for case in ("tall", "wide", "many"):
        f, y = make_case(case)
        for lda in (1.0, 10.0, 0.1):
            for seed in range(5) if (case == "tall" and lda == 1.0) else (0,):
                np.random.seed(seed)
                returnv, _ = _quiet(mod.calculate_pac_gauss, f.copy(), y.copy(), lda_factor=lda)
                # returnv: [pac_gauss(s2s[0]), time, pac_opt, time, pac_gauss(s2s[1]), time, pac_opt, time]
                out[f"{case}/lda{lda:g}/seed{seed}"] = dict(
                    case=case, lda_factor=lda, seed=seed, s2_factors=[100.0 * lda, 10.0 * lda],
                    pac_gauss=[float(returnv[0][1]), float(returnv[4][1])], pac_opt=float(returnv[2][1]))
    return out


def run_etran(folder: Path) -> dict:
    mod = _import(folder, "metrics.py", "etran_metrics")
    out = {}
    for case in ("tall", "wide", "many"):
        f, y = make_case(case)
        entry = {"case": case, "lda": float(_quiet(mod.LDA_Score, f.copy(), y.copy()))}
        for pct in (0.5, 5.0):
            val = float(_quiet(mod.Energy_Score, f.copy(), pct, "bot"))
            entry[f"energy_pct{pct:g}"] = None if np.isnan(val) else val  # NaN: the reference kept no sample
        out[case] = entry
    return out


def run_ncti(folder: Path) -> dict:
    mod = _import(folder, "metrics.py", "ncti_metrics")
    out = {}
    for case in ("many", "many_small"):  # deterministic: scikit-learn picks its exact "full" PCA here
        f, y = make_case(case)
        seli, ncc, vc = _quiet(mod.NCTI_Score, f.copy(), y.copy())
        out[case] = dict(case=case, seli=float(seli), ncc=float(ncc), vc=float(vc))
    # "big" (800×128): scikit-learn's PCA(64) takes its randomized solver, seeded by the global NumPy state.
    f, y = make_case("big")
    runs = []
    for seed in range(5):
        np.random.seed(seed)
        runs.append([float(v) for v in _quiet(mod.NCTI_Score, f.copy(), y.copy())])
    arr = np.array(runs)
    out["big"] = dict(case="big", stochastic=True, seeds=list(range(5)), seli=arr[:, 0].tolist(),
                      ncc=arr[:, 1].tolist(), vc=arr[:, 2].tolist())
    return out


def run_ped(folder: Path) -> dict:
    mod = _import(folder, "metrics.py", "ped_metrics")
    out = {}
    for case in ("tall", "many", "wide"):
        f, y = make_case(case)
        g = make_general(case)
        moved, _, change = _quiet(mod.One_Step_PED, f.copy(), y.copy(), general_X=g, time_step=0.1,
                                  nsigma=0.6, constant=1.0)
        entry = dict(case=case, one_step=dict(position_change=float(change), sum=float(moved.sum()),
                                              abs_sum=float(np.abs(moved).sum()),
                                              corner=moved[:3, :3].tolist()))
        if case != "wide":  # N < D: the reference's LogME drops zero eigenvalues (thuml/LogME issue #23)
            for nsigma in (0.6, 2.0):
                entry[f"logme_nsigma{nsigma:g}"] = float(_quiet(
                    mod.PED_Score, f.copy(), y.copy(), general_X=g, exit_ratio=0.5, time_step=0.1,
                    type="LOGME", nsigma=nsigma, constant=1.0))
            entry["sfda_nsigma0.6"] = float(_quiet(  # for the SFDA estimator of section (a), once merged
                mod.PED_Score, f.copy(), y.copy(), general_X=g, exit_ratio=0.5, time_step=0.1, type="SFDA",
                nsigma=0.6, constant=1.0))
        out[case] = entry
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pactran", required=True, help="git dir of google-research/pactran_metrics")
    parser.add_argument("--etran", required=True, help="git dir of mgholamikn/ETran")
    parser.add_argument("--ncti", required=True, help="git dir of BUserName/NCTI")
    parser.add_argument("--ped", required=True, help="git dir of lixiaotong97/PED")
    parser.add_argument("--out", default=str(ROOT / "tests" / "data" / "estimator_references_b.json"))
    args = parser.parse_args()

    import scipy
    import sklearn
    import torch

    result = {
        "generated_by": "benchmarks/reference/run_references_b.py",
        "inputs": {"generator": "tests/_baselines_helpers.py:classification_case (features × scale)",
                   "cases": CASES,
                   "ped_general_features": dict(GENERAL, formula="loc + scale * default_rng(seed + seed_offset)"
                                                ".standard_normal((n, d))")},
        "environment": {"python": platform.python_version(), "numpy": np.__version__, "scipy": scipy.__version__,
                        "scikit-learn": sklearn.__version__, "torch": torch.__version__},
        "references": {},
    }
    specs = [
        ("pactran", "google-research/pactran_metrics", args.pactran, "compute_metrics.py",
         "calculate_pac_gauss(features, labels, lda_factor) after np.random.seed(seed); pac_gauss[0] is the "
         "reported metric (s2 = 100·lda/D), pac_gauss[1] uses s2 = 10·lda/D",
         ["tensorflow.compat.v1", "absl.app", "absl.flags"], run_pactran),
        ("etran", "mgholamikn/ETran", args.etran, "metrics.py",
         "LDA_Score(X, y); Energy_Score(X, percent, 'bot') (null: the reference returned NaN, no sample kept)",
         ["models.group1"], run_etran),
        ("ncti", "BUserName/NCTI", args.ncti, "metrics.py",
         "NCTI_Score(X, y) -> (seli = all_lowfeat_nuc, ncc = sfda_score, vc = log(class_pred_nuc)); 'big' is "
         "run after np.random.seed(s) for s in seeds (randomized PCA)", ["models.group1"], run_ncti),
        ("ped", "lixiaotong97/PED", args.ped, "metrics.py",
         "One_Step_PED(X, y, general_X, time_step=0.1, nsigma=0.6, constant=1.0) summaries; PED_Score(X, y, "
         "general_X, exit_ratio=0.5, time_step=0.1, type=..., nsigma=..., constant=1.0)", ["models.group1"],
         run_ped),
    ]
    with tempfile.TemporaryDirectory() as tmp:
        for key, repo, git_dir, path, what, stubs, runner in specs:
            folder = Path(tmp) / key
            folder.mkdir()
            commit = _extract(git_dir, folder)
            print(f"{key}: {repo}@{commit}", flush=True)
            result["references"][key] = {"repository": repo, "commit": commit, "file": path, "call": what,
                                         "stubbed_imports": stubs, "values": runner(folder)}
    write_json(args.out, result)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
