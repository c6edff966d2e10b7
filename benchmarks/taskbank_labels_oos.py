"""The labels defaults out of sample on the task bank's classification targets (issue 20, Build 4).

    nice -n 10 python benchmarks/taskbank_labels_oos.py --cache DIR [--out benchmarks/results/taskbank_default]

Of the bank's 13 targets, 2 have class labels (``count``, ``shape``); on them the round-6 labels default
``depara_labels_logme`` (the mean of the ``depara_labels`` and ``logme`` ranks across the 14 candidate sources), its
kNN member alone, the round-5 default ``depara_labels_ped`` (its kNN k = ⌊√N⌋ standardised member and ``ped``) and
its member alone, the round-4 default's member (label graph compared per probe, flattened, centred), leave-one-out
k-NN accuracy, PED and LogME score every source from its representation of the target's limited labelled set, exactly as
the bank's label-based scores are made (:func:`depara.benches.taskbank.bench.label_based_scores`: the flattened
``rep`` output). The task networks are trained into ``--cache`` (or read from it). When they are the committed
run's (LogME on the 2 targets equal to the committed ``matrices/label__LogME.csv``) the scores are judged against
its measured affinities (``gt_affinity.csv`` of ``--out``) beside the rows of ``summary_classification_targets.csv``;
otherwise (retraining is not bit-reproducible across environments) the 2 targets' transfers are measured again for
these networks (:func:`depara.benches.taskbank.affinity.measure_affinities`, ``only_targets``; 28 transfers and
2 scratch references, cached in ``--cache``), the label-free default, RSA and CKA are rescored on them, and the
committed run's truth becomes a second noise ceiling (same seed, networks trained again). The bank's evaluation
throughout: P@K with the measured top 5 as the relevant set, mean Spearman, Kendall and weighted τ over the 2
targets, each target's Spearman. Writes ``labels_oos.csv`` (and the truth it used, ``labels_oos_gt_affinity.csv``,
when measured again) into ``--out`` and adds them to its manifest.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
OUT = ROOT / "benchmarks" / "results" / "taskbank_default"
ROUND4 = {"edge_comparison": "per_probe", "edge_features": "flat", "edge_scale": "centred"}
#: The round-5 member (knn at k = ⌊√N⌋ of pooled, standardised features), kept as its own row beside round 6's.
ROUND5 = {"edge_comparison": "knn", "edge_features": "pooled", "edge_scale": "standardised"}


def target_scores(features: dict[str, np.ndarray], labels: np.ndarray) -> dict[str, dict[str, float]]:
    """{scorer: {source: value}} for one target's labelled set (``features``: source → N×D)."""
    from depara.core.similarity_edges import label_agreement, probe_edges
    from depara.estimators.depara_family import depara_labels_edges
    from depara.estimators.registry import get_estimator
    from depara.selection.scoring import rank_average

    names = list(features)
    out = {name: {s: float(get_estimator(name).fn(f, labels)) for s, f in features.items()}
           for name in ("ped", "knn", "logme")}
    out["depara_labels"] = {s: float(get_estimator("depara_labels").fn(depara_labels_edges(None, f), labels))
                            for s, f in features.items()}  # the registered member on the frozen (round-6) edges
    for key, (pooling, scale, comparison) in (("round4", (ROUND4["edge_features"], ROUND4["edge_scale"],
                                                           ROUND4["edge_comparison"])),
                                              ("round5", (ROUND5["edge_features"], ROUND5["edge_scale"],
                                                          ROUND5["edge_comparison"]))):
        out[key] = {s: float(label_agreement(probe_edges(f, pooling=pooling, scale=scale), labels, comparison))
                    for s, f in features.items()}
    for name, parts in (("depara_labels_logme", ("depara_labels", "logme")), ("depara_labels_ped", ("round5", "ped"))):
        arr = np.array([[out[p][s] for s in names] for p in parts])
        out[name] = dict(zip(names, rank_average(arr[:, :, None])[:, 0]))
    return out


LABELS = {"depara_labels_logme": "round-6 default: depara_labels_logme (kNN k=10 member + LogME, rank average)",
          "depara_labels": "round-6 member alone: depara_labels (kNN k=10, pooled, centred)",
          "depara_labels_ped": "round-5 default: depara_labels_ped (kNN k=√N member + PED, rank average)",
          "round5": "round-5 member alone: depara_labels (kNN k=√N, pooled, standardised)",
          "round4": "round-4 default: depara_labels (per probe, flat, centred)",
          "knn": "k-NN accuracy, leave-one-out, k = 5", "ped": "PED", "logme": "LogME"}


def committed_rows(out: Path) -> list[dict]:
    """The label-free default's and RSA's rows of the committed ``summary_classification_targets.csv``."""
    from depara.benches.taskbank.bench import HEADLINE
    from depara.io.files import read_csv

    keep = {HEADLINE: f"label-free default: {HEADLINE}", "RSA": "RSA", "linear CKA": "linear CKA"}
    rows = []
    for r in read_csv(out / "summary_classification_targets.csv"):
        if r["method"] in keep:
            rows.append({"method": keep[r["method"]], "n_targets": int(r["n_targets"]),
                         **{k: float(v) for k, v in r.items() if k.startswith("P@")},
                         "mean_spearman": float(r["mean_spearman"]),
                         "mean_kendall": float(r["mean_kendall"]),
                         "mean_weighted_tau": float(r["mean_weighted_tau"]),
                         "top1_regret": float(r["top1_regret"]), "note": "committed run (graphs on the probes)"})
    return rows


def graph_rows(encoders, data, sub: np.ndarray, names: list[str], ks) -> list[dict]:
    """The label-free default (DEPARA with the library's defaults), RSA and linear CKA on the in-domain probes,
    scored with these networks (:func:`depara.benches.taskbank.bench.graph_scores`) and judged on ``sub``."""
    from depara.benches.taskbank.baselines import ranking_row
    from depara.benches.taskbank.bench import HEADLINE, LIBRARY_LAMBDA, LIBRARY_NODE, graph_scores
    from depara.core.score import combine

    sc = graph_scores({n: encoders[n] for n in names}, data.probe_tensor().numpy())
    mats = {f"label-free default: {HEADLINE}": combine(sc["V"][LIBRARY_NODE], sc["E"], LIBRARY_LAMBDA),
            "RSA": sc["RSA"], "linear CKA": sc["CKA"]}
    return [{**ranking_row(k, v, sub, names, ks), "note": "these networks, in-domain probes"} for k, v in mats.items()]


def score_matrices(cfg, encoders, data, names, targets) -> dict[str, np.ndarray]:
    from depara.benches.taskbank.affinity import encode
    from depara.benches.taskbank.bench import label_targets
    from depara.benches.taskbank.tasks import get_task

    mats = {k: np.full((len(names), len(names)), np.nan) for k in LABELS}
    for t in targets:
        ti = names.index(t)
        x, y = data.xy(get_task(t), "limited")
        labels, regression = label_targets(get_task(t), y)
        assert not regression
        feats = {s: encode(encoders[s], x).reshape(len(x), -1).astype(np.float64) for s in names if s != t}
        for k, vals in target_scores(feats, labels).items():
            for s, v in vals.items():
                mats[k][ti, names.index(s)] = v
    return mats


def main(argv=None) -> int:
    from depara.benches.taskbank.affinity import measure_affinities
    from depara.benches.taskbank.baselines import noise_ceiling_row, ranking_row
    from depara.benches.taskbank.bench import cache_root_for
    from depara.benches.taskbank.tasks import get_task
    from depara.benches.taskbank.train import SceneData, load_or_train_encoders, make_config
    from depara.evaluation.rank_quality import read_matrix_csv, write_matrix_csv
    from depara.extraction.threads import cpu_threads
    from depara.io.files import write_csv
    from depara.report.manifest import read_manifest, write_manifest

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cache", required=True, help="task-bank cache (the task networks are trained into it once)")
    ap.add_argument("--out", default=str(OUT), help="the committed run's results folder (seed 0)")
    ap.add_argument("--other", default=str(OUT.parent / "taskbank_default_seed1"), help="the second seed's run")
    args = ap.parse_args(argv)
    out = Path(args.out)
    m = read_manifest(out)
    t0, c0 = time.perf_counter(), time.process_time()
    with cpu_threads(1):
        cfg = make_config(m["settings"]["scale"], seed=m["settings"]["seed"])
        data = SceneData(cfg)
        encoders, _ = load_or_train_encoders(cfg, cache_root_for(cfg, args.cache), data)
        names, truth = read_matrix_csv(out / "gt_affinity.csv")
        names = list(names)
        targets = [n for n in names if get_task(n).is_target and get_task(n).kind == "global"
                   and get_task(n).is_classification]
        mats = score_matrices(cfg, encoders, data, names, targets)
        _, committed = read_matrix_csv(out / "matrices" / "label__LogME.csv")
        rows_t = [names.index(t) for t in targets]
        gap = float(np.nanmax(np.abs(mats["logme"][rows_t] - committed[rows_t])))
        same = gap <= 1e-6
        if not same:  # retrained networks differ from the committed run's: measure their truth, rescore the graphs
            print(f"task networks differ from the committed run's (LogME by up to {gap:.3g}): measuring the "
                  f"truth of {', '.join(targets)} for them", flush=True)
            truth = measure_affinities(cfg, cache_root_for(cfg, args.cache), encoders, data,
                                       only_targets=targets)["affinity"]
    sub = np.where(np.isin(np.arange(len(names)), rows_t)[:, None], truth, np.nan)
    rel = int(m["settings"]["relevant"])
    ks = tuple(sorted({1, min(3, rel), rel}))  # relevant set = the measured top `rel`, as the bank's P@K
    rows = [ranking_row(LABELS[k], np.where(np.isfinite(v), v, 0.0), sub, names, ks) for k, v in mats.items()]
    with cpu_threads(1):
        rows += committed_rows(out) if same else graph_rows(encoders, data, sub, names, ks)
    ceilings = [(Path(args.other), "the second seed's bank")] + ([] if same else [(out, "the committed run (same "
                                                                                         "seed, networks trained "
                                                                                         "again)")])
    for folder, note in ceilings:
        other_names, other = read_matrix_csv(folder / "gt_affinity.csv")
        rows.append(noise_ceiling_row(sub, other, names, list(other_names), ks, note=note))
    columns = list(rows[0])
    write_csv(out / "labels_oos.csv", [{c: r.get(c, "") for c in columns} for r in rows])
    tables = {"labels_oos": "labels_oos.csv"}
    if not same:  # the truth these rows were judged on (the classification targets' rows)
        write_matrix_csv(out / "labels_oos_gt_affinity.csv", names, sub)
        tables["labels_oos_gt_affinity"] = "labels_oos_gt_affinity.csv"
    write_manifest(out, m["kind"], title=m["title"], summary=m["summary"], settings=m["settings"],
                   tables={**m["tables"], **tables}, figures=m["figures"],
                   extra={**m["extra"], "labels_oos_command": "nice -n 10 python benchmarks/taskbank_labels_oos.py "
                                                              "--cache DIR",
                          "labels_oos_logme_gap": gap, "labels_oos_truth": "committed" if same else
                          "measured again for the retrained networks (cache of --cache)",
                          "labels_oos_seconds": time.perf_counter() - t0,
                          "labels_oos_cpu_seconds": time.process_time() - c0})
    for r in rows:
        print({k: (round(v, 3) if isinstance(v, float) else v) for k, v in r.items() if k != "note"})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
