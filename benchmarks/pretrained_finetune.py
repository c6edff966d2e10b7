"""Fine-tuning ground truth of the pretrained bank, and every row of the bank scored against it.

    nice -n 10 python benchmarks/pretrained_finetune.py --cache DIR --out benchmarks/results/pretrained_bank_finetune

Stages (each cached under --cache, the same cache as benchmarks/pretrained_bank.py): the cached layer's spatial
output of every source on every image set, once (``cut/``); per (target, source, seed) the top part + a linear head
fine-tuned on the bank's split of that seed (``finetune/``; depara.benches.realbank.pretrained_finetune); then the
bank's own truth, scores and candidates (benchmarks/pretrained_bank.py's ``collect`` and ``candidates``: the scores
are the bank's cached ones, not recomputed) judged against the fine-tune model truth, the truth's split-half
reliability and noise ceiling, and its agreement with the linear-probe truth. --seeds and --steps set the budget;
--sources / --targets run a subset (a pilot: the results are then not the bank's).
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import time
from pathlib import Path

import numpy as np

import pretrained_bank as PB  # the bank's own script, beside this one
from depara.benches.realbank import pretrained as P
from depara.benches.realbank import pretrained_bench as B
from depara.benches.realbank import pretrained_finetune as F
from depara.benches.realbank import rule as R
from depara.benches.realbank.evaluation import (bootstrap_columns, random_expectation, rank_rows,
                                                seed_ceiling, split_half_reliability)
from depara.benches.realbank.truth import linear_probe
from depara.io.files import write_csv, write_json, write_text

ROUND5 = R.Candidate(("DEPARA-label [knn k=√N, standardised]", "PED"), "below")
KNN_MEMBER = R.Candidate(("DEPARA-label [knn k=√N, standardised]",), "below")
ROUND4 = R.Candidate((PB.ROUND4,), "below")
LOGME = R.Candidate(("LogME",), "below")
LOGME_LAST = R.Candidate(("LogME",), "last")
MEASURES = ("model_wtau", "model_kendall", "model_regret")


def load_avg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3]) if Path("/proc/loadavg").is_file() else "n/a"


def finetune_all(cache: Path, cfg: B.BenchConfig, ft: F.FinetuneConfig, seeds: int, sources, targets, log) -> dict:
    """ft[target][source] = {'accuracy': per seed, 'seconds': per seed CPU}; one model load per source."""
    out = {t.name: {} for t in targets}
    labels = {}
    for source in sources:
        model = P.load_source(source)
        top = F.top_part(source, model)
        for target in targets:
            if target.image_set not in labels:
                labels[target.image_set] = B.IMAGE_SETS[target.image_set]()[1]
            x = F.cached_input(source, target.image_set, cache, model=model, log=log)
            y = target.labels(labels[target.image_set])
            out[target.name][source] = F.finetune_truth(target, source, x, y, cfg, ft, seeds, cache, top)
            acc = out[target.name][source]["accuracy"]
            log(f"{source} on {target.name}: {np.mean(acc):.3f} ± {np.std(acc):.3f} "
                f"({sum(out[target.name][source]['seconds']):.0f} CPU s, load {load_avg()})")
    return out


def linear_probe_cpu_seconds(cache: Path, cfg: B.BenchConfig, seeds: int, sources, targets) -> float:
    """CPU seconds of the linear-probe truth on the same (target, source, seed) runs, every candidate layer,
    re-measured here at the fine-tuning run's load (the cached truth records wall seconds of another run)."""
    t0 = time.process_time()
    for target in targets:
        y = target.labels(B.IMAGE_SETS[target.image_set]()[1])
        for source in sources:
            feats = B.features(source, target.image_set, cache)
            for seed in range(seeds):
                sp = cfg.split(y, seed)
                for f in feats.values():
                    linear_probe(f[sp.train], y[sp.train], f[sp.test], y[sp.test], c=cfg.lp_c)
    return time.process_time() - t0


def costs(cache: Path, lp_truth: dict, ft_seconds: float, seeds: int) -> list[dict]:
    """Each scorer's and the linear-probe truth's seconds as the bank's cache records them (pretrained_bank.costs:
    wall seconds of the run that filled the cache), and as a share of the fine-tuning truth's CPU seconds."""
    rows = [{"scorer": f"fine-tuning truth ({seeds} seeds, CPU s)", "seconds": ft_seconds, "share_of_truth": np.nan}]
    rows += PB.costs(cache, lp_truth)
    return [{**r, "share_of_finetune_truth": r["seconds"] / ft_seconds} for r in rows]


def reference_rows(ft: dict, lp_truth: dict, sources) -> dict:
    """Per target: the fine-tune truth's split-half reliability and noise ceiling, random, and its agreement with
    the linear-probe truth (that truth used as the scores: best layer, and the deepest layer)."""
    rng = np.random.default_rng(30)
    refs = {}
    for t in ft:
        per_seed = np.array([ft[t][s]["accuracy"] for s in sources]).T
        model = per_seed.mean(axis=0)
        rel = {f"{m}_{k}": v for m in ("weighted_tau", "spearman")
               for k, v in split_half_reliability(per_seed, m).items()}
        ceil = seed_ceiling(per_seed, sources)
        lp_best, _, _, _ = R.truth_views(lp_truth[t], sources, PB.layers_of)
        lp_last = np.array([np.mean(lp_truth[t][s][PB.layers_of(s)[-1]]) for s in sources])
        refs[t] = {**rel, "another_seed_weighted_tau": ceil["weighted_tau"], "another_seed_regret": ceil["regret"],
                   "random_weighted_tau": random_expectation(model, sources, rng)["weighted_tau"],
                   "linear_probe_best_layer_weighted_tau": rank_rows(lp_best, model, sources)["weighted_tau"],
                   "linear_probe_best_layer_regret": rank_rows(lp_best, model, sources)["regret"],
                   "linear_probe_deepest_weighted_tau": rank_rows(lp_last, model, sources)["weighted_tau"],
                   "best_source_finetune": sources[int(np.argmax(model))],
                   "best_source_linear_probe": sources[int(np.argmax(lp_best))],
                   "best_accuracy": float(model.max()), "worst_accuracy": float(model.min()),
                   "mean_seed_sd": float(per_seed.std(axis=0).mean())}
    return refs


def judge(ft: dict, scores: dict, sources, cands) -> dict:
    """candidate → per-target model measures against the fine-tune truth."""
    truth = {t: np.array([np.mean(ft[t][s]["accuracy"]) for s in sources]) for t in ft}
    return {c: [{"target": t, **F.model_measures(truth[t], scores[t], sources, c, PB.layers_of)} for t in ft]
            for c in cands}


def summarise(per_cand: dict, lp_rows: dict) -> list[dict]:
    rng = np.random.default_rng(31)
    rows = []
    for cand, prs in per_cand.items():
        lp = lp_rows.get(cand)
        rows.append({"candidate": cand.name, "parts": len(cand.parts), "read": cand.read,
                     **bootstrap_columns(prs, MEASURES, rng),
                     "linear_probe_model_wtau": float(np.nanmean([r["model_wtau"] for r in lp])) if lp else np.nan,
                     "linear_probe_rule_score": R.rule_score(lp) if lp else np.nan})
    return rows


def paired(per_cand: dict, a: R.Candidate, b: R.Candidate) -> dict:
    return PB.paired(per_cand, a, b, measures=("model_wtau", "model_regret"), seed=32)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cache", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--seeds", type=int, default=4)
    ap.add_argument("--steps", type=int, default=F.FinetuneConfig.steps)
    ap.add_argument("--sources", help="comma-separated source names (default: every available one)")
    ap.add_argument("--targets", help="comma-separated target names (default: all)")
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    t0, c0, load0 = time.perf_counter(), time.process_time(), load_avg()
    cfg, ft_cfg = B.BenchConfig(), F.FinetuneConfig(steps=args.steps)
    log = lambda m: print(time.strftime("%H:%M:%S"), m, flush=True)  # noqa: E731
    only = [P.get_source(n.strip()).name for n in args.sources.split(",")] if args.sources else None
    sets = {k for k, v in B.available_image_sets().items() if not v}
    targets = [t for t in B.TARGETS if t.image_set in sets and (not args.targets or t.name in args.targets.split(","))]
    lp_truth, scores, sources = PB.collect(args.cache, cfg, True, log, only)
    lp_truth = {t.name: lp_truth[t.name] for t in targets}
    scores = {t.name: scores[t.name] for t in targets}
    ft = finetune_all(args.cache, cfg, ft_cfg, args.seeds, sources, targets, log)
    lp_per_cand, _ = PB.evaluate_all(lp_truth, scores, sources, PB.static_scores(sources))  # adds the priors
    scorers = list(next(iter(next(iter(scores.values())).values())))
    per_cand = judge(ft, scores, sources, PB.candidates(scorers))
    refs = reference_rows(ft, lp_truth, sources)
    summary = summarise(per_cand, lp_per_cand)
    pairs = [(a, b) for b in (LOGME, LOGME_LAST) for a in (ROUND5, KNN_MEMBER, ROUND4)]
    comparisons = [paired(per_cand, a, b) for a, b in pairs + [(ROUND5, KNN_MEMBER), (ROUND5, ROUND4)]]
    ft_seconds = sum(sum(v["seconds"]) for t in ft for v in ft[t].values())
    lp_seconds = linear_probe_cpu_seconds(args.cache, cfg, args.seeds, sources, targets)
    manifest = {"command": "python benchmarks/pretrained_finetune.py " + " ".join(argv or __import__("sys").argv[1:]),
                "sources": sources, "targets": [t.name for t in targets], "seeds": args.seeds,
                "bank_config": cfg.__dict__, "finetune_config": ft_cfg.__dict__,
                "cuts": {s: F.CUTS[s].__dict__ for s in sources}, "finetune_cpu_seconds": ft_seconds,
                "finetune_cpu_seconds_per_source": {s: sum(sum(ft[t][s]["seconds"]) for t in ft) for s in sources},
                "linear_probe_cpu_seconds_same_runs_4_layers": lp_seconds,
                "cut_extraction_wall_seconds": {s: sum(json.loads(p.read_text())["payload"]["seconds"]
                                                       for p in (args.cache / "cut" / s).glob("*.json"))
                                                for s in sources},
                "wall_seconds": time.perf_counter() - t0, "process_cpu_seconds": time.process_time() - c0,
                "load_at_start": load0, "load_at_end": load_avg(), "python": platform.python_version(),
                "commit": subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip(),
                "n_candidates": len(per_cand)}
    report(args.out, ft, lp_truth, sources, per_cand, refs, summary, comparisons, manifest)
    write_csv(args.out / "costs.csv", costs(args.cache, lp_truth, ft_seconds, args.seeds))
    log(f"done: {ft_seconds:.0f} CPU s of fine-tuning, {len(per_cand)} candidates")
    return 0


def report(out: Path, ft, lp_truth, sources, per_cand, refs, summary, comparisons, manifest) -> None:
    write_csv(out / "summary.csv", sorted(summary, key=lambda r: -r["model_wtau"]))
    write_csv(out / "per_target.csv", [{"candidate": c.name, **r} for c, prs in per_cand.items() for r in prs])
    write_csv(out / "reliability.csv", [{"target": t, **v} for t, v in refs.items()])
    write_csv(out / "truth.csv", [{"target": t, "source": s, "mean": float(np.mean(v["accuracy"])),
                                   "sd": float(np.std(v["accuracy"])), "seeds": len(v["accuracy"]),
                                   "per_seed": " ".join(f"{a:.4f}" for a in v["accuracy"]),
                                   "cpu_seconds": float(sum(v["seconds"]))}
                                  for t in ft for s, v in ft[t].items()])
    write_json(out / "paired.json", comparisons)
    write_json(out / "manifest.json", manifest)
    write_text(out / "summary.md", table(key_rows(summary), refs, comparisons, manifest))
    figure(ft, lp_truth, sources, refs, out / "finetune_vs_linear_probe.png")


def key_rows(summary: list[dict]) -> list[dict]:
    """The defaults, every peer and baseline at its best read under fine-tuning truth, and LogME @ below."""
    by = {r["candidate"]: r for r in summary}
    names = [ROUND5.name, KNN_MEMBER.name, ROUND4.name, LOGME.name, LOGME_LAST.name]
    for scorer in [*PB.PEERS_IN_COMBOS, PB.KNN, "static prior: parameters", "static prior: own-task top-1"]:
        best = max((by[f"{scorer} @ {r}"] for r in R.READS), key=lambda row: row["model_wtau"])
        if best["candidate"] not in names:
            names.append(best["candidate"])
    return [by[n] for n in names]


def _ci(row: dict, m: str, digits: int = 2) -> str:
    return f"{row[m]:.{digits}f} [{row[m + '_lo']:.{digits}f}, {row[m + '_hi']:.{digits}f}]"


def table(rows: list[dict], refs: dict, comparisons: list[dict], manifest: dict) -> str:
    mean = lambda k: float(np.nanmean([v[k] for v in refs.values()]))  # noqa: E731
    lines = [f"Fine-tuning truth: {len(refs)} targets, {len(manifest['sources'])} sources, {manifest['seeds']} seeds, "
             f"{manifest['finetune_config']['steps']} Adam steps of batch {manifest['finetune_config']['batch_size']}"
             f"; {manifest['finetune_cpu_seconds']:.0f} CPU s of fine-tuning, summed over the cached per-seed records "
             f"(this run, at load {manifest['load_at_start']} → {manifest['load_at_end']}, read them). Means over targets with 95 % bootstrap intervals over targets; peers at "
             "their best read under this truth (chosen here, so optimistic), the defaults at their own read.", "",
             "| scorer @ layer read | models: weighted τ | models: Kendall τ | models: regret (points) "
             "| linear-probe truth: weighted τ |", "|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['candidate']} | {_ci(r, 'model_wtau')} | {_ci(r, 'model_kendall')} | "
                     f"{_ci(r, 'model_regret', 1)} | {r['linear_probe_model_wtau']:.2f} |")
    lines += ["", f"Random: weighted τ {mean('random_weighted_tau'):.2f}. Another seed's fine-tuned accuracies as the "
              f"scores (noise ceiling): weighted τ {mean('another_seed_weighted_tau'):.2f}, regret "
              f"{mean('another_seed_regret'):.1f} points. Split-half reliability ({manifest['seeds']} seeds, "
              f"Spearman–Brown): weighted τ {mean('weighted_tau_reliability'):.2f} (implied ceiling "
              f"{mean('weighted_tau_ceiling'):.2f}), Spearman {mean('spearman_reliability'):.2f} (ceiling "
              f"{mean('spearman_ceiling'):.2f}). The linear-probe truth as a scorer of this one: weighted τ "
              f"{mean('linear_probe_best_layer_weighted_tau'):.2f} (best layer), "
              f"{mean('linear_probe_deepest_weighted_tau'):.2f} (deepest layer).", "",
              "| paired difference (a − b) | models: weighted τ | models: regret |", "|---|---|---|"]
    for c in comparisons:
        cells = [f"{c[m][0]:+.2f} [{c[m][1]:+.2f}, {c[m][2]:+.2f}]" for m in ("model_wtau", "model_regret")]
        lines.append(f"| {c['a']} − {c['b']} | " + " | ".join(cells) + " |")
    lines += ["", "| target | reliability (wτ) | ceiling (wτ) | another seed (wτ) | linear probe vs fine-tune (wτ) "
              "| best (fine-tune) | best (linear probe) |", "|---|---|---|---|---|---|---|"]
    for t, v in refs.items():
        lines.append(f"| {t} | {v['weighted_tau_reliability']:.2f} | {v['weighted_tau_ceiling']:.2f} | "
                     f"{v['another_seed_weighted_tau']:.2f} | {v['linear_probe_best_layer_weighted_tau']:.2f} | "
                     f"{v['best_source_finetune']} | {v['best_source_linear_probe']} |")
    return "\n".join(lines) + "\n"


def figure(ft: dict, lp_truth: dict, sources, refs: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    targets = list(ft)
    cols = 3
    fig, axes = plt.subplots(-(-len(targets) // cols), cols, figsize=(12, 3.4 * -(-len(targets) // cols)))
    markers = "osD^v*"
    for ax, t in zip(np.ravel(axes), targets):
        lp = R.truth_views(lp_truth[t], sources, PB.layers_of)[0]
        for i, s in enumerate(sources):
            acc = ft[t][s]["accuracy"]
            ax.errorbar(100 * lp[i], 100 * np.mean(acc), yerr=100 * np.std(acc), fmt=markers[i % len(markers)],
                        capsize=2, label=s)
        lo, hi = 100 * min(lp.min(), min(np.mean(v["accuracy"]) for v in ft[t].values())), 100
        ax.plot([lo, hi], [lo, hi], color="grey", lw=0.6)
        ax.set_title(f"{t} (τw {refs[t]['linear_probe_best_layer_weighted_tau']:.2f})", fontsize=9)
        ax.set_xlabel("linear probe, best layer (%)", fontsize=8)
        ax.set_ylabel("fine-tuned (%)", fontsize=8)
    for ax in np.ravel(axes)[len(targets):]:
        ax.axis("off")
    np.ravel(axes)[0].legend(fontsize=6)
    fig.suptitle("Pretrained bank: fine-tune vs linear-probe model truth per target (mean ± sd over seeds)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


if __name__ == "__main__":
    raise SystemExit(main())
