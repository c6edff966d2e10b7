"""Choose depara's DEPARA defaults on the PROCEDURAL task bank only, and freeze them in configs/defaults.toml.

    python benchmarks/choose_defaults.py --scale default --cache DIR --out benchmarks/results/defaults_choice \\
        --write-config configs/defaults.toml

Nothing here reads a real image: the candidates are scored against the procedural bank's measured transfer
affinities (``depara.benches.taskbank``: its task networks and ground truth, cached), on its in-domain probe scenes.

The DEPARA family scored for each (target, source):

    score = α·V(source, target model) + (1 − w)·E(source, target model) + w·E(source, label graph)

- V: node similarity for each node definition (grad×input of the representation's ``sum`` / ``mean`` / ``l2``;
  channels reduced by signed ``mean`` or ``abs_mean``);
- E: Spearman of the edge vectors (centred cosine edges) with the source graph at ``rep`` (representation) or
  ``conv3`` (the layer below), the *layer candidate*;
- the **target model** is either a *quick* model (the target's task network trained from scratch for
  ``--quick-steps`` steps on the target's limited labelled split: what the real-image bank can afford, and what a
  practitioner without a target model could train) or the bank's *full* target network;
- the **label graph** is built from the target's labels on the probes (:func:`depara.core.labels.label_edges` for class
  labels; :func:`depara.core.labels.target_edges` of the 4×4-pooled targets for regression and dense tasks).

Grid: node (6) × α ∈ {0, 0.1, 0.25, 0.5, 1, 2, 4} × w ∈ {0, 0.25, 0.5, 0.75, 1} × target model × layer.

Grid: node (6) × α ∈ {0, 0.1, 0.25, 0.5, 1, 2, 4} × w ∈ {0, 0.25, 0.5, 0.75, 1} × target model × layer, with
DEPARA's global edge comparison on the probe scenes (``comparison=global, features=flat, scale=centred,
probes=subset``); α = 0, w = 1 rows are the label family's first member below.

Round 3 (issue 10) adds, decided before any real-image number was looked at:

- the **label family** (α = 0, w = 1: the label graph alone, ``target_model = "-"``, no target model):
  comparison ∈ {global, per_probe, knn} (:mod:`depara.core.similarity_edges`: Spearman of all edges; per-probe rank-biserial
  ``2·AUC_i − 1`` of same-class vs other-class probes; kNN same-class lift with k = ⌊√N⌋) × features ∈ {flat,
  pooled} (the layer output flattened, or averaged over space) × scale ∈ {centred, standardised} (dimensions
  centred, or centred and divided by their standard deviation over the probes) × probes ∈ {subset, labelled}
  (the bank's probe scenes with their labels, or the target's whole labelled split, capped at 500) × layer ∈
  {rep, conv3}: 48 candidates. Regression/dense targets compare with :func:`depara.core.labels.target_edges` of their
  pooled targets through :func:`depara.core.similarity_edges.graph_agreement` (same comparisons);
- for consistency, the **target-model edge term** E (α = 0, w = 0) with comparison ∈ {per_probe, knn} (global is in
  the grid above), flat/centred features on the probe scenes, both target models and both layers: 8 candidates.

Rule, fixed before the run: maximise the mean weighted τ over targets among the candidates usable without the
bank's full target network (``target_model`` quick or ``-``: the setting the defaults will be used in); among the
candidates within ``--tolerance`` (0.01) of the best, take the simplest, in this order: no node term (α = 0) first,
then no target model needed (w = 1), then the smallest α, then the largest w, then the representation layer, then
node l2/mean, then today's edge handling before a new one — comparison global < per_probe < knn, features flat <
pooled, scale centred < standardised, probes subset < labelled (a change of the frozen default has to beat it by
more than the tolerance). The chosen candidate's per-target rows, the grid and the peers (LogME, RSA/CKA against
each target model) are written beside it.

Round 4 (issue 10): procedural CLASSIFICATION targets (``--classification``) and the label-family default re-chosen
on them (``--combine``), procedural data only:

    python benchmarks/choose_defaults.py --classification --scale demo --cache DIR \\
        --out benchmarks/results/defaults_choice/classification_demo
    python benchmarks/choose_defaults.py --classification --scale default --cache DIR \\
        --out benchmarks/results/defaults_choice/classification_default
    python benchmarks/choose_defaults.py --combine benchmarks/results/defaults_choice/classification_demo \\
        benchmarks/results/defaults_choice/classification_default --write-config configs/defaults.toml

``--classification`` measures the ground truth of :mod:`depara.benches.taskbank.classify` (every class target and its
``@10`` variant × every task encoder of the bank at ``--scale``, except an encoder trained on the target's own
labels; 3 seeds; linear probe and fine-tuning) and scores the 48 label-family candidates on it: probes ``subset``
= the bank's probe scenes with the target's labels, ``labelled`` = the target's labelled training images of the
seed (at most 500). Each candidate (and each peer) scores the sources once per seed (``labelled`` probes change
with the seed); the per-target value of a metric is its mean over the seeds, each against the mean test accuracy
over the 3 seeds (in accuracy points). Peers: every registered estimator that needs only features and labels
(LEEP/NCE need source-head probabilities and are skipped) on the pooled ``rep`` features of the labelled images.

ROUND-4 RULE (fixed before the runs):
Candidates: the 48 label-family members (α = 0, w = 1; comparison ∈ {global, per_probe, knn} × features ∈ {flat,
pooled} × scale ∈ {centred, standardised} × probes ∈ {subset, labelled} × layer ∈ {rep, conv3}). Targets: every
procedural classification target and its @10 variant. Truth: mean test accuracy over 3 seeds, per protocol.
Score of a candidate = the mean, over the scales run (demo and default) and the two protocols (linear probe,
fine-tune), of its mean weighted τ over targets. Choice: if the incumbent (round-3 frozen default: rep, global, pooled,
standardised, labelled) is within 0.01 of the best score, keep it; otherwise, among the candidates within 0.01 of the
best, the simplest by the existing order (rep before conv3; comparison global < per_probe < knn; features flat <
pooled; scale centred < standardised; probes subset < labelled). The choice is written to `--write-config` in the
same TOML shape as configs/defaults.toml, its header updated to say round 4 and quote the score of the chosen, the
incumbent and the round-3 procedural (regression-target) choice.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from depara.io.files import ensure_dir, read_csv, write_csv, write_json  # noqa: E402
from depara.evaluation.rank_quality import rank_quality  # noqa: E402
from depara.core.similarity_edges import COMPARISONS, POOLINGS, EDGE_SCALES, graph_agreement, probe_edges  # noqa: E402
from depara.core.labels import edge_similarities, label_edges, target_edges  # noqa: E402

ALPHAS = (0.0, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0)
WEIGHTS = (0.0, 0.25, 0.5, 0.75, 1.0)
LAYERS = ("rep", "conv3")
QUICK_STEPS = 100
PROBE_SETS = ("subset", "labelled")
MAX_LABELLED_PROBES = 500
#: today's edge handling: (comparison, features, scale, probes)
STATUS_QUO = ("global", "flat", "centred", "subset")


def _features(encoder, x: torch.Tensor, layer: str) -> np.ndarray:
    from depara.extraction.extract import capture_features

    with torch.no_grad():
        outs = [capture_features(encoder, x[i:i + 128], [layer])[layer] for i in range(0, len(x), 128)]
    return torch.cat(outs).flatten(1).double().numpy()


def _raw_features(encoder, x: torch.Tensor, layer: str) -> np.ndarray:
    """The layer output N×C×H×W (float32), batch by batch."""
    from depara.extraction.extract import capture_features

    with torch.no_grad():
        outs = [capture_features(encoder, x[i:i + 128], [layer])[layer] for i in range(0, len(x), 128)]
    return torch.cat(outs).float().numpy()


def label_family_score(src_edges: np.ndarray, target: tuple, comparison: str) -> float:
    """The label graph's agreement with a source graph: class labels via :func:`label_agreement`, regression
    targets via :func:`graph_agreement` with their :func:`target_edges`."""
    from depara.core.similarity_edges import label_agreement

    kind, value = target
    if kind == "labels":
        return label_agreement(src_edges, value, comparison)
    return graph_agreement(src_edges, value, comparison)


def _label_target(task, y: np.ndarray) -> tuple:
    from depara.benches.taskbank.bench import label_targets

    labels, regression = label_targets(task, y)
    return ("edges", target_edges(labels)) if regression else ("labels", labels)


def _edges(f: np.ndarray) -> np.ndarray:
    from depara.core.edges import edges_from_features

    return edges_from_features(f, center=True, edge="cosine")


def quick_target(cfg, task, data, steps: int, seed: int):
    """The target's task network trained from scratch on its limited split (Adam, batch 32, ``steps`` steps)."""

    from depara.benches.realbank.scoring import train_steps
    from depara.benches.taskbank.networks import TaskNet
    from depara.benches.taskbank.train import per_sample_loss, task_seed

    torch.manual_seed(task_seed(cfg, "quick", task.name, str(seed)))
    net = TaskNet(task, cfg.image_size, cfg.width)
    x, y = data.xy(task, "limited")
    rng = np.random.default_rng(task_seed(cfg, "quick-order", task.name))
    train_steps(net, x, y, lambda pred, t: per_sample_loss(task, pred, t).mean(), steps=steps, lr=cfg.lr, rng=rng)
    return net.encoder


def target_label_edges(task, y: np.ndarray) -> np.ndarray:
    from depara.benches.taskbank.bench import label_targets

    labels, regression = label_targets(task, y)
    return target_edges(labels) if regression else label_edges(labels)


def metrics(score: np.ndarray, truth: np.ndarray, names) -> dict:
    row = rank_quality(truth, score, ks=(1, 5), names=names).as_row()
    return {k: row[k] for k in ("weighted_tau", "kendall", "spearman", "p_at_1", "p_at_5", "regret")}


def bootstrap(v, seed=0, reps=2000):
    v = np.asarray(v, float)
    rng = np.random.default_rng(seed)
    m = v[rng.integers(0, len(v), size=(reps, len(v)))].mean(axis=1)
    return float(v.mean()), float(np.percentile(m, 2.5)), float(np.percentile(m, 97.5))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--scale", default="default")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--cache", default=None)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "defaults_choice"))
    ap.add_argument("--quick-steps", type=int, default=QUICK_STEPS)
    ap.add_argument("--tolerance", type=float, default=0.01)
    ap.add_argument("--write-config", default=None, help="write the chosen defaults to this TOML file")
    ap.add_argument("--classification", action="store_true",
                    help="round 4: measure the procedural classification targets and score the label family")
    ap.add_argument("--combine", nargs="+", default=None, metavar="DIR",
                    help="round 4: apply the ROUND-4 RULE to these --classification result folders")
    args = ap.parse_args(argv)
    if args.combine:
        combine([Path(d) for d in args.combine], write_config=args.write_config, tolerance=args.tolerance,
                out=Path(args.out) if args.out != ap.get_default("out") else None)
        return 0
    torch.set_num_threads(1)
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):
        return _classification(args) if args.classification else _main(args)


def _printer(tag: str):
    """A progress printer to stderr, prefixed with ``tag`` and the seconds since it was made."""
    t0 = time.perf_counter()
    return lambda m: print(f"[{tag} {time.perf_counter() - t0:6.1f}s] {m}", file=sys.stderr, flush=True)


def _bank(args, say):
    """The procedural bank at ``args.scale`` / ``args.seed``: (config, cache root, scene data, trained encoders)."""
    from depara.benches.taskbank.bench import cache_root_for
    from depara.benches.taskbank.train import SceneData, load_or_train_encoders, make_config

    cfg = make_config(args.scale, seed=args.seed)
    root = cache_root_for(cfg, args.cache)
    data = SceneData(cfg)
    encoders, _ = load_or_train_encoders(cfg, root, data, progress=say)
    return cfg, root, data, encoders


def _main(args) -> int:
    from depara.estimators.baselines import linear_cka, rsa
    from depara.benches.taskbank.affinity import measure_affinities
    from depara.benches.taskbank.bench import NODE_OPTIONS, label_based_scores, node_maps
    from depara.benches.taskbank.tasks import get_task
    from depara.core.similarity import normalized_nodes

    t0 = time.perf_counter()
    say = _printer("choose")
    cfg, root, data, encoders = _bank(args, say)
    gt = measure_affinities(cfg, root, encoders, data, progress=say)
    names = list(cfg.tasks)
    truth = gt["affinity"]
    x = data.probe_tensor()
    say(f"{len(names)} tasks, {len(x)} probes; source graphs")
    maps = {s: {n: node_maps(encoders[n], x, s) for n in names} for s in ("sum", "mean", "l2")}
    nodes = {o: {n: normalized_nodes(maps[o.split('/')[0]][n][o.split('/')[1]]) for n in names} for o in NODE_OPTIONS}
    feats = {layer: {n: _features(encoders[n], x, layer) for n in names} for layer in LAYERS}
    edges = {layer: {n: _edges(feats[layer][n]) for n in names} for layer in LAYERS}
    label_mats, _ = label_based_scores(cfg, encoders, data, lambda m: None)
    # The label family's probe sets: the probe scenes, and the limited (labelled) split's clean images.
    from depara.benches.taskbank.tasks import task_inputs

    n_lab = min(cfg.n_limited, MAX_LABELLED_PROBES)
    x_sets = {"subset": x, "labelled": torch.from_numpy(task_inputs(get_task("autoencoding"),
                                                                    data.scenes("limited"))[:n_lab])}
    fam_edges = {}  # (probes, layer, features, scale) -> {source: edges}
    for ps, xs in x_sets.items():
        for layer in LAYERS:
            raw = {n: _raw_features(encoders[n], xs, layer) for n in names}
            for fe in POOLINGS:
                for sc in EDGE_SCALES:
                    fam_edges[(ps, layer, fe, sc)] = {n: probe_edges(raw[n], pooling=fe, scale=sc) for n in names}
    say(f"label family: {len(fam_edges)} edge settings x {len(names)} sources")

    grid_rows, per_target = [], {}
    peer_rows = []
    targets = [n for n in names if get_task(n).is_target]
    for t in targets:
        task = get_task(t)
        ti = names.index(t)
        src = [n for n in names if n != t]
        tr = truth[ti, [names.index(n) for n in src]]
        say(f"target {t}: quick target model, label graph")
        e_lab = target_label_edges(task, data.xy(task, "probe")[1])
        lab_t = {"subset": _label_target(task, data.xy(task, "probe")[1]),
                 "labelled": _label_target(task, data.xy(task, "limited")[1][:n_lab])}
        for (ps, layer, fe, sc), ed in fam_edges.items():
            for comp in COMPARISONS:
                s = np.array([label_family_score(ed[n], lab_t[ps], comp) for n in src])
                key = ("-", layer, "-", 0.0, 1.0, comp, fe, sc, ps)
                per_target.setdefault(key, {})[t] = metrics(s, tr, src)
        tmodels = {"quick": quick_target(cfg, task, data, args.quick_steps, args.seed), "full": encoders[t]}
        for tm, enc in tmodels.items():
            t_maps = {s: node_maps(enc, x, s) for s in ("sum", "mean", "l2")}
            t_nodes = {o: normalized_nodes(t_maps[o.split('/')[0]][o.split('/')[1]]) for o in NODE_OPTIONS}
            t_feat = {layer: _features(enc, x, layer) for layer in LAYERS}
            for layer in LAYERS:
                e_model = edge_similarities([edges[layer][n] for n in src], _edges(t_feat[layer]))
                e_label = edge_similarities([edges[layer][n] for n in src], e_lab)
                t_edges = _edges(t_feat[layer])
                for comp in COMPARISONS[1:]:
                    s = np.array([graph_agreement(edges[layer][n], t_edges, comp) for n in src])
                    per_target.setdefault((tm, layer, "-", 0.0, 0.0, comp) + STATUS_QUO[1:], {})[t] = \
                        metrics(s, tr, src)
                for o in NODE_OPTIONS:
                    v = np.array([float(np.einsum("ij,ij->i", nodes[o][n], t_nodes[o]).mean()) for n in src])
                    for a in ALPHAS:
                        for w in WEIGHTS:
                            if a == 0 and o != "l2/mean":
                                continue  # the node definition does not matter without a node term
                            if a == 0 and w == 1:
                                continue  # the label graph alone: the label family's status-quo member
                            s = a * v + (1 - w) * e_model + w * e_label
                            key = (tm, layer, o if a > 0 else "-", a, w) + STATUS_QUO
                            per_target.setdefault(key, {})[t] = metrics(s, tr, src)
            f_rep = _features(enc, x, "rep")
            for label, fn in (("RSA", rsa), ("CKA", linear_cka)):
                sc = np.array([fn(feats["rep"][n], f_rep) for n in src])
                peer_rows.append({"peer": f"{label} (vs {tm} target model)", "target": t, **metrics(sc, tr, src)})
        sc = label_mats["LogME"][ti, [names.index(n) for n in src]]
        peer_rows.append({"peer": "LogME (labels)", "target": t, **metrics(sc, tr, src)})

    for key, rows in per_target.items():
        tm, layer, o, a, w, comp, fe, sc, ps = key
        vals = {m: [rows[t][m] for t in targets] for m in ("weighted_tau", "kendall", "p_at_5", "regret")}
        grid_rows.append({"target_model": tm, "layer": layer, "node": o, "alpha": a, "label_weight": w,
                          "comparison": comp, "features": fe, "scale": sc, "probes": ps,
                          **{f"mean_{m}": float(np.nanmean(v)) for m, v in vals.items()}})
    peers = sorted({r["peer"] for r in peer_rows})
    peer_summary = []
    for p in peers:
        rows = [r for r in peer_rows if r["peer"] == p]
        peer_summary.append({"peer": p, **{f"mean_{m}": float(np.nanmean([r[m] for r in rows]))
                                           for m in ("weighted_tau", "kendall", "p_at_5", "regret")}})

    # The rule (see the module docstring).
    quick = [r for r in grid_rows if r["target_model"] in ("quick", "-")]
    best = max(r["mean_weighted_tau"] for r in quick)
    near = [r for r in quick if r["mean_weighted_tau"] >= best - args.tolerance]
    near.sort(key=lambda r: (r["alpha"] > 0, r["label_weight"] < 1, r["alpha"], -r["label_weight"],
                             r["layer"] != "rep", r["node"] not in ("-", "l2/mean"),
                             COMPARISONS.index(r["comparison"]), POOLINGS.index(r["features"]),
                             EDGE_SCALES.index(r["scale"]), PROBE_SETS.index(r["probes"]), -r["mean_weighted_tau"]))
    chosen = near[0]
    ckey = tuple(chosen[k] for k in ("target_model", "layer", "node", "alpha", "label_weight", "comparison",
                                     "features", "scale", "probes"))
    node = "l2/mean" if chosen["node"] == "-" else chosen["node"]
    say(f"best mean weighted τ (quick) {best:.3f}; chosen {chosen}")

    def interval(key):
        return bootstrap([per_target[key][t]["weighted_tau"] for t in targets], args.seed)

    sq = STATUS_QUO
    refs = {"chosen": ckey, "E only, quick target model": ("quick", "rep", "-", 0.0, 0.0) + sq,
            "previous frozen default: label graph, global E (flat, centred, probe subset)":
                ("-", "rep", "-", 0.0, 1.0) + sq,
            **{f"label graph, {c} (flat, centred, probe subset)": ("-", "rep", "-", 0.0, 1.0, c) + sq[1:]
               for c in COMPARISONS[1:]},
            "label graph, global E, labelled set as probes": ("-", "rep", "-", 0.0, 1.0) + sq[:3] + ("labelled",),
            "label graph, global E, pooled features": ("-", "rep", "-", 0.0, 1.0, "global", "pooled") + sq[2:],
            "previous default (l2/mean, λ=1), quick": ("quick", "rep", "l2/mean", 1.0, 0.0) + sq,
            "paper (sum/mean, λ=0.25), quick": ("quick", "rep", "sum/mean", 4.0, 0.0) + sq,
            "previous default (l2/mean, λ=1), full": ("full", "rep", "l2/mean", 1.0, 0.0) + sq,
            "paper (sum/mean, λ=0.25), full": ("full", "rep", "sum/mean", 4.0, 0.0) + sq,
            "E only, full target model": ("full", "rep", "-", 0.0, 0.0) + sq,
            "E per_probe, quick target model": ("quick", "rep", "-", 0.0, 0.0, "per_probe") + sq[1:],
            "4·V + E (l2/mean), quick": ("quick", "rep", "l2/mean", 4.0, 0.0) + sq}
    ref_rows = []
    for label, key in refs.items():
        m, lo, hi = interval(key)
        ref_rows.append({"candidate": label, "target_model": key[0], "layer": key[1], "node": key[2], "alpha": key[3],
                         "label_weight": key[4], "comparison": key[5], "features": key[6], "scale": key[7],
                         "probes": key[8], "mean_weighted_tau": m, "wtau_lo": lo, "wtau_hi": hi,
                         **{f"mean_{k}": float(np.nanmean([per_target[key][t][k] for t in targets]))
                            for k in ("kendall", "p_at_5", "regret")}})
    for p in peer_summary:
        m, lo, hi = bootstrap([r["weighted_tau"] for r in peer_rows if r["peer"] == p["peer"]], args.seed)
        ref_rows.append({"candidate": p["peer"], "mean_weighted_tau": m, "wtau_lo": lo, "wtau_hi": hi,
                         **{k: p[k] for k in ("mean_kendall", "mean_p_at_5", "mean_regret")}})

    out = ensure_dir(Path(args.out))
    grid_rows.sort(key=lambda r: -r["mean_weighted_tau"])
    write_csv(out / "grid.csv", grid_rows)
    write_csv(out / "reference_candidates.csv", ref_rows)
    write_csv(out / "chosen_per_target.csv", [{"target": t, **per_target[ckey][t]} for t in targets])
    write_csv(out / "peers_per_target.csv", peer_rows)
    # The label family (and the target model's local comparisons) with intervals, for the docs.
    fam_rows = []
    for key in per_target:
        if key[0] == "-" or (key[3] == 0.0 and key[4] == 0.0):
            m, lo, hi = interval(key)
            fam_rows.append({"target_model": key[0], "layer": key[1], "label_weight": key[4], "comparison": key[5],
                             "features": key[6], "scale": key[7], "probes": key[8], "mean_weighted_tau": m,
                             "wtau_lo": lo, "wtau_hi": hi,
                             **{f"mean_{k}": float(np.nanmean([per_target[key][t][k] for t in targets]))
                                for k in ("kendall", "p_at_5", "regret")}})
    fam_rows.sort(key=lambda r: -r["mean_weighted_tau"])
    write_csv(out / "label_family.csv", fam_rows)
    choice = {"scale": args.scale, "seed": args.seed, "quick_steps": args.quick_steps, "tolerance": args.tolerance,
              "n_targets": len(targets), "n_sources_per_target": len(names) - 1, "probes": int(len(x)),
              "labelled_probes": int(n_lab),
              "best_mean_weighted_tau_quick": best, "chosen": chosen,
              "defaults": {"node_scalar": node.split("/")[0], "node_reduction": node.split("/")[1],
                           "node_weight": chosen["alpha"], "label_weight": chosen["label_weight"],
                           "layer": "representation" if chosen["layer"] == "rep" else "below-representation",
                           "edge_comparison": chosen["comparison"], "edge_features": chosen["features"],
                           "edge_scale": chosen["scale"], "probes": chosen["probes"]},
              "seconds": time.perf_counter() - t0}
    write_json(out / "chosen.json", choice)
    _figure(grid_rows, chosen, out / "alpha_weight.png")
    from depara.report.manifest import write_manifest

    write_manifest(out, "defaults_choice", title=f"Choosing DEPARA defaults on the procedural task bank ({args.scale})",
                   summary=(f"chosen α={chosen['alpha']:g}, w={chosen['label_weight']:g}, layer {chosen['layer']}, "
                            f"node {chosen['node']}, comparison {chosen['comparison']}, features "
                            f"{chosen['features']}/{chosen['scale']}, probes {chosen['probes']}: mean weighted τ {chosen['mean_weighted_tau']:.3f} "
                            f"(best {best:.3f}) over {len(targets)} procedural targets"),
                   settings={k: v for k, v in choice.items() if k not in ("chosen", "defaults")},
                   tables={"grid": "grid.csv", "reference_candidates": "reference_candidates.csv",
                           "label_family": "label_family.csv",
                           "chosen_per_target": "chosen_per_target.csv", "peers_per_target": "peers_per_target.csv"},
                   figures={"alpha_weight": "alpha_weight.png"}, extra={"defaults": choice["defaults"]})
    if args.write_config:
        _write_config(Path(args.write_config), choice, ref_rows)
    print(choice["defaults"])
    return 0


def _figure(grid_rows, chosen, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from depara.report.plots.common import save_figure

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, tm in zip(axes, ("quick", "full")):
        node = "l2/mean" if chosen["node"] == "-" else chosen["node"]
        m = np.full((len(ALPHAS), len(WEIGHTS)), np.nan)
        for r in grid_rows:
            same_tm = r["target_model"] == tm or (r["target_model"] == "-" and r["alpha"] == 0)
            if same_tm and r["layer"] == chosen["layer"] and r["node"] in (node, "-") \
                    and (r["comparison"], r["features"], r["scale"], r["probes"]) == STATUS_QUO:
                if (r["alpha"] == 0) == (r["node"] == "-"):
                    m[ALPHAS.index(r["alpha"]), WEIGHTS.index(r["label_weight"])] = r["mean_weighted_tau"]
        im = ax.imshow(m, cmap="viridis", aspect="auto")
        for i in range(len(ALPHAS)):
            for j in range(len(WEIGHTS)):
                ax.text(j, i, f"{m[i, j]:.2f}", ha="center", va="center", fontsize=8, color="white")
        ax.set_xticks(range(len(WEIGHTS)))
        ax.set_xticklabels([f"{w:g}" for w in WEIGHTS])
        ax.set_yticks(range(len(ALPHAS)))
        ax.set_yticklabels([f"{a:g}" for a in ALPHAS])
        ax.set_xlabel("label weight w")
        ax.set_ylabel("node weight α")
        ax.set_title(f"{tm} target model, layer {chosen['layer']}, node {node}: mean weighted τ", fontsize=9)
        fig.colorbar(im, ax=ax)
    save_figure(fig, path)


#: The comment lines every written config carries: what its keys mean.
_CONFIG_FORMULA = (
    "# score = node_weight·V(source, target model) + (1 − label_weight)·E(source, target model)",
    "#         + label_weight·E(source, label graph)     (node_weight = α = 1/λ of S = V + λE)",
    "# label_weight = 1 and node_weight = 0: the label graph alone, no target model needed.",
    "# edge_comparison (global | per_probe | knn), edge_features (flat | pooled), edge_scale",
    "# (centred | standardised), probes (subset | labelled): how the source graph is built and compared",
    "# (depara.core.similarity_edges).",
)


def _config_body(d: dict) -> list[str]:
    """The ``[depara]`` table of a config file for the defaults ``d`` (the keys of configs/defaults.toml)."""
    return ["", "[depara]", f'node_scalar = "{d["node_scalar"]}"', f'node_reduction = "{d["node_reduction"]}"',
            f"node_weight = {float(d['node_weight'])}", f"label_weight = {float(d['label_weight'])}",
            f'layer = "{d["layer"]}"', f'edge_comparison = "{d["edge_comparison"]}"',
            f'edge_features = "{d["edge_features"]}"', f'edge_scale = "{d["edge_scale"]}"',
            f'probes = "{d["probes"]}"', ""]


def _write_lines(path: Path, lines: list[str]) -> None:
    """Write a config file whole or not at all (:func:`depara.io.files.atomic_path`)."""
    from depara.io.files import atomic_path

    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        Path(tmp).write_text("\n".join(lines), encoding="utf-8")


def _write_config(path: Path, choice: dict, ref_rows) -> None:
    d = choice["defaults"]
    lines = ["# depara's frozen DEPARA defaults, chosen on the PROCEDURAL task bank only",
             f"# (python benchmarks/choose_defaults.py --scale {choice['scale']} --cache DIR "
             f"--write-config configs/defaults.toml;",
             "#  evidence in benchmarks/results/defaults_choice/). Frozen before the real-image bank's default run.",
             "#",
             *_CONFIG_FORMULA,
             "#",
             f"# Procedural bank ({choice['n_targets']} targets × {choice['n_sources_per_target']} sources, "
             f"{choice['probes']} probes), mean weighted τ [95% bootstrap interval over targets]:"]
    for r in ref_rows:
        lines.append(f"#   {r['candidate']}: {r['mean_weighted_tau']:.3f} [{r['wtau_lo']:.3f}, {r['wtau_hi']:.3f}]")
    _write_lines(path, lines + _config_body(d))


# ============================================================================================ round 4
CLS_SEEDS = (0, 1, 2)
PROTOCOLS = ("linear_probe", "fine_tune")
#: the round-3 frozen default: (layer, comparison, features, scale, probes)
INCUMBENT = ("rep", "global", "pooled", "standardised", "labelled")
FAMILY_KEYS = ("layer", "comparison", "features", "scale", "probes")


def family_candidates() -> list[tuple[str, str, str, str, str]]:
    """The 48 label-family members as (layer, comparison, features, scale, probes)."""
    return [(layer, c, fe, sc, ps) for layer in LAYERS for c in COMPARISONS for fe in POOLINGS for sc in EDGE_SCALES
            for ps in PROBE_SETS]


def candidate_name(key) -> str:
    return "/".join(key)


def simplicity(key) -> tuple:
    """The existing tie-break order: rep before conv3; global < per_probe < knn; flat < pooled; centred <
    standardised; subset < labelled."""
    layer, comp, fe, sc, ps = key
    return (LAYERS.index(layer), COMPARISONS.index(comp), POOLINGS.index(fe), EDGE_SCALES.index(sc),
            PROBE_SETS.index(ps))


def round4_choice(scores: dict, tolerance: float = 0.01) -> tuple[tuple, str]:
    """The ROUND-4 RULE on ``{candidate key: score}``: (chosen key, why)."""
    best = max(scores.values())
    if INCUMBENT in scores and scores[INCUMBENT] >= best - tolerance:
        return INCUMBENT, f"incumbent kept: {scores[INCUMBENT]:.4f} within {tolerance} of the best {best:.4f}"
    near = sorted((k for k, v in scores.items() if v >= best - tolerance), key=simplicity)
    return near[0], f"simplest of {len(near)} candidates within {tolerance} of the best {best:.4f}"


def combine(dirs, *, write_config=None, tolerance: float = 0.01, out=None) -> dict:
    """Apply the ROUND-4 RULE to ``--classification`` result folders (their ``classification_family.csv``).

    A candidate's score is the mean over every (folder, protocol) row of its mean weighted τ over targets; a
    candidate missing from any (folder, protocol) is not eligible. Writes ``classification_chosen.json`` into
    ``out`` (when given) and the TOML config into ``write_config`` (when given). Returns the choice record.
    """
    import json

    from depara.errors import DeparaError

    per = {}  # key -> {(dir, protocol): wtau}
    settings = []
    for d in dirs:
        path = Path(d) / "classification_family.csv"
        if not path.is_file():
            raise DeparaError(f"dirs: {d} has no classification_family.csv (run --classification first)")
        for r in read_csv(path):
            key = tuple(r[k] for k in FAMILY_KEYS)
            per.setdefault(key, {})[(str(d), r["protocol"])] = float(r["mean_weighted_tau"])
        man = Path(d) / "manifest.json"
        if man.is_file():
            settings.append(json.loads(man.read_text(encoding="utf-8")).get("settings", {}))
    cells = {c for v in per.values() for c in v}
    scores = {k: float(np.mean([v[c] for c in sorted(cells)])) for k, v in per.items() if set(v) == cells}
    if not scores:
        raise DeparaError("dirs: no candidate is scored in every folder and protocol")
    chosen, why = round4_choice(scores, tolerance)
    ranked = sorted(scores.items(), key=lambda kv: -kv[1])
    r3 = ROOT / "benchmarks" / "results" / "defaults_choice" / "chosen.json"
    r3_score = json.loads(r3.read_text(encoding="utf-8"))["chosen"]["mean_weighted_tau"] if r3.is_file() else None
    layer, comp, fe, sc, ps = chosen
    record = {"rule": "ROUND-4 RULE (benchmarks/choose_defaults.py docstring)", "tolerance": tolerance,
              "folders": [str(d) for d in dirs], "cells": sorted(f"{d}:{p}" for d, p in cells),
              "chosen": candidate_name(chosen), "why": why, "chosen_score": scores[chosen],
              "incumbent": candidate_name(INCUMBENT), "incumbent_score": scores.get(INCUMBENT),
              "best": candidate_name(ranked[0][0]), "best_score": ranked[0][1],
              "round3_choice": candidate_name(INCUMBENT), "round3_procedural_regression_score": r3_score,
              "ranking": [{"candidate": candidate_name(k), "score": v} for k, v in ranked],
              "settings": settings,
              "defaults": {"node_scalar": "l2", "node_reduction": "mean", "node_weight": 0.0, "label_weight": 1.0,
                           "layer": "representation" if layer == "rep" else "below-representation",
                           "edge_comparison": comp, "edge_features": fe, "edge_scale": sc, "probes": ps}}
    print(f"round 4: {record['chosen']} ({why})")
    if out is not None:
        write_json(ensure_dir(Path(out)) / "classification_chosen.json", record)
    if write_config:
        _write_config_r4(Path(write_config), record, len(dirs))
    return record


def _write_config_r4(path: Path, rec: dict, n_dirs: int) -> None:
    d = rec["defaults"]
    r3 = rec["round3_procedural_regression_score"]
    inc = rec["incumbent_score"]
    lines = ["# depara's frozen DEPARA defaults, round 4: chosen on the PROCEDURAL task bank only, on its",
             "# CLASSIFICATION targets (depara.benches.taskbank.classify) by the ROUND-4 RULE of benchmarks/choose_defaults.py",
             "# (python benchmarks/choose_defaults.py --combine benchmarks/results/defaults_choice/classification_demo",
             "#  benchmarks/results/defaults_choice/classification_default --write-config configs/defaults.toml).",
             "# Frozen before the real-image bank is run on it.",
             "#",
             *_CONFIG_FORMULA,
             "#",
             f"# Round-4 score (mean weighted τ over the class targets and their @10 variants, averaged over {n_dirs}",
             "# scale(s) × 2 protocols: linear probe, fine-tune):",
             f"#   chosen ({rec['chosen']}): {rec['chosen_score']:.3f} — {rec['why']}",
             f"#   incumbent, the round-3 frozen default ({rec['incumbent']}): "
             + (f"{inc:.3f}" if inc is not None else "not scored"),
             f"#   round-3 procedural choice ({rec['round3_choice']}) on the bank's regression/dense targets (round 3,",
             "#   demo scale): " + (f"{r3:.3f}" if r3 is not None else "n/a"),
             *_config_body(d)]
    _write_lines(path, lines)


def _classification(args) -> int:
    """``--classification``: ground truth of the procedural class targets, the label family and the peers."""
    from depara.core.similarity_edges import label_agreement, pool_features
    from depara.errors import DeparaError
    from depara.estimators.registry import list_estimators
    from depara.estimators.scoring import score_sources
    from depara.benches.taskbank import classify as C
    from depara.benches.taskbank.tasks import get_task, task_inputs
    from tqdm import tqdm

    t0 = time.perf_counter()
    say = _printer("classify")
    cfg, root, data, encoders = _bank(args, say)
    names = list(cfg.tasks)
    st = C.TruthSettings()
    seeds = list(CLS_SEEDS)
    probe_scenes, pool_scenes, test_scenes = data.scenes("probe"), data.scenes("limited"), data.scenes("test")

    # Targets: drop a degenerate one by the rule of classify.degenerate_reason (decided before any ranking).
    dropped, kept = {}, []
    for n, t in C.CLASS_TARGETS.items():
        why = C.degenerate_reason(t, t.labels(pool_scenes), t.labels(test_scenes))
        if why:
            dropped[n] = why
            say(f"target {n} dropped: {why}")
        else:
            kept.append(n)
    variants = C.target_variants(kept)

    def sources_of(variant: str) -> list[str]:
        base = variant.split("@")[0]
        return [n for n in names if n != base]  # an encoder trained on the target's own labels: the bank's diagonal

    # 1. Ground truth (cached per (bank, target, source, seeds, settings)).
    truth_rows, acc = [], {}
    feats: dict = {}
    t_truth = time.perf_counter()
    n_cached = 0
    with tqdm(total=sum(len(sources_of(v)) for v in variants), desc="classification truth", file=sys.stderr,
              disable=None) as bar:
        for v in variants:
            for src in sources_of(v):
                r = C.measure_truth(cfg, root, v, src, encoders[src], data, seeds, st=st, features=feats)
                n_cached += bool(r["cached"])
                for p in PROTOCOLS:
                    acc[(v, p, src)] = 100.0 * np.asarray(r[p], float)
                    truth_rows += [{"target": v, "source": src, "protocol": p, "seed": s, "accuracy": a}
                                   for s, a in zip(seeds, r[p])]
                bar.update(1)
    truth_seconds = time.perf_counter() - t_truth
    say(f"ground truth: {len(variants)} targets, {n_cached} cached entries, {truth_seconds:.0f}s")

    def truth_vec(v, p):
        return np.array([acc[(v, p, s)].mean() for s in sources_of(v)])

    # Seed noise: one seed's ranking against the mean of the other seeds (weighted τ), per target and protocol.
    noise_rows = []
    for v in variants:
        for p in PROTOCOLS:
            m = np.stack([acc[(v, p, s)] for s in sources_of(v)])  # sources × seeds
            vals = [metrics(m[:, i], np.delete(m, i, axis=1).mean(axis=1), sources_of(v))["weighted_tau"]
                    for i in range(len(seeds))]
            noise_rows.append({"target": v, "protocol": p, "weighted_tau": float(np.nanmean(vals)),
                               **{f"seed{s}": x for s, x in zip(seeds, vals)}})

    # 2. Source features: probe scenes (subset) and the whole labelled pool (labelled; indexed per seed).
    t_score = time.perf_counter()
    clean = get_task("autoencoding")
    x_sets = {"subset": torch.from_numpy(task_inputs(clean, probe_scenes)),
              "labelled": torch.from_numpy(task_inputs(clean, pool_scenes))}
    raw = {(ps, layer): {n: _raw_features(encoders[n], xs, layer) for n in names}
           for ps, xs in x_sets.items() for layer in LAYERS}
    sub_edges = {(layer, fe, sc): {n: probe_edges(raw[("subset", layer)][n], pooling=fe, scale=sc) for n in names}
                 for layer in LAYERS for fe in POOLINGS for sc in EDGE_SCALES}
    # the peers' features: each source's rep output on the labelled pool, pooled once (rows are indexed per seed)
    pooled_pool = {n: pool_features(raw[("labelled", "rep")][n]).astype(np.float64) for n in names}
    peer_methods = [e.name for e in list_estimators(needs_features=True, needs_source_probs=False,
                                                    needs_target_model=False, needs_graph=False)]
    say(f"peers: {', '.join(peer_methods)}")
    cands = family_candidates()
    per_target = {}  # (kind, name, protocol, target) -> metric lists over seeds
    peer_fail = {}
    for v in tqdm(variants, desc="scoring", file=sys.stderr, disable=None):
        target, shots = C.parse_variant(v)
        src = sources_of(v)
        y_probe, y_pool = target.labels(probe_scenes), target.labels(pool_scenes)
        truths = {p: truth_vec(v, p) for p in PROTOCOLS}
        sub_scores = {}
        for seed in seeds:
            tr = C.train_indices(y_pool, shots, seed)[:MAX_LABELLED_PROBES]
            lab_edges = {}
            for key in cands:
                layer, comp, fe, sc, ps = key
                if ps == "subset":
                    if key not in sub_scores:  # the probe scenes do not change with the seed
                        sub_scores[key] = np.array([label_agreement(sub_edges[(layer, fe, sc)][n], y_probe, comp)
                                                    for n in src])
                    s = sub_scores[key]
                else:
                    if (layer, fe, sc) not in lab_edges:
                        lab_edges[(layer, fe, sc)] = {n: probe_edges(raw[("labelled", layer)][n][tr], pooling=fe,
                                                                     scale=sc) for n in src}
                    s = np.array([label_agreement(lab_edges[(layer, fe, sc)][n], y_pool[tr], comp) for n in src])
                for p in PROTOCOLS:
                    per_target.setdefault(("family", candidate_name(key), p, v), []).append(
                        metrics(s, truths[p], src))
            pooled = {n: pooled_pool[n][tr] for n in src}
            for m in peer_methods:
                try:
                    table = score_sources(pooled, y_pool[tr], methods=[m])
                except DeparaError as exc:  # a method undefined on these labels/features: recorded, not scored
                    peer_fail.setdefault(m, str(exc))
                    continue
                s = np.asarray(table.scores[m], float)
                for p in PROTOCOLS:
                    per_target.setdefault(("peer", m, p, v), []).append(metrics(s, truths[p], src))
    score_seconds = time.perf_counter() - t_score
    say(f"scored {len(cands)} candidates and {len(peer_methods)} peers in {score_seconds:.0f}s")

    # 3. Tables.
    mkeys = ("weighted_tau", "kendall", "regret", "p_at_1")
    per_rows = []
    for (kind, name, p, v), lst in per_target.items():
        per_rows.append({"kind": kind, "candidate": name, "protocol": p, "target": v,
                         **{m: float(np.nanmean([d[m] for d in lst])) for m in mkeys}})

    def summary(kind, name, p):
        rows = [r for r in per_rows if (r["kind"], r["candidate"], r["protocol"]) == (kind, name, p)]
        if len(rows) < len(variants):
            return None
        m, lo, hi = bootstrap([r["weighted_tau"] for r in rows], args.seed)
        return {"protocol": p, "mean_weighted_tau": m, "wtau_lo": lo, "wtau_hi": hi,
                "mean_kendall": float(np.mean([r["kendall"] for r in rows])),
                "mean_regret": float(np.mean([r["regret"] for r in rows])),
                "p_at_1": float(np.mean([r["p_at_1"] for r in rows])), "n_targets": len(rows)}

    fam_rows = []
    for key in cands:
        for p in PROTOCOLS:
            fam_rows.append({"candidate": candidate_name(key), **dict(zip(FAMILY_KEYS, key)),
                             **summary("family", candidate_name(key), p)})
    fam_rows.sort(key=lambda r: (r["protocol"], -r["mean_weighted_tau"]))
    peer_rows = []
    for m in peer_methods:
        for p in PROTOCOLS:
            row = summary("peer", m, p)
            if row is not None:
                peer_rows.append({"peer": m, **row})
    noise_summary = {}
    for p in PROTOCOLS:
        m, lo, hi = bootstrap([r["weighted_tau"] for r in noise_rows if r["protocol"] == p], args.seed)
        noise_summary[p] = {"mean_weighted_tau": m, "wtau_lo": lo, "wtau_hi": hi}
    out = ensure_dir(Path(args.out))
    write_csv(out / "classification_truth.csv", truth_rows)
    write_csv(out / "classification_family.csv", fam_rows)
    write_csv(out / "classification_peers.csv", peer_rows)
    write_csv(out / "classification_per_target.csv", per_rows)
    write_csv(out / "classification_seed_noise.csv", noise_rows)
    mean_truth = [{"target": v, "protocol": p, "source": s, "mean_accuracy": float(acc[(v, p, s)].mean()),
                   "sd_accuracy": float(acc[(v, p, s)].std(ddof=1))}
                  for v in variants for p in PROTOCOLS for s in sources_of(v)]
    write_csv(out / "classification_truth_mean.csv", mean_truth)
    inc = {p: next(r for r in fam_rows if r["candidate"] == candidate_name(INCUMBENT) and r["protocol"] == p)
           for p in PROTOCOLS}
    best = {p: max((r for r in fam_rows if r["protocol"] == p), key=lambda r: r["mean_weighted_tau"])
            for p in PROTOCOLS}
    settings = {"scale": args.scale, "seed": args.seed, "seeds": seeds, "truth_settings": st.key(),
                "targets": variants, "dropped_targets": dropped, "n_sources": len(names),
                "sources": names, "probes_subset": int(len(probe_scenes)), "labelled_pool": int(len(pool_scenes)),
                "test_images": int(len(test_scenes)), "peers": peer_methods, "peers_not_scored": peer_fail,
                "truth_seconds": truth_seconds, "truth_cached_entries": n_cached, "scoring_seconds": score_seconds,
                "seconds": time.perf_counter() - t0}
    from depara.report.manifest import write_manifest

    write_manifest(out, "defaults_choice_classification",
                   title=f"Label family on the procedural CLASSIFICATION targets ({args.scale})",
                   summary="; ".join(f"{p}: incumbent {inc[p]['mean_weighted_tau']:.3f} "
                                     f"[{inc[p]['wtau_lo']:.3f}, {inc[p]['wtau_hi']:.3f}], best "
                                     f"{best[p]['candidate']} {best[p]['mean_weighted_tau']:.3f}, seed-noise ceiling "
                                     f"{noise_summary[p]['mean_weighted_tau']:.3f}" for p in PROTOCOLS),
                   settings=settings,
                   tables={"truth": "classification_truth.csv", "truth_mean": "classification_truth_mean.csv",
                           "family": "classification_family.csv", "peers": "classification_peers.csv",
                           "per_target": "classification_per_target.csv",
                           "seed_noise": "classification_seed_noise.csv"},
                   extra={"seed_noise": noise_summary})
    say(f"wrote {out}")
    for p in PROTOCOLS:
        print(f"{p}: incumbent {inc[p]['mean_weighted_tau']:.3f}, best {best[p]['candidate']} "
              f"{best[p]['mean_weighted_tau']:.3f}, seed noise {noise_summary[p]['mean_weighted_tau']:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
