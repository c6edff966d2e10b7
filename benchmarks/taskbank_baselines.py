"""Baseline rows of the procedural task bank (issue 20, Build 3), from two committed runs of the bank, no training.

    python benchmarks/taskbank_baselines.py benchmarks/results/taskbank_default benchmarks/results/taskbank_default_seed1

For each run (in-domain probes; 13 targets, 14 candidate sources each): the label-free default that ran (DEPARA, E
alone, λ = ∞) and LogME, read back from its ``summary.csv``; the noise ceiling (the OTHER run's measured affinity
matrix used as the scores, :func:`depara.benches.taskbank.baselines.noise_ceiling_row`); random (the expectation:
P@K = 5/14 for every K, correlations 0); and a row in words for each baseline that cannot apply here. Writes
``baselines.csv`` into each run's folder and adds it to its manifest.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

KS = (1, 3, 5)


def reasons(n_params: int) -> dict[str, str]:
    """Why each baseline that cannot apply to this bank is absent (the table's words in place of numbers)."""
    return {
        "static prior: number of parameters": f"every source transfers the same encoder ({n_params:,} parameters): "
                                              "the prior ties all 14 candidates: its expectation is the random row",
        "static prior: the source's accuracy on its own task": "each source solves a different task with its own "
                                                               "loss (pixels, depth, normals, counts, classes): no "
                                                               "common scale to rank the sources by",
        "k-NN accuracy (knn)": "needs the target's class labels: 11 of the 13 targets are dense maps or "
                               "regressions; on the 2 classification targets (count, shape): labels_oos.csv "
                               "(benchmarks/taskbank_labels_oos.py)",
        "round-5 labels default (depara_labels_ped) and its kNN member": "need class labels (as k-NN accuracy); on "
                                                                         "the 2 classification targets: "
                                                                         "labels_oos.csv; the label-free default "
                                                                         "ran on all 13: DEPARA, E alone, λ = ∞ "
                                                                         "(first row)",
    }


def summary_rows(folder: Path) -> list[dict]:
    """The in-domain rows of the headline label-free default and LogME, as this table's columns."""
    from depara.benches.taskbank.bench import HEADLINE
    from depara.io.files import read_csv

    keep = {HEADLINE: f"label-free default: {HEADLINE}", "LogME (labels)": "LogME (the target's labels)"}
    out = []
    for r in read_csv(folder / "summary.csv"):
        if r["probe_set"] == "in-domain" and r["method"] in keep:
            out.append({"method": keep[r["method"]], "n_targets": int(r["n_targets"]),
                        **{f"P@{k}": float(r[f"P@{k}"]) for k in KS if f"P@{k}" in r},
                        "mean_spearman": float(r["mean_spearman"]), "mean_kendall": float(r["mean_kendall"]),
                        "mean_weighted_tau": float(r["mean_weighted_tau"]),
                        "top1_regret": float(r["top1_regret"]), "note": "from summary.csv"})
    return out


def p_at_k(folder: Path, method: str) -> dict:
    """P@K of ``method`` (in-domain) from pk.csv, for the K summary.csv does not carry."""
    from depara.io.files import read_csv

    return {f"P@{int(r['K'])}": float(r["precision"]) for r in read_csv(folder / "pk.csv")
            if r["probe_set"] == "in-domain" and r["method"] == method and int(r["K"]) in KS}


def main(argv=None) -> int:
    from depara.benches.taskbank.baselines import noise_ceiling_row, not_applicable_rows
    from depara.benches.taskbank.bench import HEADLINE
    from depara.benches.taskbank.networks import Encoder
    from depara.evaluation.rank_quality import read_matrix_csv
    from depara.io.files import write_csv
    from depara.report.manifest import read_manifest, write_manifest

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("runs", nargs=2, help="two results folders of `depara bench taskbank` (different seeds)")
    args = ap.parse_args(argv)
    folders = [Path(p) for p in args.runs]
    truths = [read_matrix_csv(f / "gt_affinity.csv") for f in folders]
    seeds = [read_manifest(f)["settings"]["seed"] for f in folders]
    width = read_manifest(folders[0])["settings"]["width"]
    n_params = sum(p.numel() for p in Encoder(width).parameters())
    for i, folder in enumerate(folders):
        (names, truth), (other_names, other) = truths[i], truths[1 - i]
        rows = summary_rows(folder)
        label = {HEADLINE: 0, "LogME (labels)": 1}
        for method, j in label.items():
            rows[j].update(p_at_k(folder, method))
        n_cand = len(names) - 1
        rows.append(noise_ceiling_row(truth, other, names, other_names, KS,
                                      note=f"seed {seeds[1 - i]}'s bank (networks retrained, transfers remeasured) "
                                           f"as the scores of seed {seeds[i]}'s truth"))
        rows.append({"method": "random", "n_targets": rows[0]["n_targets"], **{f"P@{k}": 5 / n_cand for k in KS},
                     "mean_spearman": 0.0, "mean_kendall": 0.0, "mean_weighted_tau": 0.0, "top1_regret": "",
                     "note": f"expectation: P@K = 5/{n_cand} for every K"})
        rows += not_applicable_rows(reasons(n_params), KS)
        columns = list(rows[-1])  # the full column order (a not-applicable row carries every column)
        rows = [{c: r.get(c, "") for c in columns} for r in rows]
        write_csv(folder / "baselines.csv", rows)
        m = read_manifest(folder)
        write_manifest(folder, m["kind"], title=m["title"], summary=m["summary"], settings=m["settings"],
                       tables={**m["tables"], "baselines": "baselines.csv"}, figures=m["figures"],
                       extra={**m["extra"], "baselines_command": "python benchmarks/taskbank_baselines.py "
                                                                 + " ".join(args.runs)})
        for r in rows:
            print(seeds[i], {k: (round(v, 3) if isinstance(v, float) else v) for k, v in r.items() if k != "note"})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
