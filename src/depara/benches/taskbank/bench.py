"""The task-bank benchmark: DEPARA vs RSA, CKA and label-based estimators against measured transfer affinities.

``run_bench(scale, out)`` (the pipeline behind ``depara bench taskbank``):

1. trains every task network of the bank (cached), measures the ground-truth affinities (cached);
2. on each probe set (in-domain scenes; scikit-image photos, VisDA real photos, Fashion-MNIST when present)
   builds each task encoder's DEPARA graph at its representation layer for every node definition
   (scalar ``sum``/``mean``/``l2`` × channel reduction ``mean`` (signed)/``abs_mean``), and scores every
   (target, source) pair by DEPARA ``V + λE``, DEPARA-V, DEPARA-E, RSA and linear CKA;
3. scores the label-based estimators (LogME on every target; H-score, TransRate and the recent label-based peers
   on the classification targets, NaN with a note where one is undefined), taken from the estimator registry and
   scored through :func:`depara.estimators.scoring.score_sources`, from the source representation of the target's
   limited labelled training set;
4. evaluates every score matrix with the paper's protocol (top-``relevant`` truth, P@K/R@K, PR curve) and rank
   correlations, sweeps λ, compares node definitions, draws the task similarity tree, and records the cost of
   ranking against the cost of the ground-truth training.

The headline method is DEPARA exactly as a user gets it: ``depara.build_graph(s)`` and
``depara.similarity_matrix`` with their default options (:data:`depara.options.DEFAULT_GRAPH_OPTIONS`: node =
grad×input of the representation's L2 norm, signed channel mean; λ = 1; :data:`LIBRARY_NODE`,
:data:`LIBRARY_LAMBDA`), the nodes kept on the probes' own grid (:data:`BANK_OPTIONS`: every encoder of the bank
takes the same input size, so there is nothing to resample). Those defaults were fixed once from an
earlier run of this bank, so they are not re-chosen here; the node definition that scores best on the bank being
evaluated (``best_node``) is reported as an in-sample analysis only. The paper's setting (node ``sum/mean``,
λ = 0.25) is scored beside it.

Everything lands in ``out`` (CSV tables, PNG figures, ``manifest.json`` of kind ``taskbank``).
"""

from __future__ import annotations

import math
import sys
import time
import warnings
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from dataclasses import dataclass, field

from ...io.files import default_cache_dir, ensure_dir, shared_data_dir, write_csv, write_json
from ...extraction.threads import cpu_threads
from ...report.manifest import writes_results_folder
from ...errors import DeparaError
from ...estimators.registry import get_estimator, list_estimators
from ...core.score import combine
from ...options import DEFAULT_GRAPH_OPTIONS, DEFAULT_LAMBDA, ChannelReduction, GraphOptions, Scalar, format_lam
from ...evaluation.published import TASKONOMY_RELEVANT, TASKONOMY_TARGETS, published_curves, read_published_hits
from .affinity import encode, measure_affinities, write_affinity_csvs
from .networks import REP_LAYER
from .probesets import out_of_domain_probes
from .tasks import get_task
from .train import BankConfig, SceneData, load_or_train_encoders, make_config

#: Every node definition compared on the bank: scalar × channel reduction (signed mean / mean of |·|), each as the
#: graph options it stands for; tables and figures label them ``"<scalar>/<reduction>"`` (:attr:`GraphOptions.node`).
#: The bank's encoders all take the same input size, so nodes stay on the probes' own grid (``node_size=None``).
BANK_OPTIONS = DEFAULT_GRAPH_OPTIONS.replace(node_size=None)
NODE_CHOICES: tuple[GraphOptions, ...] = tuple(BANK_OPTIONS.replace(scalar=s, channel_reduction=r)
                                               for s in Scalar for r in (ChannelReduction.mean,
                                                                          ChannelReduction.abs_mean))
NODE_OPTIONS = tuple(o.node for o in NODE_CHOICES)
#: The Taskonomy code's node: gradient × input of the summed output, signed channel mean.
PAPER_NODE = BANK_OPTIONS.replace(scalar="sum", channel_reduction="mean").node
PAPER_LAMBDA = 0.25  # the paper's λ for Taskonomy probes
#: depara's library defaults (:data:`depara.options.DEFAULT_GRAPH_OPTIONS`: scalar ``l2``, channel reduction signed
#: ``mean``; :data:`depara.options.DEFAULT_LAMBDA` = ∞ from the frozen node weight α = 0, i.e. S = E). A test
#: checks them against the library, so the headline row is what a user of the library gets.
LIBRARY_NODE = BANK_OPTIONS.node
LIBRARY_LAMBDA = DEFAULT_LAMBDA
HEADLINE = (f"DEPARA (depara defaults: E alone, λ={format_lam(LIBRARY_LAMBDA)})" if math.isinf(LIBRARY_LAMBDA) else
            f"DEPARA (depara defaults: node {LIBRARY_NODE}, λ={format_lam(LIBRARY_LAMBDA)})")
#: The library default before the frozen defaults (round 1; kept as a row so both are reported).
PREVIOUS_DEFAULT = f"DEPARA (previous default: node {LIBRARY_NODE}, λ=1)"
PAPER_SETTING = f"DEPARA (λ={PAPER_LAMBDA:g}, node {PAPER_NODE}, paper)"
V_LIBRARY = f"DEPARA-V (node {LIBRARY_NODE}, depara default)"
V_PAPER = f"DEPARA-V (node {PAPER_NODE}, paper)"
LAMBDAS = (0.0, 0.01, 0.03, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 100.0)
#: Probes per forward pass when building graphs and attribution maps of the bank's (small) encoders.
GRAPH_BATCH = 64
IN_DOMAIN = "in-domain"


def _printer(progress: bool) -> Callable[[str], None]:
    t0 = time.perf_counter()

    def say(msg: str) -> None:
        if progress:
            print(f"[taskbank {time.perf_counter() - t0:7.1f}s] {msg}", file=sys.stderr, flush=True)
    return say


def cache_root_for(cfg: BankConfig, cache_dir=None) -> Path:
    """The cache folder of one bank configuration."""
    return Path(cache_dir or default_cache_dir()) / "taskbank" / f"{cfg.scale}-{cfg.key()}"


# ---------------------------------------------------------------------------------------------- scoring
def node_maps(encoder, x: torch.Tensor, scalar: str) -> dict[str, np.ndarray]:
    """Grad×input maps of ``scalar(rep)`` per channel reduction: {reduction: N×(H·W) float32}."""
    from ...extraction.extract import attribution_maps

    raw = torch.cat([attribution_maps(encoder, x[i:i + GRAPH_BATCH], REP_LAYER, scalar=scalar)
                     for i in range(0, len(x), GRAPH_BATCH)])
    return {"mean": raw.mean(dim=1).flatten(1).numpy(), "abs_mean": raw.abs().mean(dim=1).flatten(1).numpy()}


def graph_scores(encoders: dict, probes: np.ndarray) -> dict:
    """V per node option, E, RSA and CKA matrices (T×T, task order of ``encoders``) on one probe set.

    The DEPARA graphs are built with ``build_graphs`` and its default options (node: grad×input of the
    representation's L2 norm, signed channel mean; centred cosine edges), and ``similarity_matrix`` with its
    default λ; their extraction plus the similarity matrix is the timed ranking cost, and that S is returned as
    ``S_library``. The other node definitions reuse the same edges (edges do not depend on the node definition)
    with nodes from ``attribution_maps`` for each scalar, reduced over channels here.
    """
    from ...estimators.baselines import linear_cka, rsa
    from ...extraction.extract import build_graphs
    from ...core.similarity import node_similarity_matrix, similarity_matrix

    names = list(encoders)
    x = torch.from_numpy(probes)
    t0 = time.perf_counter()
    graphs = {n: build_graphs(encoders[n], x, [REP_LAYER], BANK_OPTIONS, batch_size=GRAPH_BATCH)[REP_LAYER]
              for n in names}
    sims = similarity_matrix(graphs)  # library defaults throughout: what `depara` gives a user
    out = {"V": {}, "E": sims.E, "seconds": {"depara": time.perf_counter() - t0}, "graphs": graphs}
    maps = {scalar.value: {n: node_maps(encoders[n], x, scalar.value) for n in names} for scalar in Scalar}
    for opts in NODE_CHOICES:
        out["V"][opts.node] = node_similarity_matrix(
            [maps[opts.scalar.value][n][opts.channel_reduction.value] for n in names], names)
    feats = {n: encode(encoders[n], probes).reshape(len(probes), -1).astype(np.float64) for n in names}
    t0 = time.perf_counter()
    r, c = np.eye(len(names)), np.eye(len(names))
    for i in range(len(names)):
        for j in range(i + 1, len(names)):
            r[i, j] = r[j, i] = rsa(feats[names[i]], feats[names[j]])
            c[i, j] = c[j, i] = linear_cka(feats[names[i]], feats[names[j]])
    out["RSA"], out["CKA"] = r, c
    out["seconds"]["RSA+CKA"] = time.perf_counter() - t0
    out["V_library"], out["S_library"] = sims.V, sims.S  # the library's own result, checked in run_bench
    return out


def _dense_regression_targets(task, y: np.ndarray, grid: int = 4) -> np.ndarray:
    """Dense targets pooled to a grid×grid map (class shares for label maps): N×(C·grid²) for LogME."""
    if task.loss == "ce":
        y = np.moveaxis(np.eye(task.out_channels, dtype=np.float32)[y], -1, 1)
    n, c, h, w = y.shape
    return y.reshape(n, c, grid, h // grid, grid, w // grid).mean(axis=(3, 5)).reshape(n, -1)


#: The label-based estimators of the registry scored on the bank (display label = the matrix name): every default
#: estimator that needs labels and features only (LogME, H-score, TransRate and issue 12's recent peers).
LABEL_METHODS = {e.name: e.label for e in list_estimators(default=True, needs_labels=True, needs_features=True,
                                                          needs_source_probs=False)}


def label_based_scores(cfg: BankConfig, encoders: dict, data: SceneData, say) -> tuple[dict, float]:
    """LogME (every target), H-score and TransRate (classification targets): T×T matrices (NaN where the
    method does not apply), from each source's representation of the target's limited labelled set.

    Scored through the estimator registry (:func:`depara.estimators.scoring.score_sources`): each source's features on
    the target's set are extracted once and every applicable method scores them.
    """
    from ...estimators.scoring import SourceInputs, score_sources

    names = list(cfg.tasks)
    t_count = len(names)
    mats = {label: np.full((t_count, t_count), np.nan) for label in LABEL_METHODS.values()}
    # Most targets share one input type (clean scenes): encode each (source, input) pair once, not per target.
    features: dict[tuple[str, str], np.ndarray] = {}

    def source_features(sname: str, target, x: np.ndarray) -> np.ndarray:
        key = (sname, target.input)
        if key not in features:
            features[key] = encode(encoders[sname], x).reshape(len(x), -1).astype(np.float64)
        return features[key]

    t0 = time.perf_counter()
    for ti, tname in enumerate(names):
        target = get_task(tname)
        if not target.is_target:
            continue
        say(f"label-based scores for target {tname}")
        x, y = data.xy(target, "limited")
        sources = {sname: SourceInputs(features=source_features(sname, target, x))
                   for si, sname in enumerate(names) if si != ti}
        labels, regression = label_targets(target, y)
        methods = [m for m in LABEL_METHODS if not regression or get_estimator(m).supports_regression]
        for method in methods:
            try:
                table = score_sources(sources, labels, methods=[method], regression=regression)
            except DeparaError as exc:  # e.g. a method undefined on this target's labels: NaN, with a note
                say(f"{LABEL_METHODS[method]} not scored for target {tname}: {exc}")
                continue
            for sname, value in zip(table.sources, table.scores[method]):
                mats[LABEL_METHODS[method]][ti, names.index(sname)] = value
    return mats, time.perf_counter() - t0


def label_targets(target, y: np.ndarray) -> tuple[np.ndarray, bool]:
    """What the label-based estimators see of a target's labels: (labels or regression targets, regression?).

    Classification targets: class indices 0..C'−1 (classes absent from the limited set dropped); global
    regression targets as they are; dense targets pooled to a 4×4 grid (constant columns dropped).
    """
    if target.kind == "global" and target.is_classification:
        return np.unique(y, return_inverse=True)[1], False
    if target.kind == "global":
        return y.astype(np.float64), True
    yr = _dense_regression_targets(target, y).astype(np.float64)
    return yr[:, yr.std(axis=0) > 1e-8], True


# ---------------------------------------------------------------------------------------------- evaluation
def _evaluate(scores: np.ndarray, truth: np.ndarray, names, relevant: int) -> tuple:
    from ...evaluation.rank_quality import precision_recall_at_k, rank_correlations

    curve = precision_recall_at_k(scores, truth, relevant, names=names)
    corr = rank_correlations(scores, truth, names=names)
    return curve, corr


def _summary_row(method: str, probe: str, curve, corr, relevant: int) -> dict:
    h1, p1, _ = curve.at(1)
    hr, pr, rr = curve.at(relevant)
    return {"method": method, "probe_set": probe, "n_targets": curve.n_targets,
            "P@1": p1, f"P@{relevant}": pr, f"hits@{relevant}": hr,
            f"top{relevant}_overlap_per_target": hr / curve.n_targets,
            "mean_spearman": corr.mean["spearman"], "mean_kendall": corr.mean["kendall"],
            "mean_weighted_tau": corr.mean["weighted_tau"], "top1_hit_rate": corr.mean["top1_hit_rate"],
            "top1_regret": corr.mean["regret"]}


def _pooled_spearman(scores: np.ndarray, truth: np.ndarray) -> float:
    """Spearman between a score matrix and the truth over all evaluated off-diagonal (target, source) pairs."""
    from scipy.stats import spearmanr

    ok = np.isfinite(truth) & ~np.eye(len(truth), dtype=bool)
    return float(spearmanr(scores[ok], truth[ok]).statistic)


def _off_diag(m: np.ndarray) -> np.ndarray:
    return m[~np.eye(len(m), dtype=bool)]


def read_paper_hits() -> dict[str, dict[int, float]]:
    """Published Taskonomy hits per method and K (``paper_numbers/taskonomy_pr_hits.csv``), {} when absent."""
    path = shared_data_dir() / "paper_numbers" / "taskonomy_pr_hits.csv"
    if not path.is_file():
        return {}
    return {method: dict(zip(ks.tolist(), hits.tolist())) for method, (ks, hits) in read_published_hits(path).items()}


# ---------------------------------------------------------------------------------------------- pipeline
def run_bench(scale: str, out, *, seed: int = 0, cache_dir=None, progress: bool = True,
              threads: int | None = 1) -> dict:
    """Run the task-bank benchmark at ``scale`` ("tiny" | "demo" | "default") into folder ``out``; returns the summary.

    Expensive steps (task networks, ground-truth transfers) are cached under ``cache_dir`` (default
    ``$DEPARA_CACHE`` or ``~/.cache/depara``); a second run reuses them, an interrupted run resumes, a corrupt
    entry is rebuilt. ``threads``: torch and BLAS CPU threads during the run (restored afterwards; None = leave as
    is).
    The bank's networks are a few channels wide, so one thread loses little, and on shared cores extra torch
    threads mostly spin.
    """
    with cpu_threads(threads):
        return _run_bench(scale, out, seed=seed, cache_dir=cache_dir, progress=progress)


@dataclass
class _Ground:
    """Step 1: the bank's task networks and the measured transfer affinities (the truth)."""

    names: list[str]
    encoders: dict
    infos: dict
    gt: dict
    truth: np.ndarray


@dataclass
class _MethodResults:
    """Step 5: every method's evaluation on every probe set."""

    summary_rows: list[dict] = field(default_factory=list)
    pk_rows: list[dict] = field(default_factory=list)
    target_rows: list[dict] = field(default_factory=list)
    curves_in: dict = field(default_factory=dict)  # in-domain RankingCurve per method


@dataclass
class _NodeAnalysis:
    """Step 4: which node definition carries signal (in-sample analysis, never used for the headline)."""

    rows: list[dict]
    mean_by_option: dict[str, float]
    best_node: str


def _ground_truth(cfg: BankConfig, cache_root: Path, data: SceneData, say) -> _Ground:
    encoders, infos = load_or_train_encoders(cfg, cache_root, data, progress=say)
    gt = measure_affinities(cfg, cache_root, encoders, data, progress=say)
    return _Ground(list(cfg.tasks), encoders, infos, gt, gt["affinity"])


def _probe_sets(cfg: BankConfig, data: SceneData, say) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    probe_sets = {IN_DOMAIN: data.probe_tensor().numpy()}
    ood, skipped = out_of_domain_probes(cfg.n_probe, cfg.image_size, cfg.seed)
    probe_sets.update(ood)
    for name, why in skipped.items():
        say(f"probe set {name} skipped: {why}")
    return probe_sets, skipped


def _graph_step(encoders: dict, probe_sets: dict[str, np.ndarray], names: list[str], out: Path, say) -> dict:
    """Graph-based scores per probe set, checked against the library's own similarity, matrices written."""
    from ...evaluation.rank_quality import write_matrix_csv

    ensure_dir(out / "matrices")
    scores: dict[str, dict] = {}
    for probe, x in probe_sets.items():
        say(f"graphs on probe set {probe} ({len(x)} images, {len(NODE_OPTIONS)} node options)")
        sc = scores[probe] = graph_scores(encoders, x)
        # The library's default graphs must agree with the nodes reduced here, and the headline S with its S.
        if not np.allclose(sc["V_library"], sc["V"][LIBRARY_NODE], atol=1e-5) or \
                not np.allclose(sc["S_library"], _headline(sc), atol=1e-5):
            raise DeparaError(f"probe set {probe}: library similarity differs from the {LIBRARY_NODE} nodes "
                              f"with λ={format_lam(LIBRARY_LAMBDA)}")
        for option, v in sc["V"].items():
            write_matrix_csv(out / "matrices" / f"{probe}__V__{option.replace('/', '-')}.csv", names, v)
        for key in ("E", "RSA", "CKA"):
            write_matrix_csv(out / "matrices" / f"{probe}__{key}.csv", names, sc[key])
    return scores


def _node_analysis(scores: dict, truth: np.ndarray, names: list[str], rel: int) -> _NodeAnalysis:
    rows = []
    for probe, sc in scores.items():
        e_curve, e_corr = _evaluate(sc["E"], truth, names, rel)
        for option in NODE_OPTIONS:
            v = sc["V"][option]
            v_curve, v_corr = _evaluate(v, truth, names, rel)
            row = {"probe_set": probe, "node": option, "mean_V": float(_off_diag(v).mean()),
                   "mean_abs_V": float(np.abs(_off_diag(v)).mean()), "std_V": float(_off_diag(v).std()),
                   "mean_E": float(_off_diag(sc["E"]).mean()),
                   "V_pooled_spearman_vs_truth": _pooled_spearman(v, truth),
                   "V_P@1": v_curve.at(1)[1], f"V_P@{rel}": v_curve.at(rel)[1],
                   "V_mean_spearman": v_corr.mean["spearman"], f"E_P@{rel}": e_curve.at(rel)[1],
                   "E_mean_spearman": e_corr.mean["spearman"]}
            for lam in (PAPER_LAMBDA, 1.0):
                s_curve, s_corr = _evaluate(v + lam * sc["E"], truth, names, rel)
                row[f"S(λ={lam:g})_P@{rel}"] = s_curve.at(rel)[1]
                row[f"S(λ={lam:g})_mean_spearman"] = s_corr.mean["spearman"]
            rows.append(row)
    # In-sample analysis only: the node definition with the best mean over probe sets of V's per-target Spearman
    # with this bank's truth. Chosen on the data it is scored on, so it is reported, never used for the headline.
    mean_by_option = {o: float(np.nanmean([r["V_mean_spearman"] for r in rows if r["node"] == o]))
                      for o in NODE_OPTIONS}
    best_node = max(NODE_OPTIONS, key=lambda o: (mean_by_option[o], o == PAPER_NODE))
    return _NodeAnalysis(rows, mean_by_option, best_node)


def _graph_methods(sc: dict) -> dict[str, np.ndarray]:
    """The graph-based score matrices compared on every probe set, by display name."""
    return {HEADLINE: _headline(sc), PREVIOUS_DEFAULT: sc["V"][LIBRARY_NODE] + sc["E"], PAPER_SETTING: sc["V"][PAPER_NODE] + PAPER_LAMBDA * sc["E"],
            V_LIBRARY: sc["V"][LIBRARY_NODE], V_PAPER: sc["V"][PAPER_NODE],
            "DEPARA-E": sc["E"], "RSA": sc["RSA"], "linear CKA": sc["CKA"]}


def _method_results(scores: dict, label_mats: dict, truth: np.ndarray, names: list[str], rel: int) -> _MethodResults:
    res = _MethodResults()
    for probe, sc in scores.items():
        methods = _graph_methods(sc)
        if probe == IN_DOMAIN:
            methods["LogME (labels)"] = label_mats["LogME"]
        for method, m in methods.items():
            curve, corr = _evaluate(m, truth, names, rel)
            res.summary_rows.append(_summary_row(method, probe, curve, corr, rel))
            res.pk_rows += [{"probe_set": probe, **r} for r in curve.rows(method)]
            if probe == IN_DOMAIN:
                res.curves_in[method] = curve
                res.target_rows += [{"probe_set": probe, **r} for r in corr.rows(method)]
    return res


def _classification_rows(sc: dict, label_mats: dict, truth: np.ndarray, names: list[str], rel: int) -> list[dict]:
    """Classification targets only: every label-based estimator against the graph methods on the same rows."""
    cls_targets = [n for n in names if get_task(n).is_target and get_task(n).kind == "global"
                   and get_task(n).is_classification]
    if not cls_targets:
        return []
    sub_truth = truth.copy()
    sub_truth[~np.array([n in cls_targets for n in names])] = np.nan
    graph = _graph_methods(sc)
    sub_methods = {k: graph[k] for k in (HEADLINE, PAPER_SETTING, "DEPARA-E", "RSA", "linear CKA")}
    rows = []
    for method, m in {**sub_methods, **label_mats}.items():
        curve, corr = _evaluate(np.where(np.isfinite(m), m, 0.0), sub_truth, names, rel)
        rows.append(_summary_row(method, IN_DOMAIN, curve, corr, rel))
    return rows


def _top_sets(sc: dict, label_mats: dict, truth: np.ndarray, names: list[str], rel: int) -> list[dict]:
    """Top-``rel`` lists per target: measured vs DEPARA vs RSA vs LogME (ties in a score: by name)."""
    from ...evaluation.rank_quality import relevant_sets

    rows = []
    for target, top in relevant_sets(truth, rel, names=names).items():
        ti = names.index(target)
        row = {"target": target, f"measured_top{rel}": " ".join(top)}
        for label, m in (("DEPARA", _headline(sc)), ("RSA", sc["RSA"]), ("LogME", label_mats["LogME"])):
            cand = [j for j in range(len(names)) if j != ti]
            picks = [names[j] for j in sorted(cand, key=lambda j: (-m[ti, j], names[j]))[:rel]]
            row[f"{label}_top{rel}"] = " ".join(picks)
            row[f"{label}_overlap"] = len(set(picks) & set(top))
        rows.append(row)
    return rows


def _lambda_sweep(sc: dict, truth: np.ndarray, names: list[str], rel: int) -> list[dict]:
    rows = []
    for lam in LAMBDAS:
        curve, corr = _evaluate(sc["V"][LIBRARY_NODE] + lam * sc["E"], truth, names, rel)
        rows.append({"lambda": lam, "P@1": curve.at(1)[1], f"P@{rel}": curve.at(rel)[1],
                     "mean_spearman": corr.mean["spearman"], "mean_weighted_tau": corr.mean["weighted_tau"]})
    return rows


#: Columns of ``paper_comparison.csv``: label → method row of the in-domain curves.
_COMPARED = (("bank_DEPARA_defaults", HEADLINE), ("bank_DEPARA_paper_setting", PAPER_SETTING),
             ("bank_DEPARA-V_default_node", V_LIBRARY), ("bank_DEPARA-V_paper_node", V_PAPER),
             ("bank_DEPARA-E", "DEPARA-E"), ("bank_RSA", "RSA"), ("bank_CKA", "linear CKA"),
             ("bank_LogME", "LogME (labels)"))


def _paper_comparison(curves_in: dict, paper: dict, names: list[str], rel: int) -> list[dict]:
    """The bank's P@K per method beside the paper's Taskonomy P@K (hits / (18·K)), K = 1..min(S−1, 18)."""
    rows = []
    for k in range(1, min(len(names) - 1, TASKONOMY_TARGETS) + 1):
        row = {"K": k}
        for label, method in _COMPARED:
            row[f"{label}_P@K"] = float(curves_in[method].at(k)[1])
        row["bank_random_P@K"] = rel / (len(names) - 1)
        for method, hits in paper.items():
            row[f"paper_{method.split('(')[0]}_P@K"] = hits[k] / (TASKONOMY_TARGETS * k) if k in hits else ""
        rows.append(row)
    return rows


def _costs(ground: _Ground, scores: dict, label_seconds: float, t_start: float) -> dict:
    """Cost of ranking against the cost of the ground truth (seconds)."""
    rank_seconds = scores[IN_DOMAIN]["seconds"]["depara"]
    gt_seconds = float(ground.gt["seconds"])
    return {"ranking_seconds_depara": rank_seconds,
            "ranking_seconds_rsa_cka": scores[IN_DOMAIN]["seconds"]["RSA+CKA"],
            "ranking_seconds_label_based": label_seconds,
            "ground_truth_transfer_seconds": gt_seconds,
            "task_network_training_seconds": float(sum(ground.infos[n]["seconds"] for n in ground.names)),
            "ratio_ground_truth_to_depara": gt_seconds / max(rank_seconds, 1e-9),
            "n_graphs": len(ground.names), "n_transfers": int(np.isfinite(ground.gt["transfer_loss"]).sum()),
            "torch_threads": torch.get_num_threads(), "total_seconds_this_run": time.perf_counter() - t_start}


@writes_results_folder("out")  # written whole: an interrupted run leaves the previous folder
def _run_bench(scale: str, out, *, seed: int, cache_dir, progress: bool) -> dict:
    from ...evaluation.rank_quality import write_matrix_csv
    from ...report.manifest import write_manifest

    cfg = make_config(scale, seed=seed)
    out = ensure_dir(out)
    say = _printer(progress)
    cache_root = cache_root_for(cfg, cache_dir)
    say(f"scale {scale}: {len(cfg.tasks)} tasks, cache {cache_root}")
    data = SceneData(cfg)
    t_start = time.perf_counter()
    ground = _ground_truth(cfg, cache_root, data, say)
    names, truth, rel = ground.names, ground.truth, cfg.relevant
    tables = write_affinity_csvs(ground.gt, out)

    def table(name: str, rows, file: str | None = None) -> None:
        file = file or f"{name}.csv"
        if file.endswith(".json"):
            write_json(out / file, rows)
        else:
            write_csv(out / file, rows)
        tables[name] = file

    table("task_networks", [{"task": n, **{k: ground.infos[n].get(k, "") for k in
                                           ("train_loss", "test_loss", "test_accuracy", "seconds")}} for n in names])
    probe_sets, skipped = _probe_sets(cfg, data, say)
    scores = _graph_step(ground.encoders, probe_sets, names, out, say)
    say(f"label-based estimators ({', '.join(LABEL_METHODS.values())})")
    label_mats, label_seconds = label_based_scores(cfg, ground.encoders, data, say)
    for key, m in label_mats.items():
        write_matrix_csv(out / "matrices" / f"label__{key}.csv", names, m)
    nodes = _node_analysis(scores, truth, names, rel)
    table("node_options", nodes.rows)
    methods = _method_results(scores, label_mats, truth, names, rel)
    table("summary", methods.summary_rows)
    table("pk", methods.pk_rows)
    table("per_target", methods.target_rows)
    sc = scores[IN_DOMAIN]
    cls_rows = _classification_rows(sc, label_mats, truth, names, rel)
    if cls_rows:
        table("summary_classification_targets", cls_rows)
    table("top_sets", _top_sets(sc, label_mats, truth, names, rel))
    lam_rows = _lambda_sweep(sc, truth, names, rel)
    table("lambda_sweep", lam_rows)
    paper = read_paper_hits()
    table("paper_comparison", _paper_comparison(methods.curves_in, paper, names, rel))
    costs = _costs(ground, scores, label_seconds, t_start)
    table("costs", costs, "costs.json")
    figures = _figures(out, names, truth, ground.gt, scores, methods.curves_in, lam_rows, nodes.rows,
                       methods.summary_rows, rel, paper, HEADLINE, say)

    best = next(r for r in methods.summary_rows if r["method"] == HEADLINE and r["probe_set"] == IN_DOMAIN)
    rsa_row = next(r for r in methods.summary_rows if r["method"] == "RSA" and r["probe_set"] == IN_DOMAIN)
    summary = (f"{HEADLINE}: top-{rel} matches the "
               f"measured top-{rel} at P@{rel} = {best[f'P@{rel}']:.2f} (RSA {rsa_row[f'P@{rel}']:.2f}, random "
               f"{rel / (len(names) - 1):.2f}); in-sample best node {nodes.best_node}; ranking "
               f"{costs['ranking_seconds_depara']:.1f} s vs ground truth {costs['ground_truth_transfer_seconds']:.0f} s "
               f"(x{costs['ratio_ground_truth_to_depara']:.0f})")
    settings = {"scale": scale, "seed": seed, "tasks": names, "image_size": cfg.image_size, "width": cfg.width,
                "n_train": cfg.n_train, "n_test": cfg.n_test, "n_limited": cfg.n_limited, "n_probe": cfg.n_probe,
                "epochs": cfg.epochs, "readout_epochs": cfg.readout_epochs, "relevant": rel,
                "headline_method": HEADLINE, "node": LIBRARY_NODE,
                "lambda": "inf" if math.isinf(LIBRARY_LAMBDA) else LIBRARY_LAMBDA,
                "paper_node": PAPER_NODE, "paper_lambda": PAPER_LAMBDA, "layer": REP_LAYER,
                "method": BANK_OPTIONS.method.value, "label_based_scores": "depara.estimators.scoring.score_sources",
                "probe_sets": list(probe_sets), "skipped_probe_sets": skipped}
    write_manifest(out, "taskbank", title=f"Task bank ({scale}): DEPARA vs baselines against measured transfer",
                   summary=summary, settings=settings, tables=tables, figures=figures,
                   extra={"headline_method": HEADLINE,
                          "headline_P@1": best["P@1"], f"headline_P@{rel}": best[f"P@{rel}"],
                          "headline_mean_spearman": best["mean_spearman"],
                          "best_node": nodes.best_node,
                          "best_node_selection": "in-sample: the node option whose V has the best mean per-target "
                                                 "Spearman over probe sets on this same bank; not used for the "
                                                 "headline",
                          "node_mean_spearman": nodes.mean_by_option, "costs": costs, "targets": ground.gt["targets"]})
    say(summary)
    return {"summary": summary, "best_node": nodes.best_node, "node_mean_spearman": nodes.mean_by_option,
            "costs": costs, "rows": methods.summary_rows, "node_rows": nodes.rows, "out": str(out),
            "skipped_probe_sets": skipped, "tasks": names, "targets": ground.gt["targets"]}


def _headline(sc: dict) -> np.ndarray:
    """The headline score matrix: S = V + λE with depara's default node and λ (λ = ∞: E; :func:`combine`)."""
    return combine(sc["V"][LIBRARY_NODE], sc["E"], LIBRARY_LAMBDA)


def _figures(out, names, truth, gt, scores, curves_in, lam_rows, node_rows, summary_rows, rel, paper,
             main_method, say) -> dict[str, str]:
    from ...report.plots import ranking as rp
    from ...report.plots import taskbank as tp
    from ...core.tree import leaf_order
    from ...report.plots.ranking import draw_tree

    figs = {}
    keep = [main_method, PAPER_SETTING, V_LIBRARY, "DEPARA-E", "RSA", "linear CKA", "LogME (labels)"]
    curves = {m: curves_in[m] for m in keep if m in curves_in}
    published = {}
    if rel == TASKONOMY_RELEVANT:  # the paper's curves are comparable only with the same relevant-set size
        published = {f"paper, Taskonomy: {method.split('(')[0]}": curve
                     for method, curve in published_curves(paper).items()}
    try:
        rp.plot_pr_curve(curves, out / "pr_curve.png", published=published or None,
                         title="Task bank: precision-recall of source selection (in-domain probes)")
        figs["pr_curve"] = "pr_curve.png"
        rp.plot_precision_at_k(curves, out / "precision_at_k.png", published=published or None,
                               title="Task bank: P@K (in-domain probes)")
        figs["precision_at_k"] = "precision_at_k.png"
        rp.plot_lambda_sweep(lam_rows, out / "lambda_sweep.png", chosen=None if math.isinf(LIBRARY_LAMBDA) else LIBRARY_LAMBDA,
                             title=f"Task bank: DEPARA V + λE (node {LIBRARY_NODE}, depara's default)")
        figs["lambda_sweep"] = "lambda_sweep.png"
        sc = scores[IN_DOMAIN]
        draw_tree(names, _headline(sc), out / "tree.png",
                  title="Task bank: DEPARA task similarity tree (depara defaults, in-domain probes)")
        figs["tree"] = "tree.png"
        # Rows standardised: only the order of sources within a target matters for ranking, and the count /
        # shape rows (scratch nets overfit their 200 scenes) would otherwise own the colour scale.
        with warnings.catch_warnings():  # all-NaN rows of source-only tasks stay NaN
            warnings.simplefilter("ignore", RuntimeWarning)
            z = (truth - np.nanmean(truth, axis=1, keepdims=True)) / np.nanstd(truth, axis=1, keepdims=True)
        rp.plot_heatmap(names, z, out / "heatmap_ground_truth.png",
                        title="Measured transfer affinity, standardised per target row",
                        colorbar_label="affinity (z-score within the target's row)")
        figs["heatmap_ground_truth"] = "heatmap_ground_truth.png"
        rp.plot_heatmap(names, _headline(sc), out / "heatmap_depara.png", order=leaf_order(_headline(sc)),
                        title=f"DEPARA similarity ({HEADLINE[8:-1]})",
                        colorbar_label="S")
        figs["heatmap_depara"] = "heatmap_depara.png"
    except Exception as exc:  # noqa: BLE001 - a plotting failure must not lose the computed tables
        say(f"ranking plots failed: {exc}")
    tp.plot_node_options(node_rows, out / "node_options.png", relevant=rel)
    figs["node_options"] = "node_options.png"
    tp.plot_probe_sets(summary_rows, out / "probe_sets.png", relevant=rel)
    figs["probe_sets"] = "probe_sets.png"
    return figs


__all__ = ["run_bench", "graph_scores", "label_based_scores", "label_targets", "NODE_OPTIONS", "NODE_CHOICES",
           "BANK_OPTIONS", "GRAPH_BATCH", "PAPER_NODE",
           "PAPER_LAMBDA", "LIBRARY_NODE", "LIBRARY_LAMBDA", "HEADLINE", "LAMBDAS", "cache_root_for",
           "read_paper_hits"]
