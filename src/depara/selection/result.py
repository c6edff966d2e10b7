"""The answer of ``depara select``: :class:`Selection` (the pick, the table, the sentence, the results folder)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from ..evaluation.uncertainty import SHARE_MEANING

__all__ = ["Selection"]


# ================================================================================================ selection
@dataclass
class Selection:
    """The answer of :func:`select`: every (model, layer) scored, ranked by :attr:`scorer`, with intervals.

    Attributes
    ----------
    candidates : list of (model, layer), in model then depth order.
    scorers : the scorers computed; scorer : the one of them that ranks.
    values : scorer → float array (C,) point estimates (all probes); NaN where a score is undefined.
    intervals : scorer → float array (C, 2), the 95 % interval over probe half-samples (:mod:`depara.evaluation.uncertainty`);
        (nan, nan) for an undefined score, without resamples, or for a peer without ``peer_boot``.
    order : candidate indices, the ``ranked`` candidates with a defined score best first, then the undefined ones.
    ranked : how many candidates have a defined score (and a rank).
    shares : (C,) share of probe half-samples in which each candidate ranks first by ``scorer`` (ties split;
        NaN for an undefined score or without resamples). It reflects probe resampling only: what it is worth on
        a bench is measured by ``benchmarks/calibration.py`` (docs/select.md).
    p_best : the pick's share.
    tied : candidates whose score equals the pick's; too_close : those tied with it or whose interval overlaps
        the pick's ("too close to call").
    notes : one-line remarks of the run (e.g. a scorer left out).
    case : "target_model" or "labels"; settings : every option used; models : per-model details.
    data_path : the data folder or list file given (None for a ProbeSet): results are never written into it.
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
    shares: np.ndarray | None = field(default=None, repr=False)
    ranked: int | None = None
    tied: list[tuple[str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    data_path: Any = field(default=None, repr=False)  # the data folder / list given (results are kept apart from it)

    def __post_init__(self) -> None:
        if self.ranked is None:
            self.ranked = int(sum(np.isfinite(self.values[self.scorer][c]) for c in self.order))
        if self.shares is None:
            self.shares = np.full(len(self.candidates), np.nan)

    @property
    def best(self) -> tuple[str, str]:
        """The pick: (model name, layer name)."""
        return self.candidates[self.order[0]]

    def rank_of(self, c: int, scorer: str | None = None) -> int | None:
        """Candidate ``c``'s rank (1 = best) by ``scorer`` (default: the ranking one); None when its score is
        undefined. Equal scores share the best rank of their group (competition ranking)."""
        v = self.values[scorer or self.scorer]
        if not np.isfinite(v[c]):
            return None
        return int(np.sum(np.isfinite(v) & (v > v[c]))) + 1

    @property
    def table(self) -> list[dict[str, Any]]:
        """One row per candidate, best first: rank (None when undefined), model, layer, ``p_best`` (its share of
        half-samples won), then per scorer value, ``_lo``, ``_hi``."""
        rows = []
        for c in self.order:
            model, layer = self.candidates[c]
            row: dict[str, Any] = {"rank": self.rank_of(c), "model": model, "layer": layer,
                                   "p_best": float(self.shares[c])}
            for s in [self.scorer] + [x for x in self.scorers if x != self.scorer]:
                row[s] = float(self.values[s][c])
                row[f"{s}_lo"], row[f"{s}_hi"] = (float(v) for v in self.intervals[s][c])
            rows.append(row)
        return rows

    @property
    def summary(self) -> str:
        """The sentence: what to pick, how sure, what is too close to call (:func:`depara.selection.report.sentence`)."""
        from .report import sentence

        return sentence(self)

    def to_dict(self) -> dict[str, Any]:
        return {"best": {"model": self.best[0], "layer": self.best[1]}, "scorer": self.scorer, "case": self.case,
                "p_best": self.p_best, "p_best_means": SHARE_MEANING, "too_close": [list(t) for t in self.too_close],
                "tied": [list(t) for t in self.tied], "notes": self.notes, "summary": self.summary,
                "scorers": self.scorers, "ranking": self.table, "settings": self.settings, "models": self.models}

    def write(self, out_dir: str | os.PathLike, *, extra: Mapping[str, Any] | None = None,
              tables: Mapping[str, str] | None = None, summary: str | None = None) -> dict[str, Path]:
        """``ranking.csv`` / ``ranking.json`` / ``layers.csv`` / ``top.csv`` + one figure + ``manifest.json``
        into ``out_dir`` (:func:`depara.selection.report.write_selection`)."""
        from ..io.files import check_apart
        from ..report.manifest import write_results_folder

        check_apart(out_dir, "out", self.data_path, whole=True)  # results never go into (or around) the data
        return write_results_folder(out_dir, lambda out: self.write_into(out, extra=extra, tables=tables,
                                                                          summary=summary))

    def write_into(self, out: Path, *, extra: Mapping[str, Any] | None = None,
                   tables: Mapping[str, str] | None = None, summary: str | None = None) -> dict[str, Path]:
        """The files of :meth:`write` into the existing folder ``out`` (not atomic: for writers that put more
        into one results folder and write it whole with :func:`depara.report.manifest.write_results_folder`)."""
        from .report import write_selection

        return write_selection(self, out, extra=extra, tables=tables, summary=summary)

    def report(self, out_dir: str | os.PathLike, **write_options: Any):
        """Write the results folder (:meth:`write`) and render ``report.html`` / ``report.md`` in it."""
        from ..report.html import render_report

        self.write(out_dir, **write_options)
        return render_report(out_dir)
