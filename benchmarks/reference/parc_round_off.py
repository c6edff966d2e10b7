"""How much the recorded PARC reference values depend on the CPU: the authors' label RDM ``1 - np.corrcoef(one_hot)``
is computed by the BLAS, whose kernel decides how its round-off splits the two exact values (0 and C/(C - 1)) into
near-equal ones, and Spearman's ρ ranks that round-off. This script evaluates the reference formula (depara's
``parc(..., reference_ties=True)``, equal to the authors' code where the label RDM is the same, see
``run_references_a.py``) on every case of ``tests/data/estimator_references_a.json`` under several OpenBLAS kernels
(``OPENBLAS_CORETYPE``, one process each, one BLAS thread) and stores, per case and kernel, the label RDM's number
of distinct values, its SHA-256 and the value, under the key ``parc_label_rdm_round_off``. It also stores per case
``reference_label_rdm_sha256``, the digest of the label RDM with which the recorded value is reproduced (the
kernels whose value equals the recorded one to 1e-12). ``tests/test_estimators_sfda_nleep_parc_gbc.py`` compares the
recorded value only on a CPU whose label RDM has that digest, and documents the spread.

Usage (from the repository root; about 20 s)::

    OMP_NUM_THREADS=1 PYTHONPATH=src .venv/bin/python benchmarks/reference/parc_round_off.py \\
        --refs tests/data/estimator_references_a.json
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

KERNELS = ("SkylakeX", "Haswell", "Zen", "Sandybridge", "Nehalem", "Prescott")

_ONE_KERNEL = r"""
import hashlib, json, sys
import numpy as np
from threadpoolctl import threadpool_info, threadpool_limits
from depara.estimators import baselines as B

refs = json.loads(open(sys.argv[1]).read())
out = {"architecture": sorted({i.get("architecture", "?") for i in threadpool_info() if i["user_api"] == "blas"}),
       "cases": {}}
with threadpool_limits(limits=1):
    for case, spec in refs["cases"].items():
        rng = np.random.default_rng(spec["seed"])  # the reference script's make_case
        y = rng.permutation(np.arange(spec["n"]) % spec["n_classes"])
        centres = rng.standard_normal((spec["n_classes"], spec["d"]))
        x = rng.standard_normal((spec["n"], spec["d"])) + spec["shift"] * centres[y]
        rdm = (1 - np.corrcoef(np.eye(spec["n_classes"])[y]))[np.triu_indices(spec["n"], 1)]
        out["cases"][case] = {"distinct_values": int(np.unique(rdm).size),
                              "sha256": hashlib.sha256(rdm.tobytes()).hexdigest(),
                              "value": B.parc(x, y, reference_ties=True)}
print(json.dumps(out))
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--refs", type=Path, required=True)
    args = ap.parse_args()
    refs = json.loads(args.refs.read_text())
    recorded = {r["case"]: r["value"] for r in refs["parc"] if r["variant"] == "authors" and r["value"] is not None}
    table: dict = {}
    for kernel in KERNELS:
        env = dict(os.environ, OPENBLAS_CORETYPE=kernel, OMP_NUM_THREADS="1")
        done = subprocess.run([sys.executable, "-c", _ONE_KERNEL, str(args.refs)], env=env, check=True,
                              capture_output=True, text=True)
        got = json.loads(done.stdout)
        arch = "/".join(got["architecture"])  # the kernel OpenBLAS really used (some names map to another)
        print(kernel, "->", arch)
        for case, row in got["cases"].items():
            if case in recorded:
                table.setdefault(case, {})[arch] = row
    refs["parc_label_rdm_round_off"] = {
        "about": "the reference formula's value per OpenBLAS kernel (OPENBLAS_CORETYPE, numpy "
                 f"{refs['environment'].get('numpy')}, one thread): written by benchmarks/reference/parc_round_off.py",
        "cases": table}
    for r in refs["parc"]:
        if r["variant"] == "authors" and r["case"] in table:
            same = {k["sha256"] for k in table[r["case"]].values()
                    if abs(k["value"] - r["value"]) <= 1e-12 * abs(r["value"])}
            if "reference_label_rdm_sha256" not in r:  # run_references_a.py records it where it runs
                r["reference_label_rdm_sha256"] = same.pop() if len(same) == 1 else None
    for case, rows in table.items():
        values = [k["value"] for k in rows.values()]
        print(f"{case}: recorded {recorded[case]:.6f}, kernels {min(values):.6f} .. {max(values):.6f}")
    args.refs.write_text(json.dumps(refs, indent=2) + "\n")


if __name__ == "__main__":
    main()
