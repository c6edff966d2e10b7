"""Print the round-4 tables of docs/defaults.md from the ``choose_defaults.py --classification`` folders.

    python benchmarks/classification_report.py benchmarks/results/defaults_choice/classification_demo \\
        benchmarks/results/defaults_choice/classification_default

Reads only the committed CSVs/manifests (no measurement): the label-family candidates (the top six by the round-4
score, the round-2 and round-3 defaults, the best ``knn``), the peers, paired differences of the chosen candidate
(bootstrap 95 % interval over targets, 2000 resamples, seed 0), the full vs ``@10`` split, the seed-noise ceiling and
the mean test accuracy per target.
"""

from __future__ import annotations

import json
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

CHOSEN = "conv3/per_probe/flat/centred/subset"
INCUMBENT = "rep/global/pooled/standardised/labelled"
ROUND2 = "rep/global/flat/centred/subset"
PROTOCOLS = ("linear_probe", "fine_tune")


def _rows(path: Path) -> list[dict]:
    from depara.io.files import read_csv

    return read_csv(path)


def _boot(v, seed=0, reps=2000) -> str:
    v = np.asarray(v, float)
    m = v[np.random.default_rng(seed).integers(0, len(v), (reps, len(v)))].mean(axis=1)
    return f"{v.mean():+.2f} [{np.percentile(m, 2.5):+.2f}, {np.percentile(m, 97.5):+.2f}]"


def main(argv=None) -> int:
    dirs = [Path(d) for d in (argv if argv is not None else sys.argv[1:])]
    names = [json.loads((d / "manifest.json").read_text())["settings"]["scale"] for d in dirs]
    cells = [(n, p) for n in names for p in PROTOCOLS]
    fam, peer, per = defaultdict(dict), defaultdict(dict), {}
    for n, d in zip(names, dirs):
        for r in _rows(d / "classification_family.csv"):
            fam[r["candidate"]][(n, r["protocol"])] = r
        for r in _rows(d / "classification_peers.csv"):
            peer[r["peer"]][(n, r["protocol"])] = r
        per[n] = _rows(d / "classification_per_target.csv")

    def fmt(r):
        return f"{float(r['mean_weighted_tau']):.2f} [{float(r['wtau_lo']):.2f}, {float(r['wtau_hi']):.2f}] / " \
               f"{float(r['mean_regret']):.1f}"

    def score(d):
        return float(np.mean([float(d[c]["mean_weighted_tau"]) for c in cells]))

    head = " | ".join(f"{n}, {p.replace('_', ' ')}" for n, p in cells)
    ranked = sorted(fam, key=lambda k: -score(fam[k]))
    best_knn = next(k for k in ranked if k.split("/")[1] == "knn")
    print(f"| candidate | rank of {len(ranked)} | round-4 score | {head} |\n|---|---|---|" + "---|" * len(cells))
    for k in dict.fromkeys(ranked[:6] + [ROUND2, best_knn, INCUMBENT]):
        print(f"| {k} | {ranked.index(k) + 1} | {score(fam[k]):.3f} | " + " | ".join(fmt(fam[k][c]) for c in cells)
              + " |")
    print(f"\n| peer | mean over the cells | {head} |\n|---|---|" + "---|" * len(cells))
    for k in sorted(peer, key=lambda k: -score(peer[k])):
        print(f"| {k} | {score(peer[k]):.3f} | " + " | ".join(fmt(peer[k][c]) for c in cells) + " |")

    def tau(n, cand, p, few=None):
        return {r["target"]: float(r["weighted_tau"]) for r in per[n] if r["candidate"] == cand
                and r["protocol"] == p and (few is None or ("@" in r["target"]) == few)}

    print(f"\npaired weighted τ difference, {CHOSEN} minus … (per target, bootstrap over targets)")
    print(f"| other | {head} |\n|---|" + "---|" * len(cells))
    for other in (INCUMBENT, ROUND2, "logme"):
        out = []
        for n, p in cells:
            a, b = tau(n, CHOSEN, p), tau(n, other, p)
            out.append(_boot([a[t] - b[t] for t in a]))
        print(f"| {other} | " + " | ".join(out) + " |")
    print(f"\nmean weighted τ on the full targets / on the @10 variants\n| candidate | {head} |\n|---|"
          + "---|" * len(cells))
    for k in (CHOSEN, "conv3/per_probe/flat/centred/labelled", ROUND2, INCUMBENT, "logme"):
        print(f"| {k} | " + " | ".join(f"{np.mean(list(tau(n, k, p, False).values())):.2f} / "
                                       f"{np.mean(list(tau(n, k, p, True).values())):.2f}" for n, p in cells) + " |")
    print("\nseed-noise ceiling (one seed's ranking vs the mean of the others, weighted τ):")
    for n, d in zip(names, dirs):
        sn = json.loads((d / "manifest.json").read_text())["extra"]["seed_noise"]
        print(f"  {n}: " + ", ".join(f"{p} {v['mean_weighted_tau']:.2f} [{v['wtau_lo']:.2f}, {v['wtau_hi']:.2f}]"
                                     for p, v in sn.items()))
    print("\nmean test accuracy (%) over sources, [worst, best source]:")
    for n, d in zip(names, dirs):
        acc = defaultdict(list)
        for r in _rows(d / "classification_truth_mean.csv"):
            acc[(r["target"], r["protocol"])].append(float(r["mean_accuracy"]))
        print(f"  {n}:")
        for t in dict.fromkeys(k[0] for k in acc):
            print(f"    {t:18s} " + "  ".join(f"{p} {np.mean(acc[(t, p)]):.1f} [{min(acc[(t, p)]):.1f}, "
                                               f"{max(acc[(t, p)]):.1f}]" for p in PROTOCOLS))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
