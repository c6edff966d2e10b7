"""Round 6: the frozen labels default re-chosen on two real benches at once, by the rule committed before the run
(benchmarks/results/default_choice_two_benches/RULE.md).

    python benchmarks/choose_two_benches.py --pb-cache PB_CACHE --rb-cache RB_CACHE --score-cache DIR \\
        [--out benchmarks/results/default_choice_two_benches]

- **Pretrained bank**: every candidate's per-target rows from the cached bench (``benchmarks/pretrained_bank.py``'s
  ``collect`` and ``evaluate_all`` on ``PB_CACHE``; the features, truth and scores must be cached there).
- **32-px bank**: the zoo of ``depara bench realbank --scale default`` from ``RB_CACHE`` (as
  benchmarks/realbank_layers.py loads it); every member and peer (``pretrained_scoring.score_pair``, the pretrained
  bank's own scoring, cached under ``--score-cache``) on the pooled output of each stage for the seed-0 labelled
  images; model truth from benchmarks/results/realbank_default/truth_per_seed.csv (linear probe and fine-tune),
  stage truth from benchmarks/results/realbank_layers/layers.csv.
- The rule: each bench's :func:`depara.benches.realbank.rule.rule_score` (on the 32-px bank the model part is the
  mean of the two protocols' weighted τ), the two-bench score = the worse of the two
  (:func:`~depara.benches.realbank.rule.two_bench_score`), :func:`~depara.benches.realbank.rule.choose`.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "benchmarks"))

import pretrained_bank as PB  # noqa: E402  (the pretrained bank's script: its collect / evaluate_all / candidates)
import realbank_layers as RL  # noqa: E402  (the 32-px bank's stage features)

from depara.benches.realbank import pretrained_scoring as S  # noqa: E402
from depara.benches.realbank import rule as R  # noqa: E402
from depara.benches.realbank.evaluation import bootstrap_columns, paired_difference  # noqa: E402
from depara.io.files import read_csv  # noqa: E402

RULE_COMMIT = "53f289916d008105a25c9da4d1b52da10f038694"  # the commit of RULE.md alone, before this run
PROTOCOLS = ("linear_probe", "fine_tune")
ROUND5 = R.Candidate((S.member_name("knn", "standardised"), "PED"), "below")
ROUND4 = R.Candidate((S.member_name("per_probe", "centred"),), "below")
BENCHES = ("pretrained", "realbank32")
#: per-target measures given with bootstrap intervals (the 32-px bank adds its per-protocol model rows)
MEASURES = ("model_wtau", "model_regret", "layer_wtau", "layer_pick", "joint_regret")
MEASURES32 = MEASURES + tuple(f"model_{m}_{p}" for m in ("wtau", "regret") for p in PROTOCOLS)


def rb_truth(layers_csv: Path, truth_per_seed: Path) -> tuple[dict, dict]:
    """(stage truth ``[t][s][stage]`` = per-seed accuracies, model truth ``[t][protocol][s]`` = seed mean)."""
    layers: dict = {}
    for r in read_csv(layers_csv):
        seeds = sorted({int(k.rsplit("seed", 1)[1]) for k in r if k.startswith("acc_stage1_seed")})
        layers.setdefault(r["target"], {})[r["source"]] = {st: [float(r[f"acc_{st}_seed{k}"]) for k in seeds]
                                                           for st in RL.STAGES}
    per: dict = {}
    for r in read_csv(truth_per_seed):
        for p in PROTOCOLS:
            per.setdefault(r["target"], {}).setdefault(p, {}).setdefault(r["source"], []).append(float(r[p]))
    model = {t: {p: {s: float(np.mean(v)) for s, v in d.items()} for p, d in ps.items()} for t, ps in per.items()}
    return layers, model


def rb_scores(cache: Path, score_cache: Path, log) -> dict:
    """``scores[t][s][scorer][stage]``: every member and peer on each stage's pooled output of the seed-0 labelled
    images of each target of the 32-px bank (``--scale default``), cached per (target, source)."""
    import torch
    from threadpoolctl import threadpool_limits

    from depara.benches.realbank.bench import SCALES, available_targets, target_splits
    from depara.benches.realbank.zoo import load_or_train_zoo
    from depara.benches.taskbank.cache import fingerprint

    torch.set_num_threads(1)
    sc = SCALES["default"]
    out: dict = {}
    with threadpool_limits(1):
        nets, infos, _ = load_or_train_zoo(sc.zoo, cache / "realbank", 0)
        for t, pool in available_targets(sc):
            tr0 = target_splits(sc, t, pool, [0])[0].train
            y0 = np.unique(pool.y[tr0], return_inverse=True)[1]
            out[t] = {}
            for n, net in nets.items():
                feats = {st: v.mean(dim=(2, 3)).double().numpy()
                         for st, v in RL.stage_features(net.body, pool.x[tr0]).items()}
                version = fingerprint({"source": infos[n]["file_sha256"], "rows": tr0.tolist()})
                out[t][n] = S.score_pair(t, n.replace(":", "_"), version, feats, np.arange(len(tr0)), y0,
                                         score_cache)
            log(f"32-px bank, {t}: scores ready")
    return out


def rb_per_candidate(cands: list[R.Candidate], layers: dict, model: dict, scores: dict) -> dict:
    """candidate → per-target rows of the 32-px bank (:func:`depara.benches.realbank.rule.target_measures` with the
    stage truth as layer truth and both protocols' representation truth as model truth)."""
    targets = [t for t in scores if t in layers and t in model]
    sources = list(next(iter(layers.values())))
    stages = lambda s: RL.STAGES  # noqa: E731
    views = {t: R.truth_views(layers[t], sources, stages) for t in targets}
    truths = {t: {p: np.array([model[t][p][s] for s in sources]) for p in PROTOCOLS} for t in targets}
    return {c: [{"target": t, **R.target_measures(layers[t], scores[t], sources, c, stages, views[t], truths[t])}
                for t in targets] for c in cands}


def rule_results(per: dict[str, dict], keep: list[R.Candidate], drop: tuple[str, int] | None = None) -> dict:
    """candidate → two-bench score over ``keep`` (``drop``: (bench, target index) left out of that bench)."""
    def rows(bench, c):
        prs = per[bench][c]
        return [r for i, r in enumerate(prs) if drop is None or bench != drop[0] or i != drop[1]]
    return {c: R.two_bench_score(*(rows(b, c) for b in BENCHES)) for c in keep}


def in_rule(c: R.Candidate) -> bool:
    """The rule's candidates: members alone, members + peer, and the peers alone (to judge combinations)."""
    return c.parts[0] in S.MEMBERS or (len(c.parts) == 1 and c.parts[0] in PB.PEERS_IN_COMBOS)


def leave_one_target_out(per: dict[str, dict], keep: list[R.Candidate]) -> dict:
    """For every target of each bench: the rule without it, the choice judged on it (model and layer weighted τ),
    beside LogME at its read chosen the same way (the best of its reads by the same left-out two-bench score)."""
    out = {}
    for bench in BENCHES:
        n = len(next(iter(per[bench].values())))
        picks, held, logme = [], {"model_wtau": [], "layer_wtau": []}, {"model_wtau": [], "layer_wtau": []}
        for i in range(n):
            res = rule_results(per, keep, (bench, i))
            chosen, _ = R.choose(res, members=set(S.MEMBERS))
            lm = max((R.Candidate(("LogME",), r) for r in R.READS), key=lambda c: res[c])
            picks.append({"held_out": per[bench][chosen][i]["target"], "chosen": chosen.name})
            for m in held:
                held[m].append(per[bench][chosen][i][m])
                logme[m].append(per[bench][lm][i][m])
        rng = np.random.default_rng(61)
        out[bench] = {"picks": picks, **{m: float(np.nanmean(v)) for m, v in held.items()},
                      **{f"LogME_{m}": float(np.nanmean(v)) for m, v in logme.items()},
                      "minus LogME": {m: paired_difference(np.array(held[m]), np.array(logme[m]), rng)
                                      for m in held}}
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pb-cache", type=Path, required=True, help="the pretrained bank's cache (filled)")
    ap.add_argument("--rb-cache", type=Path, required=True, help="the 32-px bank's cache (its zoo)")
    ap.add_argument("--score-cache", type=Path, required=True, help="where the 32-px bank's scores are cached")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "default_choice_two_benches")
    ap.add_argument("--state", type=Path, help="also pickle the evaluated tables here (to redraw the report)")
    args = ap.parse_args(argv)
    t0, cpu0 = time.perf_counter(), time.process_time()
    log = lambda m: print(time.strftime("%H:%M:%S"), m, flush=True)  # noqa: E731
    truth, scores, sources = PB.collect(args.pb_cache, PB.B.BenchConfig(), True, log)
    per_pb, _ = PB.evaluate_all(truth, scores, sources, PB.static_scores(sources))
    log(f"pretrained bank: {len(per_pb)} candidates on {len(truth)} targets")
    layers, model = rb_truth(ROOT / "benchmarks/results/realbank_layers/layers.csv",
                             ROOT / "benchmarks/results/realbank_default/truth_per_seed.csv")
    sc32 = rb_scores(args.rb_cache, args.score_cache, log)
    scorers32 = list(next(iter(next(iter(sc32.values())).values())))
    per_rb = rb_per_candidate([c for c in PB.candidates(scorers32) if c in per_pb], layers, model, sc32)
    log(f"32-px bank: {len(per_rb)} candidates on {len(next(iter(per_rb.values())))} targets")
    per = {"pretrained": per_pb, "realbank32": per_rb}
    keep = [c for c in per_rb if in_rule(c)]
    results = rule_results(per, keep)
    chosen, notes = R.choose(results, members=set(S.MEMBERS))
    frozen = chosen
    if chosen.read == "max":  # RULE.md: select reads one layer; freeze the best eligible last/below instead
        frozen, more = R.choose({c: v for c, v in results.items() if c.read != "max"}, members=set(S.MEMBERS))
        notes += [f"read max is not expressible: frozen {frozen.name}"] + more
    log("; ".join(notes))
    loto = leave_one_target_out(per, keep)
    seconds = {"wall": time.perf_counter() - t0, "cpu": time.process_time() - cpu0,
               "load_average": list(os.getloadavg())}
    if args.state:
        import pickle

        args.state.write_bytes(pickle.dumps((per, results, chosen, frozen, notes, loto, seconds, sources)))
    report(args.out, per, results, chosen, frozen, notes, loto, seconds, sources)
    return 0


def key_candidates(per: dict, results: dict, chosen: R.Candidate, frozen: R.Candidate) -> list[R.Candidate]:
    """The rows a reader needs: the rule's choice, the frozen candidate and its parts, the round-5 default and its
    member, the round-4 member, LogME / PED / k-NN accuracy at their best read (by the two-bench score) first,
    then at the other reads; last, the rule's choice's parts."""
    every = {c.name: c for c in per["realbank32"]}
    two = lambda c: R.two_bench_score(per["pretrained"][c], per["realbank32"][c])  # noqa: E731
    names = [chosen.name, frozen.name, *(f"{p} @ {frozen.read}" for p in frozen.parts), ROUND5.name,
             f"{ROUND5.parts[0]} @ {ROUND5.read}", ROUND4.name]
    for scorer in ("LogME", "PED", PB.KNN):
        best = max((every[f"{scorer} @ {r}"] for r in R.READS), key=two).name
        names += [best, *(f"{scorer} @ {r}" for r in R.READS if f"{scorer} @ {r}" != best)]
    names += [f"{p} @ {chosen.read}" for p in chosen.parts]  # last: the intervals' draws of the rows above stay
    return [every[n] for n in dict.fromkeys(names)]


def summary_rows(per: dict, results: dict, ok: dict) -> list[dict]:
    """candidates.csv: every candidate with its bench scores, two-bench score, eligibility and mean measures."""
    rows = []
    for c in per["realbank32"]:
        pb, rb = per["pretrained"][c], per["realbank32"][c]
        row = {"candidate": c.name, "parts": len(c.parts), "read": c.read, "in_rule": c in results,
               "eligible": c in ok, "two_bench_score": R.two_bench_score(pb, rb),
               "pretrained_score": R.rule_score(pb), "realbank32_score": R.rule_score(rb)}
        row.update({f"pretrained_{m}": float(np.nanmean([r[m] for r in pb])) for m in MEASURES})
        row.update({f"realbank32_{m}": float(np.nanmean([r[m] for r in rb])) for m in MEASURES32})
        rows.append(row)
    return sorted(rows, key=lambda r: -r["two_bench_score"])


def interval_rows(per: dict, cands: list[R.Candidate]) -> dict[str, list[dict]]:
    """Per bench, each key candidate's means with 95 % bootstrap intervals over targets."""
    out = {}
    for bench, measures in (("pretrained", MEASURES), ("realbank32", MEASURES32)):
        rng = np.random.default_rng(62)
        out[bench] = [{"candidate": c.name, "bench_score": R.rule_score(per[bench][c]),
                       **bootstrap_columns(per[bench][c], measures, rng)} for c in cands]
    return out


def paired_rows(per: dict, frozen: R.Candidate, refs: list[R.Candidate]) -> list[dict]:
    """The frozen candidate minus each reference, per bench and measure (paired bootstrap over targets)."""
    out = []
    for bench, measures in (("pretrained", ("model_wtau", "model_regret", "layer_wtau", "layer_pick")),
                            ("realbank32", ("model_wtau_linear_probe", "model_wtau_fine_tune", "layer_wtau",
                                            "layer_pick"))):
        rng = np.random.default_rng(63)
        for ref in refs:
            if ref == frozen:
                continue
            row = {"bench": bench, "minus": ref.name}
            for m in measures:
                d = paired_difference(np.array([r[m] for r in per[bench][frozen]], float),
                                      np.array([r[m] for r in per[bench][ref]], float), rng)
                row.update({m: d[0], f"{m}_lo": d[1], f"{m}_hi": d[2]})
            out.append(row)
    return out


def report(out: Path, per, results, chosen, frozen, notes, loto, seconds, sources) -> None:
    from depara.io.files import ensure_dir, write_csv, write_json, write_text

    out = ensure_dir(out)
    ok = R.eligible(results, members=set(S.MEMBERS))
    keys = key_candidates(per, results, chosen, frozen)
    write_csv(out / "candidates.csv", summary_rows(per, results, ok))
    ci = interval_rows(per, keys)
    for bench in BENCHES:
        write_csv(out / f"key_rows_{bench}.csv", ci[bench])
        write_csv(out / f"per_target_{bench}.csv", [{"candidate": c.name, **r} for c in keys for r in per[bench][c]])
    paired = paired_rows(per, frozen, keys)
    write_csv(out / "paired.csv", paired)
    write_json(out / "leave_one_target_out.json", loto)
    write_text(out / "frozen_choice.toml", frozen_toml(frozen, results))
    write_text(out / "summary.md", markdown(per, results, chosen, frozen, notes, ci, paired, loto))
    figure(per, results, ok, chosen, frozen, out / "two_benches.png")
    write_json(out / "manifest.json", {
        "kind": "default_choice_two_benches", "rule": "RULE.md", "rule_commit": RULE_COMMIT,
        "command": "python benchmarks/choose_two_benches.py --pb-cache PB_CACHE --rb-cache RB_CACHE "
                   "--score-cache DIR --out benchmarks/results/default_choice_two_benches",
        "chosen_by_rule": chosen.name, "frozen": frozen.name, "notes": notes, "seconds": seconds,
        "pretrained_sources": sources, "pretrained_targets": [r["target"] for r in per["pretrained"][frozen]],
        "realbank32_targets": [r["target"] for r in per["realbank32"][frozen]],
        "n_candidates": len(results), "n_eligible": len(ok), "python": platform.python_version()})


def frozen_toml(frozen: R.Candidate, results: dict) -> str:
    """The frozen candidate as depara.options / configs/defaults.toml express it (RULE.md: what is frozen)."""
    from depara.estimators.registry import get_estimator

    comparison, scale, k = S.MEMBERS[frozen.parts[0]]
    peer = ""
    if len(frozen.parts) > 1:
        peer = next(n for n in S.PEER_METHODS if get_estimator(n).label == frozen.parts[1])
    layer = {"last": "representation", "below": "below-representation"}[frozen.read]
    lines = ["# Frozen by benchmarks/results/default_choice_two_benches/RULE.md (round 6)",
             f"# {frozen.name}: two-bench score {results[frozen]:.4f}", "", "[depara]",
             f'edge_comparison = "{comparison}"', f'edge_scale = "{scale}"', 'edge_features = "pooled"',
             f"knn_k = {k if k is not None else 0}  # 0: floor(sqrt(N))", f'layer = "{layer}"',
             f'peer = "{peer}"  # registry name, rank-averaged with the member; "" for none']
    return "\n".join(lines) + "\n"


def _ci(row: dict, m: str, digits: int = 2) -> str:
    return f"{row[m]:.{digits}f} [{row[m + '_lo']:.{digits}f}, {row[m + '_hi']:.{digits}f}]"


def markdown(per, results, chosen, frozen, notes, ci, paired, loto) -> str:
    top = sorted(results, key=lambda c: -results[c])
    ok = R.eligible(results, members=set(S.MEMBERS))
    lines = ["# Round 6: the labels default chosen on two real benches (in-sample on both)", "",
             f"Rule: [RULE.md](RULE.md), committed alone in {RULE_COMMIT[:7]} before this run. "
             f"{'; '.join(notes)}.", "",
             "## The rule's table (two-bench score = the worse of the two bench scores; top 12 eligible)", "",
             "| candidate | two-bench score | pretrained bank | 32-px bank |", "|---|---|---|---|"]
    for c in [c for c in top if c in ok][:12] + [c for c in (ROUND5, ROUND4) if c in results]:
        lines.append(f"| {c.name} | {results[c]:.3f} | {R.rule_score(per['pretrained'][c]):.3f} | "
                     f"{R.rule_score(per['realbank32'][c]):.3f} |")
    lines += ["", "## Pretrained bank (6 sources, 9 targets, linear probe; in-sample)", "",
              "| scorer @ read | bench score | models: weighted τ | models: regret (points) | layers: weighted τ "
              "| best layer picked |", "|---|---|---|---|---|---|"]
    for r in ci["pretrained"]:
        lines.append(f"| {r['candidate']} | {r['bench_score']:.3f} | {_ci(r, 'model_wtau')} | "
                     f"{_ci(r, 'model_regret', 1)} | {_ci(r, 'layer_wtau')} | {_ci(r, 'layer_pick')} |")
    lines += ["", "## 32-px bank (12 sources, 16 targets; in-sample)", "",
              "| scorer @ read | bench score | models: weighted τ, linear probe | models: weighted τ, fine-tune "
              "| stages: weighted τ | best stage picked |", "|---|---|---|---|---|---|"]
    for r in ci["realbank32"]:
        lines.append(f"| {r['candidate']} | {r['bench_score']:.3f} | {_ci(r, 'model_wtau_linear_probe')} | "
                     f"{_ci(r, 'model_wtau_fine_tune')} | {_ci(r, 'layer_wtau')} | {_ci(r, 'layer_pick')} |")
    heads = {"pretrained": ("models: weighted τ", "models: regret (points)", "layers: weighted τ",
                            "best layer picked"),
             "realbank32": ("models: weighted τ, linear probe", "models: weighted τ, fine-tune",
                            "stages: weighted τ", "best stage picked")}
    for bench in BENCHES:
        lines += ["", f"## {bench}: {frozen.name} minus (paired, 95 % bootstrap over targets; in-sample)", "",
                  "| minus | " + " | ".join(heads[bench]) + " |", "|---|---|---|---|---|"]
        for r in (r for r in paired if r["bench"] == bench):
            ms = [m for m in r if m not in ("bench", "minus") and not m.endswith(("_lo", "_hi"))]
            lines.append(f"| {r['minus']} | " + " | ".join(f"{r[m]:+.2f} [{r[m + '_lo']:+.2f}, {r[m + '_hi']:+.2f}]"
                                                           for m in ms) + " |")
    lines += ["", "## Leave one target out (the rule re-run without each target, judged on it)", "",
              "The choice among ~400 candidates is optimistic in-sample; this is the procedure's estimate out of "
              "sample on each bench (the choice may differ per left-out target and may be a `max` read).", ""]
    for bench, v in loto.items():
        d = v["minus LogME"]
        picks = sorted({p["chosen"] for p in v["picks"]})
        lines.append(f"- {bench}: held-out models weighted τ {v['model_wtau']:.2f} (LogME at its best read the same "
                     f"way {v['LogME_model_wtau']:.2f}; paired {d['model_wtau'][0]:+.2f} [{d['model_wtau'][1]:+.2f}, "
                     f"{d['model_wtau'][2]:+.2f}]), layers {v['layer_wtau']:.2f} (LogME {v['LogME_layer_wtau']:.2f}; "
                     f"{d['layer_wtau'][0]:+.2f} [{d['layer_wtau'][1]:+.2f}, {d['layer_wtau'][2]:+.2f}]); "
                     f"picks: {', '.join(picks)}")
    lines += ["", "Notes. Pretrained bank: the cached scores of this run reproduce round 5's committed rule scores "
              "(benchmarks/results/pretrained_bank/summary.csv) for every candidate but those with H-score (its "
              "cached values differ from round 5's; no H-score candidate reaches a two-bench score above 0.53 "
              "either way). 32-px bank: every scorer on all the seed-0 labelled images (≤ 200), not the "
              "120-probe subset of benchmarks/results/realbank_layers; its stage truth is that bench's."]
    return "\n".join(lines) + "\n"


def figure(per, results, ok, chosen, frozen, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 6.5))
    xy = {c: (R.rule_score(per["pretrained"][c]), R.rule_score(per["realbank32"][c])) for c in results}
    for group, colour, label in ((lambda c: c in ok and len(c.parts) > 1, "0.6", "eligible member + peer"),
                                 (lambda c: c in ok and len(c.parts) == 1, "tab:blue", "member alone"),
                                 (lambda c: c.parts[0] in PB.PEERS_IN_COMBOS, "black", "peer alone")):
        pts = np.array([xy[c] for c in results if group(c)])
        ax.scatter(pts[:, 0], pts[:, 1], s=12, c=colour, label=label, alpha=0.7)
    for c, colour, label in ((chosen, "tab:red", f"rule's choice: {chosen.name}"),
                             (frozen, "darkred", f"frozen: {frozen.name}"),
                             (ROUND5, "tab:orange", f"round 5: {ROUND5.name}")):
        ax.scatter(*xy[c], s=90, marker="*", c=colour, label=label, zorder=3)
    lim = [0.0, max(max(v) for v in xy.values()) + 0.05]
    ax.plot(lim, lim, "k:", lw=0.8)
    ax.set_xlabel("pretrained bank score (½ models + ½ layers weighted τ)")
    ax.set_ylabel("32-px bank score (½ models [LP, FT mean] + ½ stages weighted τ)")
    ax.set_title("Round 6 candidates, in-sample: two-bench score = the lower of the two", fontsize=10)
    ax.legend(fontsize=7, loc="lower right")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    raise SystemExit(main())
