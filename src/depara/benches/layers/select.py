"""Layer selection with DEPARA: score each layer of a source model against the target-domain model.

For each transferable layer #k of the source (docs/method.md §5): the graph of the source at layer k on the probes vs
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

from ...core.score import combine
from ...io.files import ensure_dir, read_csv, write_csv
from ...errors import DeparaError
from ...report.manifest import write_manifest
from ...report.plots.layers import SCORE_PREFIX, score_column, score_lam  # noqa: F401 - the results' column names
from ...options import LAYER_SELECTION_OPTIONS, GraphOptions
from .models import ModelInfo, model_preprocess, transfer_units

SCORES_CSV = "layer_scores.csv"
CORRELATIONS_CSV = "correlations.csv"
FIGURE = "layers.png"
def depara_method_name(column: str) -> str:
    """``V`` → ``DEPARA V``, ``S_lam1`` → ``DEPARA V+E``, ``S_lam10`` → ``DEPARA V+10E`` (a ``layer_scores.csv``
    column)."""
    lam = score_lam(column)
    if lam is not None:
        return f"DEPARA V+{'' if lam == 1 else f'{lam:g}'}E"
    return f"DEPARA {column}"


def score_layers(source, source_info: ModelInfo, target, target_info: ModelInfo, probes, *,
                 lams: Sequence[float] = (1.0, 10.0), options: GraphOptions = LAYER_SELECTION_OPTIONS,
                 batch_size: int = 32, progress: bool = False) -> list[dict]:
    """Per transferable layer of ``source``: ``{depth, layer, kind, V, E, S_lam<λ>...}``.

    ``probes``: a folder of images (read recursively) or a :class:`depara.extraction.probes.ProbeSet`; each model sees
    them through its own preprocessing. ``options``: default :data:`depara.options.LAYER_SELECTION_OPTIONS`; a
    ``node_size`` of None means the smaller of the two models' input sizes. All source layers come from ONE forward
    pass per batch (``depara.extraction.extract.build_graphs``).
    """
    from ...extraction.extract import build_graph, build_graphs
    from ...core.similarity import edge_similarity, node_similarity
    from ...extraction.probes import ProbeSet

    lams = [float(v) for v in lams]
    if not lams:
        raise DeparaError("lams: expected at least one value")
    if not isinstance(probes, ProbeSet):
        probes = ProbeSet.from_folder(probes, preprocess=model_preprocess(source_info))
    if options.node_size is None:
        options = options.replace(node_size=min(source_info.image_size, target_info.image_size))
    units = transfer_units(source)[:-1]  # the last layer (the classifier) is never transferred
    src_graphs = build_graphs(source, probes, [u.output for u in units], options,
                              preprocess=model_preprocess(source_info), batch_size=batch_size, progress=progress,
                              meta={"model": source_info.arch, "domain": source_info.domain})
    tgt_layer = transfer_units(target)[-1].output  # the target-domain model's logits
    tgt_graph = build_graph(target, probes, tgt_layer, options, preprocess=model_preprocess(target_info),
                            batch_size=batch_size, progress=progress,
                            meta={"model": target_info.arch, "domain": target_info.domain})
    rows = []
    for unit in units:
        g = src_graphs[unit.output]
        v, e = node_similarity(g, tgt_graph), edge_similarity(g, tgt_graph)
        row = {"depth": unit.index, "layer": unit.output, "kind": unit.kind, "V": v, "E": e}
        for lam in lams:
            row[score_column(lam)] = combine(v, e, lam)
        rows.append(row)
    return rows


def correlate(rows: Sequence[Mapping], accuracies: Mapping[int, float], score_keys: Sequence[str]) -> list[dict]:
    """For each score column, :func:`depara.evaluation.rank_quality.rank_quality` of the layers that have an accuracy
    (truth = accuracy): ``spearman``, ``kendall`` with their p-values (scipy), the top-scored layer ``pick_depth``
    (ties → the worse layer, the one tie rule), its ``pick_truth``, the most accurate layer ``best_depth`` and
    ``best_truth``, and ``regret`` = best_truth − pick_truth (the accuracy lost by the pick)."""
    from scipy.stats import kendalltau, spearmanr

    from ...evaluation.rank_quality import rank_quality

    depths = [int(r["depth"]) for r in rows if int(r["depth"]) in accuracies]
    if len(depths) < 2:
        raise DeparaError(f"accuracies: transfer accuracies cover {len(depths)} of the scored layers; expected at "
                          "least 2")
    acc = np.array([accuracies[d] for d in depths], dtype=float)
    by_depth = {int(r["depth"]): r for r in rows}
    out = []
    for key in score_keys:
        s = np.array([float(by_depth[d][key]) for d in depths], dtype=float)
        q = rank_quality(acc, s, ks=())
        out.append({"score": key, "spearman": q.spearman, "spearman_p": float(spearmanr(s, acc).pvalue),
                    "kendall": q.kendall, "kendall_p": float(kendalltau(s, acc).pvalue),
                    "pick_depth": depths[q.pick], "pick_truth": q.pick_truth, "best_depth": depths[q.best],
                    "best_truth": q.best_truth, "regret": q.regret, "n_layers": len(depths)})
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
                  source_arch: str = "vgg19_bn", options: GraphOptions = LAYER_SELECTION_OPTIONS,
                  batch_size: int = 32, progress: bool = True, title: str = "") -> dict:
    """Score every transferable layer of ``source`` for the target domain of ``target`` and write a results folder.

    source: a `depara train` run / checkpoint, or ``"imagenet"`` (torchvision weights of ``source_arch``).
    target: the run / checkpoint of the model trained on the target domain (its logits are the reference graph).
    transfer: optional ``{name: transfer.csv or its folder}`` (e.g. ``{"tenth": ..., "hundredth": ...}``): adds
    the accuracies to the table, the correlations and the accuracy lost by the top-scored layer.
    Writes ``layer_scores.csv``, ``correlations.csv`` (with ``transfer``), ``layers.png`` and ``manifest.json``
    (kind ``layers-select``). Returns ``{"rows", "correlations", "pick", "summary"}``.
    """
    from ...report.plots.layers import plot_layer_selection
    from .engine import load_source
    from .models import load_checkpoint

    out = ensure_dir(out)
    src_model, src_info = load_source(source, source_arch)
    tgt_model, tgt_info = load_checkpoint(target)
    rows = score_layers(src_model, src_info, tgt_model, tgt_info, probes, lams=lams, options=options,
                        batch_size=batch_size, progress=progress)
    score_keys = ["V", "E"] + [score_column(lam) for lam in lams]
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
    summary = f"transfer layers 1..#{pick['depth']} ({pick['layer']}): highest V+λE, λ={score_lam(primary):g} " \
              f"= {pick[primary]:.3f}"
    for c in correlations:
        if c["score"] == primary:
            summary += (f"; {c['accuracy']}: best by accuracy #{c['best_depth']} ({100 * c['best_truth']:.1f}%), "
                        f"pick loses {100 * c['regret']:.1f} pts, Spearman {c['spearman']:.2f}")
    plot_layer_selection(rows, out / FIGURE, lams=[float(l) for l in lams],
                         accuracy_names=list(accuracies), title=title or f"{src_info.domain or source} → "
                         f"{tgt_info.domain or 'target'}: DEPARA per layer")
    settings = {"source": str(source), "target": str(target), "probes": str(getattr(probes, "origin", probes)),
                "lams": [float(l) for l in lams], **options.to_meta(),
                "transfer": {k: str(v) for k, v in (transfer or {}).items()}}
    write_manifest(out, "layers-select", title=title or "Layer selection with DEPARA", summary=summary,
                   settings=settings, tables=tables, figures={"layers": FIGURE},
                   extra={"pick_layer": int(pick["depth"]), "pick_module": pick["layer"], "primary_score": primary,
                          "correlations": correlations})
    return {"rows": rows, "correlations": correlations, "pick": pick, "summary": summary}
