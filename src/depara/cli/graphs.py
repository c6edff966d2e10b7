"""`depara compare` (V/E/S matrices of several graph files) and `depara rank` (sources ranked for a target).

Both only parse arguments, load graphs and call :mod:`depara.core.similarity` and :mod:`depara.report.graph_files`.
"""

from __future__ import annotations

import math

from pathlib import Path
from typing import Optional

import typer

from ..io.files import check_out_file, check_results_out, write_csv, write_json
from ..errors import DeparaError
from ..core.graph import Graph
from ..evaluation.uncertainty import format_number
from ..options import DEFAULT_LAMBDA, format_lam
from .app import GRAPHS, app

GRAPH_SUFFIX = ".safetensors"


def _graph_names(paths: list[Path]) -> list[str]:
    """File stems, or the paths as given where two stems collide ('#i' appended to a file given twice)."""
    stems = [p.name[: -len(GRAPH_SUFFIX)] if p.name.endswith(GRAPH_SUFFIX) else p.stem for p in paths]
    names = [str(p) if stems.count(s) > 1 else s for p, s in zip(paths, stems)]
    return [f"{n}#{i}" if names.count(n) > 1 else n for i, n in enumerate(names)]


def _load_all(paths: list[Path], what: str) -> list[Graph]:
    from tqdm import tqdm

    return [Graph.load(p) for p in tqdm(paths, desc=f"loading {what}", unit="graph", leave=False,
                                        disable=None if len(paths) > 20 else True)]


def _check_optional_out(path: Optional[Path], option: str) -> None:
    if path is not None:
        check_out_file(path, option)


@app.command("compare", rich_help_panel=GRAPHS)
def compare(
    graphs: list[Path] = typer.Argument(..., help="Graph files (.safetensors) built on the same probe set."),
    lam: float = typer.Option(DEFAULT_LAMBDA, "--lam", help="λ in S = V + λE; inf (the default, frozen node weight 0): S = E, the edge term alone."),
    out: Optional[Path] = typer.Option(None, "--out", help="CSV with the S, V and E matrices (columns: matrix, "
                                       "name, one column per graph)."),
) -> None:
    """Similarity matrices (node V, edge E, total S = V + λE) of several DEPARA graphs."""
    from rich.console import Console
    from rich.table import Table

    from ..io.escape import terminal
    from ..report.graph_files import most_similar_pair, write_similarity_csv
    from ..report.html import format_cell
    from ..core.similarity import similarity_matrix

    if len(graphs) < 2:
        raise DeparaError(f"compare: give at least two graph files, got {len(graphs)}")
    _check_optional_out(out, "--out")
    names = _graph_names(graphs)
    mats = similarity_matrix(dict(zip(names, _load_all(graphs, "graphs"))), lam=lam)
    if out is not None:
        write_similarity_csv(out, mats)

    console = Console()
    table = Table(title="S = E (λ = ∞)" if math.isinf(lam) else f"S = V + {lam:g}·E", header_style="bold cyan")
    table.add_column("graph")
    for name in names:  # names as given: file stems may hold markup ("a[red]")
        table.add_column(terminal(name), justify="right")
    for i, name in enumerate(names):
        table.add_row(terminal(name), *[format_cell(float(x)) for x in mats.S[i]])  # as every table: NaN in words
    console.print(table)
    i, j = most_similar_pair(mats)
    v = f"V = {format_number(mats.V[i, j], '.4f')}" if math.isfinite(mats.V[i, j]) else \
        "V undefined (a graph without nodes)"
    console.print(terminal(f"most similar pair: {names[i]} ~ {names[j]} (S = {format_number(mats.S[i, j], '.4f')}, "
                           f"{v}, E = {format_number(mats.E[i, j], '.4f')})"
                           + (f"; matrices written to {out}" if out is not None else "")))


def _source_files(sources: Path, target: Path) -> list[Path]:
    if not sources.exists():
        raise DeparaError(f"--sources {sources}: folder not found")
    if not sources.is_dir():
        raise DeparaError(f"--sources {sources}: not a folder (expected a folder of {GRAPH_SUFFIX} graph files)")
    target_resolved = target.resolve()
    files = sorted(p for p in sources.iterdir() if p.is_file() and p.name.endswith(GRAPH_SUFFIX)
                   and p.resolve() != target_resolved)
    if not files:
        raise DeparaError(f"--sources {sources}: no {GRAPH_SUFFIX} graph files (other than the target) in the folder")
    return files


@app.command("rank", rich_help_panel=GRAPHS)
def rank(
    target: Path = typer.Option(..., "--target", help="Graph file of the target model/task."),
    sources: Path = typer.Option(..., "--sources", help=f"Folder of source graph files (*{GRAPH_SUFFIX})."),
    lam: float = typer.Option(DEFAULT_LAMBDA, "--lam", help="λ in S = V + λE; inf (the default, frozen node weight 0): S = E, the edge term alone."),
    csv: Optional[Path] = typer.Option(None, "--csv", help="Write the ranking as CSV (rank, source, S, V, E)."),
    json: Optional[Path] = typer.Option(None, "--json", help="Write the ranking as JSON."),
    out: Optional[Path] = typer.Option(None, "--out", help="Results folder: ranking.csv, ranking.png, "
                                       "manifest.json (created; its parent must exist)."),
) -> None:
    """Rank source graphs by DEPARA similarity S = V + λE to a target graph, best first."""
    from ..report.graph_files import pick_line, ranking_document, ranking_table, write_rank_results
    from ..core.similarity import rank_sources
    from ._table import print_ranking

    _check_optional_out(csv, "--csv")
    _check_optional_out(json, "--json")
    if out is not None:
        check_results_out(out, "--out")
    files = _source_files(sources, target)
    target_graph = Graph.load(target)
    names = _graph_names(files)
    rows = rank_sources(dict(zip(names, _load_all(files, "sources"))), target_graph, lam=lam)

    target_name = _graph_names([target])[0]
    table_rows = ranking_table(rows)
    print_ranking(table_rows, ["source", "S", "V", "E"], title=f"Sources for target '{target_name}' (λ = {format_lam(lam)})",
                  pick_line=pick_line(rows, target_name, lam))
    if csv is not None:
        write_csv(csv, table_rows)
    if json is not None:
        write_json(json, ranking_document(rows, target=str(target), target_name=target_name, lam=lam,
                                          n_probes=target_graph.n_probes))
    if out is not None:
        write_rank_results(out, rows, target_name=target_name, lam=lam,
                           settings={"target": str(target), "sources": str(sources), "lam": lam,
                                     "n_sources": len(rows), "n_probes": target_graph.n_probes,
                                     "edge": target_graph.meta.get("edge")})
