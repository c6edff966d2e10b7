"""`depara cache info` / `depara cache clear`: the content-addressed store of graphs and features."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from .app import cache_app

CACHE_HELP = "Cache folder (default $DEPARA_CACHE, else ~/.cache/depara); the store is its store/ folder."


def _store(cache: Optional[Path]):
    from ..errors import DeparaError
    from ..io.readers import exists
    from ..extraction.store import GraphStore

    if cache is not None and exists(cache) and not cache.is_dir():
        raise DeparaError(f"--cache {cache}: exists and is not a folder")
    return GraphStore(cache / "store" if cache is not None else None)


@cache_app.command("info")
def info(cache: Optional[Path] = typer.Option(None, "--cache", help=CACHE_HELP)) -> None:
    """Where the store is, how many entries of each kind, and their size."""
    data = _store(cache).info()
    typer.echo(f"store: {data['root']}")
    typer.echo(f"entries: {data['entries']} ({data['bytes'] / 2**20:.1f} MiB)")
    for kind, k in sorted(data["kinds"].items()):
        typer.echo(f"  {kind}: {k['entries']} ({k['bytes'] / 2**20:.1f} MiB)")


@cache_app.command("clear")
def clear(cache: Optional[Path] = typer.Option(None, "--cache", help=CACHE_HELP)) -> None:
    """Delete every stored graph and feature array (other cached pipeline steps are kept)."""
    store = _store(cache)
    n = store.clear()
    typer.echo(f"removed {n} entries from {store.root}")
