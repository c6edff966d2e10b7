"""`depara layers` (module names with output shapes) and `depara extract` (DEPARA graphs of a model).

Both only parse arguments and call :mod:`depara.extraction.models`, :mod:`depara.extraction.probes` and
:mod:`depara.extraction.extract`.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Optional

import typer

from ..io.files import check_out_path, ensure_dir, seed_everything
from ..errors import DeparaError
from ._flags import flags
from ..options import (DEFAULT_BATCH_SIZE, DEFAULT_FEATURE_MEMORY_MB, DEFAULT_GRAPH_OPTIONS, DEFAULT_NODE_SIZE,
                       AttributionMethod, ChannelReduction, EdgeMetric, GraphOptions)
from ..options import Scalar as OptScalar
from .app import GRAPHS, app

# The option enums and THE defaults shared with the Python API (depara.options).
Method, Scalar, Reduction, Edge = AttributionMethod, OptScalar, ChannelReduction, EdgeMetric
_D = DEFAULT_GRAPH_OPTIONS


def _weights(value: Optional[str]) -> Optional[str]:
    return None if value is None or value.lower() in ("none", "") else value


@app.command("layers", rich_help_panel=GRAPHS)
def layers(
    model: str = typer.Argument(..., help="Model spec: torchvision:<name>, timm:<name> or file:<path>[?arch=<name>]."),
    input_size: tuple[int, int, int] = typer.Option((3, 224, 224), "--input-size", help="Input C H W."),
    weights: Optional[str] = typer.Option(None, "--weights", help="None, DEFAULT, a weights name or a file."),
) -> None:
    """List the model's module names (usable as --layer) with their output shapes; "auto" marks the candidates
    `depara select --layers auto` tries."""
    from rich.console import Console
    from rich.table import Table

    from ..extraction.layers_auto import auto_layers
    from ..extraction.models import list_layers, load_model
    from ..io.escape import terminal

    net = load_model(model, weights=_weights(weights))
    modules = dict(net.named_modules())
    try:
        with flags(input_size="--input-size"):
            layer_shapes = list_layers(net, input_size)
    except DeparaError as exc:  # name the model too: "model file:x.pt: --input-size (3, 16, 16): ..."
        raise DeparaError(f"model {model}: {exc}") from None
    try:
        auto = set(auto_layers(net, input_size))
    except DeparaError:  # no child modules to offer: select needs named layers; the listing still shows them
        auto = set()
    table = Table(title=terminal(f"{model} — input {' × '.join(map(str, input_size))}"),  # a path may hold "[red]"
                  caption="auto: a candidate of depara select --layers auto (the default)")
    for column in ("layer", "type", "output shape", "auto"):
        table.add_column(column)
    for name, shape in layer_shapes:
        kind = type(modules[name]).__name__ if name in modules else "output"
        table.add_row(terminal(name), terminal(kind), "—" if shape is None else " × ".join(map(str, shape)),
                      "auto" if name in auto else "")
    Console(width=120).print(table)


def _probe_set(probes: Path, root: Optional[Path], preprocess: str):
    from ..extraction.probes import ProbeSet

    if probes.is_dir():
        if root is not None:
            raise DeparaError(f"--root: only used with an image-list file, but --probes {probes} is a folder")
        return ProbeSet.from_folder(probes, preprocess=preprocess)
    if probes.is_file():
        return ProbeSet.from_list(probes, root, preprocess=preprocess)
    raise DeparaError(f"--probes {probes}: no such folder or image-list file")


def _layer_file(layer: str) -> str:
    """A file name for a layer's graph: ``features.3`` → ``features.3.safetensors``."""
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", layer) or "output"
    return f"{safe}.safetensors"


@app.command("extract", rich_help_panel=GRAPHS)
def extract(
    model: str = typer.Argument(..., help="Model spec: torchvision:<name>, timm:<name> or file:<path>[?arch=<name>]."),
    probes: Path = typer.Option(..., "--probes", help="Probe image folder (recursive) or image-list file."),
    layer: list[str] = typer.Option(..., "--layer", help="Module name (see `depara layers`); repeat for several."),
    out: Path = typer.Option(..., "--out", help="Graph file (.safetensors) for one layer; a folder for several."),
    root: Optional[Path] = typer.Option(None, "--root", help="Root folder of the image-list entries "
                                        "(default: the list file's folder)."),
    preprocess: str = typer.Option("imagenet", "--preprocess", help="imagenet | taskonomy | WxH[:mean:std]."),
    weights: Optional[str] = typer.Option(None, "--weights", help="None, DEFAULT, a weights name or a file."),
    method: Method = typer.Option(_D.method, "--method", help="Attribution method."),
    scalar: Scalar = typer.Option(_D.scalar, "--scalar", help="Per-image scalar of the layer output (default "
                                  "l2: the node definition that carried signal on the task bank)."),
    channel_reduction: Reduction = typer.Option(_D.channel_reduction, "--channel-reduction",
                                                help="Colour-channel reduction of the maps."),
    edge: Edge = typer.Option(_D.edge, "--edge", help="Edge metric (correlation = RSA variant)."),
    center: bool = typer.Option(_D.center, "--center/--no-center", help="Centre features over the probes."),
    node_size: int = typer.Option(DEFAULT_NODE_SIZE, "--node-size", help="Node grid (square); 0 = input size."),
    batch_size: int = typer.Option(DEFAULT_BATCH_SIZE, "--batch-size", help="Probes per batch."),
    feature_memory_mb: int = typer.Option(int(DEFAULT_FEATURE_MEMORY_MB), "--feature-memory-mb",
                                          help="Features kept in RAM until the graphs are built; larger layers "
                                               "spill to a temporary file (0 = all on disk)."),
    device: Optional[str] = typer.Option(None, "--device", help="cpu, cuda, cuda:1 ... (default cpu)."),
    seed: int = typer.Option(0, "--seed", min=0, help="Random seed."),
    engine: str = typer.Option("local", "--engine", help="local (this process) or ray (a Ray task; graphs go "
                               "through the --store; see docs/ray.md)."),
    address: Optional[str] = typer.Option(None, "--address", help="With --engine ray: auto or HOST:PORT of a Ray "
                                          "cluster (default: a private local Ray runtime)."),
    store: Optional[Path] = typer.Option(None, "--store", help="With --engine ray: the graph store folder, on a "
                                         "filesystem every node mounts (default $DEPARA_CACHE/store)."),
    probes_per_task: Optional[int] = typer.Option(None, "--probes-per-task", min=1,
                                                  help="With --engine ray: one Ray task "
                                                  "per shard of this many probes (rounded up to whole batches), "
                                                  "then one joining them; default: one task for all probes."),
) -> None:
    """Build the DEPARA graph(s) of MODEL at --layer on a probe set and save them."""
    from ..extraction.extract import build_graphs
    from ..extraction.models import load_model

    layers = list(dict.fromkeys(layer))
    if node_size < 0:
        raise DeparaError(f"--node-size: expected 0 (input size) or a positive integer, got {node_size}")
    options = GraphOptions(method=method, scalar=scalar, channel_reduction=channel_reduction, node_size=node_size,
                           center=center, edge=edge)
    # Check the destination before spending minutes on extraction.
    check_out_path(out, "--out")
    if len(layers) == 1 and not out.is_dir():
        targets = {layers[0]: out}
    else:
        if out.exists() and not out.is_dir():
            raise DeparaError(f"--out {out}: several layers need a folder, but {out} is a file")
        targets = {name: out / _layer_file(name) for name in layers}
        if len(set(targets.values())) < len(targets):
            raise DeparaError("--layer: two layer names map to the same file name in --out")
    if engine != "local":
        _extract_on_engine(model, probes, root, layers, targets, out, preprocess=preprocess, weights=weights,
                           method=method.value, scalar=scalar.value, channel_reduction=channel_reduction.value,
                           edge=edge.value, center=center, node_size=node_size, batch_size=batch_size,
                           feature_memory_mb=feature_memory_mb, device=device, seed=seed, engine=engine,
                           address=address, store=store, probes_per_task=probes_per_task)
        return
    if probes_per_task is not None:
        raise DeparaError("--probes-per-task: only with --engine ray (the local path runs every probe here)")
    seed_everything(seed)
    with flags(preprocess="--preprocess", batch_size="--batch-size", feature_memory_mb="--feature-memory-mb",
               device="--device", node_size="--node-size"):
        probe_set = _probe_set(probes, root, preprocess)
        net = load_model(model, weights=_weights(weights), seed=seed)
        graphs = build_graphs(
            net, probe_set, layers, options, batch_size=batch_size, device=device or "cpu", progress=True,
            feature_memory_mb=feature_memory_mb,
            meta={"model": model, "weights": _weights(weights), "probes": str(probes), "seed": seed})
    if len(layers) > 1 or out.is_dir():
        ensure_dir(out)
    from ..core.edges import attach_edge_ranks

    for name, g in graphs.items():
        attach_edge_ranks(g).save(targets[name])
        typer.echo(f"{targets[name]}: {len(g)} probes, {g.nodes.shape[1]} node values, layer {name}")


def _extract_on_engine(model: str, probes: Path, root: Optional[Path], layers: list[str], targets: dict, out: Path,
                       *, engine: str, address: Optional[str], store: Optional[Path], weights: Optional[str],
                       node_size: int, device: Optional[str], probes_per_task: Optional[int] = None,
                       **options) -> None:
    """`depara extract --engine ray`: one job through depara.extraction.engine; the graphs are read back from the
    store."""
    from ..extraction.engine import Job, extract_graphs
    from ..extraction.store import GraphStore

    job = Job(model, tuple(layers), str(probes.resolve()), weights=_weights(weights),
              probe_root=str(root.resolve()) if root is not None else None, node_size=node_size or None,
              device=device or "cpu", **options)
    graph_store = GraphStore(store.expanduser().resolve() if store is not None else None)
    result = extract_graphs([job], graph_store, engine=engine, address=address,
                            probes_per_task=probes_per_task)[job.key]
    if not result.ok:
        raise DeparaError(f"model {model}: {result.error}")
    if len(layers) > 1 or out.is_dir():
        ensure_dir(out)
    for name, key in result.graphs.items():
        g = graph_store.get(key)
        g.save(targets[name])
        typer.echo(f"{targets[name]}: {len(g)} probes, {g.nodes.shape[1]} node values, layer {name} "
                   f"(store key {key})")
