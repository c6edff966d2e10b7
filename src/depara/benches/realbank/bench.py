"""The real-image transfer bench: ``depara bench realbank`` (out-of-sample test of the frozen DEPARA defaults).

``run_realbank(scale, out)``:

1. loads the real-image targets (:mod:`.data`; a missing data set is skipped with a note in the manifest);
2. trains the source zoo (:mod:`.zoo`, cached);
3. measures the ground truth of every (target, source) under both protocols on every seed (:mod:`.truth`, cached);
4. scores every source for every target with every peer and DEPARA variant from the target's labelled set only
   (:mod:`.scoring`, cached), the frozen default from :mod:`depara.options` (or a defaults file given);
5. evaluates every scorer per protocol with bootstrap intervals over targets (:mod:`.evaluation`), draws the
   figures, and writes CSV tables, the frozen config copy and ``manifest.json`` (kind ``realbank``) into ``out``.

Everything is deterministic under ``seed`` (seeds ``seed, seed+1, …`` are the ground-truth seeds; ``seed`` is the
split the scorers see).
"""

from __future__ import annotations

import shutil
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from ...io.files import default_cache_dir, ensure_dir, write_csv, write_json, write_text
from ...io.progress import progress_bar
from ...extraction.threads import cpu_threads
from ...report.manifest import writes_results_folder
from ...errors import DeparaError
from ..taskbank.cache import fingerprint, load_json_entry, save_json_entry
from . import data as D
from .evaluation import METRICS, ORACLE, RANDOM, SEED_CEILING, evaluate, paired_difference
from .scoring import DEPARA_VARIANTS, FROZEN, PEERS, Defaults, score_target
from .truth import TruthConfig, measure_pair
from .zoo import DEFAULT_ZOO, DEMO_ZOO, TINY_ZOO, load_or_train_zoo

ALL_TARGETS = tuple(D.TARGETS) + tuple(f"{t}@{D.FEW_SHOT}" for t in D.TARGETS if t not in D.SMALL_POOLS)
PROTOCOLS = ("linear_probe", "fine_tune")


@dataclass(frozen=True)
class Scale:
    targets: tuple[str, ...]
    zoo: tuple
    seeds: int
    pool: int
    n_train: int
    n_test: int
    ft_steps: int
    n_probe: int
    quick_steps: int
    quick_width: int = 8
    extra: dict = field(default_factory=dict)


SCALES = {
    "tiny": Scale(("digits10", "lfw-face", "digits-parity@10"), TINY_ZOO, seeds=2, pool=300, n_train=100,
                  n_test=100, ft_steps=8, n_probe=40, quick_steps=15),
    "demo": Scale(("digits10", "digits-parity@10", "fmnist10", "fmnist-shoes@10", "lfw-face", "photo-patch",
                   "visda-vehicle"), DEMO_ZOO, seeds=2, pool=600, n_train=200, n_test=200, ft_steps=30,
                  n_probe=100, quick_steps=60),
    "default": Scale(ALL_TARGETS, DEFAULT_ZOO, seeds=3, pool=800, n_train=200, n_test=250, ft_steps=30,
                     n_probe=120, quick_steps=100),
}


def frozen_defaults() -> Defaults:
    """The frozen DEPARA default as the package carries it: the values of :mod:`depara.options` (the one source;
    ``tests/test_registry_options.py`` checks them equal to the repository's ``configs/defaults.toml``)."""
    from ... import options as O

    g = O.DEFAULT_GRAPH_OPTIONS
    return Defaults(node_scalar=str(getattr(g.scalar, "value", g.scalar)),  # the option enums' plain values
                    node_reduction=str(getattr(g.channel_reduction, "value", g.channel_reduction)),
                    node_weight=O.DEFAULT_NODE_WEIGHT,
                    label_weight=O.DEFAULT_LABEL_WEIGHT, layer=O.DEFAULT_LAYER,
                    edge_comparison=O.DEFAULT_EDGE_COMPARISON, edge_features=O.DEFAULT_EDGE_FEATURES,
                    edge_scale=O.DEFAULT_EDGE_SCALE, probes=O.DEFAULT_PROBES)


def defaults_toml(defaults: Defaults) -> str:
    """``defaults`` as a defaults file: the ``[depara]`` table :func:`load_defaults` reads back."""
    import json

    return "[depara]\n" + "".join(f"{k} = {json.dumps(v)}\n" for k, v in asdict(defaults).items())


def load_defaults(path: Path | None = None) -> tuple[Defaults, dict, Path | None]:
    """The frozen DEPARA default, its raw ``[depara]`` content and the file it came from: with ``path``, that TOML
    file (a ``[depara]`` table); without, :func:`frozen_defaults` (file None)."""
    import tomllib

    if path is None:
        defaults = frozen_defaults()
        return defaults, {"depara": asdict(defaults)}, None
    p = Path(path)
    if not p.is_file():
        raise DeparaError(f"defaults config {p}: not found")
    try:
        doc = tomllib.loads(p.read_text(encoding="utf-8"))
        d = doc["depara"]
        if str(d.get("layer", "representation")) not in ("representation", "below-representation"):
            raise ValueError(f"layer {d.get('layer')!r} is not 'representation' or 'below-representation'")
        from ...core.similarity_edges import COMPARISONS, EDGE_SCALES, POOLINGS
        from .scoring import PROBE_SETS

        # Files written before issue 10 have no edge keys: today's DEPARA graph (the previous frozen default).
        edge = {"edge_comparison": COMPARISONS, "edge_features": POOLINGS, "edge_scale": EDGE_SCALES,
                "probes": PROBE_SETS}
        for k, allowed in edge.items():
            if str(d.get(k, allowed[0])) not in allowed:
                raise ValueError(f"{k} {d.get(k)!r} is not one of {', '.join(allowed)}")
        return Defaults(node_scalar=str(d["node_scalar"]), node_reduction=str(d["node_reduction"]),
                        node_weight=float(d["node_weight"]), label_weight=float(d["label_weight"]),
                        layer=str(d.get("layer", "representation")),
                        **{k: str(d.get(k, allowed[0])) for k, allowed in edge.items()}), doc, p
    except (KeyError, ValueError, TypeError, tomllib.TOMLDecodeError) as exc:
        raise DeparaError(f"defaults config {p}: expected a [depara] table with node_scalar, node_reduction, "
                          f"node_weight, label_weight ({type(exc).__name__}: {exc})") from None


def _printer(progress: bool):
    t0 = time.perf_counter()

    def say(msg: str) -> None:
        if progress:
            print(f"[realbank {time.perf_counter() - t0:7.1f}s] {msg}", file=sys.stderr, flush=True)
    return say



def run_realbank(scale: str, out, *, seed: int = 0, cache_dir=None, progress: bool = True, threads: int | None = 1,
                 defaults_path=None) -> dict:
    """Run the real-image bench at ``scale`` ("tiny" | "demo" | "default") into folder ``out``; returns the summary.

    ``cache_dir``: default ``$DEPARA_CACHE`` or ``~/.cache/depara`` (sources, ground truth and scores are cached
    there; a rerun reuses them, an interrupted run resumes, a corrupt entry is rebuilt). ``threads``: torch and BLAS
    threads during the run (None = leave as is). ``defaults_path``: a defaults TOML to score instead of the frozen
    default (:func:`frozen_defaults`, the values of :mod:`depara.options`).
    """
    if scale not in SCALES:
        raise DeparaError(f"scale {scale!r}: expected one of {', '.join(SCALES)}")
    with cpu_threads(threads):
        return _run(scale, Path(out), seed=int(seed), cache_dir=cache_dir, progress=progress,
                    defaults_path=defaults_path)


def available_targets(sc: "Scale"):
    """(name, pool) of each target of scale ``sc`` whose data is installed, in order (absent ones skipped)."""
    for t in sc.targets:
        try:
            yield t, D.load_target(t, sc.pool)
        except D.Unavailable:
            continue


def target_splits(sc: "Scale", t: str, pool, seeds) -> list:
    """The train/test split of target ``t`` for each seed (few-shot targets, ``name@k``, draw k per class)."""
    shots = D.FEW_SHOT if "@" in t else None
    return [D.make_split(pool.y, seed=s, n_train=sc.n_train, n_test=sc.n_test, shots=shots) for s in seeds]


def warm_ground_truth(scale: str, *, seed: int = 0, cache_dir=None, progress: bool = True) -> dict:
    """Train the zoo and measure the ground truth of ``scale`` into the cache, nothing else (no scoring, no
    evaluation, no results): lets the expensive, defaults-independent part run while the defaults are chosen."""
    sc = SCALES[scale]
    cache_root = Path(cache_dir or default_cache_dir()) / "realbank"
    cfg = TruthConfig(ft_steps=sc.ft_steps)
    seeds = [seed + k for k in range(sc.seeds)]
    nets, infos, _ = load_or_train_zoo(sc.zoo, cache_root, seed, progress=_printer(progress))
    n_done = 0
    for t, pool in available_targets(sc):
        splits = target_splits(sc, t, pool, seeds)
        for n in nets:
            measure_pair(nets[n], infos[n]["file_sha256"], t, pool, splits, seeds, cfg=cfg,
                         cache_root=cache_root)
            n_done += 1
        _printer(progress)(f"ground truth of {t} measured")
    return {"pairs": n_done}


@dataclass
class Measured:
    """What steps 3 and 4 produce: the truth per protocol (mean over seeds and per seed), every scorer's scores,
    the rows of the truth and score tables, the scoring information per target and the compute costs."""

    per_seed: dict = field(default_factory=lambda: {p: {} for p in PROTOCOLS})
    scores: dict = field(default_factory=dict)
    score_info: dict = field(default_factory=dict)
    truth_rows: list = field(default_factory=list)
    score_rows: list = field(default_factory=list)
    costs: dict = field(default_factory=lambda: {"gt_seconds": 0.0, "scoring_seconds": 0.0, "frozen_seconds": 0.0,
                                                 "peers_seconds": 0.0})

    @property
    def truth(self) -> dict:
        """The truth per protocol and target: the mean over seeds of ``per_seed`` (seeds × sources)."""
        return {p: {t: a.mean(axis=0) for t, a in by_target.items()} for p, by_target in self.per_seed.items()}


def load_pools(sc: Scale, scale: str, say) -> tuple[dict, dict]:
    """Step 1: every target of ``sc`` whose data is installed, and a note for each one skipped (at least 2 left)."""
    pools, skipped = {}, {}
    for t in sc.targets:
        try:
            pools[t] = D.load_target(t, sc.pool)
        except D.Unavailable as exc:
            skipped[t] = str(exc)
            say(f"target {t} skipped: {exc}")
    if len(pools) < 2:
        raise DeparaError(f"scale {scale}: fewer than 2 targets available ({', '.join(skipped) or 'none'} skipped)")
    return pools, skipped


def measure_truth(m: Measured, t: str, pool, splits, seeds, zoo, cfg: TruthConfig, cache_root: Path, bar) -> None:
    """Step 3 for target ``t``: both protocols' accuracy of every source on every seed, into ``m``."""
    nets, infos, sources = zoo
    acc = {p: np.zeros((len(seeds), len(sources))) for p in PROTOCOLS}
    for j, n in enumerate(sources):
        r = measure_pair(nets[n], infos[n]["file_sha256"], t, pool, splits, seeds, cfg=cfg, cache_root=cache_root)
        for p in PROTOCOLS:
            acc[p][:, j] = r[p]
        m.costs["gt_seconds"] += r["seconds_forward"] + r["seconds_lp"] + r["seconds_ft"]
        for k, s in enumerate(seeds):
            m.truth_rows.append({"target": t, "source": n, "seed": s, "linear_probe": r["linear_probe"][k],
                                 "fine_tune": r["fine_tune"][k]})
        if bar is not None:
            bar.update(1)
    for p in PROTOCOLS:
        m.per_seed[p][t] = acc[p]


def score_cached(m: Measured, sc: Scale, t: str, pool, train, nets: dict, zoo_key: str, defaults: Defaults,
                 seed: int, cache_root: Path) -> None:
    """Step 4 for target ``t``: every scorer's scores from the labelled (train) images only, cached, into ``m``."""
    key = fingerprint({"zoo": zoo_key, "target": t, "train": fingerprint({"i": train.tolist()}),
                       "defaults": asdict(defaults), "n_probe": sc.n_probe, "quick": [sc.quick_steps, sc.quick_width],
                       "seed": seed, "peers": list(PEERS), "v": 2})
    path = cache_root / "scores" / f"{t}-{key}.json"
    hit = load_json_entry(path, key)
    if hit is None:
        s_t, info = score_target(nets, pool.x[train], pool.y[train], defaults=defaults, n_probe=sc.n_probe,
                                 quick_steps=sc.quick_steps, quick_width=sc.quick_width, seed=seed)
        hit = {"scores": {k: [float(v) for v in a] for k, a in s_t.items()}, "info": info}
        save_json_entry(path, key, hit)
    m.scores[t] = {k: np.array(v, dtype=np.float64) for k, v in hit["scores"].items()}
    m.score_info[t] = hit["info"]
    m.costs["scoring_seconds"] += hit["info"]["seconds_total"]
    m.costs["frozen_seconds"] += hit["info"]["seconds_frozen_default"]
    m.costs["peers_seconds"] += hit["info"]["seconds_peers"]
    for k, a in m.scores[t].items():
        m.score_rows.extend({"target": t, "scorer": k, "source": n, "score": float(v)} for n, v in zip(nets, a))


def evaluate_protocols(m: Measured, sources: list, seed: int, out: Path, tables: dict):
    """Step 5: each protocol's per-target rows and summary (``summary_<protocol>.csv``), its winners and the
    frozen default's paired differences to LogME and to the best label-free peer."""
    order = [FROZEN] + [v for v in DEPARA_VARIANTS if v != FROZEN] + [p for p in PEERS]
    scores = {t: {k: s[k] for k in order if k in s} for t, s in m.scores.items()}
    summary_by_protocol, winners, comparisons, per_target_all = {}, {}, {}, []
    for p in PROTOCOLS:
        rows, summ = evaluate(m.truth[p], m.per_seed[p], scores, sources, seed=seed)
        per_target_all += [{"protocol": p, **r} for r in rows]
        summary_by_protocol[p] = summ
        real = [r for r in summ if r["scorer"] not in (RANDOM, ORACLE, SEED_CEILING)]
        win_tau = max(real, key=lambda r: r["weighted_tau"])
        win_reg = min(real, key=lambda r: r["regret"])
        label_free = [r for r in real if r["scorer"] in ("RSA (target model)", "CKA (target model)")]
        best_lf = max(label_free, key=lambda r: r["weighted_tau"])
        winners[p] = {"weighted_tau": win_tau["scorer"], "regret": win_reg["scorer"],
                      "best_label_free_peer": best_lf["scorer"]}
        comp = {}
        for other in ("LogME", best_lf["scorer"]):
            for metric in ("weighted_tau", "regret"):
                a = [r[metric] for r in rows if r["scorer"] == FROZEN]
                b = [r[metric] for r in rows if r["scorer"] == other]
                d, lo, hi = paired_difference(np.array(a), np.array(b), np.random.default_rng([seed, 9]))
                comp[f"{metric}: frozen − {other}"] = {"mean": d, "lo": lo, "hi": hi}
        comparisons[p] = comp
        write_csv(out / f"summary_{p}.csv", summ)
        tables[f"summary_{p}"] = f"summary_{p}.csv"
    return summary_by_protocol, winners, comparisons, per_target_all


def write_tables(m: Measured, out: Path, tables: dict, per_target_all: list, sources: list, infos: dict,
                 pools: dict) -> None:
    """The CSV tables after the summaries: per target, the truth (per seed and per protocol), the scores, the seed
    noise, the sources and the targets; each one named in ``tables``."""
    write_csv(out / "per_target.csv", per_target_all, header=["protocol", "scorer", "target", *METRICS, "pick",
                                                               "pick_truth", "best", "best_truth"])
    tables["per_target"] = "per_target.csv"
    write_csv(out / "truth_per_seed.csv", m.truth_rows)
    tables["truth_per_seed"] = "truth_per_seed.csv"
    for p in PROTOCOLS:
        write_csv(out / f"truth_{p}.csv", [{"target": t, **{n: float(v) for n, v in zip(sources, m.truth[p][t])}}
                                           for t in m.truth[p]])
        tables[f"truth_{p}"] = f"truth_{p}.csv"
    write_csv(out / "scores.csv", m.score_rows)
    tables["scores"] = "scores.csv"
    noise_rows = []
    for p in PROTOCOLS:
        for t in m.truth[p]:
            a = m.per_seed[p][t]
            noise_rows.append({"protocol": p, "target": t, "mean_accuracy": float(a.mean()),
                               "seed_std_mean_over_sources": float(a.std(axis=0, ddof=1).mean()) if len(a) > 1
                               else float("nan"),
                               "source_spread": float(a.mean(axis=0).max() - a.mean(axis=0).min())})
    write_csv(out / "seed_noise.csv", noise_rows)
    tables["seed_noise"] = "seed_noise.csv"
    write_csv(out / "sources.csv", [{"source": n, **{k: v for k, v in infos[n].items() if k != "file_sha256"}}
                                    for n in sources])
    tables["sources"] = "sources.csv"
    write_csv(out / "targets.csv", [{"target": t, "description": D.TARGETS[t.split("@")[0]][1],
                                     "few_shot": D.FEW_SHOT if "@" in t else "", "pool": len(pools[t].y),
                                     "classes": pools[t].n_classes, "labelled": m.score_info[t]["n_labelled"],
                                     "probes": m.score_info[t]["n_probe"]} for t in pools])
    tables["targets"] = "targets.csv"


def draw_figures(m: Measured, out: Path, sources: list, summary_by_protocol: dict, winners: dict,
                 per_target_all: list) -> dict:
    """The rank-quality intervals and, per protocol, the picks of the frozen default, LogME and the best
    label-free peer against the truth; ``{figure: file name}``."""
    from .figures import plot_intervals, plot_picks

    figures = {"rank_quality": plot_intervals(summary_by_protocol, out / "rank_quality.png", highlight=(FROZEN,)).name}
    for p in PROTOCOLS:
        picks = {sc_name: {r["target"]: r["pick"] for r in per_target_all
                           if r["protocol"] == p and r["scorer"] == sc_name}
                 for sc_name in (FROZEN, "LogME", winners[p]["best_label_free_peer"])}
        figures[f"picks_{p}"] = plot_picks(m.truth[p], sources, picks, out / f"picks_{p}.png",
                                           f"{p.replace('_', ' ')}: picks vs truth").name
    return figures


def headline(summary_by_protocol: dict, winners: dict, ratio: float) -> str:
    """The one-line summary: per protocol the frozen default's and LogME's weighted τ with intervals, the winner."""
    head = {p: {r["scorer"]: r for r in summary_by_protocol[p]} for p in PROTOCOLS}

    def _fmt(p, s):
        r = head[p][s]
        return f"{r['weighted_tau']:.2f} [{r['weighted_tau_lo']:.2f}, {r['weighted_tau_hi']:.2f}]"
    return ("; ".join(f"{p.replace('_', ' ')}: frozen DEPARA wτ {_fmt(p, FROZEN)}, LogME {_fmt(p, 'LogME')}, "
                      f"winner {winners[p]['weighted_tau']}" for p in PROTOCOLS)
            + f"; scoring/ground-truth compute {ratio:.3f}")


@writes_results_folder("out")  # written whole: an interrupted run leaves the previous folder
def _run(scale: str, out: Path, *, seed: int, cache_dir, progress: bool, defaults_path) -> dict:
    from ...report.manifest import write_manifest

    sc = SCALES[scale]
    defaults, defaults_doc, defaults_file = load_defaults(defaults_path)
    out = ensure_dir(out)
    say = _printer(progress)
    cache_root = Path(cache_dir or default_cache_dir()) / "realbank"
    t_start = time.perf_counter()
    cfg = TruthConfig(ft_steps=sc.ft_steps)
    seeds = [seed + k for k in range(sc.seeds)]
    pools, skipped = load_pools(sc, scale, say)  # 1. targets
    say(f"scale {scale}: {len(pools)} targets, {len(sc.zoo)} sources, {len(seeds)} seeds; cache {cache_root}")
    with progress_bar(total=len(sc.zoo), desc="sources", enabled=progress) as bar:  # 2. sources
        nets, infos, src_skipped = load_or_train_zoo(sc.zoo, cache_root, seed, progress=None, bar=bar)
    skipped.update({f"source {k}": v for k, v in src_skipped.items()})
    sources = list(nets)
    if len(sources) < 3:
        raise DeparaError(f"scale {scale}: fewer than 3 sources available")
    zoo_key = fingerprint({n: infos[n]["file_sha256"] for n in sources})
    m = Measured()
    n_steps = len(pools) * (len(sources) + 1)
    with progress_bar(total=n_steps, desc="targets x sources", enabled=progress) as bar:  # 3. truth, 4. scores
        for t, pool in pools.items():
            splits = target_splits(sc, t, pool, seeds)
            measure_truth(m, t, pool, splits, seeds, (nets, infos, sources), cfg, cache_root, bar)
            # Scores from the seed-`seed` split's labelled (train) images only.
            score_cached(m, sc, t, pool, splits[0].train, nets, zoo_key, defaults, seed, cache_root)
            if bar is not None:
                bar.update(1)
    say("evaluating")  # 5. evaluation
    tables: dict = {}
    summary_by_protocol, winners, comparisons, per_target_all = evaluate_protocols(m, sources, seed, out, tables)
    write_tables(m, out, tables, per_target_all, sources, infos, pools)
    figures = draw_figures(m, out, sources, summary_by_protocol, winners, per_target_all)
    if defaults_file is None:
        write_text(out / "frozen_defaults.toml", defaults_toml(defaults))
    else:
        shutil.copyfile(defaults_file, out / "frozen_defaults.toml")
    costs = m.costs
    ratio = costs["scoring_seconds"] / max(costs["gt_seconds"], 1e-9)
    costs.update({"scoring_over_gt": ratio, "frozen_over_gt": costs["frozen_seconds"] / max(costs["gt_seconds"], 1e-9),
                  "run_seconds": time.perf_counter() - t_start})
    write_json(out / "costs.json", costs)
    summary = headline(summary_by_protocol, winners, ratio)
    write_manifest(out, "realbank", title=f"Real-image bank ({scale}): which source to transfer, out of sample",
                   summary=summary,
                   settings={"scale": scale, "seed": seed, "seeds": seeds, **{k: v for k, v in asdict(sc).items()
                                                                              if k not in ("zoo", "extra")},
                             "truth": cfg.key(), "frozen_defaults": asdict(defaults),
                             "frozen_defaults_file": "frozen_defaults.toml"},
                   tables=tables, figures=figures,
                   extra={"skipped": skipped, "winners": winners, "comparisons": comparisons, "costs": costs,
                          "sources": sources, "targets": list(pools),
                          "frozen_default": defaults.describe()})
    say(summary)
    return {"summary": summary, "winners": winners, "comparisons": comparisons, "costs": costs,
            "summary_rows": summary_by_protocol, "skipped": skipped, "out": str(out)}
