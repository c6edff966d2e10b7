"""One harness for every transferability estimator: DEPARA beside LogME, LEEP, NCE, H-score, TransRate, RSA, CKA.

Three layers, usable separately:

1. :func:`score_sources` (numpy only): given each candidate source's *precomputed* arrays on the target data
   (:class:`SourceInputs`: features N×D, optional source-head probabilities N×Cs, optional DEPARA graph on the
   probe set), the target labels (or regression targets), and optionally the target model's own features and
   graph, compute every requested method for every source → :class:`ScoreTable` (higher = better throughout).
   The task-bank and layer-transfer benchmarks call this directly with arrays they already hold.
2. :func:`evaluate_scores` (numpy/scipy): against ground truth (e.g. fine-tuned accuracy per source) report per
   method Kendall τ-b, weighted τ, Pearson, Spearman, P@K and the top-1 pick's relative accuracy and regret.
3. :func:`extract_inputs` / :func:`build_depara_graphs` (torch): run each source model ONCE over the target
   images to get its features and head probabilities, and build DEPARA graphs on the probe set;
   :func:`run_harness` chains everything and :func:`write_results` writes CSV/JSON + a bar chart + manifest.

Method conventions (see ``docs/sections/baselines.md``):

* ``logme``, ``hscore``, ``transrate``: source features on the target samples + target labels.
* ``leep``: source-head probabilities + labels; ``nce``: argmax of those probabilities + labels.
* ``rsa``, ``cka``: source features vs a *reference representation* of the same target samples: the target
  model's features when given, otherwise the one-hot labels (classification) or the targets (regression),
  i.e. the representation an ideal model of the target task would have.
* ``depara``: S = S_V + λ·S_E between each source's graph and the target model's graph on the probe set.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence

import numpy as np
from scipy import stats

from . import baselines
from .errors import DeparaError

if TYPE_CHECKING:  # pragma: no cover
    import torch
    from torch import nn

    from .graph import Graph

#: Every method the harness knows, in display order.
METHODS: tuple[str, ...] = ("logme", "leep", "nce", "hscore", "transrate", "rsa", "cka", "depara")
_CLASSIFICATION_ONLY = {"leep", "nce", "hscore", "transrate"}
_ALIASES = {"h_score": "hscore", "h-score": "hscore", "linear_cka": "cka", "lcka": "cka"}


# ---------------------------------------------------------------------------------------------- inputs
@dataclass
class SourceInputs:
    """What one candidate source contributes, computed once.

    Attributes:
        features: N×D features of the source model on the N target samples (e.g. penultimate layer).
        probs: N×Cs probabilities of the source model's own head on the same samples (LEEP, NCE), or None.
        graph: the source's DEPARA :class:`~depara.graph.Graph` on the probe set (``depara``), or None.
    """

    features: np.ndarray | None = None
    probs: np.ndarray | None = None
    graph: "Graph | None" = None


def parse_methods(methods: str | Sequence[str] | None) -> list[str]:
    """Normalise ``"logme,leep"`` / ``["logme", "leep,nce"]`` / ``"all"`` / None (= all) to known names, in order."""
    if methods is None:
        return list(METHODS)
    items = [methods] if isinstance(methods, str) else list(methods)
    out: list[str] = []
    for item in items:
        for part in str(item).split(","):
            name = part.strip().lower()
            if not name:
                continue
            if name == "all":
                out.extend(m for m in METHODS if m not in out)
                continue
            name = _ALIASES.get(name, name)
            if name not in METHODS:
                raise DeparaError(f"--method: unknown method {part.strip()!r}; expected one of {', '.join(METHODS)}")
            if name not in out:
                out.append(name)
    if not out:
        raise DeparaError("--method: no method given")
    return out


# ------------------------------------------------------------------------------------------------ scores
@dataclass
class ScoreTable:
    """Scores of every method for every source (higher = better).

    Attributes:
        sources: source names, in input order.
        methods: method names, in request order.
        scores: method → float64 array (S,), aligned with ``sources``.
        meta: how the scores were made (reference representation of rsa/cka, λ, regression, N, ...).
    """

    sources: tuple[str, ...]
    methods: tuple[str, ...]
    scores: dict[str, np.ndarray]
    meta: dict[str, Any] = field(default_factory=dict)

    def ranking(self, method: str) -> list[str]:
        """Source names best first by ``method`` (stable among ties)."""
        order = np.argsort(-self.scores[method], kind="stable")
        return [self.sources[i] for i in order]

    def rows(self) -> list[dict[str, Any]]:
        """One row per source: ``source`` then one column per method."""
        return [{"source": s, **{m: float(self.scores[m][i]) for m in self.methods}}
                for i, s in enumerate(self.sources)]

    def to_dict(self) -> dict[str, Any]:
        return {"sources": list(self.sources), "methods": list(self.methods),
                "scores": {m: {s: float(v) for s, v in zip(self.sources, self.scores[m])} for m in self.methods},
                "rankings": {m: self.ranking(m) for m in self.methods}, "meta": self.meta}


def _as_sources(sources: Mapping[str, SourceInputs | np.ndarray]) -> dict[str, SourceInputs]:
    if not isinstance(sources, Mapping) or not sources:
        raise DeparaError("sources: expected a non-empty mapping name -> SourceInputs (or features array)")
    out = {}
    for name, item in sources.items():
        out[str(name)] = item if isinstance(item, SourceInputs) else SourceInputs(features=np.asarray(item))
    return out


def _reference_representation(labels: np.ndarray, regression: bool, target_features) -> tuple[np.ndarray, str]:
    if target_features is not None:
        return np.asarray(target_features), "target features"
    if regression:
        y = np.asarray(labels, dtype=np.float64)
        return (y[:, None] if y.ndim == 1 else y), "regression targets"
    idx, n_classes = baselines._as_class_indices(labels, "labels", None)
    return baselines._one_hot(idx, n_classes), "one-hot labels"


def _check_rows(name: str, what: str, arr: np.ndarray | None, n: int) -> None:
    if arr is not None and np.shape(arr)[0] != n:
        raise DeparaError(f"source {name}: {what} has {np.shape(arr)[0]} rows but there are {n} target labels")


def score_sources(sources: Mapping[str, SourceInputs | np.ndarray], labels, *,
                  methods: str | Sequence[str] | None = None, regression: bool = False,
                  target_features=None, target_graph: "Graph | None" = None, lam: float = 1.0,
                  transrate_eps: float = 1e-4, progress: bool = False) -> ScoreTable:
    """Score every source with every method from precomputed arrays.

    Args:
        sources: name → :class:`SourceInputs` (or a bare N×D features array).
        labels: N target class indices 0..C−1, or with ``regression=True`` N or N×T targets.
        methods: names or a comma list (see :data:`METHODS`); None = every method the inputs allow.
        target_features: N×Dt features of a model trained on the target (reference for rsa/cka); None uses
            the one-hot labels / targets.
        target_graph: the target model's DEPARA graph on the same probes as the sources' graphs (``depara``).
        lam: λ of S = S_V + λ·S_E.
        transrate_eps: distortion ε of TransRate.

    Returns:
        A :class:`ScoreTable`. Raises DeparaError naming the method and source when an input a method needs is
        missing or bad.
    """
    srcs = _as_sources(sources)
    if methods is None:
        wanted = [m for m in METHODS if _available(m, srcs, regression, target_graph)]
    else:
        wanted = parse_methods(methods)
    n = int(np.shape(labels)[0]) if np.ndim(labels) >= 1 else 0
    for name, item in srcs.items():
        _check_rows(name, "features", item.features, n)
        _check_rows(name, "probs", item.probs, n)
    if target_features is not None and np.shape(target_features)[0] != n:
        raise DeparaError(f"target_features: has {np.shape(target_features)[0]} rows but there are {n} labels")
    for method in wanted:
        _check_method_inputs(method, srcs, regression, target_graph)

    reference, reference_name = (None, None)
    if {"rsa", "cka"} & set(wanted):
        reference, reference_name = _reference_representation(labels, regression, target_features)

    fns: dict[str, Callable[[str, SourceInputs], float]] = {
        "logme": lambda _, s: baselines.logme(s.features, labels, regression=regression),
        "leep": lambda _, s: baselines.leep(s.probs, labels),
        "nce": lambda _, s: baselines.nce(np.asarray(s.probs).argmax(axis=1), labels),
        "hscore": lambda _, s: baselines.h_score(s.features, labels),
        "transrate": lambda _, s: baselines.transrate(s.features, labels, eps=transrate_eps),
        "rsa": lambda _, s: baselines.rsa(s.features, reference),
        "cka": lambda _, s: baselines.linear_cka(s.features, reference),
        "depara": lambda _, s: _depara_score(s.graph, target_graph, lam),
    }
    names = list(srcs)
    table = {m: np.full(len(names), np.nan) for m in wanted}
    jobs = [(m, i) for m in wanted for i in range(len(names))]
    for method, i in _maybe_progress(jobs, progress, "scoring"):
        try:
            table[method][i] = fns[method](names[i], srcs[names[i]])
        except DeparaError as exc:
            raise DeparaError(f"{method} on source {names[i]}: {exc}") from None
    meta = {"n_samples": n, "regression": bool(regression), "lam": float(lam), "transrate_eps": transrate_eps}
    if reference_name:
        meta["rsa_cka_reference"] = reference_name
    return ScoreTable(sources=tuple(names), methods=tuple(wanted), scores=table, meta=meta)


def _available(method: str, srcs: Mapping[str, SourceInputs], regression: bool, target_graph) -> bool:
    try:
        _check_method_inputs(method, srcs, regression, target_graph)
    except DeparaError:
        return False
    return True


def _check_method_inputs(method: str, srcs: Mapping[str, SourceInputs], regression: bool, target_graph) -> None:
    if regression and method in _CLASSIFICATION_ONLY:
        raise DeparaError(f"method {method}: needs class labels, not regression targets")
    for name, s in srcs.items():
        if method in ("leep", "nce") and s.probs is None:
            raise DeparaError(f"method {method}: source {name} has no source-head probabilities (probs)")
        if method in ("logme", "hscore", "transrate", "rsa", "cka") and s.features is None:
            raise DeparaError(f"method {method}: source {name} has no features")
        if method == "depara" and s.graph is None:
            raise DeparaError(f"method depara: source {name} has no DEPARA graph")
    if method == "depara" and target_graph is None:
        raise DeparaError("method depara: needs the target model's graph (give a target model)")


def _depara_score(graph, target_graph, lam: float) -> float:
    from .graph_similarity import similarity

    return float(similarity(graph, target_graph, lam=lam))


def _maybe_progress(items: list, enabled: bool, desc: str):
    if not enabled:
        return items
    from tqdm.auto import tqdm

    return tqdm(items, desc=desc, leave=False)


# -------------------------------------------------------------------------------------------- evaluation
def _as_truth(truth, sources: Sequence[str]) -> np.ndarray:
    if isinstance(truth, Mapping):
        missing = [s for s in sources if s not in truth]
        if missing:
            raise DeparaError(f"truth: no ground-truth value for source {missing[0]!r}")
        values = np.array([float(truth[s]) for s in sources])
    else:
        values = np.asarray(truth, dtype=np.float64).reshape(-1)
        if values.shape[0] != len(sources):
            raise DeparaError(f"truth: {values.shape[0]} values for {len(sources)} sources")
    if not np.all(np.isfinite(values)):
        raise DeparaError("truth: contains NaN or inf")
    return values


def _nan_if_constant(fn, x: np.ndarray, y: np.ndarray) -> float:
    if x.size < 2 or np.all(x == x[0]) or np.all(y == y[0]):
        return float("nan")
    return float(fn(x, y))


def precision_at_k(scores: np.ndarray, truth: np.ndarray, k: int, relevant: int | None = None) -> float:
    """|top-k by scores ∩ relevant| / k, relevant = the top-``relevant`` sources by truth (default: top-k).

    Ties in ``scores`` are broken pessimistically (non-relevant first), ties in ``truth`` by input order.
    """
    r = k if relevant is None else relevant
    rel = np.zeros(truth.shape[0], dtype=bool)
    rel[np.argsort(-truth, kind="stable")[:r]] = True
    order = np.lexsort((rel, -scores))  # by score descending, then non-relevant before relevant
    return float(rel[order[:k]].sum() / k)


def evaluate_scores(table: ScoreTable, truth, *, ks: Sequence[int] = (1, 3, 5),
                    relevant: int | None = None) -> list[dict[str, Any]]:
    """Agreement of each method's scores with the ground truth, one row per method.

    Args:
        table: from :func:`score_sources`.
        truth: source → ground-truth value (higher = better, e.g. fine-tuned accuracy), or an (S,) array in
            ``table.sources`` order.
        ks: the K of P@K (values larger than the number of sources are dropped).
        relevant: size of the relevant set for P@K; None = top-K by truth for each K.

    Returns:
        Rows with ``method``, ``kendall`` (τ-b), ``weighted_tau`` (``scipy.stats.weightedtau`` defaults:
        hyperbolic rank weights so the top matters most, averaged over the ranking by score and by truth), ``pearson``, ``spearman``, ``p_at_<K>``, ``top1`` (the pick),
        ``top1_truth``, ``best_truth``, ``relative_accuracy`` = top1_truth / best_truth, ``regret`` =
        best_truth − top1_truth. Correlations are NaN when the scores (or truth) are constant. Tied top
        scores pick the worst tied source (pessimistic).
    """
    y = _as_truth(truth, table.sources)
    ks = [int(k) for k in ks if 1 <= int(k) <= len(table.sources)]
    rows = []
    for method in table.methods:
        x = table.scores[method]
        top = np.flatnonzero(x == x.max())
        pick = int(top[np.argmin(y[top])])
        best = float(y.max())
        row = {"method": method,
               "kendall": _nan_if_constant(lambda a, b: stats.kendalltau(a, b).statistic, x, y),
               "weighted_tau": _nan_if_constant(lambda a, b: stats.weightedtau(a, b).statistic, x, y),
               "pearson": _nan_if_constant(lambda a, b: stats.pearsonr(a, b).statistic, x, y),
               "spearman": _nan_if_constant(lambda a, b: stats.spearmanr(a, b).statistic, x, y)}
        for k in ks:
            row[f"p_at_{k}"] = precision_at_k(x, y, k, relevant)
        row.update({"top1": table.sources[pick], "top1_truth": float(y[pick]), "best_truth": best,
                    "relative_accuracy": float(y[pick] / best) if best != 0 else float("nan"),
                    "regret": best - float(y[pick])})
        rows.append(row)
    return rows


# --------------------------------------------------------------------------------------------- outputs
def summary_line(table: ScoreTable, evaluation: Sequence[Mapping[str, Any]] | None = None) -> str:
    """One line: what to pick."""
    picks = {m: table.ranking(m)[0] for m in table.methods}
    if evaluation:
        scored = [r for r in evaluation if not math.isnan(r["kendall"])]
        if scored:
            best = max(scored, key=lambda r: r["kendall"])
            return (f"{best['method']} agrees best with the ground truth (Kendall tau = {best['kendall']:.2f}); "
                    f"it picks source {best['top1']} (relative accuracy {best['relative_accuracy']:.3f})")
    if "depara" in picks:
        return f"pick source {picks['depara']} (DEPARA); " + ", ".join(f"{m}: {s}" for m, s in picks.items()
                                                                      if m != "depara")
    votes: dict[str, int] = {}
    for s in picks.values():
        votes[s] = votes.get(s, 0) + 1
    top = max(votes, key=votes.get)
    return f"pick source {top} ({votes[top]} of {len(picks)} methods rank it first)"


def write_results(out: str | os.PathLike, table: ScoreTable, evaluation: Sequence[Mapping[str, Any]] | None = None,
                  *, truth=None, settings: Mapping[str, Any] | None = None,
                  title: str = "Transferability estimators side by side") -> dict[str, Path]:
    """Write ``scores.csv/json``, ``evaluation.csv/json`` (with truth), bar charts and ``manifest.json`` (kind
    ``"score"``) into ``out``. Returns name → path of everything written."""
    from ._io import ensure_dir, write_csv, write_json
    from .plots.harness import plot_method_agreement, plot_source_scores
    from .results import write_manifest

    out_dir = ensure_dir(out)
    paths: dict[str, Path] = {}
    tables: dict[str, str] = {}
    figures: dict[str, str] = {}
    paths["scores_csv"] = write_csv(out_dir / "scores.csv", table.rows())
    payload = table.to_dict()
    if truth is not None:
        payload["truth"] = dict(zip(table.sources, _as_truth(truth, table.sources).tolist()))
    paths["scores_json"] = write_json(out_dir / "scores.json", payload)
    tables.update(scores="scores.csv", scores_json="scores.json")
    paths["scores_png"] = plot_source_scores(table, out_dir / "scores.png",
                                             truth=None if truth is None else payload["truth"])
    figures["scores"] = "scores.png"
    if evaluation:
        paths["evaluation_csv"] = write_csv(out_dir / "evaluation.csv", list(evaluation))
        paths["evaluation_json"] = write_json(out_dir / "evaluation.json", list(evaluation))
        paths["evaluation_png"] = plot_method_agreement(evaluation, out_dir / "evaluation.png")
        tables.update(evaluation="evaluation.csv", evaluation_json="evaluation.json")
        figures["evaluation"] = "evaluation.png"
    extra = {"rankings": payload["rankings"], **table.meta}
    if evaluation:
        extra["evaluation"] = list(evaluation)
    paths["manifest"] = write_manifest(out_dir, "score", title=title, summary=summary_line(table, evaluation),
                                       settings=dict(settings or {}), tables=tables, figures=figures, extra=extra)
    return paths


# ------------------------------------------------------------------------------------------ torch layer
def last_linear(model: "nn.Module") -> str | None:
    """Name of the last ``nn.Linear`` in module order (the classifier head of most vision models), or None."""
    from torch import nn

    name = None
    for n, m in model.named_modules():
        if isinstance(m, nn.Linear):
            name = n
    return name


def pool_features(t: "torch.Tensor") -> "torch.Tensor":
    """B×C×H×W (or B×C×L) → B×C by global average pooling; B×D stays; anything else is flattened."""
    if t.ndim >= 3:
        return t.flatten(2).mean(dim=2)
    return t.reshape(t.shape[0], -1)


def extract_inputs(models: Mapping[str, "nn.Module"], images: "torch.Tensor", *,
                   feature_layer: str | Mapping[str, str] | None = None, batch_size: int = 64,
                   device: Any = None, progress: bool = False) -> dict[str, SourceInputs]:
    """Run each model ONCE over the target ``images`` (N×C×H×W, preprocessed) → features and head probabilities.

    ``feature_layer``: module name (one for all, or per model); default = the INPUT of the model's last
    ``nn.Linear`` (the penultimate representation). Feature maps of more than 2 dimensions are global-average
    pooled to B×C. ``probs`` = softmax of the model output when it is B×K with K ≥ 2 (else None).
    """
    import torch

    if not isinstance(images, torch.Tensor) or images.ndim != 4:
        raise DeparaError(f"images: expected a float tensor N×C×H×W, got {getattr(images, 'shape', type(images))}")
    if not isinstance(batch_size, int) or batch_size < 1:
        raise DeparaError(f"batch_size: expected a positive integer, got {batch_size!r}")
    out: dict[str, SourceInputs] = {}
    for name, model in models.items():
        layer = feature_layer.get(name) if isinstance(feature_layer, Mapping) else feature_layer
        out[name] = _extract_one(name, model, images, layer, batch_size, device, progress)
    return out


def _extract_one(name: str, model: "nn.Module", images: "torch.Tensor", layer: str | None, batch_size: int,
                 device: Any, progress: bool) -> SourceInputs:
    import torch

    if layer is None:
        head = last_linear(model)
        if head is None:
            raise DeparaError(f"source {name}: no nn.Linear head found; give a feature layer name")
        module, use_input = dict(model.named_modules())[head], True
    else:
        modules = dict(model.named_modules())
        if layer not in modules:
            raise DeparaError(f"source {name}: no layer named {layer!r}")
        module, use_input = modules[layer], False
    captured: list = []

    def hook(_m, inputs, output):
        captured.append(pool_features((inputs[0] if use_input else output).detach()).float().cpu())

    dev = torch.device(device) if device is not None else next(
        (p.device for p in model.parameters()), torch.device("cpu"))
    was_training = model.training
    model.eval()
    handle = module.register_forward_hook(hook)
    feats, probs = [], []
    try:
        with torch.no_grad():
            steps = range(0, images.shape[0], batch_size)
            for start in _maybe_progress(list(steps), progress, f"features {name}"):
                x = images[start:start + batch_size].to(dev, torch.float32)
                y = model(x)
                feats.append(captured.pop())
                captured.clear()
                if isinstance(y, torch.Tensor) and y.ndim == 2 and y.shape[1] >= 2:
                    probs.append(torch.softmax(y.double(), dim=1).cpu())
    finally:
        handle.remove()
        model.train(was_training)
    f = torch.cat(feats).numpy()
    if not np.all(np.isfinite(f)):
        raise DeparaError(f"source {name}: features contain NaN or inf")
    p = torch.cat(probs).numpy() if len(probs) == len(feats) else None
    return SourceInputs(features=f, probs=p)


def build_depara_graphs(models: Mapping[str, "nn.Module"], probes, *, layer: str | Mapping[str, str] | None = None,
                        **graph_options: Any) -> dict[str, "Graph"]:
    """One DEPARA graph per model on ``probes`` (a ProbeSet or N×C×H×W tensor) via :func:`depara.extract.build_graph`.

    ``layer``: module name (one for all or per model); default = the model's last ``nn.Linear`` (its output, the
    task head). ``graph_options`` are passed to ``build_graph`` (method, scalar, node_size, ...).
    """
    from .extract import build_graph

    graphs = {}
    for name, model in models.items():
        lay = layer.get(name) if isinstance(layer, Mapping) else layer
        if lay is None:
            lay = last_linear(model)
            if lay is None:
                raise DeparaError(f"model {name}: no nn.Linear head found; give a graph layer name")
        graphs[name] = build_graph(model, probes, lay, meta={"model": name}, **graph_options)
    return graphs


@dataclass
class HarnessResult:
    """Everything :func:`run_harness` computed."""

    table: ScoreTable
    evaluation: list[dict[str, Any]] | None
    inputs: dict[str, SourceInputs]
    paths: dict[str, Path]


def run_harness(source_models: Mapping[str, "nn.Module"], images: "torch.Tensor", labels, *,
                methods: str | Sequence[str] | None = None, regression: bool = False,
                target_model: "nn.Module | None" = None, probes=None, truth=None, out=None,
                feature_layer: str | Mapping[str, str] | None = None, target_feature_layer: str | None = None,
                graph_layer: str | None = None,
                lam: float = 1.0, ks: Sequence[int] = (1, 3, 5), batch_size: int = 64, device: Any = None,
                graph_options: Mapping[str, Any] | None = None, settings: Mapping[str, Any] | None = None,
                progress: bool = False) -> HarnessResult:
    """Extract once, score every method, evaluate against ``truth`` (optional), write ``out`` (optional).

    ``images``: N×C×H×W preprocessed target images, ``labels`` their classes (or targets with ``regression``).
    ``target_model`` (a model trained on the target task) gives the reference representation of rsa/cka (its
    features at ``target_feature_layer``, default the input of its last ``nn.Linear``) and, with ``probes``
    (a ProbeSet or an N×C×H×W tensor), the target graph of ``depara``; source graphs are built on the same
    probes at ``graph_layer`` (default: each model's last ``nn.Linear``). ``graph_options`` go to
    :func:`depara.extract.build_graph`. ``truth``: source → ground truth (see :func:`evaluate_scores`).
    """
    wanted = parse_methods(methods) if methods is not None else None
    inputs = extract_inputs(source_models, images, feature_layer=feature_layer, batch_size=batch_size,
                            device=device, progress=progress)
    target_features = target_graph = None
    if target_model is not None:
        target_features = extract_inputs({"target": target_model}, images, feature_layer=target_feature_layer,
                                         batch_size=batch_size, device=device)["target"].features
    need_graphs = (wanted is None and target_model is not None and probes is not None) or \
        (wanted is not None and "depara" in wanted)
    if need_graphs:
        if target_model is None or probes is None:
            raise DeparaError("method depara: needs a target model and a probe set")
        opts = dict(graph_options or {})
        opts.setdefault("progress", progress)
        src_graphs = build_depara_graphs(source_models, probes, layer=graph_layer, **opts)
        target_graph = build_depara_graphs({"target": target_model}, probes, layer=graph_layer, **opts)["target"]
        for name, g in src_graphs.items():
            inputs[name].graph = g
    table = score_sources(inputs, labels, methods=wanted, regression=regression, target_features=target_features,
                          target_graph=target_graph, lam=lam, progress=progress)
    evaluation = evaluate_scores(table, truth, ks=ks) if truth is not None else None
    paths = write_results(out, table, evaluation, truth=truth, settings=settings) if out is not None else {}
    return HarnessResult(table=table, evaluation=evaluation, inputs=inputs, paths=paths)


def labelled_images(root: str | os.PathLike, preprocess: Any = "imagenet"):
    """A target dataset stored as ``root/<class>/<image>``: (ProbeSet of all images, labels (N,), class names).

    Classes are the sorted subfolder names (label = index); images are found recursively inside each class
    folder and sorted by their path relative to ``root`` (the ProbeSet id).
    """
    from .probes import ProbeSet

    base = Path(root)
    if not base.is_dir():
        raise DeparaError(f"--target-data {base}: not found or not a folder of class subfolders")
    classes = sorted(d.name for d in base.iterdir() if d.is_dir() and not d.name.startswith("."))
    if len(classes) < 2:
        raise DeparaError(f"--target-data {base}: expected at least 2 class subfolders, found {len(classes)}")
    found = ProbeSet.from_folder(base, preprocess)
    index = {c: i for i, c in enumerate(classes)}
    labels = []
    for pid in found.ids:
        top = pid.split("/", 1)[0]
        if "/" not in pid or top not in index:
            raise DeparaError(f"--target-data {base}: image {pid} is not inside a class subfolder")
        labels.append(index[top])
    labels = np.asarray(labels, dtype=np.int64)
    empty = [c for c in classes if not np.any(labels == index[c])]
    if empty:
        raise DeparaError(f"--target-data {base}: class folder {empty[0]!r} holds no image")
    return found, labels, classes
