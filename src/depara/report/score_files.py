"""Writing a ``score`` results folder: tables, figures and the manifest of one scoring run.

Kept apart from the numbers (:mod:`depara.estimators.scoring`) so the numeric core never imports matplotlib.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping, Sequence

from ..estimators.scoring import ScoreTable, as_truth, summary_line

__all__ = ["write_results"]


def write_results(out: str | os.PathLike, table: ScoreTable, evaluation: Sequence[Mapping[str, Any]] | None = None,
                  *, truth=None, settings: Mapping[str, Any] | None = None,
                  title: str = "Transferability estimators side by side") -> dict[str, Path]:
    """Write ``scores.csv/json``, ``evaluation.csv/json`` (with truth), bar charts and ``manifest.json`` (kind
    ``"score"``) into ``out``. Returns name → path of everything written."""
    from ..io.files import ensure_dir, write_csv, write_json
    from .plots.harness import plot_method_agreement, plot_source_scores
    from .manifest import write_manifest

    out_dir = ensure_dir(out)
    paths: dict[str, Path] = {}
    tables: dict[str, str] = {}
    figures: dict[str, str] = {}
    paths["scores_csv"] = write_csv(out_dir / "scores.csv", table.rows())
    payload = table.to_dict()
    if truth is not None:
        payload["truth"] = dict(zip(table.sources, as_truth(truth, table.sources).tolist()))
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
