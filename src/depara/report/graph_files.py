"""Outputs of comparing and ranking saved graphs (``depara compare`` / ``depara rank``): tables, the one-line pick,
CSV/JSON files and the ``rank`` results folder (ranking.csv, ranking.png, manifest.json).

The numbers come from :mod:`depara.core.similarity`; this module only arranges and writes them.
"""

from __future__ import annotations

import math

import os
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from ..core.similarity import RankRow, SimilarityMatrices
from ..evaluation.uncertainty import format_number

__all__ = ["most_similar_pair", "write_similarity_csv", "ranking_table", "pick_line", "ranking_document",
           "write_rank_results"]


def most_similar_pair(mats: SimilarityMatrices) -> tuple[int, int]:
    """(i, j), i ≠ j, of the largest off-diagonal S (the first in row-major order among equals)."""
    s = np.array(mats.S, dtype=np.float64, copy=True)
    np.fill_diagonal(s, -np.inf)
    i, j = divmod(int(s.argmax()), s.shape[0])
    return i, j


def write_similarity_csv(path: str | os.PathLike, mats: SimilarityMatrices) -> Path:
    """The S, V and E matrices in one CSV: columns ``matrix, name, <one per graph>`` (written atomically)."""
    from ..io.files import write_csv

    rows = [[key, name, *getattr(mats, key)[i].tolist()] for key in ("S", "V", "E")
            for i, name in enumerate(mats.names)]
    return write_csv(path, rows, header=["matrix", "name", *mats.names])


def ranking_table(rows: Sequence[RankRow]) -> list[dict[str, Any]]:
    """Rows ``rank, source, S, V, E`` (rank 1 = best), for tables and CSV."""
    return [{"rank": k + 1, "source": r.name, "S": r.S, "V": r.V, "E": r.E} for k, r in enumerate(rows)]


def pick_line(rows: Sequence[RankRow], target_name: str, lam: float) -> str:
    """One line: the source to pick for the target and its S = V + λ·E."""
    best = rows[0]
    s, v, e = (format_number(x, ".4f") for x in (best.S, best.V, best.E))  # half away from zero, as every report
    if math.isinf(lam) or math.isnan(best.V):  # the edge term alone (λ = ∞) or a node-less graph
        return f"pick source '{best.name}' for target '{target_name}' (S = {s}, E {e})"
    return f"pick source '{best.name}' for target '{target_name}' (S = {s} = V {v} + {lam:g}·E {e})"


def ranking_document(rows: Sequence[RankRow], *, target: str, target_name: str, lam: float, n_probes: int
                     ) -> dict[str, Any]:
    """The JSON record of a ranking."""
    return {"target": str(target), "target_name": target_name, "lam": lam, "n_probes": n_probes,
            "pick": rows[0].name, "summary": pick_line(rows, target_name, lam), "ranking": ranking_table(rows)}


def write_rank_results(out: str | os.PathLike, rows: Sequence[RankRow], *, target_name: str,
                       settings: Mapping[str, Any], lam: float) -> Path:
    """A ``rank`` results folder: ``ranking.csv``, ``ranking.png`` (:func:`depara.report.plots.ranking.plot_ranking`)
    and ``manifest.json``, written as a whole (:func:`depara.report.manifest.write_results_folder`)."""
    from ..io.files import write_csv
    from .manifest import write_manifest, write_results_folder
    from .plots.ranking import plot_ranking

    def write(folder: Path) -> Path:
        write_csv(folder / "ranking.csv", ranking_table(rows))
        plot_ranking(rows, folder / "ranking.png", lam=lam, title="DEPARA source ranking", target=target_name)
        write_manifest(folder, "rank", title=f"Sources ranked for target '{target_name}'",
                       summary=pick_line(rows, target_name, lam), settings=dict(settings),
                       tables={"ranking": "ranking.csv"}, figures={"ranking": "ranking.png"},
                       extra={"pick": rows[0].name, "target": target_name})
        return folder

    return write_results_folder(out, write)
