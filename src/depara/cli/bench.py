"""`depara bench taskbank`: the offline ground-truth model-selection benchmark (parsing only)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from .app import bench_app


def _check_run(out: Path, cache: Optional[Path], threads: int) -> None:
    """What every bench checks before minutes of training: the thread count, the output and cache folders."""
    from ..io.files import check_out_tree
    from ..errors import DeparaError

    if threads < 0:
        raise DeparaError(f"--threads {threads}: expected 0 (torch's default) or a positive count")
    check_out_tree(out, "--out")
    if cache is not None:
        check_out_tree(cache, "--cache")


@bench_app.command("taskbank")
def taskbank(
    out: Path = typer.Option(..., "--out", help="Results folder (created; CSV tables, PNG figures, manifest.json)."),
    scale: str = typer.Option("tiny", "--scale",
                              help="tiny (8 tasks, < 1 min, CI), demo (12 tasks, ~2 min, `depara demo`) or "
                                   "default (15 tasks, 5-20 min on 2 shared cores)."),
    seed: int = typer.Option(0, "--seed", min=0, help="Seed of scenes, training and probe crops."),
    cache: Optional[Path] = typer.Option(None, "--cache",
                                         help="Cache folder (default $DEPARA_CACHE or ~/.cache/depara)."),
    threads: int = typer.Option(1, "--threads", help="torch CPU threads during the run (0 = torch's default)."),
    quiet: bool = typer.Option(False, "--quiet", help="No progress lines."),
) -> None:
    """Train the procedural task bank (cached), measure transfer affinities, and score DEPARA, DEPARA-V/E,
    RSA, CKA and LogME against them (P@K, PR curve, rank correlations, node definitions, λ sweep, tree)."""
    from ..benches.taskbank.bench import run_bench

    _check_run(out, cache, threads)
    result = run_bench(scale, out, seed=seed, cache_dir=cache, progress=not quiet, threads=threads or None)
    typer.echo(result["summary"])
    typer.echo(f"results: {out}")


@bench_app.command("realbank")
def realbank(
    out: Path = typer.Option(..., "--out", help="Results folder (created; CSV tables, PNG figures, manifest.json)."),
    scale: str = typer.Option("tiny", "--scale",
                              help="tiny (3 targets, 4 sources, tests), demo (7 targets, 8 sources) or default "
                                   "(16 targets, 12 sources, 3 seeds)."),
    seed: int = typer.Option(0, "--seed", min=0, help="Seed of splits, training and fine-tuning (ground-truth seeds "
                                               "are seed, seed+1, ...)."),
    cache_dir: Optional[Path] = typer.Option(None, "--cache-dir", "--cache",
                                             help="Cache folder (default $DEPARA_CACHE or ~/.cache/depara)."),
    defaults: Optional[Path] = typer.Option(None, "--defaults",
                                            help="Defaults TOML to score instead of the frozen "
                                                 "defaults (default: the package's, as in configs/defaults.toml)."),
    threads: int = typer.Option(1, "--threads", help="torch CPU threads during the run (0 = torch's default)."),
    quiet: bool = typer.Option(False, "--quiet", help="No progress output."),
) -> None:
    """Real-image transfer bench: measure linear-probe and fine-tuning accuracy of a zoo of small sources on
    real-image targets (cached), score every peer and DEPARA variant from the labelled target set, and report rank
    quality with bootstrap intervals (the out-of-sample test of the frozen defaults)."""
    from ..benches.realbank.bench import run_realbank

    _check_run(out, cache_dir, threads)
    result = run_realbank(scale, out, seed=seed, cache_dir=cache_dir, progress=not quiet, threads=threads or None,
                          defaults_path=defaults)
    typer.echo(result["summary"])
    typer.echo(f"results: {out}")
