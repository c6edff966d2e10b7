"""`depara select DATA --models ... | --zoo ...`: which model and which layer to transfer. Parses and calls
:func:`depara.selection.job.select` only."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ..errors import DeparaError
from ..options import (DEFAULT_BATCH_SIZE, DEFAULT_FEATURE_MEMORY_MB, SELECT_MAX_PROBES, SELECT_N_BOOT,
                       SELECT_PEER_BOOT)
from ..selection.scorers import DEFAULT_SCORER
from ._flags import flags
from .app import app, demo_app


#: Arguments of depara.select → the flags of `depara select` (errors name what the user typed).
_SELECT_FLAGS = dict(models="--models", target_model="--target-model", layers="--layers", protocol="--protocol",
                     scorers="--scorers", probes="--probes", seed="--seed", n_boot="--n-boot", device="--device",
                     batch_size="--batch-size", feature_memory_mb="--feature-memory-mb", engine="--engine",
                     address="--address", out="--out", cache_dir="--cache", cache_readonly="--cache-readonly",
                     skip_failed="--skip-failed")


def _split(values: list[str] | None) -> list[str]:
    return [p.strip() for v in (values or []) for p in v.split(",") if p.strip()]


@app.command("select")
def select_cmd(
    data: Path = typer.Argument(..., help="Your images: a folder of class sub-folders (labels), a flat folder of "
                                "images, or an image-list file."),
    models: Optional[list[str]] = typer.Option(None, "--models", help="Candidate models, SPEC or SPEC@WEIGHTS "
                                               "(comma list or repeated): torchvision:resnet18@DEFAULT, "
                                               "timm:<name>@DEFAULT, file:net.pt (.pt2, .onnx)."),
    zoo: Optional[Path] = typer.Option(None, "--zoo", help="A zoo file (TOML) listing the candidates instead."),
    target_model: Optional[str] = typer.Option(None, "--target-model", help="A model trained on your task "
                                               "(SPEC or SPEC@WEIGHTS): enables DEPARA proper."),
    layers: Optional[list[str]] = typer.Option(None, "--layers", help="auto (default: each stage's output), all, or "
                                               "layer names (comma list or repeated)."),
    protocol: str = typer.Option("finetune", "--protocol", help="finetune|linear: how you will transfer."),
    scorers: Optional[list[str]] = typer.Option(None, "--scorers", help="Scorers to compute (comma list or "
                                                "repeated; default: every applicable one without a node term). "
                                                "depara_v adds attribution maps (backward passes; depara = E at λ = ∞). The "
                                                "ranking one is always computed: "
                                                f"{DEFAULT_SCORER[('labels', 'finetune')]} with labels, "
                                                f"{DEFAULT_SCORER[('target_model', 'finetune')]} with only "
                                                "--target-model."),
    probes: int = typer.Option(SELECT_MAX_PROBES, "--probes", help="Use at most this many of the images."),
    seed: int = typer.Option(0, "--seed", min=0, help="Seed of the probe draw, the half-samples and the random "
                      "initialisation of models without weights."),
    n_boot: int = typer.Option(SELECT_N_BOOT, "--n-boot", help="Probe half-samples for the intervals and the share won "
                               "(0: none)."),
    peer_boot: int = typer.Option(SELECT_PEER_BOOT, "--peer-boot", help="Half-samples for the intervals of the "
                                  "peers that do not rank (each a fit per candidate; default 0: ranks only; at most "
                                  "--n-boot)."),
    out: Optional[Path] = typer.Option(None, "--out", help="Write the results folder and report.html here."),
    device: Optional[str] = typer.Option(None, "--device", help="cpu, cuda, cuda:1, ... (default: cpu)."),
    cache: Optional[Path] = typer.Option(None, "--cache", help="Cache folder (default $DEPARA_CACHE, else "
                                         "~/.cache/depara)."),
    cache_readonly: bool = typer.Option(False, "--cache-readonly", help="Read the cache, write nothing to it; an "
                                        "entry that fails its check is refused instead of rebuilt."),
    batch_size: int = typer.Option(DEFAULT_BATCH_SIZE, "--batch-size", help="Probes per forward+backward pass."),
    feature_memory_mb: float = typer.Option(DEFAULT_FEATURE_MEMORY_MB, "--feature-memory-mb", help="RAM budget for features (MiB)."),
    quiet: bool = typer.Option(False, "--quiet", help="No progress bars."),
    engine: str = typer.Option("local", "--engine", help="local (this process) or ray (one Ray task per model; "
                               "the cache must be on a filesystem every node sees)."),
    address: Optional[str] = typer.Option(None, "--address", help="With --engine ray: auto or HOST:PORT of a Ray "
                                          "cluster (default: a private local runtime)."),
    skip_failed: bool = typer.Option(False, "--skip-failed", help="Leave out a candidate model that fails (named "
                                     "with its error in the summary and the report) instead of stopping."),
) -> None:
    """Rank every (model, layer) for transfer to your images, with 95% half-sample intervals; print the pick."""
    from ..io.files import check_results_out
    from ..selection.job import select

    if (models is None) == (zoo is None):
        raise DeparaError("models: give candidate models with --models SPEC[,SPEC...] or --zoo ZOO.toml "
                          "(exactly one of them)")
    if out is not None:  # the one path select() does not take: writable, apart from the data, before any work
        check_results_out(out, "--out", [("data", data)])
    names = _split(layers)
    layer_arg: object = "auto" if not names else (names[0] if len(names) == 1 and names[0] in ("auto", "all")
                                                  else names)
    try:
        with flags(**_SELECT_FLAGS):
            sel = select(data, zoo if zoo is not None else _split(models), target_model=target_model,
                         layers=layer_arg, protocol=protocol, probes=probes, scorers=_split(scorers) or None,
                         seed=seed, n_boot=n_boot, peer_boot=peer_boot, cache_dir=cache, device=device,
                         batch_size=batch_size, feature_memory_mb=feature_memory_mb, progress=not quiet,
                         engine=engine, address=address, cache_readonly=cache_readonly,
                         skip_failed=skip_failed)
    except DeparaError as exc:  # a failed candidate's error names the option to skip it: name the flag
        raise DeparaError(str(exc).replace("skip_failed=True", "--skip-failed")) from None
    from ..io.escape import visible
    from ..selection.report import top_rows
    from ._table import print_ranking

    rows = [{k.removesuffix(" rank"): v for k, v in r.items()} for r in top_rows(sel, k=len(sel.candidates))]
    print_ranking(rows, list(rows[0]), title=f"(model, layer) ranked by {sel.scorer} — "
                  f"{sel.case.replace('_', ' ')} case; other scorers: their rank", pick_line=sel.summary,
                  numbered=False)
    if out is not None:
        files = sel.report(out)
        typer.echo(visible(f"wrote {out}/ranking.csv, ranking.json, layers.csv, top.csv and {files.html}"))


@demo_app.command("benchmarks")
def demo_benchmarks(
    out: Path = typer.Option(Path("depara-demo-benchmarks"), "--out", help="Folder for the results and report.html."),
    seed: int = typer.Option(0, "--seed", min=0, help="Seed of every random step."),
    cache: Optional[Path] = typer.Option(None, "--cache",
                                         help="Cache folder (default: $DEPARA_CACHE, else ~/.cache/depara)."),
    quiet: bool = typer.Option(False, "--quiet", help="No progress bars."),
) -> None:
    """The two benchmarks at demo size: which source (procedural task bank) and which layer (synthetic→real
    digits), against measured transfer, in one report."""
    from rich.console import Console

    from ..benches.demo import run_benchmark_demo
    from ..io.escape import terminal as escape

    result = run_benchmark_demo(out, seed=seed, cache_dir=cache, progress=not quiet)
    console = Console()
    for name, line in result["summaries"].items():
        console.print(f"[bold green]→[/bold green] [bold]{escape(name)}:[/bold] {escape(line)}")
    console.print(f"report: {escape(str(result['report']))}")
