"""`depara bench taskbank`: the offline ground-truth model-selection benchmark (parsing only)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from .app import bench_app


@bench_app.command("taskbank")
def taskbank(
    out: Path = typer.Option(..., "--out", help="Results folder (created; CSV tables, PNG figures, manifest.json)."),
    scale: str = typer.Option("tiny", "--scale",
                              help="tiny (8 tasks, < 1 min, CI), demo (12 tasks, ~2 min, `depara demo`) or "
                                   "default (15 tasks, 5-20 min on 2 shared cores)."),
    seed: int = typer.Option(0, "--seed", help="Seed of scenes, training and probe crops."),
    cache: Optional[Path] = typer.Option(None, "--cache",
                                         help="Cache folder (default $DEPARA_CACHE or ~/.cache/depara)."),
    threads: int = typer.Option(1, "--threads", help="torch CPU threads during the run (0 = torch's default)."),
    quiet: bool = typer.Option(False, "--quiet", help="No progress lines."),
) -> None:
    """Train the procedural task bank (cached), measure transfer affinities, and score DEPARA, DEPARA-V/E,
    RSA, CKA and LogME against them (P@K, PR curve, rank correlations, node definitions, λ sweep, tree)."""
    from .._io import check_out_tree
    from ..errors import DeparaError
    from ..taskbank.bench import run_bench

    if threads < 0:
        raise DeparaError(f"--threads {threads}: expected 0 (torch's default) or a positive count")
    check_out_tree(out, "--out")  # before minutes of training
    if cache is not None:
        check_out_tree(cache, "--cache")
    result = run_bench(scale, out, seed=seed, cache_dir=cache, progress=not quiet, threads=threads or None)
    typer.echo(result["summary"])
    typer.echo(f"results: {out}")
