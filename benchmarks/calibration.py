"""What select's P(best) and "too close to call" are worth: a reliability check on the real-image bank.

    python benchmarks/calibration.py --cache CACHE [--bank BANK] [--n-rep 200] [--out benchmarks/results/calibration]

For each of the real-image bank's targets (``depara bench realbank --scale default``: 16 targets, 12 sources; the
zoo from CACHE, trained there when absent) this scores every source as ``depara.select`` does at its default
(``depara_labels`` on the frozen probes and layer, the values in the bank's committed ``scores.csv``), draws the
same half-samples select draws (:mod:`depara.evaluation.uncertainty`), and computes each source's P(best) (share of
half-samples in which it ranks first) and interval, and the "too close to call" set (sources whose interval
overlaps the pick's). Against the ground truth of a ``depara bench realbank --scale default`` results folder BANK
(``truth_linear_probe.csv``, ``truth_fine_tune.csv``: accuracy averaged over 3 seeds; default the committed
``benchmarks/results/realbank_default``; give the folder of a bank run on the same CACHE, so that the sources
scored are the ones whose truth was measured; its truth tables are copied into the output) it writes:

* ``per_source.csv``: target, source, score, interval, P(best), truth per protocol, truly best / within 1 point;
* ``picks.csv``: per target and protocol the pick, its P(best), its regret (points), whether the truly best source
  (or one within 1 point of it) is in {pick} ∪ too-close, and whether a source outside that set is within 1 point;
* ``reliability.csv``: per protocol and P(best) bin, the mean announced P(best), the share truly best, the share
  within 1 point of the best, and the count (every source of every target is one row of the diagram);
  ``reliability_coarse.csv`` the same in three wider bins (what ``depara select``'s sentence quotes);
* ``reliability.png``: the reliability diagram (one panel per protocol) and ``manifest.json``.

The truth is read, never re-measured, so the run costs the zoo (cached) and one forward pass per source and target.
"""

from __future__ import annotations

import argparse
import csv
import shutil
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from depara.io.files import ensure_dir, write_csv  # noqa: E402
from depara.report.manifest import write_manifest  # noqa: E402
from depara.core.similarity_edges import probe_edges, resampled_label_agreement  # noqa: E402
from depara.estimators.registry import get_estimator  # noqa: E402
from depara.benches.realbank import data as D  # noqa: E402
from depara.benches.realbank.bench import SCALES, load_defaults, target_splits  # noqa: E402
from depara.benches.realbank.scoring import FROZEN, LAYERS, probe_rows, stage_output  # noqa: E402
from depara.benches.realbank.zoo import load_or_train_zoo  # noqa: E402
from depara.evaluation.uncertainty import half_samples, recentred, reliability, subsample_intervals, win_shares  # noqa: E402

DEFAULT_BANK = ROOT / "benchmarks" / "results" / "realbank_default"
PROTOCOLS = ("linear_probe", "fine_tune")
BINS = (0.0, 0.1, 0.3, 0.5, 0.7, 0.9, 1.0)
#: Wider bins, each with enough sources to state a rate: what ``depara.evaluation.uncertainty.BENCH_RELIABILITY``
#: (the sentence of ``depara select``) quotes.
COARSE_BINS = (0.0, 0.1, 0.5, 1.0)


def read_truth(bank: Path, protocol: str) -> dict[str, dict[str, float]]:
    """{target: {source: accuracy in points}} from a bank results folder's truth table."""
    with open(bank / f"truth_{protocol}.csv", newline="") as fh:
        return {r.pop("target"): {k: 100 * float(v) for k, v in r.items()} for r in csv.DictReader(fh)}


def bank_scores(bank: Path) -> dict[tuple[str, str], float]:
    """The frozen default's score of every (target, source) in the bank folder (a check of the scoring here)."""
    with open(bank / "scores.csv", newline="") as fh:
        return {(r["target"], r["source"]): float(r["score"]) for r in csv.DictReader(fh) if r["scorer"] == FROZEN}


def score_target(nets: dict, x: np.ndarray, y: np.ndarray, defaults, n_probe: int, n_rep: int, seed: int):
    """(point (S,), intervals (S, 2), P(best) (S,)) of every source, as depara.select computes them."""
    rows = probe_rows(len(y), n_probe, defaults.probes, seed)
    yp = y[rows]
    n = len(rows)
    idx = half_samples(n, n_rep, seed, yp)
    est = get_estimator("depara_labels")
    point, sub = [], []
    for net in nets.values():
        e = probe_edges(stage_output(net.body, x[rows], LAYERS[defaults.layer]), pooling=defaults.edge_features,
                        scale=defaults.edge_scale)
        point.append(est.fn(e, yp, defaults.edge_comparison))
        sub.append(resampled_label_agreement(e, yp, defaults.edge_comparison, idx))
    point, sub = np.array(point), np.array(sub)
    m = idx.shape[1]
    return point, subsample_intervals(point, sub, n, m), win_shares(recentred(point, sub, n, m))


def target_rows(t, sources, point, iv, pb, truth):
    """per_source rows and per-protocol pick rows of one target."""
    pick = int(np.nanargmax(point))
    close = [j for j in range(len(sources)) if j != pick and iv[j, 1] >= iv[pick, 0]]
    per, picks = [], []
    for j, s in enumerate(sources):
        row = {"target": t, "source": s, "score": point[j], "lo": iv[j, 0], "hi": iv[j, 1], "p_best": pb[j],
               "pick": j == pick, "too_close": j in close}
        for p in PROTOCOLS:
            best = max(truth[p][t].values())
            row[f"truth_{p}"] = truth[p][t][s]
            row[f"best_{p}"] = truth[p][t][s] == best
            row[f"within1_{p}"] = truth[p][t][s] >= best - 1.0
        per.append(row)
    for p in PROTOCOLS:
        acc = np.array([truth[p][t][s] for s in sources])
        best = acc.max()
        in_set = [pick, *close]
        outside = [j for j in range(len(sources)) if j not in in_set]
        picks.append({"protocol": p, "target": t, "pick": sources[pick], "p_best": pb[pick],
                      "regret": best - acc[pick], "too_close": len(close),
                      "best_in_set": bool(np.any(acc[in_set] == best)),
                      "within1_in_set": bool(np.any(acc[in_set] >= best - 1.0)),
                      "within1_outside": bool(np.any(acc[outside] >= best - 1.0)) if outside else False})
    return per, picks


def reliability_rows(per: list[dict], bins) -> list[dict]:
    """The reliability table of every (target, source): per protocol and bin of P(best), the count, the mean
    announced P(best), the share truly best and the share within 1 point of the best."""
    prob = np.array([r["p_best"] for r in per])
    table = []
    for p in PROTOCOLS:
        best = reliability(prob, np.array([r[f"best_{p}"] for r in per], dtype=float), bins)
        near = reliability(prob, np.array([r[f"within1_{p}"] for r in per], dtype=float), bins)
        table += [{"protocol": p, "bin_lo": b["bin_lo"], "bin_hi": b["bin_hi"], "count": b["count"],
                   "mean_p": b["mean_p"], "best_rate": b["rate"], "within1_rate": w["rate"]}
                  for b, w in zip(best, near)]
    return table


def plot(table: list[dict], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(PROTOCOLS), figsize=(9, 4), sharey=True)
    for ax, p in zip(axes, PROTOCOLS):
        rows = [r for r in table if r["protocol"] == p and r["count"]]
        ax.plot([0, 1], [0, 1], ls="--", c="grey", lw=1, label="calibrated")
        ax.plot([r["mean_p"] for r in rows], [r["best_rate"] for r in rows], "o-", label="truly best")
        ax.plot([r["mean_p"] for r in rows], [r["within1_rate"] for r in rows], "s:", label="within 1 point")
        for r in rows:
            ax.annotate(str(r["count"]), (r["mean_p"], r["best_rate"]), fontsize=7, xytext=(3, -9),
                        textcoords="offset points")
        ax.set_title(f"real-image bank, {p.replace('_', ' ')}", fontsize=9)
        ax.set_xlabel("announced P(best) (bin mean)")
        ax.set_xlim(-0.02, 1.02)
        ax.set_ylim(-0.02, 1.02)
    axes[0].set_ylabel("observed rate (numbers: sources in the bin)")
    axes[0].legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    fig.savefig(out / "reliability.png", dpi=110)
    plt.close(fig)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cache", required=True, help="the realbank cache folder (its realbank/ zoo is reused)")
    ap.add_argument("--bank", default=str(DEFAULT_BANK), help="a realbank results folder (its truth tables)")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "calibration"))
    ap.add_argument("--n-rep", type=int, default=200, help="half-samples per target (select's default n_boot)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    sc = SCALES["default"]
    defaults = load_defaults()[0]
    nets, _, skipped = load_or_train_zoo(sc.zoo, Path(args.cache) / "realbank", args.seed)
    sources = list(nets)
    bank = Path(args.bank)
    truth = {p: read_truth(bank, p) for p in PROTOCOLS}
    committed = bank_scores(bank)
    per, picks, diffs = [], [], []
    for t in truth[PROTOCOLS[0]]:
        pool = D.load_target(t, sc.pool)
        tr = target_splits(sc, t, pool, [args.seed])[0].train
        y = np.unique(pool.y[tr], return_inverse=True)[1].astype(np.int64)
        point, iv, pb = score_target(nets, pool.x[tr], y, defaults, sc.n_probe, args.n_rep, args.seed)
        diffs += [abs(point[j] - committed[(t, s)]) for j, s in enumerate(sources)]
        a, b = target_rows(t, sources, point, iv, pb, {p: truth[p] for p in PROTOCOLS})
        per += a
        picks += b
        print(f"{t}: pick {b[0]['pick']} P(best) {b[0]['p_best']:.2f}, {b[0]['too_close']} too close", flush=True)
    table, coarse = reliability_rows(per, BINS), reliability_rows(per, COARSE_BINS)
    out = ensure_dir(Path(args.out))
    write_csv(out / "per_source.csv", per)
    write_csv(out / "picks.csv", picks)
    write_csv(out / "reliability.csv", table)
    write_csv(out / "reliability_coarse.csv", coarse)
    for p in PROTOCOLS:
        shutil.copyfile(bank / f"truth_{p}.csv", out / f"truth_{p}.csv")
    plot(table, out)
    import json

    summary = {"targets": len(truth[PROTOCOLS[0]]), "sources": len(sources), "n_rep": args.n_rep,
               "max_abs_diff_vs_bank_scores": float(max(diffs)), "skipped_sources": skipped,
               "seconds": round(time.perf_counter() - t0, 1),
               "command": f"python benchmarks/calibration.py --cache CACHE --bank BANK --n-rep {args.n_rep}"}
    for p in PROTOCOLS:
        rows = [r for r in picks if r["protocol"] == p]
        summary[p] = {"mean_p_best_of_picks": float(np.mean([r["p_best"] for r in rows])),
                      "pick_truly_best": float(np.mean([r["regret"] == 0 for r in rows])),
                      "pick_within1": float(np.mean([r["regret"] <= 1.0 for r in rows])),
                      "mean_regret": float(np.mean([r["regret"] for r in rows])),
                      "best_in_too_close_set": float(np.mean([r["best_in_set"] for r in rows])),
                      "within1_in_too_close_set": float(np.mean([r["within1_in_set"] for r in rows])),
                      "within1_outside_set": float(np.mean([r["within1_outside"] for r in rows])),
                      "mean_too_close": float(np.mean([r["too_close"] for r in rows])),
                      **{f"picks_share_{name}": {"n": len(sub), "truly_best": int(sum(r["regret"] == 0 for r in sub)),
                                                 "within1": int(sum(r["regret"] <= 1.0 for r in sub)),
                                                 "mean_regret": float(np.mean([r["regret"] for r in sub]))}
                         for name, sub in (("ge_0.7", [r for r in rows if r["p_best"] >= 0.7]),
                                           ("lt_0.7", [r for r in rows if r["p_best"] < 0.7])) if sub}}
    lp, ft = summary["linear_probe"], summary["fine_tune"]
    line = (f"picks announced at a mean P(best) of {lp['mean_p_best_of_picks']:.2f} were truly best in "
            f"{lp['pick_truly_best']:.0%} (linear probe) / {ft['pick_truly_best']:.0%} (fine-tune) of 16 targets; "
            f"the truly best source was too close to call with the pick in {lp['best_in_too_close_set']:.0%} / "
            f"{ft['best_in_too_close_set']:.0%}")
    write_manifest(out, "calibration", title="What select's P(best) and 'too close to call' are worth: real-image bank",
                   summary=line, settings={"n_rep": args.n_rep, "seed": args.seed, "command": summary["command"]},
                   tables={"reliability": "reliability.csv", "reliability_coarse": "reliability_coarse.csv",
                           "picks": "picks.csv", "per_source": "per_source.csv"},
                   figures={"reliability": "reliability.png"}, extra=summary)
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
