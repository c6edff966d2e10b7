"""`depara taskonomy matrices|plot` and `depara tree`: parse arguments, call depara.benches.taskonomy /
depara.core.tree."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

import typer

from .app import GRAPHS, app, taskonomy_app


def _cache_dir(cache: Optional[Path], out: Path) -> Path:
    if cache is not None:
        return cache
    return out / "cache"


def _remove_empty_tree(root: Path) -> None:
    """Remove ``root`` and its sub-folders, bottom up, where they hold no file (anything written stays)."""
    import os

    if not root.is_dir():
        return
    for folder, _, _ in sorted(os.walk(root), key=lambda t: -len(t[0])):
        try:
            os.rmdir(folder)  # only succeeds on an empty folder
        except OSError:
            pass


@taskonomy_app.command("matrices")
def matrices(
    features: Path = typer.Option(..., "--features", help="Root holding <task>/task_feature.npy (N×D) per task."),
    attributions: Optional[Path] = typer.Option(
        None, "--attributions", help="Root holding <task>/<attribution file> (N×H×W×C); default: the features root."),
    attribution_file: str = typer.Option("gradXinput.npy", "--attribution-file", help="Attribution file name."),
    tasks: Optional[Path] = typer.Option(
        None, "--tasks", help="Task list (one per line); default <features>/tasks.txt, else sorted task folders."),
    lam: float = typer.Option(0.25, "--lam", help="λ of DEPARA = V + λE (the paper: 0.25 on Taskonomy probes)."),
    channel_reduction: str = typer.Option("mean", "--channel-reduction",
                                          help="Attribution channel reduction: mean (signed), abs_mean, none."),
    out: Path = typer.Option(..., "--out", help="Output folder for V/E/RSA/DEPARA CSVs."),
    cache: Optional[Path] = typer.Option(None, "--cache", help="Graph cache folder (default <out>/cache)."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress bar."),
) -> None:
    """Build each task's graph once (cached) and write the task-by-task V, E, RSA and DEPARA(λ) matrices."""
    from ..benches import taskonomy
    from ..io.files import check_results_out
    from ..options import check_lam

    check_lam(lam, "--lam")
    check_results_out(out, "--out", [("--features", features)], keep=("cache",))  # its default cache kept
    fresh = not out.exists()
    try:
        m = taskonomy.compute_matrices(features, attributions_root=attributions, attribution_file=attribution_file,
                                       tasks_file=tasks, lam=lam, cache_dir=_cache_dir(cache, out),
                                       channel_reduction=channel_reduction, progress=progress)
    except BaseException:
        if fresh:  # bad input: leave no empty --out (or <out>/cache) folder behind
            _remove_empty_tree(out)
        raise
    res = taskonomy.write_matrices_results(
        m, out, settings={"features": str(features), "attributions": str(attributions or features),
                          "attribution_file": attribution_file, "lam": lam, "channel_reduction": channel_reduction,
                          "tasks": str(tasks) if tasks else None})
    typer.echo(f"wrote {len(res['files'])} matrices for {len(m.names)} tasks to {out}{res['note']}")


@taskonomy_app.command("plot")
def plot(
    matrices_dir: Path = typer.Option(..., "--matrices", help="Folder written by `depara taskonomy matrices`."),
    truth: Path = typer.Option(
        ..., "--truth",
        help="Folder with tasks.txt + sort_gt_18x20.csv, or a labelled target×source matrix CSV (affinities)."),
    published: Optional[Path] = typer.Option(None, "--published",
                                             help="Published hits(K) CSV (method,K1,...) drawn as points."),
    relevant: int = typer.Option(5, "--relevant", min=1, help="Relevant set size per target (top sources by truth)."),
    tree_method: str = typer.Option("average", "--tree-method", help="Linkage method of the task tree."),
    label: str = typer.Option("", "--label", help="Text prepended to figure titles (e.g. the data's provenance)."),
    out: Path = typer.Option(..., "--out", help="Output folder."),
) -> None:
    """Score the matrices against the truth: hits/P@K/R@K CSVs, PR curve, P@K curve, λ sweep, tree, manifest."""
    from ..benches import taskonomy
    from ..io.files import check_results_out

    check_results_out(out, "--out", [("--matrices", matrices_dir)])
    m = taskonomy.read_matrices(matrices_dir)
    names, t = taskonomy.load_truth(truth)
    from ..evaluation.published import read_published_hits

    pub = read_published_hits(published) if published is not None else None
    res = taskonomy.evaluate_matrices(m, names, t, out, relevant=relevant, published=pub, tree_method=tree_method,
                                      label=label,
                                      settings={"matrices": str(matrices_dir), "truth": str(truth),
                                                "published": str(published) if published else None})
    typer.echo(res["summary"])
    typer.echo(f"results in {out}")


@app.command("tree", rich_help_panel=GRAPHS)
def tree(
    matrix: Path = typer.Option(..., "--matrix", help="Labelled square similarity CSV (e.g. DEPARA.csv)."),
    out: Path = typer.Option(..., "--out", help="Dendrogram PNG."),
    method: str = typer.Option("average", "--method", help="Linkage: average, single, complete, weighted, ward, ..."),
    heatmap: Optional[Path] = typer.Option(None, "--heatmap", help="Also draw a heatmap PNG here."),
) -> None:
    """Task similarity tree: hierarchical clustering of the symmetrised similarity matrix (scipy)."""
    from ..io.files import check_out_file
    from ..evaluation.rank_quality import read_matrix_csv
    from ..report.plots.ranking import draw_tree

    check_out_file(out, "--out")
    if heatmap is not None:
        check_out_file(heatmap, "--heatmap")
    names, m = read_matrix_csv(matrix)
    draw_tree(names, m, out, method=method, title=f"Task similarity tree: {os.path.basename(str(matrix))} ({method} "
              "linkage)", heatmap=heatmap, heatmap_title=f"Task similarity: {os.path.basename(str(matrix))}")
    typer.echo(f"wrote {out}" + (f" and {heatmap}" if heatmap is not None else ""))
