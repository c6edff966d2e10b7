"""Run the authors' code of SFDA, NLEEP, PARC and GBC on fixed seeded inputs; write the expected values.

The reference code is never copied into depara: this script imports it from the places given on the command line
and records where it came from (repository@commit, file, function, parameters, seed) beside every value in
``tests/data/estimator_references_a.json``, which ``tests/test_estimators_sfda_nleep_parc_gbc.py`` compares depara with.

References
----------
* ``--sfda-repo``: a git directory of TencentARC/SFDA (``fetch github:TencentARC/SFDA``); its HEAD tree is
  extracted to a temporary folder and ``metrics.py`` is imported (``SFDA_Score``, ``NLEEP``, ``PARC_Score``).
  ``metrics.py`` uses ``sklearn``, ``scipy`` and ``warnings`` without importing them; the script supplies those
  module names. ``utils.py`` imports the repository's torchvision model zoo, irrelevant to ``iterative_A``: a
  stub ``models.group1`` module stands in for it.
* ``--parc-repo``: a git directory of dbolya/parc; ``methods.PARC`` is imported (stub ``datasets`` module, the
  data loaders, and a stub ``pandas`` if pandas is missing; ``constants.num_classes`` gets an entry per case).
* ``--google-dir``: a folder holding ``stable_transfer/transferability/{gbc,leep,nleep}.py`` of
  google-research/google-research as stored at the commits named by ``GOOGLE_FILES`` (read with the search
  tool's ``read_file``; the whole repository is too large to fetch). ``transfer_experiment`` (the experiment
  harness they import for a decorator) is replaced by a stub whose decorator returns the function unchanged.
  Needs TensorFlow; ``--tf-path`` appends a folder with it (e.g. ``pip install --target /tmp/est-tf
  tensorflow-cpu``) to ``sys.path`` *after* the environment's own packages.

Usage (from the repository root)::

    OMP_NUM_THREADS=1 PYTHONPATH=src .venv/bin/python benchmarks/reference/run_references_a.py \\
        --sfda-repo /work/.mirror/TencentARC+SFDA/repo --parc-repo /work/.mirror/dbolya+parc/repo \\
        --google-dir /tmp/est-refs/google-research --tf-path /tmp/est-tf \\
        --out tests/data/estimator_references_a.json

It also prints depara's value beside each reference value (a check, not stored).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import importlib
import io
import os
import platform
import subprocess
import sys
import tarfile
import tempfile
import types
from pathlib import Path

import numpy as np

GOOGLE_FILES = {  # file -> commit at which its text was read
    "stable_transfer/transferability/gbc.py": "1d4d2f1aa6f2883a790d2ae46a6ee8ab150d8f31",
    "stable_transfer/transferability/leep.py": "1d4d2f1aa6f2883a790d2ae46a6ee8ab150d8f31",
    "stable_transfer/transferability/nleep.py": "4963f325fe8bf41c69aeb2717d0ef408f623500e",
}

# name -> (seed, N, D, C, shift): class-dependent means so every estimator sees signal; balanced labels.
CASES = {
    "tall": (0, 300, 24, 5, 0.7),
    "many": (1, 500, 64, 10, 0.3),
    "wide": (2, 60, 200, 4, 0.7),   # D >> N
    "two": (3, 200, 40, 2, 0.5),
    "c37": (4, 370, 48, 37, 0.6),   # many classes: the PARC round-off ties show
}
NLEEP_SEEDS = list(range(10))


def make_case(name: str) -> tuple[np.ndarray, np.ndarray]:
    """The fixed input of case ``name`` (numpy PCG64 streams are stable across versions)."""
    seed, n, d, c, shift = CASES[name]
    rng = np.random.default_rng(seed)
    labels = rng.permutation(np.arange(n) % c)
    centres = rng.standard_normal((c, d))
    features = rng.standard_normal((n, d)) + shift * centres[labels]
    return features, labels


def case_sha256(features: np.ndarray, labels: np.ndarray) -> str:
    """Fingerprint of one input (float64 features, int64 labels, C order), so a test can prove it rebuilt it."""
    return hashlib.sha256(np.ascontiguousarray(features, dtype=np.float64).tobytes()
                          + np.ascontiguousarray(labels, dtype=np.int64).tobytes()).hexdigest()


def _git_tree(git_dir: Path, dest: Path) -> str:
    commit = subprocess.run(["git", "--git-dir", str(git_dir), "rev-parse", "HEAD"], check=True,
                            capture_output=True, text=True).stdout.strip()
    archive = subprocess.run(["git", "--git-dir", str(git_dir), "archive", "--format=tar", "HEAD"], check=True,
                             capture_output=True).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(dest, filter="data")
    return commit


def _import_from(folder: Path, module: str, stubs: dict[str, types.ModuleType]):
    """Import ``module`` from ``folder`` with the ``stubs`` registered in ``sys.modules`` first."""
    sys.modules.update(stubs)
    sys.path.insert(0, str(folder))
    try:
        return importlib.import_module(module)
    finally:
        sys.path.remove(str(folder))


def _stub(name: str, **attrs) -> types.ModuleType:
    mod = types.ModuleType(name)
    mod.__dict__.update(attrs)
    return mod


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _quiet(fn, *args, **kwargs):
    with contextlib.redirect_stdout(io.StringIO()):
        return fn(*args, **kwargs)


def run_sfda_repo(repo: Path, work: Path, record: dict, compare: dict) -> None:
    import scipy
    import scipy.stats
    import sklearn
    import sklearn.decomposition
    import sklearn.preprocessing
    import warnings

    from depara.estimators import baselines as B

    dest = work / "sfda"
    dest.mkdir()
    commit = _git_tree(repo, dest)
    models = _stub("models")
    models.group1 = _stub("models.group1")
    for key in [k for k in sys.modules if k.split(".")[0] in ("metrics", "utils", "models")]:
        del sys.modules[key]
    metrics = _import_from(dest, "metrics", {"models": models, "models.group1": models.group1})
    metrics.sklearn, metrics.scipy, metrics.warnings = sklearn, scipy, warnings  # names it uses, never imports
    src = {"repository": "TencentARC/SFDA", "commit": commit, "file": "metrics.py",
           "file_sha256": _sha256(dest / "metrics.py")}

    for case in CASES:
        x, y = make_case(case)
        value = _quiet(metrics.SFDA_Score, x.copy(), y.copy())  # it mixes its X in place: pass a copy
        record["sfda"].append({"case": case, "value": float(value),
                               "provenance": {**src, "function": "SFDA_Score", "parameters": {}}})
        compare.setdefault("sfda", []).append((case, value, B.sfda(x, y)))

        if case != "c37":  # K = 5·37 = 185 Gaussians on 370 samples is not a meaningful NLEEP case
            values = []
            for seed in NLEEP_SEEDS:
                np.random.seed(seed)  # its GaussianMixture draws from numpy's global RandomState
                values.append(float(_quiet(metrics.NLEEP, x.copy(), y.copy(), component_ratio=5)))
            values = np.asarray(values)
            record["nleep"].append({
                "case": case, "variant": "sfda_repo",
                "values_by_seed": dict(zip(map(str, NLEEP_SEEDS), values.tolist())),
                "spread": {"std": float(values.std(ddof=1)), "min": float(values.min()), "max": float(values.max()),
                           "mean": float(values.mean())},
                "depara_call": {"log": False, "pca_energy": 0.8, "components_per_class": 5},
                "provenance": {**src, "function": "NLEEP", "parameters": {"component_ratio": 5},
                               "seed": "np.random.seed(s) before each call, s in values_by_seed"}})
            compare.setdefault("nleep_sfda", []).append(
                (case, values[0], B.nleep(x, y, log=False, random_state=0)))

        try:
            ref_parc, error = float(_quiet(metrics.PARC_Score, x.copy(), y.copy(), ratio=2)), None
            compare.setdefault("parc_sfda_repo", []).append((case, ref_parc, B.parc(x, y, reference_ties=True)))
        except ValueError as exc:  # D < 32: its PCA refuses n_components > D
            ref_parc, error = None, str(exc).splitlines()[0]
        record["parc"].append({"case": case, "variant": "sfda_repo", "value": ref_parc, "reference_error": error,
                               "provenance": {**src, "function": "PARC_Score", "parameters": {"ratio": 2},
                                              "note": "ratio=2 > 1 means methods.PARC(n_dims=32)"}})


def run_parc_repo(repo: Path, work: Path, record: dict, compare: dict) -> None:
    import sklearn.exceptions  # methods.py names sklearn.exceptions at import time

    from depara.estimators import baselines as B

    dest = work / "parc"
    dest.mkdir()
    commit = _git_tree(repo, dest)
    stubs = {"datasets": _stub("datasets")}
    try:
        import pandas  # noqa: F401
    except ImportError:
        stubs["pandas"] = _stub("pandas")  # used by its LearnedHeuristic only
    for key in [k for k in sys.modules if k.split(".")[0] in ("methods", "constants", "datasets", "utils")]:
        del sys.modules[key]
    methods = _import_from(dest, "methods", stubs)
    if "pandas" in stubs:
        del sys.modules["pandas"]  # other libraries probe sys.modules for pandas; the stub must not linger
    constants = sys.modules["constants"]
    src = {"repository": "dbolya/parc", "commit": commit, "file": "methods.py",
           "file_sha256": _sha256(dest / "methods.py")}
    for case in CASES:
        x, y = make_case(case)
        n_classes = int(y.max()) + 1
        constants.num_classes[f"depara_{case}"] = n_classes
        try:
            value, error = float(methods.PARC(n_dims=32)(x.copy(), None, y.copy(), "depara_source",
                                                         f"depara_{case}", "none", None)), None
        except ValueError as exc:  # D < 32: its PCA refuses n_components > D
            value, error = None, str(exc).splitlines()[0]
        # Distinct values of the reference's label RDM (2 = exact ties, then the exact route must agree).
        rdm = (1 - np.corrcoef(np.eye(n_classes)[y]))[np.triu_indices(y.shape[0], 1)]
        distinct = int(np.unique(rdm).size)
        record["parc"].append({"case": case, "variant": "authors", "value": value, "reference_error": error,
                               "reference_label_rdm_distinct_values": distinct,
                               "reference_label_rdm_sha256": hashlib.sha256(rdm.tobytes()).hexdigest(),
                               "provenance": {**src, "function": "PARC.__call__", "parameters": {"n_dims": 32}}})
        if value is not None:
            compare.setdefault("parc_authors(reference_ties)", []).append(
                (case, value, B.parc(x, y, reference_ties=True)))
            compare.setdefault("parc_exact_vs_authors", []).append((f"{case} ({distinct} values)", value,
                                                                    B.parc(x, y)))


def run_google(folder: Path, tf_path: str | None, record: dict, compare: dict) -> None:
    from depara.estimators import baselines as B

    if tf_path:
        sys.path.append(tf_path)  # after the environment's packages, so its numpy stays the one loaded
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import tensorflow as tf

    pkg = _stub("stable_transfer")
    pkg.__path__ = [str(folder / "stable_transfer")]
    sub = _stub("stable_transfer.transferability")
    sub.__path__ = [str(folder / "stable_transfer" / "transferability")]
    harness = _stub("stable_transfer.transferability.transfer_experiment", load_or_compute=lambda f: f)
    sys.modules.update({"stable_transfer": pkg, "stable_transfer.transferability": sub,
                        "stable_transfer.transferability.transfer_experiment": harness})
    gbc_mod = importlib.import_module("stable_transfer.transferability.gbc")
    nleep_mod = importlib.import_module("stable_transfer.transferability.nleep")
    prov = {name: {"repository": "google-research/google-research", "commit": commit, "file": name,
                   "file_sha256": _sha256(folder / name)} for name, commit in GOOGLE_FILES.items()}
    for case in CASES:
        x, y = make_case(case)
        for kind in ("spherical", "diagonal"):
            value = float(gbc_mod.get_gbc_score(tf.constant(x), tf.constant(y), kind))
            record["gbc"].append({"case": case, "gaussian_type": kind, "value": value,
                                  "provenance": {**prov["stable_transfer/transferability/gbc.py"],
                                                 "function": "get_gbc_score",
                                                 "parameters": {"gaussian_type": kind},
                                                 "tensorflow": tf.__version__, "dtype": "float64"}})
            compare.setdefault(f"gbc_{kind}(reference_spherical)", []).append(
                (case, value, B.gbc(x, y, gaussian_type=kind, reference_spherical=True)))
        if case in ("tall", "two"):  # GMM on raw features: keep to the small-D cases
            value = float(nleep_mod.get_nleep_score(x, tf.constant(y, dtype=tf.int32), 5 * (int(y.max()) + 1),
                                                    random_state=123))
            record["nleep"].append({
                "case": case, "variant": "google_stable_transfer", "value": value,
                "depara_call": {"log": True, "pca_energy": None, "components_per_class": 5, "random_state": 123},
                "provenance": {**prov["stable_transfer/transferability/nleep.py"], "function": "get_nleep_score",
                               "parameters": {"num_components_gmm": "5*C", "random_state": 123},
                               "also": prov["stable_transfer/transferability/leep.py"],
                               "note": "its LEEP runs on float32 GMM posteriors (astype('float32'))"}})
            compare.setdefault("nleep_google", []).append(
                (case, value, B.nleep(x, y, log=True, pca_energy=None, random_state=123)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sfda-repo", type=Path, required=True)
    ap.add_argument("--parc-repo", type=Path, required=True)
    ap.add_argument("--google-dir", type=Path, required=True)
    ap.add_argument("--tf-path", default=None)
    ap.add_argument("--out", type=Path, default=Path("tests/data/estimator_references_a.json"))
    args = ap.parse_args()

    import sklearn

    record: dict = {"sfda": [], "nleep": [], "parc": [], "gbc": []}
    compare: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        run_sfda_repo(args.sfda_repo, Path(tmp), record, compare)
        run_parc_repo(args.parc_repo, Path(tmp), record, compare)
    run_google(args.google_dir, args.tf_path, record, compare)

    out = {
        "about": "Expected values of the authors' code on the inputs of benchmarks/reference/run_references_a.py "
                 "(make_case); written by that script. NLEEP values depend on the seed; values_by_seed and "
                 "spread give the reference's own run-to-run spread over seeds 0..9.",
        "cases": {k: {**dict(zip(("seed", "n", "d", "n_classes", "shift"), v)),
                      "input_sha256": case_sha256(*make_case(k))} for k, v in CASES.items()},
        "environment": {"python": platform.python_version(), "numpy": np.__version__,
                        "sklearn": sklearn.__version__, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS")},
        **record,
    }
    from depara.io.files import write_json
    write_json(args.out, out)
    for key, rows in compare.items():
        for case, ref, ours in rows:
            rel = abs(ours - ref) / max(abs(ref), 1e-300)
            print(f"{key:36s} {case:18s} ref={ref: .12g} depara={ours: .12g} rel={rel:.2e}")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
