"""`depara demo`: the practitioner's job — which model and which layer for my images — on embedded data.

:func:`run_demo` (``depara demo``) is :func:`depara.select` on scikit-learn's real handwritten digits against a
small zoo of models depara trains on embedded sources, beside the *measured* ground truth (see
:func:`run_demo`). :func:`run_benchmark_demo` (``depara demo benchmarks``) is the earlier demo of the two
benchmarks: it runs the procedural task bank (which source to transfer: DEPARA's ranking against measured transfer) and the
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

import numpy as np

from ..io.files import default_cache_dir, ensure_dir
from ..errors import DeparaError
from ..report.html import pick_and_truth, render_report
from ..report.manifest import read_manifest, write_manifest

__all__ = ["run_demo", "run_benchmark_demo", "DEMO_SCALE"]

#: The size the demo runs at: both pipelines' ``demo`` scale (12-task bank; VGG11-bn layer transfer on the 1/10
#: real split), 2-3 minutes on 2 shared CPU cores when nothing is cached. ``tiny`` (the CI smoke size) is noise.
DEMO_SCALE = "demo"
SECTIONS = ("taskbank", "layers")


def _load_pipelines() -> tuple[Callable[..., Any], Callable[..., Any]]:
    """The two pipelines, imported only when the demo runs (they pull in torch and the experiment code)."""
    try:
        from .taskbank import run_bench
        from .layers import run_layers_demo
    except ImportError as exc:  # pragma: no cover - depends on the installation
        raise RuntimeError(f"depara demo needs depara.benches.taskbank.run_bench and depara.benches.layers.run_layers_demo ({exc})"
                           ) from exc
    return run_bench, run_layers_demo


def run_benchmark_demo(out: str | os.PathLike, *, seed: int = 0, cache_dir: str | os.PathLike | None = None,
                       progress: bool = True) -> dict[str, Any]:
    """`depara demo benchmarks`: run both benchmark pipelines at :data:`DEMO_SCALE` into ``out/taskbank`` and ``out/layers``; render ``out/report.html``.

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


# ================================================================================== `depara demo`: select
#: Sizes of the select demo. ``demo``: ≤ 4 min from an empty cache on 2 CPU cores; ``tiny``: the test size.
SELECT_SCALES: dict[str, dict[str, Any]] = {
    "demo": {"select_per_class": 15, "test_per_class": 40, "train_per_class": 100, "weak_per_class": 10,
             "epochs": 2, "scenes": 800, "n_boot": 50, "peer_boot": 5},
    "tiny": {"select_per_class": 4, "test_per_class": 10, "train_per_class": 10, "weak_per_class": 4,
             "epochs": 1, "scenes": 60, "n_boot": 10, "peer_boot": 5},
}
DEMO_SIZE = 32
DEMO_PREPROCESS = "32x32:0.5:0.5"
#: The zoo: name → (torchvision architecture, source task, images per class (None: scenes), epochs key).
DEMO_ZOO: dict[str, tuple[str, str, str]] = {
    "resnet18-synthdigits": ("resnet18", "synthetic digits", "train_per_class"),
    "mobilenet-synthdigits": ("mobilenet_v3_small", "synthetic digits", "train_per_class"),
    "mobilenet-synthdigits-weak": ("mobilenet_v3_small", "synthetic digits", "weak_per_class"),
    "resnet18-scenes": ("resnet18", "procedural scenes (object count)", "scenes"),
    "resnet18-untrained": ("resnet18", "none (random init)", ""),
}


def run_demo(out: str | os.PathLike, *, seed: int = 0, cache_dir: str | os.PathLike | None = None,
             progress: bool = True, scale: str = "demo") -> dict[str, Any]:
    """`depara demo`: :func:`depara.select` on real images, beside the measured ground truth.

    1. *Your images*: ``select_per_class`` real handwritten digits per class (scikit-learn's digits, 8×8
       upsampled to 32×32 RGB), written as class sub-folders to ``out/data`` — the DATA of `depara select`.
    2. *The zoo*: five torchvision models (ResNet-18, MobileNetV3-small) that depara trains here on embedded
       sources of deliberately varied quality — synthetic rendered digits (100 or 10 per class), procedural
       scenes (count the objects), and an untrained one — saved as state dicts and listed in ``out/zoo.toml``.
    3. ``depara.select(out/data, out/zoo.toml, protocol="linear")`` ranks every (model, auto layer) —
       labels only, so label-aware DEPARA ranks, with the label-based peers beside it.
    4. *Ground truth, measured*: for every (model, layer) a logistic-regression linear probe on the layer's
       features (average-pooled to a 2×2 grid) of the same images, accuracy on ``test_per_class`` held-out
       real digits per class.
    5. ``out/report.html``: the ranking with intervals, the layer curves, the pick beside the best by ground
       truth (regret = accuracy points lost), each scorer's rank correlation with the truth, the settings.

    Trained networks are cached in ``cache_dir`` (default ``$DEPARA_CACHE``), graphs in its store, so a second
    run takes seconds. Returns ``{"summary", "summaries", "selection", "truth", "seconds", "report", "markdown"}``.
    """
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise DeparaError(f"--seed {seed!r}: expected a non-negative integer")
    if scale not in SELECT_SCALES:
        raise DeparaError(f"scale {scale!r}: expected one of {', '.join(SELECT_SCALES)}")
    out_dir = Path(out)
    if out_dir.exists() and not out_dir.is_dir():
        raise DeparaError(f"--out {out_dir}: exists and is not a folder")
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    if cache.exists() and not cache.is_dir():
        raise DeparaError(f"--cache {cache}: exists and is not a folder")
    out_dir, cache = ensure_dir(out_dir), ensure_dir(cache)
    cfg = SELECT_SCALES[scale]
    say = _Narrator(progress)
    seconds: dict[str, float] = {}

    start = time.perf_counter()
    say("[bold]step 1/4[/bold] your images: real handwritten digits (scikit-learn), as class sub-folders")
    data_dir, test = _demo_images(out_dir / "data", cfg, seed)
    seconds["data"] = round(time.perf_counter() - start, 2)

    start = time.perf_counter()
    say("[bold]step 2/4[/bold] the zoo: 5 torchvision models, 4 trained here on embedded sources (cached)")
    zoo = _demo_zoo(out_dir / "zoo.toml", cache / f"demo-select-{scale}-seed{seed}", cfg, seed, progress)
    seconds["zoo"] = round(time.perf_counter() - start, 2)

    start = time.perf_counter()
    say("[bold]step 3/4[/bold] depara.select: every (model, layer), bootstrap intervals over probes")
    from ..selection.job import select

    sel = select(data_dir, zoo, protocol="linear", probes=10_000, seed=seed, n_boot=cfg["n_boot"],
                 peer_boot=cfg["peer_boot"], cache_dir=cache, progress=progress)
    seconds["select"] = round(time.perf_counter() - start, 2)

    start = time.perf_counter()
    say("[bold]step 4/4[/bold] ground truth: a linear probe per (model, layer) on held-out real digits")
    truth = _linear_probe_truth(sel, zoo, data_dir, test, progress)
    seconds["truth"] = round(time.perf_counter() - start, 2)

    files = _write_demo_report(out_dir, sel, truth, cfg, scale, seed, seconds)
    say(f"[bold green]report:[/bold green] {files['report']}")
    return {**files, "selection": sel, "truth": truth, "seconds": seconds}


def _demo_images(folder: Path, cfg: dict, seed: int) -> tuple[Path, tuple[np.ndarray, np.ndarray]]:
    """Write the select images as class folders; return (folder, (test images N×32×32×3 uint8, labels))."""
    from PIL import Image

    from ..extraction.folders import staged_folder
    from .data.synth_digits import real_digits

    digits = real_digits(DEMO_SIZE, None, seed)
    rng = np.random.default_rng(seed)
    test_x, test_y = [], []
    chosen: dict[str, list[np.ndarray]] = {}
    for d, imgs in digits.items():
        order = rng.permutation(len(imgs))
        k, t = cfg["select_per_class"], cfg["test_per_class"]
        chosen[d] = [imgs[i] for i in order[:k]]
        test_x += [imgs[i] for i in order[k:k + t]]
        test_y += [int(d)] * t
    if folder.is_dir():
        import shutil

        shutil.rmtree(folder)
    with staged_folder(folder, what="demo data folder") as tmp:
        for d, imgs in chosen.items():
            (tmp / d).mkdir()
            for i, img in enumerate(imgs):
                Image.fromarray(img).save(tmp / d / f"digit_{d}_{i:03d}.png")
    return folder, (np.stack(test_x), np.array(test_y))


def _source_data(task: str, cfg: dict, key: str, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Training images N×32×32×3 uint8 and labels of one source task (embedded generators only)."""
    if task.startswith("synthetic"):
        from .data.synth_digits import digit_fonts, render_digit

        fonts = digit_fonts()
        rng = np.random.default_rng(10_000 + seed)
        n = cfg[key]
        x = np.stack([render_digit(d, rng, DEMO_SIZE, fonts) for d in range(10) for _ in range(n)])
        return x, np.repeat(np.arange(10), n)
    from .taskbank.scenes import generate_scenes

    scenes = generate_scenes(cfg["scenes"], size=DEMO_SIZE, seed=seed)
    x = np.clip(np.rint(scenes.image * 255), 0, 255).astype(np.uint8)
    return x, scenes.count - 1


def _train_source(arch: str, x: np.ndarray, y: np.ndarray, epochs: int, seed: int, progress: bool, desc: str):
    """A torchvision ``arch`` trained from scratch on (x, y): Adam, batch 64, light shift augmentation."""
    import torch
    from torchvision import models as tvm

    torch.manual_seed(seed)
    n_classes = int(y.max()) + 1
    model = tvm.get_model(arch, weights=None, num_classes=n_classes)
    if epochs == 0:
        return model.eval()
    xt = (torch.from_numpy(x).permute(0, 3, 1, 2).float() / 255.0 - 0.5) / 0.5
    yt = torch.from_numpy(y).long()
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    g = torch.Generator().manual_seed(seed)
    from tqdm.auto import tqdm

    steps = epochs * ((len(xt) + 63) // 64)
    with tqdm(total=steps, disable=not progress, desc=desc, leave=False) as bar:
        model.train()
        for _ in range(epochs):
            perm = torch.randperm(len(xt), generator=g)
            for b in range(0, len(xt), 64):
                idx = perm[b:b + 64]
                xb = torch.roll(xt[idx], shifts=tuple(int(v) for v in torch.randint(-2, 3, (2,), generator=g)),
                                dims=(2, 3))
                loss = torch.nn.functional.cross_entropy(model(xb), yt[idx])
                opt.zero_grad()
                loss.backward()
                opt.step()
                bar.update(1)
    return model.eval()


def _demo_zoo(zoo_file: Path, net_dir: Path, cfg: dict, seed: int, progress: bool) -> Path:
    """Train (or reuse) every zoo model as ``net_dir/<name>.safetensors``; write the zoo TOML; return its path."""
    from safetensors.torch import save_file

    from ..io.files import atomic_path, write_text

    import torch

    ensure_dir(net_dir)
    sources: dict[tuple[str, str], tuple[np.ndarray, np.ndarray]] = {}
    threads = torch.get_num_threads()
    lines = ["# The zoo of `depara demo`: torchvision architectures trained by depara on embedded sources.", ""]
    for i, (name, (arch, task, key)) in enumerate(DEMO_ZOO.items()):
        path = net_dir / f"{name}.safetensors"
        if not path.is_file():
            if key:
                if (task, key) not in sources:
                    sources[(task, key)] = _source_data(task, cfg, key, seed)
                x, y = sources[(task, key)]
                epochs = 1 if key == "weak_per_class" else cfg["epochs"]
            else:
                x, y, epochs = np.zeros((1, DEMO_SIZE, DEMO_SIZE, 3), np.uint8), np.arange(10), 0
            # One torch thread for these small batches, as the task bank does: on 2 shared cores more threads
            # mostly wait on each other (measured 7x slower per step under load).
            torch.set_num_threads(1)
            try:
                model = _train_source(arch, x, y, epochs, seed + i, progress, f"training {name}")
            finally:
                torch.set_num_threads(threads)
            with atomic_path(path, "demo model") as tmp:
                save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(tmp))
        lines += ["[[model]]", f'name = "{name}"', f'spec = "file:{path}?arch={arch}"',
                  f'preprocessing = "{DEMO_PREPROCESS}"', f"# source task: {task}", ""]
    write_text(zoo_file, "\n".join(lines))
    return zoo_file


def _probe_features(t: Any) -> np.ndarray:
    """The linear probe's input: B×C×H×W maps average-pooled to a grid of at most 2×2 (global pooling would
    leave an early layer only its channel means), flattened; other shapes flattened."""
    import torch

    if t.ndim == 4:
        t = torch.nn.functional.adaptive_avg_pool2d(t, (min(2, t.shape[2]), min(2, t.shape[3])))
    return t.reshape(t.shape[0], -1).numpy()


def _linear_probe_truth(sel: Any, zoo: Path, data_dir: Path, test: tuple[np.ndarray, np.ndarray],
                        progress: bool) -> dict[tuple[str, str], float]:
    """Held-out accuracy of a logistic-regression probe on each (model, layer)'s pooled features."""
    import torch
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from ..extraction.extract import capture_features
    from ..extraction.probes import ProbeSet
    from ..extraction.zoo import read_zoo

    train = ProbeSet.from_folder(data_dir, DEMO_PREPROCESS)
    y_train = np.array([int(pid.split("/")[0]) for pid in train.ids])  # class folders are the digits 0..9
    test_x, test_y = test
    test_set = ProbeSet.from_images(list(test_x), preprocess=DEMO_PREPROCESS)
    xs = {"train": train.tensor(), "test": test_set.tensor()}
    truth: dict[tuple[str, str], float] = {}
    for entry in read_zoo(zoo):
        layers = sel.models[entry.name]["layers"]
        model = entry.load()
        feats = {}
        for split, x in xs.items():
            parts = [capture_features(model, x[i:i + 256], layers) for i in range(0, len(x), 256)]
            feats[split] = {la: _probe_features(torch.cat([p[la] for p in parts])) for la in layers}
        for la in layers:
            clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500, C=0.1))
            clf.fit(feats["train"][la], y_train)
            truth[(entry.name, la)] = float(100.0 * clf.score(feats["test"][la], test_y))
    return truth


def _write_demo_report(out_dir: Path, sel: Any, truth: dict[tuple[str, str], float], cfg: dict, scale: str,
                       seed: int, seconds: dict[str, float]) -> dict[str, Any]:
    from scipy import stats

    from ..io.files import write_csv

    cands = sel.candidates
    acc = np.array([truth[c] for c in cands])
    best = int(np.argmax(acc))
    best_name = f"{cands[best][0]}:{cands[best][1]}"
    rows = []
    for s in sel.scorers:
        v = sel.values[s]
        ok = np.isfinite(v)
        pick = int(np.nanargmax(np.where(ok, v, -np.inf)))
        rho = stats.spearmanr(v[ok], acc[ok]).statistic if ok.sum() > 2 else float("nan")
        tau = stats.kendalltau(v[ok], acc[ok]).statistic if ok.sum() > 2 else float("nan")
        rows.append({"scorer": s, "pick": f"{cands[pick][0]}:{cands[pick][1]}", "pick_accuracy": acc[pick],
                     "regret": acc[best] - acc[pick], "spearman": float(rho), "kendall": float(tau)})
    rows.sort(key=lambda r: (r["scorer"] != sel.scorer, r["regret"]))
    write_csv(out_dir / "scorers_vs_truth.csv", rows)
    truth_rows = sorted(({"candidate": f"{m}:{la}", "model": m, "layer": la, "linear_probe_accuracy": truth[(m, la)],
                          sel.scorer: float(sel.values[sel.scorer][cands.index((m, la))])} for m, la in cands),
                        key=lambda r: -r["linear_probe_accuracy"])
    write_csv(out_dir / "truth.csv", truth_rows)
    main = rows[0]
    pick_acc, regret = main["pick_accuracy"], main["regret"]
    summary = (f"{sel.summary}; measured: the pick reaches {pick_acc:.1f}% (linear probe, held-out real digits), "
               f"the best {best_name} {acc[best]:.1f}% (regret {regret:.1f} points; Spearman "
               f"{main['spearman']:.2f} over {len(cands)} candidates)")
    sel.settings.update({"demo": {"scale": scale, "seed": seed, **cfg, "zoo": {k: {"arch": a, "source": t}
                                                                              for k, (a, t, _) in DEMO_ZOO.items()},
                                  "truth": "logistic regression (C=0.1, standardised features average-pooled to "
                                           "2x2) trained on the select images, accuracy on held-out real digits",
                                  "seconds": seconds}})
    files = sel.report(out_dir, extra={"truth_best": best_name, "regret": round(regret, 3),
                                       "spearman": round(main["spearman"], 4), "pick_accuracy": round(pick_acc, 2),
                                       "truth_best_accuracy": round(float(acc[best]), 2)},
                       tables={"scorers_vs_truth": "scorers_vs_truth.csv", "truth": "truth.csv"},
                       summary=summary)
    return {"summary": summary, "summaries": {"select": summary}, "report": files.html, "markdown": files.markdown}
