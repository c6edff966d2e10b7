"""The results folder and report of ``depara select``: first the sentence, then one figure, then the top 10.

``write_selection(sel, out)`` writes

* ``manifest.json`` whose summary is :func:`sentence` (what to pick, how sure, what is too close to call), one
  figure ``select.png`` (left: the top candidates with their 95 % intervals; right: a model × layer heatmap of
  the ranking score) and one table ``top.csv`` (rank, model, layer, score with its interval, share of
  half-samples won, and each other scorer's *rank*), so ``report.html`` / ``report.md`` show exactly those;
* ``ranking.csv`` / ``ranking.json`` / ``layers.csv``: everything, every scorer's value and interval.

``sel`` is a :class:`depara.selection.result.Selection` throughout (typed ``Any`` here: the result imports this
module, not the other way round). Numbers a person reads are rounded to what their interval supports (:func:`depara.evaluation.uncertainty.rounded`); names
go into CSV through :func:`depara.io.escape.csv_cell` (the HTML / Markdown / terminal outputs escape them in
:mod:`depara.report.html` and :mod:`depara.cli._table`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from ..io.escape import csv_cell
from ..evaluation.uncertainty import LEVEL, SHARE_MEANING, UNDEFINED, format_number, rounded

__all__ = ["sentence", "score_column", "top_rows", "write_selection", "TOP", "SHARE_COLUMN", "FIGURE"]

#: Rows of the report's table.
TOP = 10
#: The column of the share of half-samples won (what used to be headed "P(best)").
SHARE_COLUMN = "first in (share of probe half-samples)"
FIGURE = "select.png"


def _name(sel: Any, c: int) -> str:
    m, layer = sel.candidates[c]
    return f"{m}:{layer}"


def _names(sel: Any, cands: list[tuple[str, str]], limit: int = 3) -> str:
    shown = ", ".join(f"{m}:{layer}" for m, layer in cands[:limit])
    return shown + (f" and {len(cands) - limit} more" if len(cands) > limit else "")


def sentence(sel: Any) -> str:
    """What to pick, how sure (interval, share of half-samples won, what that share is worth on the real-image
    bank), what is too close to call, and what could not be ranked — one line."""
    from ..evaluation.uncertainty import bench_phrase

    c = sel.order[0]
    m, layer = sel.best
    s = sel.scorer
    lo, hi = sel.intervals[s][c]
    value, interval = rounded(float(sel.values[s][c]), lo, hi)
    why = "n_boot = 0" if sel.settings.get("n_boot") == 0 else "too few probes to resample"
    text = f"pick model {m!r} at layer {layer!r} ({s} = {value}" + \
        (f", {int(LEVEL * 100)}% interval {interval})" if interval else f", no interval: {why})")
    share = float(sel.shares[c])
    if sel.tied:
        text += f"; tied with {_names(sel, sel.tied)} (equal {s}): too close to call"
    elif np.isfinite(share):
        text += (f"; first in {format_number(share, '.0%')} of probe half-samples "
                 f"({bench_phrase(share, sel.settings.get('protocol', 'finetune'), s)})")
    close = [t for t in sel.too_close if t not in sel.tied]
    if close:
        text += f"; too close to call with {_names(sel, close)}"
    elif interval and not sel.tied and sel.ranked > 1:
        text += "; no other candidate's interval overlaps it"
    unranked = len(sel.candidates) - sel.ranked
    if unranked:
        text += f"; {unranked} candidate(s) not ranked ({s} undefined)"
    for note in sel.notes:
        text += f"; {note}"
    skipped = sel.settings.get("skipped_models") or {}
    if skipped:
        text += f"; skipped {len(skipped)} candidate model(s) that failed: " + \
            ", ".join(f"{name} ({why})" for name, why in skipped.items())
    return text


def score_column(sel: Any) -> str:
    """The header of the score column of :func:`top_rows`: the ranking scorer and its interval in one cell (text,
    so no table formatter re-rounds what :func:`depara.evaluation.uncertainty.rounded` rounded)."""
    return f"{sel.scorer} ({int(LEVEL * 100)}% interval)"


def top_rows(sel: Any, k: int = TOP) -> list[dict[str, Any]]:
    """The report's table: the first ``k`` candidates with rank, model, layer, the ranking score with its
    interval (rounded), the share of half-samples won, and each other scorer's rank (1 = best by that scorer).

    Text as people read it: an undefined score or share is the word :data:`UNDEFINED` (as ``ranking.csv``'s
    ``nan`` reads in the report), a rank that does not exist (undefined score) an empty cell (as in ``ranking.csv``).
    """
    s = sel.scorer
    peers = [x for x in sel.scorers if x != s]
    rows = []
    for c in sel.order[:k]:
        m, layer = sel.candidates[c]
        lo, hi = sel.intervals[s][c]
        value, interval = rounded(float(sel.values[s][c]), lo, hi)
        share = float(sel.shares[c])
        row: dict[str, Any] = {"rank": sel.rank_of(c) or "", "model": m, "layer": layer,
                               score_column(sel): f"{value} {interval}".strip(),
                               SHARE_COLUMN: format_number(share, ".2f") if np.isfinite(share) else UNDEFINED}
        row.update({f"{p} rank": sel.rank_of(c, p) or "" for p in peers})
        rows.append(row)
    return rows


def _full_rows(sel: Any) -> list[dict[str, Any]]:
    s = sel.scorer
    out = []
    for r in sel.table:
        lo, hi = r[f"{s}_lo"], r[f"{s}_hi"]
        out.append({"candidate": csv_cell(f"{r['model']}:{r['layer']}"), "rank": r["rank"],
                    "model": csv_cell(r["model"]), "layer": csv_cell(r["layer"]), s: r[s],
                    f"{int(LEVEL * 100)}% interval": rounded(r[s], lo, hi)[1], "p_best": r["p_best"],
                    **{k: v for k, v in r.items() if k not in ("rank", "model", "layer", s, "p_best")}})
    return out


def write_selection(sel: Any, out_dir: str | os.PathLike, *, extra: Mapping[str, Any] | None = None,
                    tables: Mapping[str, str] | None = None, summary: str | None = None) -> dict[str, Path]:
    """``ranking.csv`` / ``ranking.json`` / ``layers.csv`` / ``top.csv`` + ``select.png`` + ``manifest.json``."""
    from ..io.files import ensure_dir, write_csv, write_json
    from ..report.manifest import write_manifest

    out = ensure_dir(out_dir, "out")  # a file in the way: "out ...: exists and is not a folder"
    s = sel.scorer
    write_csv(out / "ranking.csv", _full_rows(sel))
    write_json(out / "ranking.json", sel.to_dict())
    layer_rows = []
    for m, info in sel.models.items():
        for i, layer in enumerate(info["layers"]):
            c = sel.candidates.index((m, layer))
            lo, hi = (float(v) for v in sel.intervals[s][c])
            layer_rows.append({"model": csv_cell(m), "depth": i + 1, "layer": csv_cell(layer),
                               s: float(sel.values[s][c]), "lo": lo, "hi": hi})
    write_csv(out / "layers.csv", layer_rows)
    write_csv(out / "top.csv", [{k: csv_cell(v) if k in ("model", "layer") else v for k, v in r.items()}
                                for r in top_rows(sel)])  # names escaped; the numbers' text ("-0.5 [...]") is data
    _figure(sel, out / FIGURE)
    c = sel.order[0]
    interval = rounded(float(sel.values[s][c]), *sel.intervals[s][c])[1]
    write_manifest(out, "select", title="depara select: which model and which layer to transfer",
                   summary=summary or sel.summary, settings=sel.settings,
                   tables={"top candidates": "top.csv", **(tables or {})}, figures={"candidates": FIGURE},
                   extra={"pick": f"{sel.best[0]}:{sel.best[1]}", "pick_model": sel.best[0],
                          "pick_layer": sel.best[1], "pick_interval": interval,
                          "pick_share_of_half_samples": None if not np.isfinite(sel.p_best) else round(sel.p_best, 2),
                          "share_means": SHARE_MEANING, "score_column": s, "scorer": s, "case": sel.case,
                          "too_close_to_call": [f"{a}:{b}" for a, b in sel.too_close],
                          "tied": [f"{a}:{b}" for a, b in sel.tied],
                          "interval": f"{int(LEVEL * 100)}% over probe half-samples "
                                      f"({sel.settings.get('n_boot')} of {sel.settings.get('half_sample_size')} "
                                      "probes each)",
                          "full_tables": ["ranking.csv", "ranking.json", "layers.csv"], **(extra or {})})
    return {"ranking": out / "ranking.csv", "json": out / "ranking.json", "layers": out / "layers.csv",
            "top": out / "top.csv", "candidates": out / FIGURE}


def _figure(sel: Any, path: Path) -> None:
    """Left: the top candidates with their intervals (pick green, too close orange); right: the model × layer
    heatmap of the ranking score (layers by depth; blank where a model has fewer layers or the score is
    undefined)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    from ..io.files import atomic_path
    from ..io.escape import plot_text

    s = sel.scorer
    order = sel.order[:min(TOP, sel.ranked)]
    models = list(sel.models)
    depth = max(len(info["layers"]) for info in sel.models.values())
    fig, (ax, hm) = plt.subplots(1, 2, figsize=(11, max(3.0, 0.38 * max(len(order), len(models)) + 1.6)),
                                 gridspec_kw={"width_ratios": [1.1, 1]})
    y = np.arange(len(order))[::-1]
    vals = np.array([sel.values[s][c] for c in order])
    iv = np.array([sel.intervals[s][c] for c in order]).reshape(-1, 2)
    err = np.vstack([vals - iv[:, 0], iv[:, 1] - vals])
    colors = ["tab:green" if i == 0 else ("tab:orange" if sel.candidates[c] in sel.too_close else "tab:blue")
              for i, c in enumerate(order)]
    ax.errorbar(vals, y, xerr=np.where(np.isfinite(err), err, 0), fmt="none", ecolor="grey", capsize=3)
    ax.scatter(vals, y, c=colors, zorder=3)
    ax.set_yticks(y, [plot_text(_name(sel, c)[:40]) for c in order], fontsize=8)
    ax.set_xlabel(f"{s} ({int(LEVEL * 100)}% interval over probes)")
    ax.set_title("top candidates: green = pick, orange = too close to call", fontsize=9)
    grid = np.full((len(models), depth), np.nan)
    for i, m in enumerate(models):
        for j, layer in enumerate(sel.models[m]["layers"]):
            grid[i, j] = sel.values[s][sel.candidates.index((m, layer))]
    im = hm.imshow(np.ma.masked_invalid(grid), aspect="auto", cmap="viridis")
    hm.set_yticks(np.arange(len(models)), [plot_text(m[:30]) for m in models], fontsize=8)
    hm.set_xticks(np.arange(depth), [str(d + 1) for d in range(depth)], fontsize=8)
    hm.set_xlabel("candidate layer (1 = shallowest)")
    bm, bl = sel.best
    hm.scatter([sel.models[bm]["layers"].index(bl)], [models.index(bm)], s=160, facecolors="none",
               edgecolors="red", linewidths=2)
    hm.set_title(f"{s} per model and layer (red ring = pick)", fontsize=9)
    fig.colorbar(im, ax=hm, fraction=0.046, pad=0.04)
    fig.tight_layout()
    with atomic_path(path, "figure") as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
