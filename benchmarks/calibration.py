"""What select's shipped confidence is worth: a reliability diagram of its share of half-samples won, and of "too
close to call", on the benches with measured truth.

    python benchmarks/calibration.py --pretrained-cache PCACHE --cache CACHE [--bank BANK] [--n-rep 200]
                                     [--benches pretrained_bank,realbank] [--out benchmarks/results/calibration]

The scorer measured is the one ``depara select`` ships for the labels case (``depara.selection.scorers.
LABELS_DEFAULT``: the rank average of the kNN label-graph score and LogME), with select's own code
(:mod:`depara.benches.calibration`): every candidate scored on the target's probes and on ``--n-rep`` stratified
half-samples, the rank average formed on each, then select's intervals, shares won and too-close set.

* ``pretrained_bank`` (real pretrained networks; ``benchmarks/pretrained_bank.py``'s cache PCACHE, read only):
  9 targets; the candidates are every (source, candidate layer) pair, ranked jointly as select ranks
  (model, layer) candidates; probes: the seed-0 train images the bank's scorers see; truth: the seed-mean
  linear-probe accuracy of each pair (10 seeds). **In-sample**: the default was chosen on this bench (round 6, with
  the 32-px bank).
* ``realbank`` (the trained-here 32-px bank, ``depara bench realbank --scale default``; zoo from CACHE, truth from
  the results folder BANK, default the committed ``benchmarks/results/realbank_default``): 16 targets, 12 sources
  at the frozen layer, the frozen probe subset; truth per protocol (linear probe, fine-tune; 3 seeds).
  **In-sample** for the round-6 default (chosen on it and the pretrained bank).
* ``taskbank`` (the procedural task bank, ``depara bench taskbank --scale SCALE --cache TCACHE``; networks and
  measured transfers read from TCACHE, never retrained): a target *model* and no labels, so the scorer measured is
  select's label-free default (``depara_e``: DEPARA's edge term against the target task's encoder, λ = ∞), on the
  bank's in-domain probes and ``--n-rep`` unstratified half-samples; every other task's encoder is a candidate;
  truth: the measured affinity log(scratch loss / transfer loss) in points of 0.01 (1 point ≈ a transfer loss 1 %
  higher). **In-sample**: the label-free default was chosen on the procedural bank. Written with its own figure and
  manifest to ``--out/taskbank_<scale>/``:

      python benchmarks/calibration.py --benches taskbank --taskbank-cache TCACHE --taskbank-scale demo \
          --taskbank-seeds 0,1,2

  (each seed a bank of its own, trained and measured by ``depara bench taskbank --seed S``; the half-samples of a
  bank are drawn with its seed, ``--seed`` is not used).

Per bench, under ``--out/<bench>/``: ``candidates.csv`` (every candidate of every target: score, interval, share,
pick / too close, truth, regret), ``picks.csv`` (per target), ``reliability.csv`` and ``reliability_coarse.csv`` (per
protocol and bin of the share: count, mean share, share truly best, within 1 point, mean regret; the coarse bins are
what select's sentence quotes, :data:`depara.evaluation.uncertainty.BENCH_RELIABILITY`), ``thresholds.csv`` (picks
announced at "first in ≥ p"); ``reliability.png`` (one panel per bench and protocol) and ``manifest.json`` (load,
command, seconds, the too-close record) in ``--out``. The truth is read, never re-measured.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from depara.io.files import ensure_dir, read_csv, write_csv  # noqa: E402
from depara.report.manifest import write_manifest  # noqa: E402
from depara.core.similarity_edges import pool_features  # noqa: E402
from depara.benches import calibration as C  # noqa: E402

DEFAULT_BANK = ROOT / "benchmarks" / "results" / "realbank_default"
BENCHES = ("pretrained_bank", "realbank")
TITLES = {"pretrained_bank": "pretrained bank (in-sample)", "realbank": "32-px real bank (in-sample)"}


def keep_path(keep: Path | None, bench: str, target: str, n_rep: int, seed: int) -> Path | None:
    """Where a target's scores are kept between runs (``--keep``), or None."""
    return None if keep is None else ensure_dir(keep) / f"{bench}-{target}-{n_rep}-{seed}.npy"


def pretrained_bank(cache: Path, n_rep: int, seed: int, log, keep: Path | None = None) -> dict[str, list[dict]]:
    """{"linear_probe": candidate rows} of the pretrained bank from its cache (features and truth read only)."""
    from depara.benches.realbank import pretrained as P
    from depara.benches.realbank import pretrained_bench as B

    cfg = B.BenchConfig()
    sets = {k for k, v in B.available_image_sets().items() if not v}
    sources = [s for s in P.SOURCE_NAMES
               if all((cache / "features" / s / f"{st}.safetensors").is_file() for st in sets)]
    rows = []
    for target in B.TARGETS:
        if target.image_set not in sets:
            continue
        y = target.labels(B.IMAGE_SETS[target.image_set]()[1])
        train = cfg.split(y, 0).train
        yt = np.unique(y[train], return_inverse=True)[1].astype(np.int64)
        names, feats, truth = [], [], []
        for s in sources:
            f = B.features(s, target.image_set, cache)
            acc = B.truth(target, s, f, y, cfg, cache)
            for layer in P.get_source(s).layers:
                names.append(f"{s}:{layer}")
                feats.append(np.asarray(f[layer][train]))
                truth.append(100.0 * float(np.mean(acc[layer])))
        point, said = C.shipped_verdict(feats, yt, n_rep, seed,
                                        keep=keep_path(keep, "pretrained_bank", target.name, n_rep, seed))
        rows += C.candidate_rows(target.name, names, point, said, np.array(truth))
        log(f"pretrained_bank {target.name}: pick {names[said.order[0]]} first in "
            f"{said.shares[said.order[0]]:.0%}, {len(said.too_close)} too close")
    return {"linear_probe": rows}


def read_truth(bank: Path, protocol: str) -> dict[str, dict[str, float]]:
    """{target: {source: accuracy in points}} from a realbank results folder's truth table."""
    return {r.pop("target"): {k: 100 * float(v) for k, v in r.items()}
            for r in read_csv(bank / f"truth_{protocol}.csv")}


def realbank(cache: Path, bank: Path, n_rep: int, seed: int, log, keep: Path | None = None) -> dict[str, list[dict]]:
    """{protocol: candidate rows} of the trained-here 32-px bank (zoo from ``cache``, truth from ``bank``)."""
    from depara.benches.realbank import data as D
    from depara.benches.realbank.bench import SCALES, load_defaults, target_splits
    from depara.benches.realbank.scoring import LAYERS, probe_rows, stage_output
    from depara.benches.realbank.zoo import load_or_train_zoo

    sc = SCALES["default"]
    defaults = load_defaults()[0]
    nets, _, _ = load_or_train_zoo(sc.zoo, cache / "realbank", seed)
    sources = list(nets)
    truth = {p: read_truth(bank, p) for p in ("linear_probe", "fine_tune")}
    out: dict[str, list[dict]] = {p: [] for p in truth}
    for t in truth["linear_probe"]:
        pool = D.load_target(t, sc.pool)
        tr = target_splits(sc, t, pool, [seed])[0].train
        y = np.unique(pool.y[tr], return_inverse=True)[1].astype(np.int64)
        rows = probe_rows(len(y), sc.n_probe, defaults.probes, seed)
        x = pool.x[tr][rows]
        feats = [pool_features(stage_output(net.body, x, LAYERS[defaults.layer])) for net in nets.values()]
        point, said = C.shipped_verdict(feats, y[rows], n_rep, seed, keep=keep_path(keep, "realbank", t, n_rep, seed))
        for p in truth:
            out[p] += C.candidate_rows(t, sources, point, said, np.array([truth[p][t][s] for s in sources]))
        log(f"realbank {t}: pick {sources[said.order[0]]} first in {said.shares[said.order[0]]:.0%}, "
            f"{len(said.too_close)} too close")
    return out


#: What "1 point" is on the task bank's truth: its affinity log(scratch loss / transfer loss) × 100, so 1 point
#: is 0.01 of log loss ratio (a transfer loss about 1 % higher than the best source's).
AFFINITY_POINTS = 100.0


def taskbank(cache: Path, scale: str, n_rep: int, seeds: list[int], log,
             keep: Path | None = None) -> dict[str, list[dict]]:
    """{"affinity": candidate rows} of the procedural task bank at ``scale``, one bank per seed (targets named
    ``<task>@<seed>``), from a ``depara bench taskbank`` cache (task networks and measured transfers read, never
    retrained): per target task, every other task's encoder is a candidate source, ranked by select's label-free
    default against the target's own encoder on the bank's in-domain probes (half-samples drawn with the same
    seed); truth: the measured affinity in points (:data:`AFFINITY_POINTS`)."""
    rows = []
    for seed in seeds:
        graphs, gt = taskbank_graphs(cache, scale, seed)
        for t, target in enumerate(gt["tasks"]):
            if target not in gt["targets"]:
                continue
            sources = [s for s in gt["tasks"] if s != target]
            point, said = C.label_free_verdict([graphs[s] for s in sources], graphs[target], n_rep, seed,
                                               keep=keep_path(keep, f"taskbank_{scale}", target, n_rep, seed))
            truth = AFFINITY_POINTS * np.array([gt["affinity"][t, gt["tasks"].index(s)] for s in sources])
            rows += C.candidate_rows(f"{target}@{seed}", sources, point, said, truth, C.LABEL_FREE)
            log(f"taskbank seed {seed} {target}: pick {sources[said.order[0]]} first in "
                f"{said.shares[said.order[0]]:.0%}, {len(said.too_close)} too close")
    return {"affinity": rows}


def taskbank_graphs(cache: Path, scale: str, seed: int) -> tuple[dict, dict]:
    """({task: DEPARA graph of its encoder on the in-domain probes}, the measured transfers) of one cached bank."""
    from depara.benches.taskbank.affinity import measure_affinities
    from depara.benches.taskbank.bench import BANK_OPTIONS, GRAPH_BATCH, cache_root_for
    from depara.benches.taskbank.networks import REP_LAYER
    from depara.benches.taskbank.train import SceneData, load_or_train_encoders, make_config
    from depara.extraction.extract import build_graphs

    cfg = make_config(scale, seed=seed)
    root = cache_root_for(cfg, cache)
    data = SceneData(cfg)
    encoders, _ = load_or_train_encoders(cfg, root, data)
    gt = measure_affinities(cfg, root, encoders, data)
    x = data.probe_tensor()
    return {n: build_graphs(encoders[n], x, [REP_LAYER], BANK_OPTIONS, batch_size=GRAPH_BATCH)[REP_LAYER]
            for n in gt["tasks"]}, gt


def per_seed(picks: list[dict]) -> dict[str, dict]:
    """The picks' record per bank seed (targets named ``<task>@<seed>``): the spread over seeds."""
    out: dict[str, dict] = {}
    for seed in dict.fromkeys(r["target"].rsplit("@", 1)[1] for r in picks):
        sub = [r for r in picks if r["target"].rsplit("@", 1)[1] == seed]
        out[seed] = {"targets": len(sub), "truly_best": float(np.mean([r["best"] for r in sub])),
                     "within1": float(np.mean([r["within1"] for r in sub])),
                     "mean_regret": float(np.mean([r["regret"] for r in sub])),
                     "best_in_set": float(np.mean([r["best_in_set"] for r in sub]))}
    return out


def plot(tables: dict, out: Path, titles: dict) -> None:
    """reliability.png: per bench and protocol, the share truly best / within 1 point against the share won (top)
    and the mean regret of the candidates in each bin (bottom)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [(b, p) for b in tables for p in tables[b]]
    fig, axes = plt.subplots(2, len(panels), figsize=(3.4 * len(panels), 6.2), sharex=True, sharey="row",
                             squeeze=False, gridspec_kw={"height_ratios": [3, 2]})
    for k, (b, p) in enumerate(panels):
        ax, reg = axes[0][k], axes[1][k]
        rows = [r for r in tables[b][p] if r["count"]]
        x = [r["mean_share"] for r in rows]
        ax.plot([0, 1], [0, 1], ls="--", c="grey", lw=1, label="calibrated")
        ax.plot(x, [r["best_rate"] for r in rows], "o-", label="truly best")
        ax.plot(x, [r["within1_rate"] for r in rows], "s:", label="within 1 point")
        for r in rows:
            ax.annotate(f"{r['count']}", (r["mean_share"], r["best_rate"]), fontsize=7, xytext=(3, -9),
                        textcoords="offset points")
        ax.set_title(f"{titles[b]}\n{p.replace('_', ' ')} truth", fontsize=8)
        ax.set_xlim(-0.02, 1.02)
        ax.set_ylim(-0.02, 1.02)
        reg.bar(x, [r["mean_regret"] for r in rows], width=0.04, color="tab:red")
        reg.set_xlabel("share of half-samples won (bin mean)", fontsize=8)
    axes[0][0].set_ylabel("observed rate (numbers: candidates in the bin)", fontsize=8)
    axes[1][0].set_ylabel("mean regret in the bin (points)", fontsize=8)
    axes[0][0].legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    fig.savefig(out / "reliability.png", dpi=110)
    plt.close(fig)


def write_bench(out: Path, per_protocol: dict[str, list[dict]]) -> tuple[dict, dict]:
    """The bench's tables under ``out``; (fine reliability tables per protocol, summary per protocol)."""
    out = ensure_dir(out)
    fine, summary = {}, {}
    for name, rows_of in (("candidates", lambda p, r: r), ("picks", lambda p, r: C.pick_rows(r)),
                          ("reliability", lambda p, r: C.reliability_rows(r, C.BINS)),
                          ("reliability_coarse", lambda p, r: C.reliability_rows(r, C.COARSE_BINS)),
                          ("thresholds", lambda p, r: C.threshold_rows(C.pick_rows(r)))):
        write_csv(out / f"{name}.csv", [{"protocol": p, **row} for p, r in per_protocol.items()
                                        for row in rows_of(p, r)])
    for p, rows in per_protocol.items():
        fine[p] = C.reliability_rows(rows, C.BINS)
        picks = C.pick_rows(rows)
        summary[p] = {"too_close": C.too_close_summary(picks),
                      "picks": {"mean_share": float(np.nanmean([r["share"] for r in picks])),
                                "truly_best": float(np.mean([r["best"] for r in picks])),
                                "within1": float(np.mean([r["within1"] for r in picks])),
                                "mean_regret": float(np.mean([r["regret"] for r in picks]))},
                      "thresholds": C.threshold_rows(picks),
                      "coarse": C.reliability_rows(rows, C.COARSE_BINS)}
    return fine, summary


def summarise(summary: dict, titles: dict) -> str:
    """One line per bench and protocol: the picks' record and the too-close record."""
    return "; ".join(f"{titles[b]}, {p.replace('_', ' ')}: picks truly best in {s['picks']['truly_best']:.0%} of "
                     f"{s['too_close']['targets']} targets (mean share won {s['picks']['mean_share']:.2f}), mean "
                     f"regret {s['picks']['mean_regret']:.1f} points, truly best in pick + too close in "
                     f"{s['too_close']['best_in_set']:.0%}" for b in summary for p, s in summary[b].items())


def finish(out: Path, benches: list[str], fine: dict, summary: dict, seconds: dict, titles: dict, scorer: str,
           settings: dict, clock: tuple) -> str:
    """reliability.png and manifest.json of the benches run into ``out``; the summary line."""
    t0, cpu0, load0 = clock
    plot(fine, out, titles)
    line = summarise(summary, titles)
    write_manifest(out, "calibration", title=f"What select's confidence ({scorer}) is worth", summary=line,
                   settings={"scorer": scorer, **settings},
                   tables={"/".join(filter(None, (b, n))): "/".join(filter(None, (b, f"{n}.csv"))) for b in benches
                           for n in ("reliability", "reliability_coarse", "thresholds", "picks", "candidates")},
                   figures={"reliability": "reliability.png"},
                   extra={"benches": summary, "cpu_seconds": seconds,
                          "wall_seconds": round(time.perf_counter() - t0, 1),
                          "cpu_seconds_total": round(time.process_time() - cpu0, 1),
                          "load_average_start": [round(v, 2) for v in load0],
                          "load_average_end": [round(v, 2) for v in os.getloadavg()]})
    return line


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pretrained-cache", help="benchmarks/pretrained_bank.py's --cache folder (read only)")
    ap.add_argument("--cache", help="the realbank cache folder (its realbank/ zoo is reused)")
    ap.add_argument("--bank", default=str(DEFAULT_BANK), help="a realbank results folder (its truth tables)")
    ap.add_argument("--taskbank-cache", help="depara bench taskbank's --cache folder (networks and truth reused)")
    ap.add_argument("--taskbank-scale", default="demo", help="the task bank's scale (tiny, demo, default)")
    ap.add_argument("--taskbank-seeds", default="0", help="the task banks' seeds, comma-separated (pooled)")
    ap.add_argument("--benches", default=",".join(BENCHES), help=f"of {', '.join(BENCHES)}, taskbank")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "calibration"))
    ap.add_argument("--n-rep", type=int, default=200, help="half-samples per target (select's default n_boot)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--keep", help="a folder keeping every target's scores, reused by a later run (not committed)")
    args = ap.parse_args(argv)
    benches = [b.strip() for b in args.benches.split(",") if b.strip()]
    for b in benches:
        if b not in (*BENCHES, "taskbank"):
            ap.error(f"--benches: unknown bench {b!r} (expected {', '.join(BENCHES)} or taskbank)")
    out = ensure_dir(Path(args.out))
    keep = Path(args.keep) if args.keep else None
    lines = []
    if "taskbank" in benches:  # its own folder, figure and manifest: another scorer, another kind of truth
        clock = time.perf_counter(), time.process_time(), os.getloadavg()
        name = f"taskbank_{args.taskbank_scale}"
        seeds = [int(v) for v in args.taskbank_seeds.split(",")]
        rows = taskbank(Path(args.taskbank_cache), args.taskbank_scale, args.n_rep, seeds, print, keep)
        fine, summary = write_bench(out / name, rows)
        summary["affinity"]["per_seed"] = per_seed(C.pick_rows(rows["affinity"]))
        titles = {name: f"procedural bank, {args.taskbank_scale} scale, {len(seeds)} seed(s) (in-sample; "
                        "1 point = 0.01 affinity)"}
        command = (f"python benchmarks/calibration.py --benches taskbank --taskbank-cache TCACHE --taskbank-scale "
                   f"{args.taskbank_scale} --taskbank-seeds {args.taskbank_seeds} --n-rep {args.n_rep}")
        lines.append(finish(out / name, [""], {name: fine}, {name: summary},
                            {name: round(time.process_time() - clock[1], 1)}, titles, C.LABEL_FREE,
                            {"n_rep": args.n_rep, "seeds": seeds, "scale": args.taskbank_scale,
                             "truth": "affinity log(scratch loss / transfer loss); 1 point = 0.01 of it",
                             "caches": {"TCACHE": f"depara bench taskbank --scale {args.taskbank_scale} --seed S "
                                                  "--cache TCACHE, for each seed S (task networks and measured "
                                                  "transfers; read, never retrained here)"},
                             "command": command}, clock))
    real = [b for b in benches if b in BENCHES]
    if real:
        clock = time.perf_counter(), time.process_time(), os.getloadavg()
        fine, summary, seconds = {}, {}, {}
        for b in real:
            t1 = time.process_time()
            if b == "pretrained_bank":
                rows = pretrained_bank(Path(args.pretrained_cache), args.n_rep, args.seed, print, keep)
            else:
                rows = realbank(Path(args.cache), Path(args.bank), args.n_rep, args.seed, print, keep)
            fine[b], summary[b] = write_bench(out / b, rows)
            seconds[b] = round(time.process_time() - t1, 1)
        command = (f"python benchmarks/calibration.py --pretrained-cache PCACHE --cache CACHE --n-rep {args.n_rep} "
                   f"--benches {','.join(real)}")
        lines.append(finish(out, real, fine, summary, seconds, TITLES, C.SHIPPED,
                            {"n_rep": args.n_rep, "seed": args.seed, "command": command}, clock))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
