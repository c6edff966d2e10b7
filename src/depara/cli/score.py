"""`depara score`: every registered transferability estimator (LogME, LEEP, NCE, H-score, TransRate, RSA, CKA,
DEPARA) on the same sources and target data, with an optional ground-truth evaluation. Parses and calls
:mod:`depara.selection.harness` and :mod:`depara.selection.targets` only; library errors name arguments, mapped here
to flags."""

from __future__ import annotations

import re
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Optional

import typer

from ..io.files import seed_everything
from ..errors import DeparaError
from ..estimators.registry import estimator_names
from ..options import DEFAULT_LAMBDA
from ._flags import flags
from .app import ESTIMATORS, app

METHOD_HELP = (f"{'|'.join(estimator_names())}|all (repeatable or a comma list; default every default estimator "
               "the inputs allow)")


def _split(values: list[str] | None) -> list[str]:
    return [p.strip() for v in (values or []) for p in v.split(",") if p.strip()]


def _named(spec: str) -> tuple[str, str]:
    """``NAME=SPEC`` → (NAME, SPEC) (NAME has no ':' or '/'); a bare SPEC is named after its model / file stem."""
    head, sep, rest = spec.partition("=")
    if sep and head and ":" not in head and "/" not in head:
        return head, rest
    if sep and not head:
        raise DeparaError(f"--sources: empty name in {spec!r}")
    kind, _, value = spec.rpartition(":") if spec.startswith(("torchvision:", "timm:", "file:")) else ("", "", spec)
    return (Path(value).stem if kind in ("file", "") else value), spec


@app.command("score", rich_help_panel=ESTIMATORS)
def score(
    method: Optional[list[str]] = typer.Option(None, "--method", "-m", help=METHOD_HELP),
    sources: list[str] = typer.Option(..., "--sources", "-s", help="Candidate sources, repeatable or comma list: "
                                      "[NAME=]torchvision:<arch> | timm:<arch> | file:<path> (models, with "
                                      "image --target-data) or [NAME=]<file>.npz holding 'features' (N×D) and "
                                      "optionally 'probs' (N×Cs source-head softmax) on the target samples."),
    target_data: Path = typer.Option(..., "--target-data", help="Folder of class subfolders of images (labels = "
                                     "sorted subfolder index), or an .npz with 'labels' (N) or 'targets' (N×T, "
                                     "--regression) and optionally 'features' (target-model features, the rsa/cka "
                                     "reference)."),
    out: Path = typer.Option(..., "--out", help="Results folder (scores/evaluation CSV+JSON, PNG, manifest.json)."),
    truth: Optional[Path] = typer.Option(None, "--truth", help="Ground truth per source (e.g. fine-tuned "
                                         "accuracy): CSV with 'source' + value column, or JSON {source: value}."),
    target_model: Optional[str] = typer.Option(None, "--target-model", help="Model trained on the target task "
                                               "(spec as --sources): rsa/cka reference and DEPARA target graph."),
    probes: Optional[Path] = typer.Option(None, "--probes", help="Probe image folder for DEPARA graphs "
                                          "(default: --max-probes target images drawn with --seed)."),
    graph: Optional[list[str]] = typer.Option(None, "--graph", help="Precomputed DEPARA graph NAME=PATH.safetensors "
                                              "per source (npz mode)."),
    target_graph: Optional[Path] = typer.Option(None, "--target-graph", help="Precomputed target graph (npz mode)."),
    regression: bool = typer.Option(False, "--regression", help="Targets are real-valued (logme, rsa, cka)."),
    lam: float = typer.Option(DEFAULT_LAMBDA, "--lam", help="λ of DEPARA's S = V + λE; inf (the default, frozen node weight 0): S = E."),
    feature_layer: Optional[str] = typer.Option(None, "--feature-layer", help="Module whose output is the "
                                                "feature (default: input of the last nn.Linear)."),
    graph_layer: Optional[str] = typer.Option(None, "--graph-layer", help="Module of the DEPARA graphs "
                                              "(default: each model's last nn.Linear)."),
    preprocess: str = typer.Option("imagenet", "--preprocess", help="imagenet | taskonomy | WxH[:mean:std]: how "
                                   "models without their own preprocessing see the images."),
    source_preprocess: Optional[list[str]] = typer.Option(None, "--source-preprocess", help="NAME=SPEC (repeatable): "
                                                          "one source's own preprocessing, e.g. a 256 px model beside "
                                                          "224 px ones (default: the model's declared one, else "
                                                          "--preprocess)."),
    target_preprocess: Optional[str] = typer.Option(None, "--target-preprocess", help="The target model's own "
                                                    "preprocessing (default as a source)."),
    max_probes: int = typer.Option(500, "--max-probes", min=2, help="Without --probes: DEPARA probes are this "
                                   "many target images drawn with --seed."),
    batch_size: int = typer.Option(64, "--batch-size", min=1, help="Images per forward pass."),
    ks: str = typer.Option("1,3,5", "--ks", help="K values of P@K, comma list."),
    device: Optional[str] = typer.Option(None, "--device", help="cpu, cuda, cuda:1, ... (default: cpu)."),
    seed: int = typer.Option(0, "--seed", min=0, help="Seed of the probe draw and of the models built "
                                 "without weights."),
) -> None:
    """Score candidate sources for a target with every transferability estimator; evaluate against --truth."""
    from ..selection import harness
    from ..io.files import check_results_out
    from ..options import check_lam

    check_lam(lam, "--lam")
    if target_data.suffix.lower() != ".npz" and target_data.is_file():
        raise DeparaError(f"--target-data {target_data}: expected a folder of class subfolders or an .npz file "
                          f"(got a {target_data.suffix or 'suffix-less'} file)")
    seed_everything(seed)
    with flags(methods="--method"):
        methods = harness.parse_methods(_split(method)) if method else None
    check_results_out(out, "--out", [("--target-data", target_data)])
    specs, truth_values, k_values = _checked_sources_truth_ks(sources, truth, ks)
    settings: dict[str, Any] = {"methods": methods or "all", "sources": dict(specs), "target_data": str(target_data),
                                "target_model": target_model, "regression": regression, "lam": lam, "seed": seed,
                                "feature_layer": feature_layer, "graph_layer": graph_layer, "ks": k_values,
                                "truth": str(truth) if truth else None}
    if target_data.suffix.lower() == ".npz":
        result_table, evaluation = _score_npz(specs, target_data, methods, regression, lam, graph, target_graph,
                                              truth_values, k_values)
        harness.write_results(out, result_table, evaluation, truth=truth_values, settings=settings)
    else:
        result_table, evaluation = _score_images(
            specs, target_data, out, settings, methods=methods, regression=regression, target_model=target_model,
            probes=probes, truth=truth_values, feature_layer=feature_layer, graph_layer=graph_layer, lam=lam,
            ks=k_values, batch_size=batch_size, device=device, seed=seed, max_probes=max_probes,
            preprocess=preprocess, source_preprocess=source_preprocess, target_preprocess=target_preprocess)
    _print_results(result_table, evaluation, out)


def _checked_sources_truth_ks(sources: list[str], truth: Path | None, ks: str
                              ) -> tuple[list[tuple[str, str]], Any, list[int]]:
    """(named source specs, truth values or None, the K values) of the flags, each checked (DeparaError naming
    the flag)."""
    from ..selection import targets

    specs = [_named(s) for s in _split(sources)]
    if not specs:
        raise DeparaError("--sources: give at least one source")
    names = [n for n, _ in specs]
    if len(set(names)) != len(names):
        raise DeparaError(f"--sources: duplicate source name among {', '.join(names)} (use NAME=SPEC)")
    with flags(path="--truth"):
        truth_values = targets.read_truth(truth) if truth is not None else None
    try:
        k_values = [int(k) for k in ks.split(",") if k.strip()]
    except ValueError:
        raise DeparaError(f"--ks: expected a comma list of integers, got {ks!r}") from None
    if not k_values or min(k_values) < 1:
        raise DeparaError(f"--ks: expected a comma list of integers >= 1 (the K of P@K), got {ks!r}")
    return specs, truth_values, k_values


def _score_images(specs: list[tuple[str, str]], target_data: Path, out: Path, settings: dict[str, Any], *,
                  target_model: str | None, probes: Path | None, seed: int, max_probes: int, preprocess: str,
                  source_preprocess: list[str] | None, target_preprocess: str | None, **run: Any):
    """``depara score`` on a folder of labelled images: load the models, draw the probes, run the harness (``run``:
    the harness's other options). Returns (score table, evaluation rows)."""
    from ..selection import harness, targets

    bad = [s for _, s in specs if s.endswith(".npz")]
    if bad:
        raise DeparaError(f"--sources {bad[0]}: precomputed .npz sources need an .npz --target-data")
    with flags(root="--target-data"):
        images, labels, class_names = targets.labelled_images(target_data, preprocess)
    settings.update(preprocess=preprocess, classes=class_names, n_images=int(len(labels)))
    # each model without weights is built right after torch.manual_seed(seed), as select does: its weights do
    # not depend on the order of --sources
    models = {name: _seeded_model(spec, seed) for name, spec in specs}
    tgt = _seeded_model(target_model, seed) if target_model else None
    probe_set = None
    if tgt is not None:
        from ..extraction.probes import ProbeSet

        if probes is not None:
            probe_set = ProbeSet.from_folder(probes, preprocess)
        else:  # probes: a seeded subset of the target images
            with flags(max_probes="--max-probes"):
                probe_set = targets.probe_subset(images, max_probes, seed)
            settings["probes"] = f"{len(probe_set)} target images (seed {seed})"
    # Each model sees the images through its own preprocessing: --source-preprocess, else the model's
    # declared one, else --preprocess.
    per_source = {}
    for item in _split(source_preprocess):
        name, sep, spec = item.partition("=")
        if not sep or name not in models:
            raise DeparaError(f"--source-preprocess {item!r}: expected NAME=SPEC with NAME one of "
                              f"{', '.join(models)}")
        per_source[name] = spec
    settings.update(source_preprocess=per_source, target_preprocess=target_preprocess)
    with flags(preprocess="--source-preprocess"), _own_preprocessing_hint():
        res = harness.run_harness(models, images, labels, target_model=tgt, probes=probe_set, out=out,
                                  settings=settings, progress=True, preprocess=per_source or None,
                                  target_preprocess=target_preprocess, **run)
    return res.table, res.evaluation


def _print_results(result_table, evaluation, out: Path) -> None:
    """The score table, the agreement with --truth (when given) and the summary line, on the console."""
    from rich.console import Console
    from rich.table import Table

    from ..io.escape import terminal
    from ..report.html import format_cell
    from ..selection import harness

    def cell(value: Any) -> str:  # names as given (markup escaped), numbers as the report shows them (NaN: undefined)
        return terminal(value if isinstance(value, str) else format_cell(value))

    console = Console()
    tab = Table(title="transferability scores (higher = better)", header_style="bold cyan")
    tab.add_column("source")
    for m in result_table.methods:
        tab.add_column(m, justify="right")
    for row in result_table.rows():
        tab.add_row(cell(row["source"]), *[cell(row[m]) for m in result_table.methods])
    console.print(tab)
    if evaluation:
        ev = Table(title="agreement with --truth", header_style="bold cyan")
        cols = ["method", "kendall", "weighted_tau", "pearson", "relative_accuracy", "pick"]
        for c in cols:
            ev.add_column(c, justify="left" if c in ("method", "pick") else "right")
        for r in evaluation:
            ev.add_row(*[cell(r[c]) for c in cols])
        console.print(ev)
    console.print(terminal(harness.summary_line(result_table, evaluation) + f"; results in {out}"))


@contextmanager
def _own_preprocessing_hint():
    """A model that cannot run at its size: name the flag that gives it its own preprocessing."""
    try:
        yield
    except DeparaError as exc:
        msg = re.sub(r"\(preprocess=\{'([^']+)': \.\.\.\}\)", r"(--source-preprocess \1=WxH)", str(exc))
        raise DeparaError(msg) from None


def _seeded_model(spec: str, seed: int):
    """:func:`_load_model` under :func:`depara.extraction.models.seeded` (``torch.manual_seed(seed)`` right before the
    model is built, the global RNG left as it was), as `select` builds its candidates."""
    from ..extraction.models import seeded

    with seeded(seed):
        return _load_model(spec)


def _load_model(spec: str):
    try:
        from ..extraction.models import load_model
    except ImportError:  # pragma: no cover - depends on the core-torch module being present
        raise DeparaError(f"model {spec}: depara.extraction.models is not available to load model specs") from None
    return load_model(spec)


def _score_npz(specs, target_data: Path, methods, regression: bool, lam: float, graph, target_graph,
               truth_values, ks):
    from ..selection import harness
    from ..selection import targets
    from ..core.graph import Graph

    with flags(path="--target-data"):
        target = targets.load_target_npz(target_data, regression)
    graphs = dict(_named(g) for g in _split(graph))
    inputs = {}
    for name, path in specs:
        if not path.endswith(".npz"):
            raise DeparaError(f"--sources {path}: with an .npz --target-data every source must be an .npz of "
                              "precomputed arrays")
        with flags(path="--sources"):
            inputs[name] = targets.load_source_npz(path)
        if name in graphs:
            inputs[name].graph = Graph.load(graphs[name])
    unknown = set(graphs) - set(inputs)
    if unknown:
        raise DeparaError(f"--graph: {sorted(unknown)[0]!r} is not a source name")
    tg = Graph.load(target_graph) if target_graph is not None else None
    table = harness.score_sources(inputs, target.labels, methods=methods, regression=regression,
                                  target_features=target.features, target_graph=tg, lam=lam, progress=True)
    evaluation = harness.evaluate_scores(table, truth_values, ks=ks) if truth_values is not None else None
    return table, evaluation
