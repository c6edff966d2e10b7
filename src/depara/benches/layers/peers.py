"""Peer estimators per LAYER: LogME, H-score, TransRate, RSA and linear CKA beside DEPARA on the layer-transfer
experiment, all judged against the measured per-layer transfer accuracy.

For every transfer depth k of the source model (each conv unit, then each FC layer; the classifier itself is
never transferred), the candidate "source" is the source model cut at layer k:

* label-based scores (``logme``, ``hscore``, ``transrate``): the source's layer-k output, global-average pooled
  to N×C (as :mod:`depara.selection.harness` pools conv maps), on the shrunk target TRAINING images of each fraction
  (``DATA/<target>_<fraction>/train``), with their labels — what a practitioner holding that fraction has;
* label-free scores (``rsa``, ``cka``): the same pooled layer-k features on the probe images vs the logits of the
  model trained on the target domain on the same probes — exactly the information DEPARA uses;
* DEPARA: V, E and V+λE per layer, read from ``layer_scores.csv`` of ``depara layers-select``;
* ``shallower``: the trivial rule "shallower is better" (score = −depth), a floor any method should beat.

LEEP and NCE do not apply per layer: both read the source model's own classifier head (its probabilities over
the SOURCE classes), which exists only after the last layer, so every depth would get the same value.

Every method is scored through :func:`depara.estimators.scoring.score_sources` and evaluated with
:func:`depara.evaluation.rank_quality.rank_quality` (Kendall τ-b, weighted τ, Spearman, Pearson, P@K, the top-1 pick),
whose ``regret`` is the accuracy lost by transferring up to the picked layer instead of the best one.
"""

from __future__ import annotations

import math
import os
import textwrap
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
from scipy import stats

from ...io.files import ensure_dir, read_csv, read_json, write_csv, write_json
from ...errors import DeparaError
from ...estimators.registry import estimator_names
from ...evaluation.rank_quality import rank_quality
from ...evaluation.uncertainty import UNDEFINED, format_number
from ...estimators.scoring import ScoreTable, SourceInputs, score_sources
from ...extraction.source_features import pool_features
from ...report.manifest import writes_results_folder
from ...selection.scorers import RANK_AVERAGES
from .baselines import (NOT_APPLICABLE, PARAMS_PRIOR, REFERENCE, ROUND4_LABELS, kendall_per_seed,
                        not_applicable_rows, parameters_up_to, reference_rows, round4_label_scores,
                        add_rank_averages)
from .models import model_preprocess
from .select import depara_method_name, score_lam

#: Label-based peers (from the estimator registry): scored on the shrunk target training images with their labels;
#: the registry's defaults plus the k-NN accuracy baseline (issue 20). Where ``depara_labels`` and the shipped
#: default's peer both score, the shipped labels default (round 6: ``depara_labels_logme``, their rank average
#: across the layers) is added.
LABEL_METHODS: tuple[str, ...] = estimator_names(needs_labels=True, needs_source_probs=False, default=True) + (
    "knn",)
#: Label-free peers (the registry's estimators with a reference representation): scored on the probes against the
#: target-domain model's logits.
PROBE_METHODS: tuple[str, ...] = estimator_names(uses_target_features=True)
PEER_METHODS: tuple[str, ...] = LABEL_METHODS + PROBE_METHODS
#: Why the registry's estimators that read the source head are left out of a per-layer comparison.
NOT_PER_LAYER: dict[str, str] = {
    name: "needs the source head's outputs, which exist only after the last layer (same value at every depth)"
    for name in estimator_names(needs_source_probs=True)}
SHALLOWER = "shallower"


def method_family(method: str) -> str:
    """``label-based`` | ``label-free`` | ``depara`` | ``trivial`` | ``reference`` | ``n/a`` (tables, captions)."""
    if method in LABEL_METHODS or method == ROUND4_LABELS or method.startswith("depara_labels_"):
        return "label-based"
    if method in REFERENCE:
        return "reference"
    if method in NOT_APPLICABLE:
        return "n/a"
    if method in PROBE_METHODS:
        return "label-free"
    if method.startswith("DEPARA"):
        return "depara"
    return "trivial"


def layer_key(depth: int, layer: str) -> str:
    """The name of the candidate 'source model cut at layer ``depth``', e.g. ``#3 features.9``."""
    return f"#{int(depth)} {layer}"


# ------------------------------------------------------------------------------------------- torch layer
def pooled_layer_features(model, images, layers: Sequence[str], *, batch_size: int = 64,
                          progress: bool = False) -> dict[str, np.ndarray]:
    """Outputs of every module in ``layers`` for ``images`` (N×C×H×W, preprocessed), ONE forward pass per batch.

    Maps of more than 2 dimensions (B×C×H×W) are global-average pooled to B×C; B×D outputs stay. Returns
    ``{layer: float64 array N×C}`` in the order of ``layers``. The model runs in eval mode, without gradients.
    """
    return layer_features(model, images, layers, batch_size=batch_size, progress=progress)[0]


def layer_features(model, images, layers: Sequence[str], *, batch_size: int = 64, progress: bool = False,
                   flat: bool = False) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray] | None]:
    """(pooled, flattened) outputs of every module in ``layers`` for ``images``, from ONE forward pass per batch.

    pooled: as :func:`pooled_layer_features`. flattened (only with ``flat=True``, else None): each output
    flattened to ``{layer: float64 array N×D}`` (the round-4 member's input,
    :func:`depara.benches.layers.baselines.round4_label_scores`), from the same pass.
    """
    import torch

    from ...extraction.extract import capture_features

    if not isinstance(images, torch.Tensor) or images.ndim != 4 or images.shape[0] == 0:
        raise DeparaError(f"images: expected a non-empty float tensor N×C×H×W, got {getattr(images, 'shape', None)}")
    layers = list(layers)
    was_training = model.training
    model.eval()
    chunks: dict[str, list] = {name: [] for name in layers}
    flats: dict[str, list] = {name: [] for name in layers}
    starts = list(range(0, images.shape[0], batch_size))
    if progress:
        from tqdm.auto import tqdm

        starts = tqdm(starts, desc="layer features", leave=False)
    try:
        for start in starts:
            outs = capture_features(model, images[start:start + batch_size].float(), layers)
            for name in layers:
                t = outs[name]
                pooled = pool_features(t)  # the harness pools conv maps the same way
                chunks[name].append(pooled.double().cpu().numpy())
                if flat:
                    flats[name].append(t.flatten(1).double().cpu().numpy())
    finally:
        model.train(was_training)
    out = {name: np.concatenate(chunks[name]) for name in layers}
    for name, f in out.items():
        if not np.all(np.isfinite(f)):
            raise DeparaError(f"layer {name}: features contain NaN or inf")
    return out, ({name: np.concatenate(flats[name]) for name in layers} if flat else None)


# ------------------------------------------------------------------------------------------- numpy layer
def _float_rows(rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    return [{k: (v if k in ("layer", "kind") else float(v)) for k, v in r.items() if v != ""} for r in rows]


def depara_columns(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """The DEPARA score columns of ``layer_scores.csv`` rows: ``V``, ``E`` and every ``S_lam<λ>``."""
    if not rows:
        return []
    keys = list(rows[0])
    return [k for k in keys if k in ("V", "E") or score_lam(k) is not None]


def _probe_method_scores(layers: Sequence[tuple[int, str]], keys: Sequence[str], probe_methods: Sequence[str],
                         probe_features: Mapping[str, np.ndarray] | None, target_outputs,
                         meta: dict[str, Any]) -> dict[str, np.ndarray]:
    """The ``rsa``/``cka`` scores of every layer against the target-domain model's outputs on the probes (``meta``
    gains ``n_probes`` and ``rsa_cka_reference``)."""
    if probe_features is None or target_outputs is None:
        raise DeparaError(f"method {probe_methods[0]}: needs probe_features and the target model's outputs")
    missing = [n for _, n in layers if n not in probe_features]
    if missing:
        raise DeparaError(f"probe_features: no features for layer {missing[0]!r}")
    reference = np.asarray(target_outputs, dtype=np.float64)
    # score_sources only reads the labels' length when a reference representation is given
    table = score_sources({k: SourceInputs(features=probe_features[n]) for k, (_, n) in zip(keys, layers)},
                          np.zeros(reference.shape[0], dtype=np.int64), methods=list(probe_methods),
                          target_features=reference)
    meta["n_probes"] = table.meta["n_samples"]
    meta["rsa_cka_reference"] = "target-domain model's logits on the probes"
    return table.scores


def _with_extra(scores: dict[str, np.ndarray], extra: Mapping[str, Any] | None, n: int) -> dict[str, np.ndarray]:
    for m, v in (extra or {}).items():
        if np.shape(v) != (n,):
            raise DeparaError(f"extra: scores of {m!r} have shape {np.shape(v)}, expected ({n},)")
        scores[m] = np.asarray(v, dtype=np.float64)
    return scores


def peer_layer_table(layers: Sequence[tuple[int, str]], train_features: Mapping[str, np.ndarray], labels, *,
                     probe_features: Mapping[str, np.ndarray] | None = None, target_outputs=None,
                     depara_rows: Sequence[Mapping[str, Any]] | None = None,
                     methods: Sequence[str] = PEER_METHODS, shallower: bool = True,
                     transrate_eps: float = 1e-4, extra: Mapping[str, np.ndarray] | None = None) -> ScoreTable:
    """Score every layer with every peer method (via :func:`depara.selection.harness.score_sources`), plus DEPARA
    columns.

    Args:
        layers: ``(depth, module name)`` per candidate layer, shallow to deep.
        train_features: module name → N×D features of the source at that layer on the labelled target images.
        labels: N class indices 0..C−1 of those images.
        probe_features: module name → P×D features on the probe images (``rsa``/``cka``).
        target_outputs: P×K outputs (logits) of the target-domain model on the same probes (``rsa``/``cka``).
        depara_rows: rows of ``layer_scores.csv`` (``depth``, ``V``, ``E``, ``S_lam<λ>``...); each score column
            becomes a method named by :func:`depara_method_name` (``DEPARA V``, ``DEPARA V+10E``, ...).
        methods: peer methods among :data:`PEER_METHODS`.
        shallower: add the trivial score −depth.
        extra: more score columns, method name → (L,) array in the order of ``layers`` (e.g. the round-4 member,
            the parameter prior of :mod:`depara.benches.layers.baselines`).

    Returns:
        A :class:`~depara.selection.harness.ScoreTable` whose sources are :func:`layer_key` names, shallow to deep. A
        label-based method undefined on the data (e.g. NLEEP with fewer samples than its 5·C Gaussians) is left
        out, with its one-line reason in ``meta["not_scored"]``.
    """
    layers = [(int(d), str(n)) for d, n in layers]
    if not layers:
        raise DeparaError("layers: expected at least one (depth, layer) pair")
    unknown = [m for m in methods if m not in PEER_METHODS]
    if unknown:
        why = NOT_PER_LAYER.get(unknown[0], f"expected some of {', '.join(PEER_METHODS)}")
        raise DeparaError(f"method {unknown[0]}: not a per-layer method ({why})")
    keys = [layer_key(d, n) for d, n in layers]
    scores: dict[str, np.ndarray] = {}
    meta: dict[str, Any] = {"layers": keys, "depths": [d for d, _ in layers], "modules": [n for _, n in layers],
                            "not_per_layer": dict(NOT_PER_LAYER)}
    label_methods = [m for m in methods if m in LABEL_METHODS]
    probe_methods = [m for m in methods if m in PROBE_METHODS]
    if label_methods:
        missing = [n for _, n in layers if n not in train_features]
        if missing:
            raise DeparaError(f"train_features: no features for layer {missing[0]!r}")
        sources = {k: SourceInputs(features=train_features[n]) for k, (_, n) in zip(keys, layers)}
        for method in label_methods:
            try:
                table = score_sources(sources, np.asarray(labels), methods=[method], transrate_eps=transrate_eps)
            except DeparaError as exc:
                # a method undefined on this data (e.g. NLEEP with fewer samples than its Gaussians) is left out
                # of the table with its reason in meta["not_scored"]; the other estimators still score the layers
                meta.setdefault("not_scored", {})[method] = str(exc)
                continue
            scores.update(table.scores)
            meta["n_train"] = table.meta["n_samples"]
    scores = _with_extra(add_rank_averages(scores), extra, len(layers))
    if probe_methods:
        scores.update(_probe_method_scores(layers, keys, probe_methods, probe_features, target_outputs, meta))
    if depara_rows:
        by_depth = {int(float(r["depth"])): r for r in depara_rows}
        absent = [d for d, _ in layers if d not in by_depth]
        if absent:
            raise DeparaError(f"layer scores: no DEPARA row for depth {absent[0]}")
        for col in depara_columns(depara_rows):
            scores[depara_method_name(col)] = np.array([float(by_depth[d][col]) for d, _ in layers])
    # A score equal at every layer up to rounding (H-score with one image per class is C−1 everywhere) cannot
    # rank layers: make it exactly constant so the evaluation reports NaN correlations and a pessimistic pick.
    constant = []
    for m, v in scores.items():
        if np.ptp(v) <= 1e-9 * max(1.0, float(np.abs(v).max())):
            scores[m] = np.full_like(v, float(v.mean()))
            constant.append(m)
    if constant:
        meta["constant_scores"] = constant
    if shallower:
        scores[SHALLOWER] = -np.array([d for d, _ in layers], dtype=np.float64)
    if not scores:
        raise DeparaError("no method to score: give peer methods, DEPARA rows or shallower=True")
    return ScoreTable(sources=tuple(keys), methods=tuple(scores), scores=scores, meta=meta)


def _layers_of(table: ScoreTable) -> list[tuple[int, str]]:
    """(depth, module) of each candidate of a :func:`peer_layer_table` table, from its meta (never parsed)."""
    if "depths" not in table.meta or "modules" not in table.meta:
        raise DeparaError("table: expected a table from peer_layer_table (meta 'depths' and 'modules')")
    return list(zip((int(d) for d in table.meta["depths"]), table.meta["modules"]))


def evaluate_layers(table: ScoreTable, accuracies: Mapping[int, float], *, ks: Sequence[int] = (1, 3, 5)
                    ) -> list[dict[str, Any]]:
    """Each method's agreement with the per-layer transfer accuracy ``{depth: accuracy}``.

    One :func:`depara.evaluation.rank_quality.rank_quality` per method (truth = accuracy; its field names: kendall,
    weighted_tau, spearman, pearson, p_at_K, pick_truth, best_truth, regret = best_truth − pick_truth,
    relative_accuracy; ties → the worse layer), with ``family``, ``kendall_p`` (two-sided p-value of τ, scipy),
    ``pick_depth``/``pick_layer`` (the top-scored layer) and ``best_depth``/``best_layer`` (the most accurate,
    shallowest among equals).
    """
    layers = _layers_of(table)
    missing = [d for d, _ in layers if d not in accuracies]
    if missing:
        raise DeparaError(f"accuracies: no transfer accuracy for depth {missing[0]}")
    y = np.array([float(accuracies[d]) for d, _ in layers])
    rows = []
    for method in table.methods:
        x = table.scores[method]
        q = rank_quality(y, x, ks=ks)
        # 18 layers is a small sample: say how likely the τ is under no association
        p = float("nan") if math.isnan(q.kendall) else float(stats.kendalltau(x, y).pvalue)
        rows.append({"method": method, "family": method_family(method), "kendall": q.kendall, "kendall_p": p,
                     "weighted_tau": q.weighted_tau, "spearman": q.spearman, "pearson": q.pearson,
                     "pick_depth": layers[q.pick][0], "pick_layer": layers[q.pick][1], "pick_truth": q.pick_truth,
                     "best_depth": layers[q.best][0], "best_layer": layers[q.best][1], "best_truth": q.best_truth,
                     "regret": q.regret, "relative_accuracy": q.relative_accuracy,
                     **{f"p_at_{k}": v for k, v in q.p_at_k.items()}})
    return rows


# ------------------------------------------------------------------------------------------ orchestration
def resolve_target_data(transfer: Mapping[str, str | os.PathLike]) -> dict[str, Path]:
    """``{name: target fraction folder}`` read from the ``transfer.json`` that ``depara transfer`` writes beside
    each ``transfer.csv`` (its ``data`` entry)."""
    out = {}
    for name, path in transfer.items():
        p = Path(path)
        folder = p if p.is_dir() else p.parent
        settings = folder / "transfer.json"
        if not settings.is_file():
            raise DeparaError(f"transfer {name}={p}: no transfer.json beside it naming the target data "
                              f"(give the folder written by `depara transfer`)")
        data = read_json(settings).get("data")
        if not data or not Path(data).is_dir():
            raise DeparaError(f"{settings}: target data folder {data!r} not found")
        out[name] = Path(data)
    return out


def _seed_accuracies(value) -> list[dict[int, float]]:
    """Each transfer seed's ``{depth: accuracy}`` from the ``test_acc_seed<k>`` columns of a transfer CSV (as
    ``depara demo layers`` writes them); ``[]`` for a mapping or a CSV without them."""
    from .select import read_transfer_accuracies

    if isinstance(value, Mapping):
        return []
    p = Path(value) / "transfer.csv" if Path(value).is_dir() else Path(value)
    rows = read_csv(p)
    cols = [c for c in (rows[0] if rows else {}) if c.startswith("test_acc_seed")]
    return [read_transfer_accuracies(p, c) for c in cols]


def _accuracies(value) -> dict[int, float]:
    from .select import read_transfer_accuracies

    if isinstance(value, Mapping):
        return {int(k): float(v) for k, v in value.items()}
    return read_transfer_accuracies(value)


def _fmt(v: float, digits: int = 2) -> str:
    """A number of the summary line as every report writes it (half away from zero; NaN in the word "undefined")."""
    return UNDEFINED if v is None or math.isnan(float(v)) else format_number(v, f".{digits}f")


def peers_summary(evaluations: Mapping[str, Sequence[Mapping[str, Any]]], primary: str = "DEPARA V+E") -> str:
    """One line per fraction: the method with the highest Kendall τ, and DEPARA's and LogME's τ beside it."""
    parts = []
    for name, rows in evaluations.items():
        scored = [r for r in rows if r["family"] not in ("reference", "n/a") and not math.isnan(float(r["kendall"]))]
        if not scored:
            continue
        best = max(scored, key=lambda r: float(r["kendall"]))
        by = {r["method"]: r for r in rows}
        line = f"{name}: best agreement {best['method']} (Kendall τ {_fmt(best['kendall'])}, picks #{best['pick_depth']}"
        line += f", loses {_fmt(100 * best['regret'], 1)} pts)"
        for m in (primary, "logme"):
            if m in by and m != best["method"]:
                line += f"; {m} τ {_fmt(by[m]['kendall'])}"
        parts.append(line)
    return " | ".join(parts) or "no evaluation"


def _evaluation_rows(table: ScoreTable, acc: Mapping[int, float], per_seed: Sequence[Mapping[int, float]]
                     ) -> list[dict[str, Any]]:
    """:func:`evaluate_layers`, then the reference rows (noise ceiling, random), the baselines that cannot apply per
    layer and the methods undefined on this data (their reasons in ``note``)."""
    not_scored = table.meta.get("not_scored", {})
    undefined = [{"method": m, "family": "n/a", "note": f"undefined on this data: {why}"}
                 for m, why in not_scored.items()]
    undefined += [{"method": name, "family": "n/a", "note": f"undefined on this data: its part {part} is"}
                  for name, parts in RANK_AVERAGES.items() if name not in table.methods
                  for part in [p for p in parts if p in not_scored][:1]]
    depths = [d for d, _ in _layers_of(table)]
    rows = evaluate_layers(table, acc)
    if len(per_seed) > 1:  # each row's τ against each transfer seed alone: the spread behind the mean's τ
        for r in rows:
            r["kendall_per_seed"] = kendall_per_seed(table.scores[r["method"]], per_seed, depths)
    return rows + reference_rows(per_seed, depths) + not_applicable_rows() + undefined


def _fraction_features(src_model, src_info, root: Path, names: Sequence[str], batch_size: int, progress: bool):
    """A target fraction's labelled train split, the source's pooled features of it per layer, and the round-4
    member's score per layer (:func:`depara.benches.layers.baselines.round4_label_scores`), or the one-line reason
    it is undefined on this data."""
    from .engine import load_split, normalise

    if not (root / "train").is_dir():
        raise DeparaError(f"{root}: target fraction folder has no train/ split")
    train = load_split(root, "train", int(src_info.image_size),
                       classes=src_info.classes if src_info.domain != "imagenet" else None)
    images = normalise(train.images, src_info.mean, src_info.std)
    feats, flat = layer_features(src_model, images, names, batch_size=batch_size, progress=progress, flat=True)
    try:
        r4: np.ndarray | str = round4_label_scores(flat, train.labels.numpy())
    except DeparaError as exc:  # e.g. one image per class: no probe has a same-class neighbour
        r4 = str(exc)
    return train, feats, r4


def score_layers_with_peers(source: str | os.PathLike, target: str | os.PathLike, probes,
                            accuracies: Mapping[str, Mapping[int, float] | str | os.PathLike], *,
                            target_data: Mapping[str, str | os.PathLike] | None = None,
                            layer_scores: str | os.PathLike | Sequence[Mapping[str, Any]] | None = None,
                            out: str | os.PathLike | None = None, methods: Sequence[str] = PEER_METHODS,
                            source_arch: str = "vgg19_bn", batch_size: int = 64, progress: bool = False,
                            title: str = "", settings: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Score every transferable layer of ``source`` with the peer estimators and DEPARA; evaluate each against the
    per-layer transfer accuracy of each target fraction; optionally write a results folder.

    Args:
        source: a ``depara train`` run / checkpoint (or ``"imagenet"``, weights of ``source_arch``).
        target: the run / checkpoint of the model trained on the target domain (its logits: rsa/cka reference).
        probes: folder of probe images (the ones DEPARA used) or a :class:`depara.extraction.probes.ProbeSet`.
        accuracies: ``{fraction: {depth: accuracy}}`` or ``{fraction: transfer.csv or its folder}``.
        target_data: ``{fraction: DATA/<target>_<fraction>}`` whose ``train/`` images (with labels) feed the
            label-based methods; default: read from each transfer folder's ``transfer.json``.
        layer_scores: ``layer_scores.csv`` of ``depara layers-select`` (or its rows) for the DEPARA columns;
            None = peers only.
        out: results folder (``peer_scores_<fraction>.csv``, ``peer_evaluation_<fraction>.csv``,
            ``peer_agreement_<fraction>.png``, ``peer_scores_<fraction>.png``, ``manifest.json`` of kind
            ``score``); None writes nothing.

    Returns:
        ``{"tables": {fraction: ScoreTable}, "evaluation": {fraction: rows}, "summary": str, "out": path|None}``.
    """
    from .engine import load_source
    from .models import load_checkpoint, transfer_units

    if not accuracies:
        raise DeparaError("accuracies: needs the measured transfer accuracies per fraction")
    accs = {str(name): _accuracies(v) for name, v in accuracies.items()}
    if target_data is None:
        target_data = resolve_target_data({k: v for k, v in accuracies.items() if not isinstance(v, Mapping)})
    missing = [name for name in accs if name not in target_data]
    if missing:
        raise DeparaError(f"target_data: no target data folder for fraction {missing[0]!r}")
    depara_rows = None
    if layer_scores is not None:
        depara_rows = _float_rows(read_csv(layer_scores) if isinstance(layer_scores, (str, os.PathLike))
                                  else layer_scores)
    src_model, src_info = load_source(source, source_arch)
    tgt_model, tgt_info = load_checkpoint(target)
    units = transfer_units(src_model)[:-1]
    layers = [(u.index, u.output) for u in units]
    names = [u.output for u in units]

    from ...extraction.probes import ProbeSet

    probe_set = probes if isinstance(probes, ProbeSet) else ProbeSet.from_folder(probes, model_preprocess(src_info))
    probe_features = pooled_layer_features(src_model, probe_set.tensor(preprocess=model_preprocess(src_info)), names,
                                           batch_size=batch_size, progress=progress)
    tgt_layer = transfer_units(tgt_model)[-1].output  # the target-domain model's logits, as in layers-select
    tgt_images = probe_set.tensor(preprocess=model_preprocess(tgt_info))
    target_outputs = pooled_layer_features(tgt_model, tgt_images, [tgt_layer], batch_size=batch_size)[tgt_layer]

    tables, evaluations, n_train = {}, {}, {}
    params = parameters_up_to(src_model, units)
    for name, acc in accs.items():
        train, feats, r4 = _fraction_features(src_model, src_info, Path(target_data[name]), names, batch_size,
                                              progress)
        extra = {PARAMS_PRIOR: params} if isinstance(r4, str) else {ROUND4_LABELS: r4, PARAMS_PRIOR: params}
        table = peer_layer_table(layers, feats, train.labels.numpy(), probe_features=probe_features,
                                 target_outputs=target_outputs, depara_rows=depara_rows, methods=methods,
                                 extra=extra)
        if isinstance(r4, str):
            table.meta.setdefault("not_scored", {})[ROUND4_LABELS] = r4
        tables[name], n_train[name] = table, len(train)
        evaluations[name] = _evaluation_rows(table, acc, _seed_accuracies(accuracies[name]) or [acc])
    summary = peers_summary(evaluations)
    result: dict[str, Any] = {"tables": tables, "evaluation": evaluations, "summary": summary, "out": None}
    if out is not None:
        run_settings = {"source": str(source), "target": str(target),
                        "probes": str(getattr(probe_set, "origin", probes)), "n_probes": len(probe_set),
                        "target_data": {k: str(v) for k, v in target_data.items() if k in accs},
                        "n_train": n_train, "methods": list(methods), "pooling": "global average",
                        "not_per_layer": dict(NOT_PER_LAYER), **dict(settings or {})}
        result["out"] = str(write_peer_results(out, tables, evaluations, accs, settings=run_settings,
                                               title=title or "Peer estimators vs DEPARA per layer"))
    return result


@writes_results_folder("out")  # written whole: an interrupted run leaves the previous folder
def write_peer_results(out: str | os.PathLike, tables: Mapping[str, ScoreTable],
                       evaluations: Mapping[str, Sequence[Mapping[str, Any]]],
                       accuracies: Mapping[str, Mapping[int, float]], *, settings: Mapping[str, Any] | None = None,
                       title: str = "Peer estimators vs DEPARA per layer") -> Path:
    """Write per fraction ``peer_scores_<f>.csv`` (a row per layer: depth, layer, accuracy, every method's score),
    ``peer_evaluation_<f>.csv`` (a row per method), its bar chart
    (:func:`depara.report.plots.harness.plot_method_agreement`), ``peer_layers.png`` (every score per depth beside the
    accuracy, one panel per fraction), ``peer_evaluation.json`` and ``manifest.json`` (kind ``score``)."""
    from ...report.plots.harness import plot_method_agreement
    from ...report.plots.layers_peers import panel_from_rows, plot_layer_peers
    from ...report.manifest import write_manifest

    out_dir = ensure_dir(out)
    tables_written: dict[str, str] = {}
    figures: dict[str, str] = {}
    panels: dict[str, dict] = {}
    for name, table in tables.items():
        rows = []
        for i, (depth, layer) in enumerate(_layers_of(table)):
            rows.append({"depth": depth, "layer": layer, f"acc_{name}": accuracies[name][depth],
                         **{m: float(table.scores[m][i]) for m in table.methods}})
        write_csv(out_dir / f"peer_scores_{name}.csv", rows)
        columns = list(dict.fromkeys(k for r in evaluations[name] for k in r))  # reference rows add a note
        write_csv(out_dir / f"peer_evaluation_{name}.csv", list(evaluations[name]), header=columns)
        tables_written[f"peer_scores_{name}"] = f"peer_scores_{name}.csv"
        tables_written[f"peer_evaluation_{name}"] = f"peer_evaluation_{name}.csv"
        # tick labels wrapped at 9 characters so the long names do not collide
        plot_method_agreement([{**r, "method": "\n".join(textwrap.wrap(str(r["method"]), 9))}
                               for r in evaluations[name] if r["family"] not in ("reference", "n/a")], out_dir / f"peer_agreement_{name}.png",
                              title=f"{name}: agreement of each estimator with per-layer transfer accuracy")
        figures[f"peer_agreement_{name}"] = f"peer_agreement_{name}.png"
        panels[name] = panel_from_rows(rows, f"acc_{name}", list(table.methods))
    first = next(iter(tables.values()))
    families = {m: method_family(m) for m in first.methods}
    plot_layer_peers(panels, out_dir / "peer_layers.png", families=families,
                     title="Per-layer scores of each estimator vs transfer accuracy")
    figures["peer_layers"] = "peer_layers.png"
    write_json(out_dir / "peer_evaluation.json", {k: list(v) for k, v in evaluations.items()})
    tables_written["peer_evaluation_json"] = "peer_evaluation.json"
    write_manifest(out_dir, "score", title=title, summary=peers_summary(evaluations), settings=dict(settings or {}),
                   tables=tables_written, figures=figures,
                   extra={"evaluation": {k: list(v) for k, v in evaluations.items()},
                          "families": families,
                          **{k: v for k, v in first.meta.items() if k not in ("n_train", "constant_scores")},
                          "constant_scores": {k: list(t.meta.get("constant_scores", [])) for k, t in tables.items()}})
    return out_dir
