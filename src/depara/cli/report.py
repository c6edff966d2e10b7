"""`depara report RESULTS_DIR` and `depara demo` (the `demo layers` subcommand lives in cli/layers.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.markup import escape

from .app import app, demo_app


@app.command("report")
def report(
    results_dir: Path = typer.Argument(..., help="A depara results folder (it holds a manifest.json)."),
    out: Optional[Path] = typer.Option(None, "--out",
                                       help="Where to write report.html and report.md (default: RESULTS_DIR)."),
) -> None:
    """Render a results folder into one self-contained HTML page (figures embedded) and a Markdown summary."""
    from ..io.files import check_out_tree
    from ..report.html import render_report

    check_out_tree(out if out is not None else results_dir, "--out")
    files = render_report(results_dir, out)
    console = Console()
    if files.summary:
        console.print(f"[bold green]→[/bold green] [bold]{escape(files.summary)}[/bold]")
    console.print(f"wrote {escape(str(files.html))} and {escape(str(files.markdown))}")


@demo_app.callback(invoke_without_command=True)
def demo(
    ctx: typer.Context,
    out: Path = typer.Option(Path("depara-demo"), "--out", help="Folder for the results and report.html."),
    seed: int = typer.Option(0, "--seed", min=0, help="Seed of every random step."),
    cache: Optional[Path] = typer.Option(None, "--cache",
                                         help="Cache folder (default: $DEPARA_CACHE, else ~/.cache/depara)."),
    quiet: bool = typer.Option(False, "--quiet", help="No progress bars."),
) -> None:
    """Run `depara select` end to end on embedded data (real handwritten digits, a zoo depara trains) beside the
    measured ground truth, then write a report. A few minutes the first time, seconds after."""
    if ctx.invoked_subcommand is not None:
        return
    from ..benches.demo import run_demo

    result = run_demo(out, seed=seed, cache_dir=cache, progress=not quiet)
    console = Console()
    for name, line in result["summaries"].items():
        console.print(f"[bold green]→[/bold green] [bold]{escape(name)}:[/bold] {escape(line)}")
    console.print(f"report: {escape(str(result['report']))}")
