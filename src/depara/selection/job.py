"""`depara.select`: which pretrained model, and which of its layers, to transfer to *my* images.

One call does the whole job::

    sel = depara.select("my_images/", ["torchvision:resnet18@DEFAULT", "timm:deit_tiny_patch16_224@DEFAULT"])
    sel.best            # ("resnet18", "layer4")
    sel.table           # one row per (model, layer), best first: each scorer's value, 95 % interval, rank
    sel.report("out/")  # results folder (CSV/JSON/figures/manifest) + report.html / report.md

What is computed follows what is given (docs/method.md §1–2; Song et al., CVPR 2020):

* **a target model** (``target_model=``) → DEPARA proper: each candidate's graph against the target model's graph
  on the same probes: the edge term ``depara_e`` (E), and on request (``scorers=``) the node term ``depara_v``
  (V) and S = V + λE (``depara``), which need attribution maps (the frozen defaults weigh the node term 0); when
  the data also has labels, the label-aware score ``depara_labels`` too;
* **labels only** (a folder of class sub-folders) → label-aware DEPARA, ``depara_labels``: the agreement, by the
  frozen comparison (:data:`depara.options.DEFAULT_EDGE_COMPARISON`; :mod:`depara.core.similarity_edges`), of the candidate's
  edges (probe-by-probe feature similarities) with the *label graph*
  (:meth:`depara.Graph.from_labels`: the cosine of the centred one-hot labels, high within a class, low across);
  the node term is undefined for a label graph and is left out. Beside it label-based peers from the estimator
  registry (:mod:`depara.estimators.registry`) on the layer's globally pooled features: ``logme``, ``hscore``,
  ``transrate``, ``rsa`` and ``cka`` (against the one-hot labels), ``gbc``, ``ped``. LEEP and NCE
  score a model's *head*, not a layer, and are not offered here;
* **neither** → a one-line :class:`~depara.errors.DeparaError` saying what is needed.

The ranking (and the pick) follows one scorer per case, :data:`DEFAULT_SCORER` (the frozen defaults: the label
graph's edge term when labels are given, else the edge term against the target model). Every scorer gets a
**bootstrap interval over probes**: ``n_boot`` resamples of the N probes with replacement (the same resamples
for every candidate, so the comparison is paired), each score recomputed on the resample (pairwise terms on the
pairs of distinct probes drawn), the 2.5 / 97.5 percentiles → a 95 % interval. ``p_best`` is the fraction of
resamples in which the pick scores highest; candidates whose interval overlaps the pick's are "too close to call".

Unless ``depara`` or ``depara_v`` is asked for, the extraction computes no attribution maps: one forward pass
per batch and model (under ``torch.no_grad``), graphs without nodes (N×0, like the label graph), stored under
their own cache key so that a later run that needs nodes never reads them.

Graphs and pooled features are cached in a :class:`~depara.extraction.store.GraphStore` keyed by content (weights hash,
layer, probe content hash, options), so adding a model reuses every other entry and an interrupted run resumes
(per model). Each candidate's scores (every scorer, every resample) are cached too, keyed by its graph and by
everything else they depend on (labels, target graph, the resamples, :data:`SCORES_VERSION`), so a run with one
model added scores only that model's candidates.
"""

from __future__ import annotations

import math

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import numpy as np

from ..errors import DeparaError, exception_reason
from ..core.similarity_edges import pool_features
from ..core.edges import standardized_ranks
from ..core.score import combine
from ..options import DEFAULT_GRAPH_OPTIONS, DEFAULT_LAMBDA, DEFAULT_NODE_WEIGHT, format_lam

if TYPE_CHECKING:  # pragma: no cover
    from torch import nn

    from ..core.graph import Graph
    from ..extraction.probes import Preprocess, ProbeSet
    from ..extraction.zoo import ModelEntry

__all__ = ["select", "Selection", "DEFAULT_SCORER", "SCORERS", "GRAPH_OPTIONS", "bootstrap_indices",
           "percentile_interval", "PROTOCOLS"]

#: The scorer that ranks, per case ("target_model": a target model is given; "labels": labels only), and per
#: transfer protocol. ONE constant, set from the benchmarks: with a target model DEPARA proper (S = V + λE, the
#: paper's score); with labels only the label-aware DEPARA edge score, the DEPARA-family candidate that issue 10's
#: real-image bank is to confirm against LogME (the lead finalises these values from that bank's results).
#: The ranking scorer per (case, protocol), from depara's frozen defaults (``depara.options``: node weight α = 0,
#: label weight w = 1, chosen on the procedural task bank only and frozen in ``configs/defaults.toml`` before the
#: real-image bank's out-of-sample run): with labels, the label graph's edge term (``depara_labels``, w = 1); with
#: a target model and no labels, the edge term against the target model (``depara_e``, α = 0). The same for both
#: protocols: the procedural bank measured fine-tuning only, and the real-image bank found no reason to differ.
DEFAULT_SCORER: dict[tuple[str, str], str] = {
    ("target_model", "finetune"): "depara_e" if DEFAULT_NODE_WEIGHT == 0 else "depara",
    ("target_model", "linear"): "depara_e" if DEFAULT_NODE_WEIGHT == 0 else "depara",
    ("labels", "finetune"): "depara_labels",
    ("labels", "linear"): "depara_labels",
}
PROTOCOLS = ("finetune", "linear")
#: What each scorer needs and what it is.
SCORERS: dict[str, str] = {
    "depara": "S = V + λE against the target model's graph (DEPARA; the default λ = ∞ makes it E)",
    "depara_v": "V: mean cosine of attribution maps with the target model's",
    "depara_e": "E: Spearman of edges with the target model's",
    "depara_labels": "agreement of edges with the label graph (Graph.from_labels: same class high, else low) by the "
                     "frozen comparison (depara.options.DEFAULT_EDGE_COMPARISON)",
    "logme": "LogME evidence of pooled features given labels",
    "hscore": "H-score of pooled features given labels",
    "transrate": "TransRate of pooled features given labels",
    "rsa": "RSA of pooled features vs one-hot labels",
    "cka": "linear CKA of pooled features vs one-hot labels",
    "gbc": "GBC of pooled features given labels (class overlap)",
    "ped": "PED (LogME after potential-energy descent) of pooled features given labels",
}
#: The label-based peers offered beside label-aware DEPARA (registry names, :mod:`depara.estimators.registry`): the
#: established five and the two recent ones that did best on the real-image bank at low cost (NLEEP did as well
#: but fits a 5·C-component Gaussian mixture per candidate and resample; it and the rest are in ``depara score``
#: and the benchmarks).
_LABEL_PEERS = ("logme", "hscore", "transrate", "rsa", "cka", "gbc", "ped")
#: The scorers with a node term (attribution maps): only these make the extraction run backward passes.
LAM = DEFAULT_LAMBDA
#: The scorers that need attribution maps: V, and S when λ is finite (the default λ = ∞ makes S = E).
_NODE_SCORERS = ("depara_v",) + (("depara",) if math.isfinite(LAM) else ())
#: Graph options of every graph select builds (part of each cache key): depara's extraction defaults, and one
#: node grid for all models so models with different input sizes give comparable attribution maps.
GRAPH_OPTIONS: dict[str, Any] = DEFAULT_GRAPH_OPTIONS.to_meta()
LEVEL = 0.95
#: Most bootstrap resamples accepted (the resample indices and values are held in memory).
MAX_BOOT = 100_000
#: Part of the key of every cached block of scores: bump it when a scorer's computation changes.
SCORES_VERSION = "3"  # 2: depara_labels on pooled, standardised features (round-3 frozen defaults); 3: round 4's
#                        (per_probe comparison of the graph's flat, centred edges)


# ================================================================================================ bootstrap
def bootstrap_indices(n: int, n_boot: int, seed: int) -> np.ndarray:
    """``n_boot`` resamples of ``range(n)`` with replacement: int array n_boot × n (``default_rng(seed)``)."""
    return np.random.default_rng(seed).integers(0, n, size=(n_boot, n))


def percentile_interval(values: np.ndarray, level: float = LEVEL) -> tuple[float, float]:
    """The percentile interval of bootstrap ``values`` (NaNs ignored): ((1−level)/2, (1+level)/2) quantiles
    with numpy's default (linear) interpolation; (nan, nan) when no value is finite."""
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return (float("nan"), float("nan"))
    lo, hi = np.percentile(v, [100 * (1 - level) / 2, 100 * (1 + level) / 2])
    return float(lo), float(hi)


def _pair_index(idx: np.ndarray, n: int) -> np.ndarray:
    """Condensed-edge indices of the pairs (a < b) of a resample whose probes differ: idx[a] ≠ idx[b].

    For the identity resample this is every pair in condensed order, so point estimates equal
    :func:`depara.core.similarity.edge_similarity`.
    """
    a, b = np.triu_indices(len(idx), k=1)
    i, j = idx[a], idx[b]
    keep = i != j
    i, j = np.minimum(i[keep], j[keep]), np.maximum(i[keep], j[keep])
    return n * i - i * (i + 1) // 2 + j - i - 1


def _unit_ranks(x: np.ndarray) -> np.ndarray | None:
    """:func:`depara.core.edges.standardized_ranks` of ``x``; None when constant (Spearman undefined)."""
    try:
        return standardized_ranks(x)
    except DeparaError:
        return None


def _spearman_units(rx: np.ndarray | None, ry: np.ndarray | None) -> float:
    return float(np.clip(rx @ ry, -1.0, 1.0)) if rx is not None and ry is not None else float("nan")


def _spearman(x: np.ndarray, y: np.ndarray) -> float:
    """Spearman ρ (average ranks for ties) of two vectors; NaN when one is constant."""
    return _spearman_units(_unit_ranks(x), _unit_ranks(y))


# ===================================================================================================== data
def _load_data(data: Any, labels: Any, preprocess_default: str = "imagenet") -> tuple["ProbeSet", np.ndarray | None,
                                                                                       list[str], str]:
    """→ (probe set, integer labels or None, class names, description). See :func:`select` for the forms."""
    from ..extraction.probes import ProbeSet

    class_names: list[str] = []
    if isinstance(data, ProbeSet):
        probes, desc = data, repr(data)
    elif isinstance(data, (str, os.PathLike)):
        path = Path(data)
        if path.is_dir():
            from ..extraction.probes import IMAGE_EXTENSIONS

            entries = [p for p in path.iterdir() if not p.name.startswith(".")]
            top_images = [p for p in entries if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS]
            subdirs = [p for p in entries if p.is_dir()]
            if top_images and subdirs:
                raise DeparaError(f"data {path}: mixes {len(top_images)} images at the top level with "
                                  f"{len(subdirs)} sub-folders (expected class sub-folders, or a flat folder of "
                                  "images)")
            probes = ProbeSet.from_folder(path, preprocess_default)
            if subdirs and labels is None:
                found = {pid.split("/", 1)[0] for pid in probes.ids}
                hollow = sorted(p.name for p in subdirs if p.name not in found)
                if hollow:  # a class silently dropped would change the label graph and every score
                    raise DeparaError(f"data {path}: class folder {hollow[0]!r} holds no image (remove it, or "
                                      "add its images)")
                names = [pid.split("/", 1)[0] for pid in probes.ids]
                class_names = sorted(set(names))
                labels = np.array([class_names.index(c) for c in names])
            desc = f"{path} ({'class sub-folders' if subdirs else 'flat folder'})"
        elif path.is_file():
            probes = ProbeSet.from_list(path, preprocess=preprocess_default)
            desc = f"{path} (image list)"
        else:
            raise DeparaError(f"data {path}: not found (expected a folder of class sub-folders, a folder of "
                              "images, or an image-list file)")
    else:
        raise DeparaError(f"data: expected a folder, an image-list file or a ProbeSet, got {type(data).__name__}")
    if len(probes) < 3:
        raise DeparaError(f"data {desc}: {len(probes)} image(s); at least 3 are needed (graphs compare probe pairs)")
    if labels is not None:
        raw = np.asarray(labels)
        if raw.ndim != 1 or raw.shape[0] != len(probes):
            raise DeparaError(f"labels: expected {len(probes)} labels (one per image), got shape {raw.shape}")
        if raw.dtype.kind not in "iubfUS" or (raw.dtype.kind == "f" and not np.all(np.isfinite(raw))):
            # NaN would become a class of its own in np.unique; objects (None, mixed types) cannot be ordered
            bad = "NaN or inf" if raw.dtype.kind == "f" else f"values of dtype {raw.dtype}"
            raise DeparaError(f"labels: expected integer or string class labels, got {bad}")
        if not class_names:
            uniq, inv = np.unique(raw, return_inverse=True)
            class_names = [str(u) for u in uniq]
            labels = inv
        labels = np.asarray(labels, dtype=np.int64)
    return probes, labels, class_names, desc


def _subsample(probes: "ProbeSet", labels: np.ndarray | None, n: int, seed: int):
    """At most ``n`` probes, drawn without replacement under ``seed`` (kept in their original order)."""
    if len(probes) <= n:
        return probes, labels
    keep = np.sort(np.random.default_rng(seed).choice(len(probes), size=n, replace=False))
    return probes.subset(keep), (labels[keep] if labels is not None else None)


# =================================================================================================== models
def _as_entries(models: Any) -> list["ModelEntry"]:
    """Models in any accepted form → validated, uniquely named entries (nothing is loaded)."""
    from ..extraction.zoo import ModelEntry, parse_model_specs, read_zoo

    if isinstance(models, (str, os.PathLike)) and str(models).lower().endswith(".toml"):
        return read_zoo(models)
    if isinstance(models, str):
        return parse_model_specs(models)
    items: list[Any]
    if isinstance(models, Mapping):
        items = []
        for name, item in models.items():
            if isinstance(item, ModelEntry):
                items.append(ModelEntry(name=str(name), spec=item.spec, weights=item.weights,
                                        preprocessing=item.preprocessing, layers=item.layers, module=item.module))
            elif isinstance(item, str):
                e = parse_model_specs(item)[0]
                items.append(ModelEntry(name=str(name), spec=e.spec, weights=e.weights))
            else:
                items.append(ModelEntry(name=str(name), spec=f"module:{name}", module=item))
    elif isinstance(models, Sequence):
        items = []
        for item in models:
            items.extend([item] if isinstance(item, ModelEntry) else parse_model_specs(str(item)))
    else:
        raise DeparaError(f"models: expected model specs, a zoo .toml file, or a dict name -> model, got "
                          f"{type(models).__name__}")
    if not items:
        raise DeparaError("models: no candidate model given")
    names = [e.name for e in items]
    dup = next((n for n in names if names.count(n) > 1), None)
    if dup is not None:
        raise DeparaError(f"models: duplicate model name {dup!r}")
    return items


def _as_target(target: Any) -> "ModelEntry | None":
    from ..extraction.zoo import ModelEntry, parse_model_specs

    if target is None or isinstance(target, ModelEntry):
        return target
    if isinstance(target, str):
        e = parse_model_specs(target)
        if len(e) != 1:
            raise DeparaError(f"target_model {target!r}: expected one model spec")
        return ModelEntry(name=f"target:{e[0].name}", spec=e[0].spec, weights=e[0].weights)
    return ModelEntry(name="target", spec="module:target", module=target)


def _check_model_files(entries: Sequence["ModelEntry"]) -> None:
    """A ``file:`` model that does not exist fails before any model is loaded or any image is read (not after
    the other candidates' extraction)."""
    from ..extraction.models import parse_spec

    for e in entries:
        if e.module is not None or not isinstance(e.spec, str) or not e.spec.lower().startswith("file:"):
            continue
        _, path, _ = parse_spec(e.spec)
        if not Path(path).expanduser().is_file():
            what = "is a folder" if Path(path).expanduser().is_dir() else "not found"
            raise DeparaError(f"model {e.name}: model file {path}: {what}")


def _check_input(model: "nn.Module", entry: "ModelEntry", probes: "ProbeSet", prep: "Preprocess",
                 device: Any) -> None:
    """One probe through the model: a model that cannot take the images at its input size fails here."""
    import torch

    x = probes.tensor(prep, [0])
    p = next(model.parameters(), None)
    dev = torch.device(device) if device is not None else (p.device if p is not None else torch.device("cpu"))
    try:
        with torch.no_grad():
            model.to(dev)(x.to(dev))
    except MemoryError:
        raise
    except Exception as exc:  # noqa: BLE001 - any failure here means this input does not fit the model
        first = exception_reason(exc, 160)
        raise DeparaError(f"model {entry.name}: cannot take the images at its input size 3×{prep.size[0]}×"
                          f"{prep.size[1]} (preprocessing {prep.name!r}; {first}); if it needs another size, set its "
                          "preprocessing in the zoo file") from None


def _resolve_layers(model: "nn.Module", entry: "ModelEntry", layers: Any, prep: "Preprocess") -> list[str]:
    from ..extraction.extract import resolve_layer
    from ..extraction.layers_auto import all_layers, auto_layers

    spec = entry.layers if entry.layers != "auto" else (layers if layers is not None else "auto")
    if isinstance(spec, str) and spec in ("auto", "all"):
        names = auto_layers(model) if spec == "auto" else all_layers(model, (3, *prep.size))
    else:
        names = [spec] if isinstance(spec, str) else list(spec)
        for name in names:
            try:
                resolve_layer(model, name)
            except DeparaError as exc:
                raise DeparaError(f"model {entry.name}: {exc}") from None
    if not names:
        raise DeparaError(f"model {entry.name}: no candidate layers")
    return list(dict.fromkeys(names))


def _extract(model: "nn.Module", probes: "ProbeSet", layers: Sequence[str], prep: "Preprocess", meta: dict,
             *, batch_size: int, device: Any, feature_memory_mb: float, progress: bool, nodes: bool = True
             ) -> dict[str, tuple["Graph", np.ndarray]]:
    """Graphs and pooled features of ``layers`` in ONE pass over the probes (one forward+backward per batch;
    with ``nodes=False`` one forward pass per batch and graphs without nodes).

    Uses the extraction engine of :func:`depara.extraction.extract.build_graphs` (its feature store keeps RAM within
    ``feature_memory_mb``), taking each layer's features once for both the graph's edges and the pooled features.
    """
    from ..extraction.extract import build_graphs

    pooled: dict[str, np.ndarray] = {}
    graphs = build_graphs(model, probes, list(layers), DEFAULT_GRAPH_OPTIONS, batch_size=batch_size,
                          device=device, progress=progress, preprocess=prep, meta=meta,
                          feature_memory_mb=feature_memory_mb, nodes=nodes,
                          on_features=lambda name, f: pooled.__setitem__(name, pool_features(f)))
    out = {name: (graphs[name], pooled[name]) for name in layers}
    return out


@dataclass
class _ModelResult:
    name: str
    layers: list[str]
    graphs: dict[str, "Graph"]
    pooled: dict[str, np.ndarray]
    preprocess: dict
    weights_hash: str
    extracted: list[str]  # layers computed in this run (the others came from the store)
    seconds: float


def _model_graphs(entry: "ModelEntry", probes: "ProbeSet", layers: Any, store: Any, *, device: Any,
                  batch_size: int, feature_memory_mb: float, progress: bool,
                  only_last: bool = False, nodes: bool = True) -> _ModelResult:
    """Load, check and (from the store, or by one extraction) get every candidate layer's graph and features.

    ``nodes=False``: graphs without attribution maps (forward passes only) suffice. They are stored under their
    own key (the options gain ``"nodes": False``), so a later request that needs nodes never reads one; such a
    request's key is the full graph's, which a node-less request also accepts (its edges are the same).
    """
    from ..extraction.store import graph_key_options, weights_hash

    start = time.perf_counter()
    model = entry.load()
    prep = entry.preprocess(model)
    names = _resolve_layers(model, entry, layers, prep) if entry.layers != "all" and layers != "all" else None
    whash = weights_hash(model)
    phash = probes.content_hash()
    opts = graph_key_options(DEFAULT_GRAPH_OPTIONS, prep)  # THE key record, shared with depara.extraction.engine
    # The pooled features and the full graph keep the keys they always had; a node-less graph gets its own.
    graph_opts = opts if nodes else {**opts, "nodes": False}
    graphs: dict[str, Any] = {}
    pooled: dict[str, np.ndarray] = {}
    keys: dict[str, tuple[str, str]] = {}

    def lookup(layer_names: list[str]) -> None:
        for n in layer_names:
            keys[n] = (store.key(whash, n, phash, graph_opts), store.key(whash, n, phash, opts, kind="pooled"))
            f = store.get_array(keys[n][1])
            if f is None:
                continue
            g = store.get(keys[n][0])
            if g is None and not nodes:  # a full graph from an earlier run serves the edges as well
                g = store.get(store.key(whash, n, phash, opts))
            if g is not None:
                graphs[n], pooled[n] = g, f

    if names is not None:
        if only_last:  # a target model: its first named layer, else its deepest auto layer
            names = names[:1] if entry.layers not in ("auto", "all") else names[-1:]
        lookup(names)
    if names is None or len(graphs) < len(names):
        # Something to extract (or "all", which needs a forward pass to list): check first that the model
        # takes the images at its input size. Entries found in the store were built from these very weights,
        # images and preprocessing, so a fully cached model skips the check.
        _check_input(model, entry, probes, prep, device)
        if names is None:
            names = _resolve_layers(model, entry, layers, prep)
            if only_last:
                names = names[-1:]
            lookup(names)
    missing = [n for n in names if n not in graphs]
    if missing:
        meta = {"model": entry.name, "spec": entry.spec, "weights_hash": whash}
        built = _extract(model, probes, missing, prep, meta, batch_size=batch_size, device=device,
                         feature_memory_mb=feature_memory_mb, progress=progress, nodes=nodes)
        for n, (g, f) in built.items():
            store.put(keys[n][0], g)
            store.put_array(keys[n][1], f)
            graphs[n], pooled[n] = g, f
    return _ModelResult(entry.name, names, graphs, pooled, prep.describe(), whash, missing,
                        time.perf_counter() - start)


# ================================================================================================== scoring
def _peer(name: str, features: np.ndarray, labels: np.ndarray) -> float:
    """A label-based peer from the estimator registry on one (resampled) layer; NaN where it is undefined."""
    from ..estimators.registry import SourceInputs, TargetInputs, get_estimator

    y = np.unique(labels, return_inverse=True)[1]
    if np.unique(y).size < 2:
        return float("nan")
    try:
        return get_estimator(name).score(SourceInputs(features=features), TargetInputs(labels=y))
    except DeparaError:
        return float("nan")  # e.g. constant features on a resample


def _score_all(cands: list[tuple[str, str]], graphs: list["Graph"], pooled: list[np.ndarray],
               scorers: list[str], labels: np.ndarray | None, target: "Graph | None", idx_sets: np.ndarray,
               progress: bool, peer_reps: int) -> np.ndarray:
    """values[s, c, r]: scorer s, candidate c, resample r (r = 0 the identity: the point estimate).

    The label-based peers are recomputed on the first ``peer_reps`` rows only (NaN after): each costs a
    fit on the resample (tens of ms), the DEPARA scores a re-ranking of the edges.
    """
    from ..core.similarity import normalized_nodes

    n = graphs[0].n_probes
    n_rep = idx_sets.shape[0]
    values = np.full((len(scorers), len(cands), n_rep), np.nan)
    cos = None
    if target is not None and set(_NODE_SCORERS) & set(scorers):
        tn = normalized_nodes(target.nodes)
        cos = [np.einsum("ij,ij->i", normalized_nodes(g.nodes), tn) for g in graphs]
    # depara_labels: the registered estimator's edges and comparison, every resample at once (one implementation
    # with the real-image bank: depara.estimators.depara_family.depara_labels_resampled).
    lab_vals = None
    if labels is not None and "depara_labels" in scorers:
        from ..estimators.depara_family import depara_labels_edges, depara_labels_resampled

        lab_vals = [depara_labels_resampled(depara_labels_edges(g, pooled[c]), labels, idx_sets)
                    for c, g in enumerate(graphs)]
    need_e = target is not None and bool({"depara", "depara_e"} & set(scorers))
    reps: Any = range(n_rep)
    if progress:
        from tqdm.auto import tqdm

        reps = tqdm(reps, desc="bootstrap", leave=False)
    for r in reps:
        idx = idx_sets[r]
        pairs = _pair_index(idx, n)
        tgt_r = _unit_ranks(target.edges[pairs]) if need_e else None
        for c, g in enumerate(graphs):
            e_r = _unit_ranks(g.edges[pairs]) if need_e else None
            E = _spearman_units(e_r, tgt_r) if need_e else np.nan
            V = float(np.clip(cos[c][idx].mean(), -1, 1)) if cos is not None else np.nan
            for s, name in enumerate(scorers):
                if name == "depara":
                    values[s, c, r] = combine(V, E, LAM)
                elif name == "depara_v":
                    values[s, c, r] = V
                elif name == "depara_e":
                    values[s, c, r] = E
                elif name == "depara_labels":
                    values[s, c, r] = lab_vals[c][r]
                elif r < peer_reps:
                    values[s, c, r] = _peer(name, pooled[c][idx], labels[idx])
    return values


def _digest(a: np.ndarray | None) -> str | None:
    """SHA-256 of an array's dtype, shape and bytes (None for None): part of a score entry's key."""
    import hashlib

    if a is None:
        return None
    a = np.ascontiguousarray(a)
    return hashlib.sha256(f"{a.dtype.str}{a.shape}".encode() + a.tobytes()).hexdigest()


def _cached_scores(results: Sequence["_ModelResult"], scorers: list[str], labels: np.ndarray | None,
                   target: "Graph | None", target_id: Mapping[str, Any] | None, idx_sets: np.ndarray,
                   peer_reps: int, store: Any, probe_hash: str, progress: bool) -> tuple[np.ndarray, int]:
    """:func:`_score_all` over every candidate of ``results``, each candidate's S × R block of values kept in the
    store (kind ``"scores"``) and reused when the same candidate is scored again the same way.

    The key holds everything the block depends on: the candidate's graph (weights hash, layer, probe content
    hash, graph options, preprocessing), the scorers, the labels, the target graph (weights hash, layer,
    preprocessing), the resamples themselves, ``peer_reps``, λ and the version of the scoring code
    (:data:`SCORES_VERSION`). So a run with one model added scores only that model's candidates.
    Returns (values[s, c, r] as :func:`_score_all`, the number of candidates whose values were reused).
    """
    from .. import __version__

    common = {"scorers": list(scorers), "labels": _digest(labels), "target": dict(target_id) if target_id else None,
              "resamples": _digest(idx_sets), "peer_reps": int(peer_reps), "lam": format_lam(LAM),
              "version": f"{__version__}/{SCORES_VERSION}"}
    cands, graphs, pooled, keys = [], [], [], []
    for r in results:
        opts = {**GRAPH_OPTIONS, "preprocess": r.preprocess, **common}
        for layer in r.layers:
            cands.append((r.name, layer))
            graphs.append(r.graphs[layer])
            pooled.append(r.pooled[layer])
            keys.append(store.key(r.weights_hash, layer, probe_hash, opts, kind="scores"))
    values = np.full((len(scorers), len(cands), idx_sets.shape[0]), np.nan)
    todo = []
    for c, key in enumerate(keys):
        block = store.get_array(key)
        if block is not None and block.shape == (len(scorers), idx_sets.shape[0]):
            values[:, c] = block
        else:
            todo.append(c)
    if todo:
        fresh = _score_all([cands[c] for c in todo], [graphs[c] for c in todo], [pooled[c] for c in todo],
                           scorers, labels, target, idx_sets, progress, peer_reps)
        for i, c in enumerate(todo):
            values[:, c] = fresh[:, i]
            store.put_array(keys[c], fresh[:, i])
    return values, len(cands) - len(todo)


# ================================================================================================ selection
@dataclass
class Selection:
    """The answer of :func:`select`: every (model, layer) scored, ranked by :attr:`scorer`, with intervals.

    Attributes
    ----------
    candidates : list of (model, layer), in model then depth order.
    scorers : the scorers computed; ``scorer`` (one of them) ranks.
    values : scorer → float array (C,) point estimates (all probes).
    intervals : scorer → float array (C, 2), the bootstrap 95 % percentile interval.
    order : candidate indices best first by ``scorer`` (stable; NaN last).
    p_best : fraction of bootstrap resamples in which the pick scores highest by ``scorer``.
    too_close : candidates (model, layer) whose ``scorer`` interval overlaps the pick's.
    case : "target_model" or "labels"; settings : every option used; models : per-model details.
    """

    candidates: list[tuple[str, str]]
    scorers: list[str]
    scorer: str
    values: dict[str, np.ndarray]
    intervals: dict[str, np.ndarray]
    order: list[int]
    p_best: float
    too_close: list[tuple[str, str]]
    case: str
    settings: dict[str, Any]
    models: dict[str, dict[str, Any]] = field(default_factory=dict)
    boot: np.ndarray | None = field(default=None, repr=False)  # scorer's resample values C × B

    @property
    def best(self) -> tuple[str, str]:
        """The pick: (model name, layer name)."""
        return self.candidates[self.order[0]]

    @property
    def table(self) -> list[dict[str, Any]]:
        """One row per candidate, best first: rank, model, layer, then per scorer value, ``_lo``, ``_hi``."""
        ranks = {c: r for r, c in enumerate(self.order, start=1)}
        rows = []
        for c in self.order:
            model, layer = self.candidates[c]
            row: dict[str, Any] = {"rank": ranks[c], "model": model, "layer": layer}
            for s in [self.scorer] + [x for x in self.scorers if x != self.scorer]:
                row[s] = float(self.values[s][c])
                row[f"{s}_lo"], row[f"{s}_hi"] = (float(v) for v in self.intervals[s][c])
            rows.append(row)
        return rows

    @property
    def summary(self) -> str:
        """One line: the pick, its score and interval, P(best), and what is too close to call."""
        m, layer = self.best
        c = self.order[0]
        lo, hi = self.intervals[self.scorer][c]
        line = (f"pick model {m!r} at layer {layer!r} ({self.scorer} = {_f(self.values[self.scorer][c])}, "
                f"95% interval [{_f(lo)}, {_f(hi)}], P(best) = {self.p_best:.2f})")
        if self.too_close:
            names = ", ".join(f"{a}:{b}" for a, b in self.too_close[:3])
            more = f" and {len(self.too_close) - 3} more" if len(self.too_close) > 3 else ""
            line += f"; too close to call with {names}{more}"
        return line

    def to_dict(self) -> dict[str, Any]:
        return {"best": {"model": self.best[0], "layer": self.best[1]}, "scorer": self.scorer, "case": self.case,
                "p_best": self.p_best, "too_close": [list(t) for t in self.too_close], "summary": self.summary,
                "scorers": self.scorers, "ranking": self.table, "settings": self.settings, "models": self.models}

    def write(self, out_dir: str | os.PathLike, *, extra: Mapping[str, Any] | None = None,
              tables: Mapping[str, str] | None = None, summary: str | None = None) -> dict[str, Path]:
        """``ranking.csv`` / ``ranking.json`` / ``layers.csv`` + figures + ``manifest.json`` into ``out_dir``."""
        from ..io.files import ensure_dir, write_csv, write_json
        from ..report.manifest import write_manifest

        out = Path(out_dir)
        if out.exists() and not out.is_dir():
            raise DeparaError(f"out {out}: exists and is not a folder")
        out = ensure_dir(out)
        s = self.scorer
        rows = [{"candidate": f"{r['model']}:{r['layer']}", "rank": r["rank"], "model": r["model"],
                 "layer": r["layer"], s: r[s], "95% interval": f"[{_f(r[f'{s}_lo'])}, {_f(r[f'{s}_hi'])}]",
                 **{k: v for k, v in r.items() if k not in ("rank", "model", "layer", s)}} for r in self.table]
        write_csv(out / "ranking.csv", rows)
        write_json(out / "ranking.json", self.to_dict())
        layer_rows = [{"model": m, "depth": i + 1, "layer": layer,
                       self.scorer: float(self.values[self.scorer][self.candidates.index((m, layer))]),
                       "lo": float(self.intervals[self.scorer][self.candidates.index((m, layer))][0]),
                       "hi": float(self.intervals[self.scorer][self.candidates.index((m, layer))][1])}
                      for m, info in self.models.items() for i, layer in enumerate(info["layers"])]
        write_csv(out / "layers.csv", layer_rows)
        figures = _figures(self, out)
        pick = f"{self.best[0]}:{self.best[1]}"
        write_manifest(out, "select", title="depara select: which model and which layer to transfer",
                       summary=summary or self.summary, settings=self.settings,
                       tables={"ranking": "ranking.csv", "layers": "layers.csv", **(tables or {})},
                       figures=figures,
                       extra={"pick": pick, "pick_model": self.best[0], "pick_layer": self.best[1],
                              "pick_interval": rows[0]["95% interval"], "pick_p_best": round(self.p_best, 4),
                              "score_column": s, "scorer": s, "case": self.case,
                              "too_close_to_call": [f"{a}:{b}" for a, b in self.too_close],
                              "interval": f"{int(LEVEL * 100)}% bootstrap over probes "
                                          f"({self.settings.get('n_boot')} resamples)", **(extra or {})})
        return {"ranking": out / "ranking.csv", "json": out / "ranking.json", "layers": out / "layers.csv",
                **{k: out / v for k, v in figures.items()}}

    def report(self, out_dir: str | os.PathLike, **write_options: Any):
        """Write the results folder (:meth:`write`) and render ``report.html`` / ``report.md`` in it."""
        from ..report.html import render_report

        self.write(out_dir, **write_options)
        return render_report(out_dir)


def _f(x: float) -> str:
    return "nan" if not np.isfinite(x) else f"{x:.4g}"


def _figures(sel: Selection, out: Path) -> dict[str, str]:
    """ranking_intervals.png (scores with intervals, best first) and layer_curves.png (score vs depth)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    from ..io.files import atomic_path

    s = sel.scorer
    figs: dict[str, str] = {}
    order = sel.order[:25]
    labels = [f"{sel.candidates[c][0]}:{sel.candidates[c][1]}" for c in order]
    vals = np.array([sel.values[s][c] for c in order])
    lo = np.array([sel.intervals[s][c][0] for c in order])
    hi = np.array([sel.intervals[s][c][1] for c in order])
    fig, ax = plt.subplots(figsize=(7, 0.35 * len(order) + 1.4))
    y = np.arange(len(order))[::-1]
    err = np.vstack([np.nan_to_num(vals - lo), np.nan_to_num(hi - vals)])
    colors = ["tab:green" if i == 0 else ("tab:orange" if sel.candidates[c] in sel.too_close else "tab:blue")
              for i, c in enumerate(order)]
    ax.errorbar(vals, y, xerr=np.clip(err, 0, None), fmt="none", ecolor="grey", capsize=3)
    ax.scatter(vals, y, c=colors, zorder=3)
    ax.set_yticks(y, labels, fontsize=8)
    ax.set_xlabel(f"{s} (95% bootstrap interval over probes)")
    ax.set_title(f"ranking by {s}: green = pick, orange = too close to call", fontsize=9)
    fig.tight_layout()
    with atomic_path(out / "ranking_intervals.png", "figure") as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
    figs["ranking_intervals"] = "ranking_intervals.png"

    fig, ax = plt.subplots(figsize=(7, 3.8))
    for m, info in sel.models.items():
        idx = [sel.candidates.index((m, layer)) for layer in info["layers"]]
        d = np.arange(1, len(idx) + 1)
        v = np.array([sel.values[s][i] for i in idx])
        ax.plot(d, v, marker="o", label=m)
        ax.fill_between(d, [sel.intervals[s][i][0] for i in idx], [sel.intervals[s][i][1] for i in idx], alpha=0.15)
    bm, bl = sel.best
    bi = sel.candidates.index(sel.best)
    ax.scatter([sel.models[bm]["layers"].index(bl) + 1], [sel.values[s][bi]], s=160, facecolors="none",
               edgecolors="green", linewidths=2, zorder=4, label="pick")
    ax.set_xlabel("candidate layer (shallow → deep)")
    ax.set_ylabel(s)
    ax.set_title("per-model layer curves (bands: 95% intervals)", fontsize=9)
    ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    with atomic_path(out / "layer_curves.png", "figure") as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
    figs["layer_curves"] = "layer_curves.png"
    return figs


def _check_int(value: Any, what: str, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise DeparaError(f"{what}: expected an integer >= {low}, got {value!r}")
    return int(value)


def _extract_on_ray(entries: Sequence["ModelEntry"], probe_set: "ProbeSet", layers: Any, store: Any,
                    address: str | None, kw: dict) -> dict[str, str]:
    """One Ray task per model: its candidate graphs and pooled features into ``store`` (the only shared state).

    Returns {model name: one-line error} of the models whose task failed; Ray retries a task whose worker died
    (:mod:`depara.extraction.engine`), the store's atomic puts never leave a partial entry.
    """
    from ..io.cluster import check_shared_store, connect, import_ray

    ray = import_ray()
    started = connect(address)
    try:
        check_shared_store(store.root)
        task = ray.remote(num_cpus=1, max_retries=3, retry_exceptions=False)(_model_graphs)
        refs = {task.remote(e, probe_set, layers, store, **kw): e.name for e in entries}
        failed: dict[str, str] = {}
        for ref, name in refs.items():
            try:
                ray.get(ref)
            except Exception as exc:  # noqa: BLE001 - reported per model, the others complete
                cause = getattr(exc, "cause", None)
                failed[name] = exception_reason(cause if isinstance(cause, BaseException) else exc, None)
        return failed
    finally:
        if started:
            ray.shutdown()


def select(data: Any, models: Any, target_model: Any = None, layers: Any = "auto", protocol: str = "finetune",
           probes: int = 500, seed: int = 0, *, labels: Any = None, scorers: Sequence[str] | None = None,
           n_boot: int = 200, peer_boot: int = 20, cache_dir: str | os.PathLike | None = None, device: Any = None,
           batch_size: int = 32, feature_memory_mb: float = 2048, progress: bool = False,
           engine: str = "local", address: str | None = None) -> Selection:
    """Rank every (model, layer) of ``models`` for transfer to ``data``; see the module docstring.

    Parameters
    ----------
    data : folder of class sub-folders (labels = folder names), flat folder of images (no labels), image-list
        file, or a :class:`~depara.extraction.probes.ProbeSet` (with ``labels`` optional). Images of any mode (grey, RGBA,
        palette) are converted to RGB; an unreadable file fails with its name.
    models : spec string(s) ``"torchvision:resnet18@DEFAULT,file:net.pt"``, a list of specs /
        :class:`~depara.extraction.zoo.ModelEntry`, a zoo ``.toml`` file, or a dict name → ``nn.Module`` | spec | entry.
        Each model gets its own preprocessing (its entry's, else its weights' own, else ``imagenet``).
    target_model : a model trained on the target task (spec, ``nn.Module`` or entry), or None. Its graph is
        taken at its deepest auto layer (or the first of its entry's ``layers``).
    layers : ``"auto"`` (:mod:`depara.extraction.layers_auto`), ``"all"``, or layer names; a zoo entry's own ``layers``
        take precedence over ``"auto"``.
    protocol : ``finetune`` | ``linear``: the transfer protocol you will use; picks :data:`DEFAULT_SCORER`.
    probes : at most this many images are used (drawn without replacement under ``seed``).
    seed : seeds the probe draw and the bootstrap.
    labels : N labels for a ProbeSet ``data`` (overrides folder labels).
    scorers : which scorers to compute (default: all applicable except those with a node term, ``depara`` and
        ``depara_v``, which the frozen defaults weigh 0; see :data:`SCORERS`). Only when one of those two is
        asked for does the extraction compute attribution maps (a backward pass per candidate layer and batch);
        otherwise it is forward passes only, and the graphs have no nodes.
    n_boot : bootstrap resamples (0: no intervals, p_best = nan).
    peer_boot : resamples for the intervals of the label-based peers (logme, hscore, transrate, rsa, cka),
        at most ``n_boot``: each is a model fit per resample, so they get fewer (all ``n_boot`` when a peer
        ranks).
    cache_dir : cache folder; the store is its ``store/`` (default ``$DEPARA_CACHE``, else ``~/.cache/depara``).
    device, batch_size, feature_memory_mb, progress : as :func:`depara.extraction.extract.build_graphs`.
    engine : ``local`` (this process) or ``ray``: one Ray task per model extracts its graphs into the store
        (which must be on a filesystem every node sees), then the ranking reads them from the store; a model
        whose task fails is left out with its error in ``settings["failed_models"]`` (all failing: an error).
    address : with ``engine="ray"``: ``auto`` / ``HOST:PORT`` of an existing cluster, None = a private runtime.

    Returns
    -------
    Selection
    """
    from ..extraction.store import GraphStore

    t0 = time.perf_counter()
    if protocol not in PROTOCOLS:
        raise DeparaError(f"protocol: expected one of {', '.join(PROTOCOLS)}, got {protocol!r}")
    n_probes = _check_int(probes, "probes", 3)
    seed = _check_int(seed, "seed", 0)
    n_boot = _check_int(n_boot, "n_boot", 0)
    if n_boot > MAX_BOOT:  # the resamples are held in memory: n_boot × N indices and scorers × candidates × n_boot
        raise DeparaError(f"n_boot: expected an integer in 0..{MAX_BOOT}, got {n_boot}")
    peer_boot = _check_int(peer_boot, "peer_boot", 0)
    batch_size = _check_int(batch_size, "batch_size", 1)
    from ..extraction.extract import memory_budget, resolve_device

    memory_budget(feature_memory_mb)  # a NaN / negative budget fails here, also when every graph is cached
    if device is not None:
        resolve_device(None, device)  # "gpu9", or cuda on a machine without it: refused before any work
    if not (layers in ("auto", "all") or (isinstance(layers, str) and layers) or
            (isinstance(layers, Sequence) and not isinstance(layers, str) and layers
             and all(isinstance(x, str) and x for x in layers))):
        raise DeparaError(f"layers: expected 'auto', 'all' or layer names, got {layers!r}")
    entries = _as_entries(models)
    target_entry = _as_target(target_model)
    _check_model_files([*entries, *([target_entry] if target_entry is not None else [])])
    probe_set, y, class_names, desc = _load_data(data, labels)
    probe_set, y = _subsample(probe_set, y, n_probes, seed)
    if target_entry is None and y is None:
        raise DeparaError(f"data {desc}: has no labels and no target_model was given; give a folder of class "
                          "sub-folders (labels) or a target model trained on your task")
    if y is not None and np.unique(y).size < 2:
        if target_entry is None:
            raise DeparaError(f"data {desc}: a single class ({class_names[0] if class_names else y[0]!r}); "
                              "label-based scores need at least 2 classes, or give a target model")
        y = None  # one class carries no label information: score against the target model only
    case = "target_model" if target_entry is not None else "labels"
    applicable = (["depara", "depara_v", "depara_e"] if case == "target_model" else []) + \
        (["depara_labels", *_LABEL_PEERS] if y is not None else [])
    if scorers is None:
        # The node term has weight 0 in the frozen defaults: the scorers built on it are computed only when
        # asked for, so the default extraction needs no attribution maps (forward passes only).
        # (S = V + λE is E itself at the default λ = ∞, so it is left out too.)
        chosen = [s for s in applicable if s not in ("depara", "depara_v") or DEFAULT_NODE_WEIGHT != 0]
    else:
        chosen = [scorers] if isinstance(scorers, str) else list(scorers)
        for s in chosen:
            if s not in SCORERS:
                raise DeparaError(f"scorers: unknown scorer {s!r}; expected one of {', '.join(SCORERS)}")
            if s not in applicable:
                raise DeparaError(f"scorers: {s} is not available here (needs "
                                  f"{'a target model' if s.startswith('depara') and s != 'depara_labels' else 'labels'})")
    # With labels the frozen default is the label graph (w = 1), whether or not a target model is given too.
    default = DEFAULT_SCORER[("labels" if y is not None else case, protocol)]
    if default not in chosen:
        chosen = [default, *chosen]
    if engine not in ("local", "ray"):
        raise DeparaError(f"engine: expected 'local' or 'ray', got {engine!r}")
    if address is not None and engine != "ray":
        raise DeparaError("address: only with engine='ray'")
    store = GraphStore(Path(cache_dir) / "store" if cache_dir is not None else None)
    # Attribution maps (graph nodes) only when a requested scorer has a node term; else forward passes only.
    kw = dict(device=device, batch_size=batch_size, feature_memory_mb=feature_memory_mb, progress=progress,
              nodes=bool(set(_NODE_SCORERS) & set(chosen)))
    failed: dict[str, str] = {}
    if engine == "ray":  # the tasks fill the store; the loop below then only reads it
        failed = _extract_on_ray(entries, probe_set, layers, store, address, dict(kw, progress=False))
        entries = [e for e in entries if e.name not in failed]
        if not entries:
            raise DeparaError(f"models: every model failed on Ray (first: {next(iter(failed.items()))})")

    results: list[_ModelResult] = []
    it: Any = entries
    if progress:
        from tqdm.auto import tqdm

        it = tqdm(entries, desc="models", unit="model")
    for entry in it:
        results.append(_model_graphs(entry, probe_set, layers, store, **kw))
    target_graph = None
    target_info: dict[str, Any] = {}
    target_id: dict[str, Any] | None = None
    if target_entry is not None:
        tr = _model_graphs(target_entry, probe_set, "auto", store, only_last=True, **kw)
        target_graph = tr.graphs[tr.layers[0]]
        target_info = {"name": target_entry.name, "spec": target_entry.spec, "layer": tr.layers[0],
                       "extracted": tr.extracted}
        target_id = {"weights_hash": tr.weights_hash, "layer": tr.layers[0], "preprocess": tr.preprocess}
    t_extract = time.perf_counter() - t0

    cands = [(r.name, layer) for r in results for layer in r.layers]
    n = len(probe_set)
    idx_sets = np.vstack([np.arange(n)[None], bootstrap_indices(n, n_boot, seed)]) if n_boot else \
        np.arange(n)[None]
    peer_reps = 1 + (min(n_boot, peer_boot) if default not in _LABEL_PEERS else n_boot)
    vals, reused = _cached_scores(results, chosen, y, target_graph, target_id, idx_sets, peer_reps, store,
                                  probe_set.content_hash(), progress)
    values = {s: vals[i, :, 0] for i, s in enumerate(chosen)}
    intervals = {s: np.array([percentile_interval(vals[i, c, 1:]) for c in range(len(cands))])
                 for i, s in enumerate(chosen)}
    main = values[default]
    order = sorted(range(len(cands)), key=lambda c: (not np.isfinite(main[c]), -np.nan_to_num(main[c], nan=0.0)))
    pick = order[0]
    boot = vals[chosen.index(default), :, 1:]
    if n_boot:
        col_best = np.nanargmax(np.where(np.isfinite(boot), boot, -np.inf), axis=0)
        p_best = float(np.mean(col_best == pick))
        lo_p = intervals[default][pick][0]
        too_close = [cands[c] for c in order[1:] if intervals[default][c][1] >= lo_p]
    else:
        p_best, too_close = float("nan"), []
    settings = {"data": desc, "n_probes": n, "n_images_given": None, "labels": y is not None,
                "n_classes": int(np.unique(y).size) if y is not None else 0, "protocol": protocol,
                "case": case, "scorer": default, "layers": layers if isinstance(layers, str) else list(layers),
                "seed": seed, "nodes": kw["nodes"], "n_boot": n_boot, "peer_boot": min(n_boot, peer_boot),
                "lam": format_lam(LAM), "graph_options": GRAPH_OPTIONS,
                "probe_hash": probe_set.content_hash(), "cache": str(store.root),
                "target_model": target_info or None, "engine": engine, "failed_models": failed,
                "scores_reused": reused,
                "seconds": {"extract": round(t_extract, 3), "total": round(time.perf_counter() - t0, 3)}}
    settings.pop("n_images_given")
    if not failed:
        settings.pop("failed_models")
    models_info = {r.name: {"layers": r.layers, "preprocess": r.preprocess, "weights_hash": r.weights_hash,
                            "extracted": r.extracted, "seconds": round(r.seconds, 3)} for r in results}
    return Selection(candidates=cands, scorers=chosen, scorer=default, values=values, intervals=intervals,
                     order=order, p_best=p_best, too_close=too_close, case=case, settings=settings,
                     models=models_info, boot=boot)
