"""Step 2 of ``depara select``: each candidate model's graphs and pooled features, from the store or by one
extraction per model (locally, or one Ray task per model)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from ..core.similarity_edges import pool_features
from ..errors import DeparaError, exception_reason
from ..options import DEFAULT_GRAPH_OPTIONS

if TYPE_CHECKING:  # pragma: no cover
    from torch import nn

    from ..core.graph import Graph
    from ..extraction.probes import Preprocess, ProbeSet
    from ..extraction.zoo import ModelEntry

__all__ = ["check_input", "resolve_layers", "extract_layers", "ModelResult", "model_graphs", "extract_on_ray"]


def check_input(model: "nn.Module", entry: "ModelEntry", probes: "ProbeSet", prep: "Preprocess",
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


def resolve_layers(model: "nn.Module", entry: "ModelEntry", layers: Any, prep: "Preprocess") -> list[str]:
    from ..extraction.extract import resolve_layer
    from ..extraction.layers_auto import all_layers, auto_layers

    spec = entry.layers if entry.layers != "auto" else (layers if layers is not None else "auto")
    if isinstance(spec, str) and spec in ("auto", "all"):
        names = auto_layers(model, (3, *prep.size)) if spec == "auto" else all_layers(model, (3, *prep.size))
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


def extract_layers(model: "nn.Module", probes: "ProbeSet", layers: Sequence[str], prep: "Preprocess", meta: dict,
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
    return {name: (graphs[name], pooled[name]) for name in layers}


@dataclass
class ModelResult:
    name: str
    layers: list[str]
    graphs: dict[str, "Graph | None"]  # None: only the pooled features were needed (model_graphs' edges=False)
    pooled: dict[str, np.ndarray]
    preprocess: dict
    weights_hash: str
    extracted: list[str]  # layers computed in this run (the others came from the store)
    seconds: float


def model_graphs(entry: "ModelEntry", probes: "ProbeSet", layers: Any, store: Any, *, device: Any,
                  batch_size: int, feature_memory_mb: float, progress: bool,
                  only_last: bool = False, nodes: bool = True, seed: int | None = None,
                  edges: bool = True) -> ModelResult:
    """Load, check and (from the store, or by one extraction) get every candidate layer's graph and features.

    ``nodes=False``: graphs without attribution maps (forward passes only) suffice. They are stored under their
    own key (the options gain ``"nodes": False``), so a later request that needs nodes never reads one; such a
    request's key is the full graph's, which a node-less request also accepts (its edges are the same).
    ``edges=False`` (with ``nodes=False``): only the pooled features are needed (no graph: ``graphs[layer]`` is
    None); they are pooled as the forward pass produces them (:func:`depara.extraction.extract.pooled_features`)
    and stored under the key they always have.
    """
    from ..extraction.store import graph_key_options, weights_hash

    start = time.perf_counter()
    model = entry.load(seed)  # random-init (weights = "none") candidates: the same weights under the same seed
    prep = entry.preprocess(model)
    names = resolve_layers(model, entry, layers, prep) if entry.layers != "all" and layers != "all" else None
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
            if not edges and not nodes:
                graphs[n], pooled[n] = None, f
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
        check_input(model, entry, probes, prep, device)
        if names is None:
            names = resolve_layers(model, entry, layers, prep)
            if only_last:
                names = names[-1:]
            lookup(names)
    missing = [n for n in names if n not in graphs]
    if missing:
        meta = {"model": entry.name, "spec": entry.spec, "weights_hash": whash}
        if edges or nodes:
            built = extract_layers(model, probes, missing, prep, meta, batch_size=batch_size, device=device,
                                   feature_memory_mb=feature_memory_mb, progress=progress, nodes=nodes)
        else:
            from ..extraction.extract import pooled_features

            built = {n: (None, f) for n, f in pooled_features(model, probes, missing, batch_size=batch_size,
                                                              device=device, progress=progress, preprocess=prep,
                                                              model_name=entry.name).items()}
        for n, (g, f) in built.items():
            if g is not None:
                store.put(keys[n][0], g)
            store.put_array(keys[n][1], f)
            graphs[n], pooled[n] = g, f
    return ModelResult(entry.name, names, graphs, pooled, prep.describe(), whash, missing,
                        time.perf_counter() - start)


def extract_on_ray(entries: Sequence["ModelEntry"], probe_set: "ProbeSet", layers: Any, store: Any,
                    address: str | None, kw: dict) -> dict[str, str]:
    """One Ray task per model: its candidate graphs and pooled features into ``store`` (the only shared state).

    Returns {model name: one-line error} of the models whose task failed; Ray retries a task whose worker died
    (:mod:`depara.extraction.engine`), the store's atomic puts never leave a partial entry.
    """
    from ..io.cluster import check_shared_store, connect, import_ray

    started = connect(address)  # checks the address first (a wrong one fails in seconds)
    ray = import_ray()
    try:
        check_shared_store(store.root)
        task = ray.remote(num_cpus=1, max_retries=3, retry_exceptions=False)(model_graphs)
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


def candidates_graphs(entries: Sequence["ModelEntry"], probe_set: "ProbeSet", layers: Any, store: Any, kw: dict,
                      engine: str, address: str | None, skip_failed: bool) -> tuple[list[ModelResult], dict[str, str]]:
    """Every candidate model's graphs and pooled features (with ``engine="ray"`` Ray tasks fill the store first,
    then they are read from it), and {name: one-line error} of the models that failed: on either engine a failure
    stops the run (:func:`check_failed`), unless ``skip_failed``."""
    from ..io.progress import progress_bar

    failed: dict[str, str] = {}
    if engine == "ray":
        failed = extract_on_ray(entries, probe_set, layers, store, address, dict(kw, progress=False))
        check_failed(failed, len(entries), skip_failed)
        entries = [e for e in entries if e.name not in failed]
    from ..extraction.extract import memory_budget

    results: list[ModelResult] = []
    # models sharing a preprocessing share one decoding of the images (within the feature memory budget)
    with probe_set.keep_decoded(memory_budget(kw["feature_memory_mb"])):
        for entry in progress_bar(entries, desc="models", enabled=kw["progress"], unit="model"):
            try:
                results.append(model_graphs(entry, probe_set, layers, store, **kw))
            except Exception as exc:  # noqa: BLE001 - a candidate's failure: stop, or (asked to) skip it
                failed[entry.name] = exception_reason(exc, None)
                if not skip_failed:
                    check_failed(failed, len(entries), skip_failed)  # raises, as after the Ray tasks
    check_failed(failed, len(results) + len(failed), skip_failed)
    return results, failed


def check_failed(failed: "dict[str, str]", n_models: int, skip_failed: bool) -> None:
    """Candidate models that failed ({name: one-line error}) stop the run, unless ``skip_failed`` and some
    model is left; the error names the first failed model."""
    if not failed:
        return
    name, why = next(iter(failed.items()))
    why = why if why.startswith(f"model {name}") else f"model {name}: {why}"
    more = f" (and {len(failed) - 1} more model(s))" if len(failed) > 1 else ""
    if not skip_failed:
        raise DeparaError(f"{why}{more}; fix it, remove it, or pass skip_failed=True to rank the others without it")
    if len(failed) == n_models:
        raise DeparaError(f"models: every candidate model failed; first: {why}")
