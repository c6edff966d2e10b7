"""`depara cache info` / `verify` / `clear`: the content-addressed store of graphs and features."""

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


@cache_app.command("verify")
def verify(cache: Optional[Path] = typer.Option(None, "--cache", help=CACHE_HELP),
           remove: bool = typer.Option(False, "--remove", help="Delete the bad entries (the next run rebuilds "
                                       "them).")) -> None:
    """Check every entry against its check record (key, size, SHA-256); one line per bad entry, exit 1 if any."""
    store = _store(cache)
    n = len(store.entries())
    bad = store.verify(remove=remove)
    for path, problem in bad:
        typer.echo(f"bad: {path}: {problem}")
    typer.echo(f"checked {n} entries in {store.root}: {len(bad)} bad" + (", removed" if remove and bad else ""))
    if bad:
        raise typer.Exit(1)


@cache_app.command("clear")
def clear(cache: Optional[Path] = typer.Option(None, "--cache", help=CACHE_HELP)) -> None:
    """Delete every stored graph and feature array (other cached pipeline steps are kept)."""
    store = _store(cache)
    n = store.clear()
    typer.echo(f"removed {n} entries from {store.root}")
