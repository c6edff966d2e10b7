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
  ``transrate``, ``rsa`` and ``cka`` (against the one-hot labels), ``gbc``, ``ped``; and the rank average of
  ``depara_labels`` with ``logme`` (``depara_labels_logme``, :data:`depara.selection.scorers.RANK_AVERAGES`: the mean
  of a candidate's two ranks across the candidates, on every probe set). LEEP and NCE score a model's *head*, not
  a layer, and are not offered here;
* **neither** → a one-line :class:`~depara.errors.DeparaError` saying what is needed.

The ranking (and the pick) follows one scorer per case, :data:`DEFAULT_SCORER` (the frozen defaults: with labels
the round-6 rank average ``depara_labels_logme``, else the edge term against the target model). Every scorer gets a
**95 % interval over probes** from ``n_boot`` **half-samples** (⌊N/2⌋ probes drawn without replacement,
stratified by class; the same half-samples for every candidate, so the comparison is paired), each score
recomputed on the half-sample as on a real probe set of that size (no probe is ever duplicated, so fitted scores
such as LogME are not inflated), the spread rescaled to N probes: :mod:`depara.evaluation.uncertainty`. The interval is
symmetric around the score, so it always contains it. ``p_best`` is the share of half-samples in which the pick
ranks first (ties split): probe resampling only, not a probability of transferring best
(``benchmarks/calibration.py`` measures what it is worth). Candidates tied with the pick, or whose interval
overlaps the pick's, are "too close to call". A score that is undefined (NaN) gets no interval, no rank and no
share.

Unless ``depara`` or ``depara_v`` is asked for, the extraction computes no attribution maps: one forward pass
per batch and model (under ``torch.no_grad``), graphs without nodes (N×0, like the label graph), stored under
their own cache key so that a later run that needs nodes never reads them. With labels and no target model no
scorer reads a graph at the frozen defaults, so none is built: each candidate layer's output is averaged over
space in its forward hook (:func:`depara.extraction.extract.pooled_features`), and only those pooled features
are kept and cached.

Graphs and pooled features are cached in a :class:`~depara.extraction.store.GraphStore` keyed by content (weights hash,
layer, probe content hash, options), so adding a model reuses every other entry and an interrupted run resumes
(per model). Each candidate's scores (every scorer, every resample) are cached too, keyed by its graph and by
everything else they depend on (labels, target graph, the resamples, :data:`SCORES_VERSION`), so a run with one
model added scores only that model's candidates.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from ..errors import DeparaError
from ..estimators.checks import count
from ..evaluation.uncertainty import LEVEL, SHARE_MEANING
from ..io.escape import visible
from ..options import (DEFAULT_BATCH_SIZE, DEFAULT_FEATURE_MEMORY_MB, DEFAULT_NODE_WEIGHT, MIN_IMAGES_PER_CLASS,
                       SELECT_MAX_PROBES, SELECT_N_BOOT, SELECT_PEER_BOOT, format_lam)
from .candidates import ModelResult, candidates_graphs, model_graphs
from .data import as_entries, as_target, check_model_files, load_data, subsample
from .result import Selection
from .scorers import (DEFAULT_SCORER, GRAPH_OPTIONS, LABEL_PEERS, LAM, MAX_BOOT, NODE_SCORERS, PROTOCOLS,
                      RANK_AVERAGES, SCORERS, SCORES_VERSION, computed_scorers)
from .scoring import Resamples, cached_scores, with_rank_averages
from .verdict import Verdict, verdict

if TYPE_CHECKING:  # pragma: no cover
    from ..core.graph import Graph
    from ..extraction.probes import ProbeSet
    from ..extraction.zoo import ModelEntry

__all__ = ["select", "Selection", "DEFAULT_SCORER", "SCORERS", "GRAPH_OPTIONS", "PROTOCOLS", "LEVEL",
           "SHARE_MEANING", "LAM", "SCORES_VERSION"]

# =========================================================================================== the select job
@dataclass
class _Job:
    """What the data step decided: the candidates, the probes and labels, which scorers, which one ranks."""

    entries: list["ModelEntry"]
    target_entry: "ModelEntry | None"
    probe_set: "ProbeSet"
    y: np.ndarray | None
    desc: str
    case: str
    chosen: list[str]
    default: str
    notes: list[str]


def _check_options(protocol: str, probes: Any, seed: Any, n_boot: Any, peer_boot: Any, batch_size: Any,
                   feature_memory_mb: Any, device: Any, layers: Any, engine: str, address: Any) -> dict[str, int]:
    """Every scalar option checked before any model or image is read; the integers as ints (``peer_boot`` at
    most ``n_boot``)."""
    from ..extraction.extract import memory_budget, resolve_device

    if protocol not in PROTOCOLS:
        raise DeparaError(f"protocol: expected one of {', '.join(PROTOCOLS)}, got {protocol!r}")
    ints = {"probes": count(probes, "probes", minimum=3), "seed": count(seed, "seed", minimum=0),
            "n_boot": count(n_boot, "n_boot", minimum=0), "peer_boot": count(peer_boot, "peer_boot", minimum=0),
            "batch_size": count(batch_size, "batch_size", minimum=1)}
    if ints["n_boot"] > MAX_BOOT:  # the resamples are held in memory: n_boot × N/2 indices and their values
        raise DeparaError(f"n_boot: expected an integer in 0..{MAX_BOOT}, got {ints['n_boot']}")
    ints["peer_boot"] = min(ints["n_boot"], ints["peer_boot"])  # at most n_boot: the peers' own half-samples
    memory_budget(feature_memory_mb)  # a NaN / negative budget fails here, also when every graph is cached
    if device is not None:
        resolve_device(None, device)  # "gpu9", or cuda on a machine without it: refused before any work
    if not (layers in ("auto", "all") or (isinstance(layers, str) and layers) or
            (isinstance(layers, Sequence) and not isinstance(layers, str) and layers
             and all(isinstance(x, str) and x for x in layers))):
        raise DeparaError(f"layers: expected 'auto', 'all' or layer names, got {layers!r}")
    if engine not in ("local", "ray"):
        raise DeparaError(f"engine: expected 'local' or 'ray', got {engine!r}")
    if address is not None and engine != "ray":
        raise DeparaError("address: only with engine='ray'")
    return ints


def _choose_scorers(case: str, labelled: bool, scorers: Sequence[str] | str | None,
                    protocol: str) -> tuple[list[str], str]:
    """(the scorers to compute, the one that ranks) for this case; unknown or inapplicable names refused."""
    label_scorers = [*RANK_AVERAGES, "depara_labels", *LABEL_PEERS]
    applicable = (["depara", "depara_v", "depara_e"] if case == "target_model" else []) + \
        (label_scorers if labelled else [])
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
                                  f"{'labels' if s in label_scorers else 'a target model'})")
    # With labels the frozen default is the label graph (w = 1), whether or not a target model is given too.
    default = DEFAULT_SCORER[("labels" if labelled else case, protocol)]
    return (chosen if default in chosen else [default, *chosen]), default


def _class_sizes_note(y: np.ndarray, class_names: list[str], target_given: bool, desc: str) -> str | None:
    """None when every class has at least :data:`depara.options.MIN_IMAGES_PER_CLASS` images; else, with a
    target model, the one-line note saying the label scorers are left out (without one: a DeparaError)."""
    counts = np.bincount(y)
    small = np.flatnonzero(counts < MIN_IMAGES_PER_CLASS)
    if small.size == 0:
        return None
    name = class_names[small[0]] if class_names else str(small[0])
    line = (f"the label scorers need at least {MIN_IMAGES_PER_CLASS} images per class; class {visible(name)!r} has "
            f"{counts[small[0]]}" + (f" ({small.size} classes below the minimum)" if small.size > 1 else ""))
    if not target_given:
        raise DeparaError(f"data {desc}: {line}; add images or merge classes")
    return f"label scorers left out: {line}"


def _prepare(data: Any, models: Any, target_model: Any, labels: Any, n_probes: int, seed: int,
             scorers: Any, protocol: str) -> _Job:
    """The data step: candidates and target entries, the probes (at most ``n_probes``) and their labels, the
    case, the scorers."""
    entries = as_entries(models)
    target_entry = as_target(target_model)
    check_model_files([*entries, *([target_entry] if target_entry is not None else [])])
    probe_set, y, class_names, desc = load_data(data, labels)
    probe_set, y = subsample(probe_set, y, n_probes, seed)
    notes: list[str] = []
    if target_entry is None and y is None:
        raise DeparaError(f"data {desc}: has no labels and no target_model was given; give a folder of class "
                          "sub-folders (labels) or a target model trained on your task")
    if y is not None:
        kept = np.unique(y)
        class_names = [class_names[k] for k in kept] if class_names else class_names
        y = np.searchsorted(kept, y)  # classes dropped by the probe draw leave no gap
        if kept.size < 2:
            if target_entry is None:
                raise DeparaError(f"data {desc}: a single class ({class_names[0] if class_names else kept[0]!r}); "
                                  "label-based scores need at least 2 classes, or give a target model")
            y = None  # one class carries no label information: score against the target model only
    if y is not None:
        note = _class_sizes_note(y, class_names, target_entry is not None, desc)
        if note is not None:
            notes.append(note)
            y = None
    case = "target_model" if target_entry is not None else "labels"
    chosen, default = _choose_scorers(case, y is not None, scorers, protocol)
    return _Job(entries, target_entry, probe_set, y, desc, case, chosen, default, notes)


def _needs_edges(job: _Job) -> bool:
    """Whether any scorer reads the candidates' graph edges: against a target model, or the label graph's score
    at frozen defaults that take the graph's own edges; otherwise the pooled features suffice."""
    from ..estimators.depara_family import LABEL_EDGES_FROM_GRAPH

    labels_from_graph = LABEL_EDGES_FROM_GRAPH and "depara_labels" in computed_scorers(job.chosen)
    return job.target_entry is not None or labels_from_graph


def _extract_all(job: _Job, layers: Any, store: Any, kw: dict, engine: str, address: str | None,
                 skip_failed: bool) -> tuple[list[ModelResult], "Graph | None", dict[str, Any], dict[str, Any] | None,
                                             dict]:
    """The extraction step: every candidate's graphs and pooled features (store, else one pass per model; on
    Ray one task per model), and the target model's graph. → (results, target graph, target info, target id,
    {skipped model: error})."""
    results, failed = candidates_graphs(job.entries, job.probe_set, layers, store, kw, engine, address, skip_failed)
    if job.target_entry is None:
        return results, None, {}, None, failed
    tr = model_graphs(job.target_entry, job.probe_set, "auto", store, only_last=True, **{**kw, "edges": True})
    info = {"name": job.target_entry.name, "spec": job.target_entry.spec, "layer": tr.layers[0],
            "extracted": tr.extracted}
    tid = {"weights_hash": tr.weights_hash, "layer": tr.layers[0], "preprocess": tr.preprocess}
    return results, tr.graphs[tr.layers[0]], info, tid, failed


def select(data: Any, models: Any, target_model: Any = None, layers: Any = "auto", protocol: str = "finetune",
           probes: int = SELECT_MAX_PROBES, seed: int = 0, *, labels: Any = None,
           scorers: Sequence[str] | None = None, n_boot: int = SELECT_N_BOOT, peer_boot: int = SELECT_PEER_BOOT,
           cache_dir: str | os.PathLike | None = None, cache_readonly: bool = False, device: Any = None,
           batch_size: int = DEFAULT_BATCH_SIZE, feature_memory_mb: float = DEFAULT_FEATURE_MEMORY_MB,
           progress: bool = False,
           engine: str = "local", address: str | None = None, skip_failed: bool = False) -> Selection:
    """Rank every (model, layer) of ``models`` for transfer to ``data``; see the module docstring.

    Parameters
    ----------
    data : folder of class sub-folders (labels = folder names), flat folder of images (no labels), image-list
        file, or a :class:`~depara.extraction.probes.ProbeSet` (with ``labels`` optional). Images of any mode (grey, RGBA,
        palette) are converted to RGB; an unreadable file fails with its name. With labels, every class needs
        at least :data:`depara.options.MIN_IMAGES_PER_CLASS` images (else a one-line error, or with a target
        model the label scorers are left out with a note).
    models : spec string(s) ``"torchvision:resnet18@DEFAULT,file:net.pt"``, a list of specs /
        :class:`~depara.extraction.zoo.ModelEntry`, a zoo file (a Path, or str ``*.toml``), or a dict name → module|spec.
        Each model gets its own preprocessing (its entry's, else its weights' own, else ``imagenet``).
    target_model : a model trained on the target task (spec, ``nn.Module`` or entry), or None. Its graph is
        taken at its deepest auto layer (or the first of its entry's ``layers``).
    layers : ``"auto"`` (:mod:`depara.extraction.layers_auto`), ``"all"``, or layer names; a zoo entry's own ``layers``
        take precedence over ``"auto"``.
    protocol : ``finetune`` | ``linear``: the transfer protocol you will use; picks :data:`DEFAULT_SCORER`.
    probes : at most this many images are used (drawn without replacement under ``seed``).
    seed : seeds the probe draw, the half-samples and the random initialisation of models without weights
        (each built right after ``torch.manual_seed(seed)``, :func:`depara.extraction.models.seeded`).
    labels : N labels for a ProbeSet ``data`` (overrides folder labels).
    scorers : which scorers to compute (default: all applicable except those with a node term, ``depara`` and
        ``depara_v``, which the frozen defaults weigh 0; see :data:`SCORERS`). Only when one of
        :data:`NODE_SCORERS` (``depara_v``; ``depara`` only at a finite λ) is asked for are attribution maps
        computed (a backward pass per candidate layer and batch); else forward passes only, graphs without nodes.
    n_boot : probe half-samples for the intervals and the shares (0: no intervals, p_best = nan).
    peer_boot : half-samples for the intervals of the peers that do not rank (logme, hscore, ...), at most
        ``n_boot`` (default :data:`depara.options.SELECT_PEER_BOOT` = 0: the report shows them as ranks only); a
        peer that ranks, alone or in the ranking rank average (``logme`` by default), always gets all ``n_boot``.
    cache_dir : cache folder; the store is its ``store/`` (default ``$DEPARA_CACHE``, else ``~/.cache/depara``).
        Checked before any work, with the data (:func:`depara.io.files.check_run_paths`): not a file, not broken,
        writable, not inside the data folder.
    cache_readonly : read the cache, write nothing to it; an entry that fails its check is refused, not rebuilt.
    device, batch_size, feature_memory_mb, progress : as :func:`depara.extraction.extract.build_graphs` (progress bars are
        off when the output is not a terminal).
    engine : ``local`` (this process) or ``ray``: one Ray task per model extracts its graphs into the store
        (which must be on a filesystem every node sees), then the ranking reads them from the store; a model
        whose task fails stops the run, as on the local engine.
    address : with ``engine="ray"``: ``auto`` / ``HOST:PORT`` of an existing cluster, None = a private runtime.
    skip_failed : a candidate model that fails (on either engine) stops the run with its error in one line;
        with ``skip_failed=True`` it is left out instead, and named with its error in the summary sentence,
        the report and ``settings["skipped_models"]`` (all failing: an error). The target model never is.

    Returns the :class:`Selection`.
    """
    from ..extraction.store import GraphStore
    from ..evaluation.uncertainty import half_samples
    from ..io.files import check_run_paths

    t0 = time.perf_counter()
    check_run_paths(data, cache_dir=cache_dir, cache_readonly=cache_readonly, engine=engine)
    if not isinstance(skip_failed, bool):
        raise DeparaError(f"skip_failed: expected True or False, got {skip_failed!r}")
    opt = _check_options(protocol, probes, seed, n_boot, peer_boot, batch_size, feature_memory_mb, device,
                         layers, engine, address)
    job = _prepare(data, models, target_model, labels, opt["probes"], opt["seed"], scorers, protocol)
    store = GraphStore(Path(cache_dir) / "store" if cache_dir is not None else None, readonly=cache_readonly)
    # Attribution maps (graph nodes) only when a requested scorer has a node term; else forward passes only.
    kw = dict(device=device, batch_size=opt["batch_size"], feature_memory_mb=feature_memory_mb, progress=progress,
              nodes=bool(set(NODE_SCORERS) & set(job.chosen)), seed=opt["seed"], edges=_needs_edges(job))
    results, target_graph, target_info, target_id, failed = _extract_all(job, layers, store, kw, engine, address,
                                                                         skip_failed)
    t_extract = time.perf_counter() - t0
    n = len(job.probe_set)
    res = Resamples(n, half_samples(n, opt["n_boot"], opt["seed"], job.y) if opt["n_boot"] else
                     np.empty((0, n // 2), dtype=np.int64))
    vals, reused = _scores(job, results, target_graph, target_id, res, opt, store, progress)
    said = verdict(vals, job.chosen, job.default, n, n // 2)
    settings = _settings(job, opt, protocol, layers, kw["nodes"], str(store.root), engine, target_info, reused,
                         failed, {"extract": round(t_extract, 3), "total": round(time.perf_counter() - t0, 3)})
    sel = _selection(results, job, vals, said, settings)
    sel.data_path = data if isinstance(data, (str, os.PathLike)) else None
    return sel


def _settings(job: _Job, opt: dict[str, Any], protocol: str, layers: Any, nodes: bool, cache: str, engine: str,
              target_info: dict[str, Any], reused: int, failed: dict[str, str], seconds: dict[str, float]
              ) -> dict[str, Any]:
    """The run's settings, as ``Selection.settings`` and the results folder's manifest record them."""
    n = len(job.probe_set)
    return {"data": job.desc, "n_probes": n, "labels": job.y is not None,
            "n_classes": int(np.unique(job.y).size) if job.y is not None else 0, "protocol": protocol,
            "case": job.case, "scorer": job.default, "layers": layers if isinstance(layers, str) else list(layers),
            "seed": opt["seed"], "nodes": nodes, "n_boot": opt["n_boot"],
            "peer_boot": opt["peer_boot"], "half_sample_size": n // 2, "lam": format_lam(LAM),
            "graph_options": GRAPH_OPTIONS, "probe_hash": job.probe_set.content_hash(), "cache": cache,
            "target_model": target_info or None, "engine": engine, "scores_reused": reused,
            **({"skipped_models": failed} if failed else {}), "seconds": seconds}


def _scores(job: _Job, results: list[ModelResult], target_graph: Any, target_id: Any, res: Resamples,
            opt: dict[str, Any], store: Any, progress: bool) -> tuple[np.ndarray, int]:
    """values[s, c, r] of ``job.chosen`` (rank averages made from their parts) and the number of candidates whose
    scores were reused. A peer that ranks (the default, or a part of the default rank average) is refitted on every
    half-sample, so its interval and share won come from the same machinery as any score; the other peers on the
    first ``peer_boot`` only."""
    computed, ranking = computed_scorers(job.chosen), computed_scorers([job.default])
    peer_reps = {s: 1 + (opt["n_boot"] if s in ranking else opt["peer_boot"])
                 for s in computed if s in LABEL_PEERS}
    vals, reused = cached_scores(results, computed, job.y, target_graph, target_id, res, peer_reps, store,
                                 job.probe_set.content_hash(), progress)
    return with_rank_averages(vals, computed, job.chosen), reused


def _selection(results: list[ModelResult], job: _Job, vals: np.ndarray, said: Verdict,
               settings: dict[str, Any]) -> Selection:
    """The Selection result of the scored candidates."""
    cands = [(r.name, layer) for r in results for layer in r.layers]
    models_info = {r.name: {"layers": r.layers, "preprocess": r.preprocess, "weights_hash": r.weights_hash,
                            "extracted": r.extracted, "seconds": round(r.seconds, 3)} for r in results}
    pick = said.order[0]
    return Selection(candidates=cands, scorers=job.chosen, scorer=job.default,
                     values={s: vals[i, :, 0] for i, s in enumerate(job.chosen)}, intervals=said.intervals,
                     order=said.order, p_best=float(said.shares[pick]),
                     too_close=[cands[c] for c in said.too_close], case=job.case, settings=settings,
                     models=models_info, shares=said.shares,
                     ranked=said.ranked, tied=[cands[c] for c in said.tied], notes=job.notes)
