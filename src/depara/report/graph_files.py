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
    if math.isinf(lam) or math.isnan(best.V):  # the edge term alone (λ = ∞) or a node-less graph
        return f"pick source '{best.name}' for target '{target_name}' (S = {best.S:.4f}, E {best.E:.4f})"
    return (f"pick source '{best.name}' for target '{target_name}' (S = {best.S:.4f} = V {best.V:.4f} "
            f"+ {lam:g}·E {best.E:.4f})")


def ranking_document(rows: Sequence[RankRow], *, target: str, target_name: str, lam: float, n_probes: int
                     ) -> dict[str, Any]:
    """The JSON record of a ranking."""
    return {"target": str(target), "target_name": target_name, "lam": lam, "n_probes": n_probes,
            "pick": rows[0].name, "summary": pick_line(rows, target_name, lam), "ranking": ranking_table(rows)}


def write_rank_results(out: str | os.PathLike, rows: Sequence[RankRow], *, target_name: str,
                       settings: Mapping[str, Any], lam: float) -> Path:
    """A ``rank`` results folder: ``ranking.csv``, ``ranking.png`` (:func:`depara.report.plots.ranking.plot_ranking`)
    and ``manifest.json``. ``out`` is created (its parent must exist)."""
    from ..io.files import ensure_dir, write_csv
    from .plots.ranking import plot_ranking
    from .manifest import write_manifest

    out = ensure_dir(out)
    write_csv(out / "ranking.csv", ranking_table(rows))
    plot_ranking(rows, out / "ranking.png", lam=lam, title="DEPARA source ranking", target=target_name)
    pick = pick_line(rows, target_name, lam)
    write_manifest(out, "rank", title=f"Sources ranked for target '{target_name}'", summary=pick,
                   settings=dict(settings), tables={"ranking": "ranking.csv"}, figures={"ranking": "ranking.png"},
                   extra={"pick": rows[0].name, "target": target_name})
    return out
