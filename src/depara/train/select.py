"""Layer selection with DEPARA: score each layer of a source model against the target-domain model.

For each transferable layer #k of the source (METHOD.md §4): the graph of the source at layer k on the probes vs
the graph of the model trained on the target domain at its logits on the same probes; S_V, S_E and
S = S_V + λ·S_E per layer. With the measured transfer accuracies (``depara transfer``), the Spearman and
Kendall correlations of each score with accuracy, and the accuracy lost by transferring up to the top-scored
layer instead of the best one.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from .._io import ensure_dir, read_csv, write_csv
from ..errors import DeparaError
from ..results import write_manifest
from .models import ModelInfo, transfer_units

SCORES_CSV = "layer_scores.csv"
CORRELATIONS_CSV = "correlations.csv"
FIGURE = "layers.png"


def _lam_label(lam: float) -> str:
    return f"S_lam{lam:g}"


def _preprocess(info: ModelInfo, size: int | None = None):
    from ..probes import Preprocess

    s = int(size or info.image_size)
    return Preprocess(size=(s, s), mean=tuple(info.mean), std=tuple(info.std), name=f"{info.arch}-{s}px")


def score_layers(source, source_info: ModelInfo, target, target_info: ModelInfo, probes, *,
                 lams: Sequence[float] = (1.0, 10.0), method: str = "input_x_gradient", scalar: str = "mean",
                 channel_reduction: str = "abs_mean", center: bool = False, edge: str = "cosine",
                 batch_size: int = 32, node_size: int | None = None, progress: bool = False) -> list[dict]:
    """Per transferable layer of ``source``: ``{depth, layer, kind, V, E, S_lam<λ>...}``.

    ``probes``: a folder of images (read recursively) or a :class:`depara.probes.ProbeSet`; each model sees them
    through its own preprocessing. Defaults follow the original layer-selection code (scalar = mean of the
    layer, channel reduction = mean of absolute values, features not centred). All source layers come from ONE
    forward pass per batch (``depara.extract.build_graphs``).
    """
    from ..extract import build_graph, build_graphs
    from ..probes import ProbeSet
    from ..graph_similarity import edge_similarity, node_similarity

    lams = [float(v) for v in lams]
    if not lams:
        raise DeparaError("--lam: expected at least one value")
    if not isinstance(probes, ProbeSet):
        probes = ProbeSet.from_folder(probes, preprocess=_preprocess(source_info))
    grid = node_size or min(source_info.image_size, target_info.image_size)
    options = dict(method=method, scalar=scalar, channel_reduction=channel_reduction, center=center, edge=edge,
                   batch_size=batch_size, node_size=grid, progress=progress)
    units = transfer_units(source)[:-1]  # the last layer (the classifier) is never transferred
    src_graphs = build_graphs(source, probes, [u.output for u in units], preprocess=_preprocess(source_info),
                              meta={"model": source_info.arch, "domain": source_info.domain}, **options)
    tgt_layer = transfer_units(target)[-1].output  # the target-domain model's logits
    tgt_graph = build_graph(target, probes, tgt_layer, preprocess=_preprocess(target_info),
                            meta={"model": target_info.arch, "domain": target_info.domain}, **options)
    rows = []
    for unit in units:
        g = src_graphs[unit.output]
        v, e = node_similarity(g, tgt_graph), edge_similarity(g, tgt_graph)
        row = {"depth": unit.index, "layer": unit.output, "kind": unit.kind, "V": v, "E": e}
        for lam in lams:
            row[_lam_label(lam)] = v + lam * e
        rows.append(row)
    return rows


def correlate(rows: Sequence[Mapping], accuracies: Mapping[int, float], score_keys: Sequence[str]) -> list[dict]:
    """For each score column: Spearman and Kendall τ with accuracy over the layers that have an accuracy, the
    top-scored layer, the best layer by accuracy, and the accuracy lost by picking the top-scored one."""
    from scipy.stats import kendalltau, spearmanr

    depths = [int(r["depth"]) for r in rows if int(r["depth"]) in accuracies]
    if len(depths) < 2:
        raise DeparaError(f"transfer accuracies cover {len(depths)} of the scored layers; expected at least 2")
    acc = np.array([accuracies[d] for d in depths], dtype=float)
    by_depth = {int(r["depth"]): r for r in rows}
    out = []
    for key in score_keys:
        s = np.array([float(by_depth[d][key]) for d in depths], dtype=float)
        rho, rho_p = spearmanr(s, acc)
        tau, tau_p = kendalltau(s, acc)
        top, best = depths[int(np.argmax(s))], depths[int(np.argmax(acc))]
        out.append({"score": key, "spearman": float(rho), "spearman_p": float(rho_p), "kendall": float(tau),
                    "kendall_p": float(tau_p), "top_layer": top, "top_acc": accuracies[top], "best_layer": best,
                    "best_acc": accuracies[best], "acc_lost": accuracies[best] - accuracies[top],
                    "n_layers": len(depths)})
    return out


def read_transfer_accuracies(path: str | os.PathLike, column: str = "test_acc", *, required: bool = True
                             ) -> dict[int, float]:
    """``{depth: accuracy}`` from a ``transfer.csv`` written by ``depara transfer`` (depth 0 = no transfer, skipped).

    With ``required=False`` a missing column gives ``{}``.
    """
    p = Path(path)
    if p.is_dir():
        p = p / "transfer.csv"
    rows = read_csv(p)
    if not required and rows and column not in rows[0]:
        return {}
    if not rows or "depth" not in rows[0] or column not in rows[0]:
        raise DeparaError(f"{p}: expected a transfer.csv with columns depth and {column}")
    return {int(r["depth"]): float(r[column]) for r in rows if int(r["depth"]) > 0}


def layers_select(source: str | os.PathLike, target: str | os.PathLike, probes, out: str | os.PathLike, *,
                  lams: Sequence[float] = (1.0, 10.0), transfer: Mapping[str, str | os.PathLike] | None = None,
                  source_arch: str = "vgg19_bn", method: str = "input_x_gradient", scalar: str = "mean",
                  channel_reduction: str = "abs_mean", center: bool = False, edge: str = "cosine",
                  batch_size: int = 32, progress: bool = True, title: str = "") -> dict:
    """Score every transferable layer of ``source`` for the target domain of ``target`` and write a results folder.

    source: a `depara train` run / checkpoint, or ``"imagenet"`` (torchvision weights of ``source_arch``).
    target: the run / checkpoint of the model trained on the target domain (its logits are the reference graph).
    transfer: optional ``{name: transfer.csv or its folder}`` (e.g. ``{"tenth": ..., "hundredth": ...}``): adds
    the accuracies to the table, the correlations and the accuracy lost by the top-scored layer.
    Writes ``layer_scores.csv``, ``correlations.csv`` (with ``transfer``), ``layers.png`` and ``manifest.json``
    (kind ``layers-select``). Returns ``{"rows", "correlations", "pick", "summary"}``.
    """
    from ..plots.layers import plot_layer_selection
    from .engine import load_source
    from .models import load_checkpoint

    out = ensure_dir(out)
    src_model, src_info = load_source(source, source_arch)
    tgt_model, tgt_info = load_checkpoint(target)
    rows = score_layers(src_model, src_info, tgt_model, tgt_info, probes, lams=lams, method=method, scalar=scalar,
                        channel_reduction=channel_reduction, center=center, edge=edge, batch_size=batch_size,
                        progress=progress)
    score_keys = ["V", "E"] + [_lam_label(float(l)) for l in lams]
    accuracies = {name: read_transfer_accuracies(p) for name, p in (transfer or {}).items()}
    spreads = {name: read_transfer_accuracies(p, "test_acc_std", required=False) for name, p in (transfer or {}).items()}
    for name, acc in accuracies.items():
        for r in rows:
            r[f"acc_{name}"] = acc.get(int(r["depth"]), float("nan"))
            if spreads[name]:
                r[f"acc_{name}_std"] = spreads[name].get(int(r["depth"]), float("nan"))
    correlations = []
    for name, acc in accuracies.items():
        for c in correlate(rows, acc, score_keys):
            correlations.append({"accuracy": name, **c})
    write_csv(out / SCORES_CSV, rows)
    tables = {"layer_scores": SCORES_CSV}
    if correlations:
        write_csv(out / CORRELATIONS_CSV, correlations)
        tables["correlations"] = CORRELATIONS_CSV
    primary = score_keys[2]
    pick = max(rows, key=lambda r: r[primary])
    summary = f"transfer layers 1..#{pick['depth']} ({pick['layer']}): highest {primary.replace('S_lam', 'V+λE, λ=')} " \
              f"= {pick[primary]:.3f}"
    for c in correlations:
        if c["score"] == primary:
            summary += (f"; {c['accuracy']}: best by accuracy #{c['best_layer']} ({100 * c['best_acc']:.1f}%), "
                        f"pick loses {100 * c['acc_lost']:.1f} pts, Spearman {c['spearman']:.2f}")
    plot_layer_selection(rows, out / FIGURE, lams=[float(l) for l in lams],
                         accuracy_names=list(accuracies), title=title or f"{src_info.domain or source} → "
                         f"{tgt_info.domain or 'target'}: DEPARA per layer")
    settings = {"source": str(source), "target": str(target), "probes": str(getattr(probes, "origin", probes)),
                "lams": [float(l) for l in lams], "method": method, "scalar": scalar,
                "channel_reduction": channel_reduction, "center": center, "edge": edge,
                "transfer": {k: str(v) for k, v in (transfer or {}).items()}}
    write_manifest(out, "layers-select", title=title or "Layer selection with DEPARA", summary=summary,
                   settings=settings, tables=tables, figures={"layers": FIGURE},
                   extra={"pick_layer": int(pick["depth"]), "pick_module": pick["layer"], "primary_score": primary,
                          "correlations": correlations})
    return {"rows": rows, "correlations": correlations, "pick": pick, "summary": summary}
