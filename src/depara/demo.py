"""`depara demo`: the whole job on embedded data, ending in a report.

Runs the procedural task bank (which source to transfer: DEPARA's ranking against measured transfer) and the
synthetic→real digits layer experiment (which layer to transfer) at their ``demo`` size, both from embedded
generators, then writes
a top-level manifest (kind ``demo``) and renders ``report.html`` / ``report.md`` over both. Expensive steps are
cached by the pipelines in ``cache_dir``, so a second run takes seconds.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any, Callable

from ._io import default_cache_dir, ensure_dir
from .errors import DeparaError
from .report import pick_and_truth, render_report
from .results import read_manifest, write_manifest

__all__ = ["run_demo", "DEMO_SCALE"]

#: The size the demo runs at: both pipelines' ``demo`` scale (12-task bank; VGG11-bn layer transfer on the 1/10
#: real split), 2-3 minutes on 2 shared CPU cores when nothing is cached. ``tiny`` (the CI smoke size) is noise.
DEMO_SCALE = "demo"
SECTIONS = ("taskbank", "layers")


def _load_pipelines() -> tuple[Callable[..., Any], Callable[..., Any]]:
    """The two pipelines, imported only when the demo runs (they pull in torch and the experiment code)."""
    try:
        from .taskbank import run_bench
        from .train import run_layers_demo
    except ImportError as exc:  # pragma: no cover - depends on the installation
        raise RuntimeError(f"depara demo needs depara.taskbank.run_bench and depara.train.run_layers_demo ({exc})"
                           ) from exc
    return run_bench, run_layers_demo


def run_demo(out: str | os.PathLike, *, seed: int = 0, cache_dir: str | os.PathLike | None = None,
             progress: bool = True) -> dict[str, Any]:
    """Run both pipelines at :data:`DEMO_SCALE` into ``out/taskbank`` and ``out/layers``; render ``out/report.html``.

    Returns a dict: ``summary`` (one line), ``taskbank`` / ``layers`` (each pipeline's returned dict),
    ``summaries`` (each pipeline's one-line pick), ``seconds`` (wall time per step) and ``report`` / ``markdown``
    (the paths written).
    """
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise DeparaError(f"--seed {seed!r}: expected a non-negative integer")
    out_dir = Path(out)
    if out_dir.exists() and not out_dir.is_dir():
        raise DeparaError(f"--out {out_dir}: exists and is not a folder")
    out_dir = ensure_dir(out_dir)
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    if cache.exists() and not cache.is_dir():
        raise DeparaError(f"--cache {cache}: exists and is not a folder")
    ensure_dir(cache)
    run_bench, run_layers_demo = _load_pipelines()
    say = _Narrator(progress)
    steps = {
        "taskbank": ("which source model: ranking the task bank against measured transfer", run_bench),
        "layers": ("which layer: synthetic→real digits, layer by layer", run_layers_demo),
    }
    results: dict[str, Any] = {}
    seconds: dict[str, float] = {}
    summaries: dict[str, str] = {}
    picks: dict[str, Any] = {}
    for i, name in enumerate(SECTIONS, start=1):
        what, pipeline = steps[name]
        say(f"[bold]step {i}/{len(SECTIONS) + 1}[/bold] {what}")
        start = time.perf_counter()
        results[name] = pipeline(DEMO_SCALE, out_dir / name, seed=seed, cache_dir=cache, progress=progress)
        seconds[name] = round(time.perf_counter() - start, 2)
        manifest = read_manifest(out_dir / name)
        summaries[name] = str(manifest.get("summary", ""))
        if _picks(manifest.get("extra")):
            picks[name] = _picks(manifest.get("extra"))
        say(f"  done in {seconds[name]:.1f} s: {summaries[name]}")
    summary = f"source: {summaries['taskbank']} | layer: {summaries['layers']}"
    say(f"[bold]step {len(SECTIONS) + 1}/{len(SECTIONS) + 1}[/bold] writing the report")
    write_manifest(
        out_dir, "demo", title="depara demo: which source model and which layer to transfer",
        summary=summary,
        settings={"scale": DEMO_SCALE, "seed": seed, "cache_dir": str(cache)},
        extra={"sections": list(SECTIONS), "picks": picks, "seconds": seconds},
    )
    files = render_report(out_dir)
    say(f"[bold green]report:[/bold green] {files.html}")
    return {"summary": summary, "summaries": summaries, "seconds": seconds, "report": files.html,
            "markdown": files.markdown, **results}


def _picks(extra: Any) -> dict[str, Any]:
    """``{"pick": ..., "truth_best": ...}`` from a pipeline manifest's extra, for what it names."""
    pick, truth = pick_and_truth(extra) if isinstance(extra, dict) else (None, None)
    return {k: v for k, v in (("pick", pick), ("truth_best", truth)) if v is not None}


class _Narrator:
    """One line per demo step on the console (the pipelines draw their own progress bars)."""

    def __init__(self, enabled: bool):
        self.console = None
        if enabled:
            from rich.console import Console

            self.console = Console(stderr=True)

    def __call__(self, text: str) -> None:
        if self.console is not None:
            self.console.print(text)
