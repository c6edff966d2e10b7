"""The real-image bank on pretrained sources: extract, measure, score, evaluate, and apply the committed rule.

    python benchmarks/pretrained_bank.py --cache DIR --out benchmarks/results/pretrained_bank [--cached-only]

Stages (each cached under --cache; a re-run with everything cached only evaluates): pooled features of every
available source (docs/sources.md) on every image set, once; the linear-probe truth per (target, source, layer,
seed); every scorer per (target, source, layer) on the seed-0 train images; then the rows (every scorer with each
layer read, the baselines, the DEPARA family and its combinations), the truth's reliability, and the rule of
benchmarks/results/pretrained_bank/RULE.md (depara.benches.realbank.rule). --cached-only skips sources not yet extracted.
"""

from __future__ import annotations

import argparse
import itertools
import platform
import time
from pathlib import Path

import numpy as np

from depara.io.files import write_csv, write_json, write_text
from depara.benches.realbank import pretrained as P
from depara.benches.realbank import pretrained_bench as B
from depara.benches.realbank import pretrained_scoring as S
from depara.benches.realbank import rule as R
from depara.benches.realbank.evaluation import (bootstrap_columns, paired_difference, random_expectation, seed_ceiling,
                                                split_half_reliability)

PEERS_IN_COMBOS = ("LogME", "H-score", "TransRate", "PARC", "GBC", "PACTran-G", "ETran", "NCTI", "PED", "RSA", "CKA")
KNN = "k-NN accuracy"
ROUND4 = S.member_name("per_probe", "centred")  # the round-4 frozen default's comparison and scale (read: below)
#: the per-target measures of R.target_measures that the summary gives with bootstrap intervals
MEASURES = ("model_wtau", "model_kendall", "model_regret", "layer_wtau", "layer_pick", "joint_regret")


def collect(cache: Path, cfg: B.BenchConfig, cached_only: bool, log, only=None) -> tuple[dict, dict, list[str]]:
    """truth[t][s][layer] (per seed), scores[t][s][scorer][layer] and the sources used (``only``: these names)."""
    sets = {k: v for k, v in B.available_image_sets().items() if not v}
    sources = []
    for name in only or P.SOURCE_NAMES:
        spec = P.get_source(name)
        if not P.available(spec):
            log(f"skip {name}: package {spec.package} not installed")
            continue
        cached = all((cache / "features" / name / f"{st}.safetensors").is_file() for st in sets)
        if cached_only and not cached:
            log(f"skip {name}: not extracted yet (--cached-only)")
            continue
        sources.append(name)
    truth, scores = {}, {}
    for target in B.TARGETS:
        if target.image_set not in sets:
            continue
        _, y_raw = B.IMAGE_SETS[target.image_set]()
        y = target.labels(y_raw)
        train0 = cfg.split(y, 0).train
        truth[target.name], scores[target.name] = {}, {}
        for name in sources:
            spec = P.get_source(name)
            feats = B.features(name, target.image_set, cache, batch_size=cfg.batch_size, log=log)
            truth[target.name][name] = B.truth(target, name, feats, y, cfg, cache)
            scores[target.name][name] = S.score_pair(target.name, name, P.source_version(spec), feats, train0, y,
                                                     cache)
        log(f"{target.name}: truth and scores ready")
    return truth, scores, sources


def candidates(scorers: list[str]) -> list[R.Candidate]:
    """Singles (every scorer × read) first, then the rule's combinations (DEPARA member × peer × read)."""
    singles = [R.Candidate((s,), read) for s in scorers for read in R.READS]
    combos = [R.Candidate((m, p), read) for m, p, read in itertools.product(S.MEMBERS, PEERS_IN_COMBOS, R.READS)
              if p in scorers]
    return singles + combos


def layers_of(source: str) -> tuple[str, ...]:
    """A source's candidate layers (the rule's ``layers_of``)."""
    return P.get_source(source).layers


def static_scores(sources: list[str]) -> dict[str, dict[str, dict[str, float]]]:
    """The static priors as per-layer 'scores' (the same value at every layer; they never look at the target)."""
    out = {}
    for name in sources:
        spec = P.get_source(name)
        n_par = float(P.n_parameters(P.load_source(name)))
        own = spec.own_accuracy if spec.own_accuracy is not None else float("nan")
        out[name] = {"static prior: parameters": {l: n_par for l in layers_of(name)},
                     "static prior: own-task top-1": {l: own for l in layers_of(name)},
                     "always the last layer": {l: float(i) for i, l in enumerate(layers_of(name))}}
    return out


def evaluate_all(truth: dict, scores: dict, sources: list[str], extra: dict) -> tuple[dict, dict]:
    """candidate → per-target measure rows; and the reference rows (random, noise ceiling, reliability)."""
    for t in scores:
        for s in sources:
            scores[t][s] = {**scores[t][s], **extra[s]}
    scorers = list(next(iter(next(iter(scores.values())).values())))
    views = {t: R.truth_views(truth[t], sources, layers_of) for t in truth}  # one per target, not per candidate
    per_cand = {}
    for cand in candidates(scorers):
        per_cand[cand] = [{"target": t, **R.target_measures(truth[t], scores[t], sources, cand, layers_of, views[t])}
                          for t in truth]
    refs = {}
    rng = np.random.default_rng(20)
    for t in truth:
        t_model, _, _, per_seed = views[t]
        rel = {f"{m}_{k}": v for m in ("weighted_tau", "spearman")
               for k, v in split_half_reliability(per_seed, m).items()}
        layer_rel = [split_half_reliability(np.array([truth[t][s][l] for l in layers_of(s)]).T,
                                            "weighted_tau")["reliability"] for s in sources]
        ceil = seed_ceiling(per_seed, sources) if len(sources) >= 3 else {"weighted_tau": np.nan, "regret": np.nan}
        refs[t] = {**rel, "layer_weighted_tau_reliability": float(np.nanmean(layer_rel)),
                   "another_seed_weighted_tau": ceil["weighted_tau"], "another_seed_regret": ceil["regret"],
                   "random_weighted_tau": random_expectation(t_model, sources, rng)["weighted_tau"],
                   "best_source": sources[int(np.argmax(t_model))], "best_accuracy": float(t_model.max()),
                   "worst_accuracy": float(t_model.min())}
    return per_cand, refs


def summarise(per_cand: dict) -> list[dict]:
    rng = np.random.default_rng(21)
    rows = []
    for cand, prs in per_cand.items():
        rows.append({"candidate": cand.name, "parts": len(cand.parts), "read": cand.read,
                     "rule_score": R.rule_score(prs), **bootstrap_columns(prs, MEASURES, rng)})
    return rows


PAIRED_MEASURES = ("model_wtau", "layer_wtau", "layer_pick", "model_regret", "joint_regret")


def paired(per_cand: dict, a: R.Candidate, b: R.Candidate, measures=PAIRED_MEASURES, seed: int = 22) -> dict:
    """Paired bootstrap differences over targets, a − b, for each measure."""
    rng = np.random.default_rng(seed)
    out = {"a": a.name, "b": b.name}
    for m in measures:
        va = np.array([r[m] for r in per_cand[a]], float)
        vb = np.array([r[m] for r in per_cand[b]], float)
        out[m] = paired_difference(va, vb, rng)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cache", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--cached-only", action="store_true")
    ap.add_argument("--sources", help="comma-separated source names (default: every available one)")
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    cfg = B.BenchConfig()
    log = lambda m: print(time.strftime("%H:%M:%S"), m, flush=True)  # noqa: E731
    only = [P.get_source(n.strip()).name for n in args.sources.split(",")] if args.sources else None
    truth, scores, sources = collect(args.cache, cfg, args.cached_only, log, only)
    log(f"truth and scores of {len(sources)} sources on {len(truth)} targets ready")
    per_cand, refs = evaluate_all(truth, scores, sources, static_scores(sources))
    log(f"{len(per_cand)} candidates evaluated")
    summary = summarise(per_cand)
    results = {c: R.rule_score(prs) for c, prs in per_cand.items()
               if c.parts[0] in S.MEMBERS or (len(c.parts) == 1 and c.parts[0] in PEERS_IN_COMBOS)}
    chosen, notes = R.choose(results, members=set(S.MEMBERS))
    loto = leave_one_target_out(per_cand, list(results))
    log(f"leave-one-target-out: {loto['model_wtau']:.3f} models, {loto['layer_wtau']:.3f} layers")
    write_json(args.out / "leave_one_target_out.json", loto)
    report(args.out, cfg, sources, truth, per_cand, refs, summary, chosen, notes, time.perf_counter() - t0,
           args.cache)
    return 0


def report(out: Path, cfg, sources, truth, per_cand, refs, summary, chosen, notes, seconds, cache: Path) -> None:
    write_csv(out / "summary.csv", sorted(summary, key=lambda r: -r["rule_score"]))
    write_csv(out / "per_target.csv", [{"candidate": c.name, **r} for c, prs in per_cand.items() for r in prs
                                       if len(c.parts) == 1])
    write_csv(out / "reliability.csv", [{"target": t, **v} for t, v in refs.items()])
    write_csv(out / "truth.csv", [{"target": t, "source": s, "layer": l, "mean": float(np.mean(v)),
                                   "sd": float(np.std(v)), "seeds": len(v)}
                                  for t in truth for s in truth[t] for l, v in truth[t][s].items()])
    cands = {c.name: c for c in per_cand}
    logme = cands["LogME @ last"]
    refs_to = [logme, best_read(summary, cands, "LogME"), cands[f"{KNN} @ last"], best_read(summary, cands, KNN),
               cands["static prior: parameters @ last"], cands["static prior: own-task top-1 @ last"],
               cands[f"{ROUND4} @ below"]]
    refs_to += [R.Candidate((p,), chosen.read) for p in chosen.parts]  # each part alone (same read)
    comparisons = [paired(per_cand, chosen, ref) for ref in dict.fromkeys(refs_to)]
    write_csv(out / "costs.csv", costs(cache, truth))
    write_json(out / "choice.json", {"chosen": chosen.name, "notes": notes, "paired_vs": comparisons,
                                     "reference_means": {k: float(np.nanmean([v[k] for v in refs.values()]))
                                                         for k in next(iter(refs.values())) if
                                                         isinstance(next(iter(refs.values()))[k], float)}})
    write_json(out / "manifest.json", {"sources": sources, "targets": list(truth), "config": cfg.__dict__,
                                       "seconds": seconds, "python": platform.python_version(),
                                       "n_candidates": len(per_cand)})
    write_text(out / "chosen.txt", chosen.name + "\n" + "\n".join(notes) + "\n")
    write_text(out / "frozen_choice.toml", frozen_toml(chosen, summary))
    key = key_rows(summary, chosen)
    write_text(out / "summary.md", table(key, refs, comparisons))
    figure(key, out / "rank_quality.png")


def frozen_toml(chosen: R.Candidate, summary: list[dict]) -> str:
    """The choice as configs/pretrained_defaults.toml records it (RULE.md: what is frozen)."""
    comparison, scale, k = S.MEMBERS[chosen.parts[0]]
    row = next(r for r in summary if r["candidate"] == chosen.name)
    layer = {"last": "representation", "below": "below-representation"}.get(chosen.read, "best-scored")
    lines = ["# Chosen on the pretrained bank by benchmarks/results/pretrained_bank/RULE.md",
             "# (python benchmarks/pretrained_bank.py --cache DIR --out benchmarks/results/pretrained_bank)",
             f"# {chosen.name}: rule score {row['rule_score']:.4f}", "", "[depara]",
             f'edge_comparison = "{comparison}"', f'edge_scale = "{scale}"', 'edge_features = "pooled"',
             f"knn_k = {k if k is not None else 0}  # 0: floor(sqrt(N))", f'layer = "{layer}"',
             f'peer = "{chosen.parts[1] if len(chosen.parts) > 1 else ""}"  # rank-averaged with the member if set']
    return "\n".join(lines) + "\n"


def leave_one_target_out(per_cand: dict, results_keys: list[R.Candidate]) -> dict:
    """The rule applied to all targets but one, judged on the one left out, for every target: an estimate of the
    choice procedure's out-of-sample quality on this bench (the in-sample lead of a choice among hundreds is
    optimistic). Returns the picks and the held-out means of the rule score's two parts and of the layer pick."""
    targets = [r["target"] for r in next(iter(per_cand.values()))]
    picks, held = [], {"model_wtau": [], "layer_wtau": [], "layer_pick": [], "joint_regret": []}
    for i, t in enumerate(targets):
        train = {c: R.rule_score([r for j, r in enumerate(per_cand[c]) if j != i]) for c in results_keys}
        chosen, _ = R.choose(train, members=set(S.MEMBERS))
        picks.append({"held_out": t, "chosen": chosen.name})
        for m in held:
            held[m].append(per_cand[chosen][i][m])
    rng = np.random.default_rng(23)
    logme = {m: np.array([r[m] for r in per_cand[R.Candidate(("LogME",), "below")]], float) for m in held}
    vs = {m: paired_difference(np.array(v, float), logme[m], rng) for m, v in held.items()}
    return {"picks": picks, **{m: float(np.nanmean(v)) for m, v in held.items()}, "minus LogME @ below": vs}


def best_read(summary: list[dict], cands: dict, scorer: str) -> R.Candidate:
    """``scorer`` with its best layer read by the rule score (the fairest single read to compare with)."""
    rows = [r for r in summary if r["candidate"] in {f"{scorer} @ {read}" for read in R.READS}]
    return cands[max(rows, key=lambda r: r["rule_score"])["candidate"]]


def costs(cache: Path, truth: dict) -> list[dict]:
    """Each scorer's measured run time as a share of the linear-probe truth's (both from the cache's records,
    taken in the same runs at the same load), summed over every (target, source)."""
    import json

    t_truth, t_score = 0.0, {}
    for t in truth:
        for s in truth[t]:
            t_truth += json.loads((cache / "truth" / t / f"{s}.json").read_text())["payload"]["seconds"]
            for name, sec in json.loads((cache / "scores" / t / f"{s}.json").read_text())["payload"]["seconds"].items():
                t_score[name] = t_score.get(name, 0.0) + sec
    return [{"scorer": "linear-probe truth (10 seeds x 4 layers)", "seconds": t_truth, "share_of_truth": 1.0}] + \
        [{"scorer": k, "seconds": v, "share_of_truth": v / t_truth} for k, v in sorted(t_score.items(),
                                                                                       key=lambda kv: kv[1])]


def key_rows(summary: list[dict], chosen: R.Candidate) -> list[dict]:
    """The rows a reader needs: the choice, the round-4 default, every peer and baseline at its best read."""
    by = {r["candidate"]: r for r in summary}
    names = [chosen.name, f"{ROUND4} @ below"]
    for scorer in [*PEERS_IN_COMBOS, KNN, "static prior: parameters", "static prior: own-task top-1",
                   "always the last layer", *S.MEMBERS]:
        best = max((by[f"{scorer} @ {r}"] for r in R.READS), key=lambda row: row["rule_score"])
        if best["candidate"] not in names:
            names.append(best["candidate"])
    return [by[n] for n in names]


def _ci(row: dict, m: str, digits: int = 2) -> str:
    return f"{row[m]:.{digits}f} [{row[m + '_lo']:.{digits}f}, {row[m + '_hi']:.{digits}f}]"


def table(rows: list[dict], refs: dict, comparisons: list[dict]) -> str:
    lines = ["| scorer @ layer read | rule score | models: weighted τ | models: regret (points) | layers: weighted τ "
             "| best layer picked | joint (model, layer) regret |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['candidate']} | {r['rule_score']:.3f} | {_ci(r, 'model_wtau')} | "
                     f"{_ci(r, 'model_regret', 1)} | {_ci(r, 'layer_wtau')} | {_ci(r, 'layer_pick')} | "
                     f"{_ci(r, 'joint_regret', 1)} |")
    mean = lambda k: float(np.nanmean([v[k] for v in refs.values()]))  # noqa: E731
    lines += ["", f"Random ranking: models weighted τ {mean('random_weighted_tau'):.2f}. Another seed's accuracies "
              f"as the scores (noise ceiling): weighted τ {mean('another_seed_weighted_tau'):.2f}, regret "
              f"{mean('another_seed_regret'):.1f} points. Split-half reliability of the model truth (10 seeds, "
              f"Spearman–Brown): weighted τ {mean('weighted_tau_reliability'):.2f} (implied ceiling "
              f"{mean('weighted_tau_ceiling'):.2f}), Spearman {mean('spearman_reliability'):.2f} (ceiling "
              f"{mean('spearman_ceiling'):.2f}); of the layer truth: weighted τ "
              f"{mean('layer_weighted_tau_reliability'):.2f}.", "",
              "| chosen minus | models: weighted τ | layers: weighted τ | best layer picked | models: regret | joint regret |",
              "|---|---|---|---|---|---|"]
    for c in comparisons:
        cells = [f"{c[m][0]:+.2f} [{c[m][1]:+.2f}, {c[m][2]:+.2f}]" for m in
                 ("model_wtau", "layer_wtau", "layer_pick", "model_regret", "joint_regret")]
        lines.append(f"| {c['b']} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def figure(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metrics = (("model_wtau", "models: weighted τ"), ("layer_wtau", "layers: weighted τ"),
               ("joint_regret", "joint pick regret (points)"))
    fig, axes = plt.subplots(1, 3, figsize=(16, 0.35 * len(rows) + 1.5), sharey=True)
    ys = np.arange(len(rows))[::-1]
    for ax, (m, label) in zip(axes, metrics):
        for y, r in zip(ys, rows):
            colour = "tab:red" if y == ys[0] else "tab:blue" if r["candidate"].startswith("DEPARA") else "black"
            ax.errorbar(r[m], y, xerr=[[r[m] - r[m + "_lo"]], [r[m + "_hi"] - r[m]]], fmt="o", color=colour, capsize=3)
        ax.set_title(label, fontsize=10)
        ax.grid(axis="x", alpha=0.3)
    axes[0].set_yticks(ys)
    axes[0].set_yticklabels([r["candidate"] for r in rows], fontsize=7)
    fig.suptitle("Pretrained bank, linear probe: means over targets with 95 % bootstrap intervals (red: the choice)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    raise SystemExit(main())
