"""Layer-transferability commands: `depara data split|shrink|synth-digits`, `depara train`, `depara transfer`,
`depara layers-select` and `depara demo layers`. Parsing only: the work is in :mod:`depara.benches.data` and
:mod:`depara.benches.layers`.
"""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Optional

import typer

from ..errors import DeparaError
from ..options import (DEFAULT_BATCH_SIZE, LAYER_SELECTION_OPTIONS, AttributionMethod, ChannelReduction, EdgeMetric,
                       Scalar, check_lam)
from ._flags import check_number, flags
from .app import BENCHES, app, data_app, demo_app

_LS = LAYER_SELECTION_OPTIONS


class Mode(str, Enum):
    link = "link"
    symlink = "symlink"
    copy = "copy"


class Scale(str, Enum):
    tiny = "tiny"
    demo = "demo"
    small = "small"


def _echo(text: str) -> None:
    typer.echo(text)


def _parse_lams(values: list[str]) -> list[float]:
    out: list[float] = []
    for v in values:
        for part in v.replace(",", " ").split():
            out.append(check_lam(part, "--lam"))  # NaN and negatives refused; inf: the edge term alone
    if not out:
        raise DeparaError("--lam: expected at least one value")
    return out


def _check_training_numbers(width: float | None = None, *, lr: float, momentum: float,
                            weight_decay: float) -> None:
    """The real-valued training options, before any data is read."""
    if width is not None:
        check_number("--width", width, strict=True)
    check_number("--lr", lr, strict=True)
    check_number("--momentum", momentum, high=1.0)
    check_number("--weight-decay", weight_decay)


def _parse_transfer(values: list[str]) -> dict[str, Path]:
    """``NAME=PATH`` or ``PATH`` (name = the folder's name) → {name: path}."""
    out: dict[str, Path] = {}
    for v in values:
        name, _, path = v.rpartition("=") if "=" in v else ("", "", v)
        p = Path(path)
        out[name or (p.name if p.is_dir() else p.parent.name)] = p
    return out


def _check_select_out(out: Path, source: str, target: Path, probes: Path, transfers: dict[str, Path]) -> None:
    """``layers-select --out`` before any work: a new, empty or results folder (it is replaced whole) whose parent
    exists, apart from every input (none inside it, it inside none)."""
    from ..io.files import check_results_out

    inputs = [("--target", target), ("--probes", probes), *(("--transfer", p) for p in transfers.values())]
    if source != "imagenet":
        inputs.append(("--source", Path(source)))
    check_results_out(out, "--out", inputs)


# ------------------------------------------------------------------------------------------------- data
@data_app.command("split")
def split_cmd(
    src: Path = typer.Argument(..., help="Domain folder of class subfolders (VisDA layout): SRC/<class>/<image>."),
    out: Path = typer.Option(..., "--out", help="Writes OUT/<domain>/{train,val,test}/<class>/."),
    ratios: str = typer.Option("7:2:1", "--ratios", help="train:val:test, parts of 10 or 100, or fractions of 1."),
    seed: int = typer.Option(0, "--seed", min=0),
    mode: Mode = typer.Option(Mode.link, "--mode", help="Hard links (copies across devices), symlinks or copies."),
    flat_test: bool = typer.Option(False, "--flat-test", help="Test images flat in test/ with test_labels.csv."),
    domain: Optional[str] = typer.Option(None, "--domain", help="Name of the output domain folder (default: SRC's)."),
    verify: bool = typer.Option(True, "--verify/--no-verify", help="Decode-check every image first."),
) -> None:
    """Split a domain folder per class into train/val/test, deterministically."""
    from ..benches.data import split_domain
    from ..io.files import check_out_tree

    check_out_tree(out, "--out")  # a file, or an unwritable folder: refused before any image is read

    with flags(ratios="--ratios"):
        r = split_domain(src, out, ratios=ratios, seed=seed, mode=mode.value, flat_test=flat_test, domain=domain,
                         verify=verify)
    totals = [sum(c[i] for c in r["counts"].values()) for i in range(3)]
    _echo(f"{r['path']}: {len(r['counts'])} classes, train {totals[0]}, val {totals[1]}, test {totals[2]}")


@data_app.command("shrink")
def shrink_cmd(
    data: Path = typer.Argument(..., help="A split domain folder (train/, val/, test/), e.g. OUT/real."),
    out: Path = typer.Option(..., "--out", help="Writes OUT/<domain>_<fraction>/ (tenth for 10, hundredth for 100)."),
    ratio: int = typer.Option(10, "--ratio", min=1, help="Keep 1/RATIO of each class's train images (at least one)."),
    seed: int = typer.Option(0, "--seed", min=0),
    mode: Mode = typer.Option(Mode.link, "--mode"),
) -> None:
    """Keep 1/RATIO of each class's train images; val and test unchanged."""
    from ..benches.data import shrink_domain
    from ..io.files import check_out_tree

    check_out_tree(out, "--out")  # a file, or an unwritable folder: refused before any image is read

    with flags(ratio="--ratio"):
        r = shrink_domain(data, out, ratio=ratio, seed=seed, mode=mode.value)
    _echo(f"{r['path']}: train keeps {sum(r['counts'].values())} images over {len(r['counts'])} classes")


@data_app.command("synth-digits")
def synth_digits_cmd(
    out: Path = typer.Option(..., "--out", help="Writes OUT/synthetic/<digit>/ and OUT/real/<digit>/."),
    synthetic_per_class: int = typer.Option(200, "--synthetic-per-class", min=1, help="Rendered images per digit."),
    real_per_class: Optional[int] = typer.Option(None, "--real-per-class", min=1,
                                                 help="Real digits per class (default all, ~180)."),
    size: int = typer.Option(32, "--size", min=1, help="Image side in pixels."),
    seed: int = typer.Option(0, "--seed", min=0),
) -> None:
    """An offline syn->real pair: digits rendered from matplotlib's fonts vs scikit-learn's real handwritten digits."""
    from ..benches.data import make_synth_digits
    from ..io.files import check_out_tree

    check_out_tree(out, "--out")  # a file, or an unwritable folder: refused before any image is read

    with flags(synthetic_per_class="--synthetic-per-class", real_per_class="--real-per-class", size="--size"):
        r = make_synth_digits(out, synthetic_per_class=synthetic_per_class, real_per_class=real_per_class, size=size,
                              seed=seed, progress=True)
    _echo(f"{r['synthetic']}: {r['counts']['synthetic']} images; {r['real']}: {r['counts']['real']} images")


# ------------------------------------------------------------------------------------------------- train
@app.command("train", rich_help_panel=BENCHES)
def train_cmd(
    data: Path = typer.Argument(..., help="Folder holding split domains: DATA/<domain>/{train,val}."),
    domain: str = typer.Option(..., "--domain", help="Domain to train on, e.g. synthetic or real."),
    out: Path = typer.Option(..., "--out", help="Run folder (re-running it resumes)."),
    arch: str = typer.Option("narrow_vgg11_bn", "--arch", help="vgg11_bn|vgg13_bn|vgg16_bn|vgg19_bn or narrow_<that>."),
    width: float = typer.Option(0.125, "--width", help="Channel width factor of narrow_* archs."),
    image_size: int = typer.Option(32, "--image-size", min=32, help="Image side (VGG's five 2×2 pools need "
                                    ">= 32)."),
    epochs: int = typer.Option(30, "--epochs", min=1),
    batch_size: int = typer.Option(128, "--batch-size", min=1),
    lr: float = typer.Option(0.01, "--lr", help="Initial learning rate (cosine annealed)."),
    momentum: float = typer.Option(0.9, "--momentum", help="Nesterov momentum."),
    weight_decay: float = typer.Option(5e-4, "--weight-decay"),
    augment: bool = typer.Option(True, "--augment/--no-augment", help="Random shifts of up to 2 pixels."),
    seed: int = typer.Option(0, "--seed", min=0),
) -> None:
    """Train a VGG-bn on one domain: log.csv per epoch, best/last checkpoints, resumable."""
    from ..benches.layers import train_domain

    _check_training_numbers(width=width, lr=lr, momentum=momentum, weight_decay=weight_decay)
    with flags(arch="--arch", width="--width", epochs="--epochs"):
        r = train_domain(data, domain, out, arch=arch, width=width, image_size=image_size, epochs=epochs,
                         batch_size=batch_size, lr=lr, momentum=momentum, weight_decay=weight_decay, augment=augment,
                         seed=seed)
    _echo(f"{r['run']}: best val accuracy {100 * r['best_val_acc']:.1f}% at epoch {r['best_epoch']}/{r['epochs']}")


@app.command("transfer", rich_help_panel=BENCHES)
def transfer_cmd(
    data: Path = typer.Argument(..., help="Folder holding DATA/<target>_<fraction>/{train,val,test}."),
    source: str = typer.Option(..., "--source", help="A `depara train` run folder, or 'imagenet'."),
    out: Path = typer.Option(..., "--out"),
    fraction: str = typer.Option("tenth", "--fraction", help="tenth | hundredth | 1of<N> (from `depara data shrink`)."),
    target: str = typer.Option("real", "--target", help="Target domain name."),
    arch: str = typer.Option("vgg19_bn", "--arch", help="Architecture of an ImageNet source."),
    depth: Optional[list[int]] = typer.Option(None, "--depth", min=1,
                                             help="Depths to run (repeat); default all 1..L-1."),
    image_size: Optional[int] = typer.Option(None, "--image-size", min=32, help="Default: the source's "
                                                "(VGG's five 2×2 pools need >= 32)."),
    epochs: int = typer.Option(30, "--epochs", min=1),
    batch_size: int = typer.Option(128, "--batch-size", min=1),
    lr: float = typer.Option(0.01, "--lr"),
    momentum: float = typer.Option(0.9, "--momentum"),
    weight_decay: float = typer.Option(5e-4, "--weight-decay"),
    eval_every: int = typer.Option(1, "--eval-every", min=1, help="Validate every N epochs (test acc at best val)."),
    augment: bool = typer.Option(True, "--augment/--no-augment"),
    seed: int = typer.Option(0, "--seed", min=0),
) -> None:
    """For every depth k: a fresh model, layers 1..k copied (with batch norm) and frozen, the rest fine-tuned."""
    from ..benches.layers import transfer_layers, write_transfer_results

    _check_training_numbers(lr=lr, momentum=momentum, weight_decay=weight_decay)
    with flags(arch="--arch", fraction="--fraction", epochs="--epochs"):
        rows = transfer_layers(data, source, out, target=target, fraction=fraction, arch=arch, depths=depth,
                               image_size=image_size, epochs=epochs, batch_size=batch_size, lr=lr,
                               momentum=momentum, weight_decay=weight_decay, augment=augment,
                               eval_every=eval_every, seed=seed)
    summary = write_transfer_results(rows, out, title=f"{source} → {target}_{fraction}",
                                     settings={"data": str(data), "source": source, "fraction": fraction,
                                               "target": target, "arch": arch, "epochs": epochs, "lr": lr,
                                               "seed": seed})
    _echo(f"{out}/transfer.csv: {summary}")


def _print_layer_table(result: dict) -> None:
    """The layers best first by the primary score (the first λ), accuracies where known, then the pick in one line."""
    from ..benches.layers.select import score_lam
    from ._table import print_ranking

    rows = result["rows"]
    scores = [k for k in rows[0] if score_lam(k) is not None]
    accs = [k for k in rows[0] if k.startswith("acc_") and not k.endswith("_std")]
    ranked = sorted(rows, key=lambda r: -float(r[scores[0]]))
    # Short headers so the table fits an 80-column terminal: "S λ=1", accuracies in % by fraction name.
    names = {k: f"S λ={score_lam(k):g}" for k in scores} | {k: f"{k[4:]} %" for k in accs}
    table = [{"k": f"#{r['depth']}", "layer": r["layer"], "V": r["V"], "E": r["E"],
              **{names[k]: r[k] for k in scores}, **{names[k]: 100 * float(r[k]) for k in accs}} for r in ranked]
    columns = ["k", "layer", "V", "E", *(names[k] for k in scores), *(names[k] for k in accs)]
    title = f"Layers by DEPARA ({names[scores[0]]})" + (", transfer test accuracy %" if accs else "")
    print_ranking(table, columns, title=title, pick_line=result["summary"])


@app.command("layers-select", rich_help_panel=BENCHES)
def layers_select_cmd(
    source: str = typer.Option(..., "--source", help="Source run folder / checkpoint, or 'imagenet'."),
    target: Path = typer.Option(..., "--target", help="Run folder / checkpoint of the target-domain model."),
    probes: Path = typer.Option(..., "--probes", help="Folder of probe images (read recursively)."),
    out: Path = typer.Option(..., "--out"),
    lam: list[str] = typer.Option(["1", "10"], "--lam", help="λ values: repeat, or '1,10'."),
    transfer: Optional[list[str]] = typer.Option(None, "--transfer",
                                                 help="[NAME=]transfer folder/CSV with accuracies (repeat)."),
    source_arch: str = typer.Option("vgg19_bn", "--source-arch", help="Architecture of an ImageNet source."),
    method: AttributionMethod = typer.Option(_LS.method, "--method"),
    scalar: Scalar = typer.Option(_LS.scalar, "--scalar", help="Original layer selection: mean."),
    channel_reduction: ChannelReduction = typer.Option(_LS.channel_reduction, "--channel-reduction"),
    center: bool = typer.Option(_LS.center, "--center/--no-center", help="Centre features before cosine edges."),
    edge: EdgeMetric = typer.Option(_LS.edge, "--edge"),
    batch_size: int = typer.Option(DEFAULT_BATCH_SIZE, "--batch-size", min=1),
    peers: bool = typer.Option(False, "--peers/--no-peers",
                               help="Also score each layer with LogME, H-score, TransRate, RSA, CKA; write OUT/peers/."),
) -> None:
    """Per layer k: DEPARA between the source at layer k and the target-domain model's logits."""
    from ..benches.layers import layers_select

    transfers = _parse_transfer(transfer or [])
    _check_select_out(out, source, target, probes, transfers)
    if peers:  # check the peers' inputs before the DEPARA work
        from ..benches.layers.peers import resolve_target_data

        if not transfers:
            raise DeparaError("--peers: needs --transfer NAME=FOLDER (the accuracies to compare the scores against)")
        with flags(transfer="--transfer"):
            target_data = resolve_target_data(transfers)
    options = LAYER_SELECTION_OPTIONS.replace(method=method, scalar=scalar, channel_reduction=channel_reduction,
                                              center=center, edge=edge)
    with flags(lams="--lam", transfer="--transfer", accuracies="--transfer", arch="--source-arch"):
        r = layers_select(source, target, probes, out, lams=_parse_lams(lam), transfer=transfers,
                          source_arch=source_arch, options=options, batch_size=batch_size)
    _print_layer_table(r)
    if peers:
        from ..benches.layers.peers import score_layers_with_peers

        with flags(accuracies="--transfer", transfer="--transfer", arch="--source-arch"):
            p = score_layers_with_peers(source, target, probes, transfers, target_data=target_data,
                                        layer_scores=Path(out) / "layer_scores.csv", out=Path(out) / "peers",
                                        source_arch=source_arch, progress=True)
        _echo(f"{p['out']}: {p['summary']}")


# ------------------------------------------------------------------------------------------------- demo
@demo_app.command("layers")
def demo_layers_cmd(
    ctx: typer.Context,
    scale: Scale = typer.Option(Scale.tiny, "--scale", help="tiny: seconds, checks the chain; demo: ~1 min "
                                "(`depara demo`'s size); small: ~30 min, results."),
    out: Path = typer.Option(..., "--out"),
    seed: int = typer.Option(0, "--seed", min=0),
    cache_dir: Optional[Path] = typer.Option(None, "--cache-dir", help="Default $DEPARA_CACHE or ~/.cache/depara."),
    quiet: bool = typer.Option(False, "--quiet", help="No progress bars."),
    peers_out: Optional[Path] = typer.Option(None, "--peers-out",
                                             help="Also compare LogME, H-score, TransRate, RSA, CKA per layer here."),
) -> None:
    """The whole layer-selection experiment on synth-digits: data, training, transfer, DEPARA per layer."""
    from ..benches.layers import run_layers_demo

    parent_quiet = bool(ctx.parent is not None and ctx.parent.params.get("quiet"))
    with flags(scale="--scale"):
        r = run_layers_demo(scale.value, out, seed=seed, cache_dir=cache_dir, progress=not (quiet or parent_quiet),
                            peers_out=peers_out)
    if "peers" in r:
        _echo(f"{peers_out}: {r['peers']}")
    _echo(f"{r['out']}: {r['summary']} ({r['seconds']:.0f} s)")
