"""`depara demo`: the practitioner's job — which model and which layer for my images — on embedded data.

:func:`run_demo` (``depara demo``) is :func:`depara.select` on a few of scikit-learn's real handwritten digits,
drawn at random scale, position and rotation, against a small zoo of models depara trains on embedded sources
(related, unrelated, untrained), beside the *measured* ground truth (see :func:`run_demo`).
:func:`run_benchmark_demo` (``depara demo benchmarks``) is the earlier demo of the two benchmarks: it runs the
procedural task bank (which source to transfer: DEPARA's ranking against measured transfer) and the
synthetic→real digits layer experiment (which layer to transfer) at their ``demo`` size, both from embedded
generators, then writes a top-level manifest (kind ``demo``) and renders ``report.html`` / ``report.md`` over
both. Expensive steps are cached by the pipelines in ``cache_dir``, so a second run takes seconds.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ..io.escape import terminal
from ..io.files import check_cache_dir, check_results_dir, ensure_dir
from ..errors import DeparaError
from ..report.html import pick_and_truth, render_report
from ..report.manifest import read_manifest, write_manifest, write_results_folder, writes_results_folder

__all__ = ["run_demo", "run_benchmark_demo", "demo_images", "linear_probe_truth", "truth_sentence", "DEMO_SCALE",
           "TARGETS"]

#: The size the demo runs at: both pipelines' ``demo`` scale (12-task bank; VGG11-bn layer transfer on the 1/10
#: real split), 2-3 minutes on 2 shared CPU cores when nothing is cached. ``tiny`` (the CI smoke size) is noise.
DEMO_SCALE = "demo"
SECTIONS = ("taskbank", "layers")


def _check_seed(seed: Any) -> None:
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise DeparaError(f"--seed {seed!r}: expected a non-negative integer")


def _load_pipelines() -> tuple[Callable[..., Any], Callable[..., Any]]:
    """The two pipelines, imported only when the demo runs (they pull in torch and the experiment code)."""
    try:
        from .taskbank import run_bench
        from .layers import run_layers_demo
    except ImportError as exc:  # pragma: no cover - depends on the installation
        raise RuntimeError("depara demo needs depara.benches.taskbank.run_bench and "
                           f"depara.benches.layers.run_layers_demo ({exc})") from exc
    return run_bench, run_layers_demo


def run_benchmark_demo(out: str | os.PathLike, *, seed: int = 0, cache_dir: str | os.PathLike | None = None,
                       progress: bool = True) -> dict[str, Any]:
    """`depara demo benchmarks`: run both benchmark pipelines at :data:`DEMO_SCALE` into ``out/taskbank`` and
    ``out/layers``; render ``out/report.html``. The folder is written whole (an interrupted run leaves the previous
    one), then the report is rendered in it.

    Returns a dict: ``summary`` (one line), ``taskbank`` / ``layers`` (each pipeline's returned dict),
    ``summaries`` (each pipeline's one-line pick), ``seconds`` (wall time per step) and ``report`` / ``markdown``
    (the paths written).
    """
    _check_seed(seed)
    out_dir = check_results_dir(out, "--out")  # replaced whole: checked before any work
    cache = ensure_dir(check_cache_dir(cache_dir, "--cache"))
    say = _Narrator(progress)
    result = _benchmark_sections(out_dir, seed, cache, progress, say)
    files = render_report(out_dir)
    say(f"[bold green]report:[/bold green] {terminal(files.html)}")
    return {**result, "report": files.html, "markdown": files.markdown}


@writes_results_folder("out_dir")
def _benchmark_sections(out_dir: Path, seed: int, cache: Path, progress: bool, say: "_Narrator") -> dict[str, Any]:
    """Both pipelines into ``out_dir/<section>`` and the top-level manifest (kind ``demo``), as one folder."""
    run_bench, run_layers_demo = _load_pipelines()
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
        found = _picks(manifest.get("extra"))
        if found:
            picks[name] = found
        say(f"  done in {seconds[name]:.1f} s: {terminal(summaries[name])}")
    summary = f"source: {summaries['taskbank']} | layer: {summaries['layers']}"
    say(f"[bold]step {len(SECTIONS) + 1}/{len(SECTIONS) + 1}[/bold] writing the report")
    write_manifest(
        out_dir, "demo", title="depara demo: which source model and which layer to transfer",
        summary=summary,
        settings={"scale": DEMO_SCALE, "seed": seed, "cache_dir": str(cache)},
        extra={"sections": list(SECTIONS), "picks": picks, "seconds": seconds},
    )
    return {"summary": summary, "summaries": summaries, "seconds": seconds, **results}


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
#: Sizes of the select demo. ``demo``: the showcase, <= 4 min from an empty cache on 2 CPU cores (measured by
#: ``benchmarks/demo_time.py``); ``tiny``: the test size.
SELECT_SCALES: dict[str, dict[str, Any]] = {
    "demo": {"select_per_class": 10, "test_per_class": 60, "train_per_class": 100, "epochs": 4, "scenes": 600,
             "scene_epochs": 2},  # select's own n_boot / peer_boot
    "tiny": {"select_per_class": 4, "test_per_class": 10, "train_per_class": 10, "epochs": 1, "scenes": 60,
             "scene_epochs": 1, "n_boot": 10, "peer_boot": 5},
}
#: The target images. ``jittered`` (the showcase): scikit-learn's real handwritten digits at a random scale,
#: position and rotation on a dark noisy background, ``select_per_class`` of each (few-shot: pretraining
#: matters). ``digits``: the same digits upsampled, centred and clean (the earlier demo, where an untrained
#: network's first layer is as good as any: kept as a test, not as the showcase).
TARGETS = ("jittered", "digits")
DEMO_SIZE = 32
#: The inputs `depara demo` writes into its results folder (kept when a rerun replaces the folder).
DEMO_INPUTS = ("data", "zoo.toml")
DEMO_PREPROCESS = "32x32:0.5:0.5"
#: Version of the zoo's training recipe: part of the cache folder's name, so a changed recipe retrains.
ZOO_VERSION = 2
#: The zoo: name → (torchvision architecture, source task, the scale key of its training size ("": untrained)).
#: The synthetic digits are rendered light on dark grey (`render_digit(..., plain=True)`), like the target.
DEMO_ZOO: dict[str, tuple[str, str, str]] = {
    "resnet18-synthdigits": ("resnet18", "synthetic digits", "train_per_class"),
    "mobilenet-synthdigits": ("mobilenet_v3_small", "synthetic digits", "train_per_class"),
    "resnet18-scenes": ("resnet18", "procedural scenes (object count)", "scenes"),
    "resnet18-untrained": ("resnet18", "none (random init)", ""),
}
#: The ground truth of a candidate (also the key of its cache entry).
TRUTH = ("logistic regression (C=0.1, max_iter=500) on standardised features average-pooled to at most 2x2, "
         "trained on the select images, accuracy (%) on held-out real digits")


def run_demo(out: str | os.PathLike, *, seed: int = 0, cache_dir: str | os.PathLike | None = None,
             progress: bool = True, scale: str = "demo", target: str = "jittered") -> dict[str, Any]:
    """`depara demo`: :func:`depara.select` on real images, beside the measured ground truth.

    1. *Your images*: ``select_per_class`` real handwritten digits per class (scikit-learn's digits, 8×8, drawn
       at 32×32 as ``target`` says: see :data:`TARGETS`), written as class sub-folders to ``out/data`` — the
       DATA of `depara select`.
    2. *The zoo*: four torchvision models (ResNet-18, MobileNetV3-small) that depara trains here on embedded
       sources — synthetic rendered digits (related), procedural scenes (count the objects: unrelated) — and an
       untrained ResNet-18, saved as safetensors and listed in ``out/zoo.toml``.
    3. ``depara.select(out/data, out/zoo.toml, protocol="linear")`` ranks every (model, auto layer) — labels
       only, so label-aware DEPARA ranks, with the label-based peers beside it, intervals over probes.
    4. *Ground truth, measured* (:data:`TRUTH`): per (model, layer), held-out accuracy on ``test_per_class``
       more real digits per class, drawn the same way. Cached in the store per (weights, layer, images).
    5. ``out/report.html``: the pick with its interval, the runner-up, and the measured accuracy of both beside
       the best and the worst candidate; each scorer's pick and rank correlation with the truth.

    Trained networks are cached in ``cache_dir`` (default ``$DEPARA_CACHE``), graphs, scores and the truth in
    its store, so a second run takes seconds. Returns ``{"summary", "summaries", "selection", "truth", "seconds",
    "report", "markdown"}``.
    """
    _check_seed(seed)
    if scale not in SELECT_SCALES:
        raise DeparaError(f"scale {scale!r}: expected one of {', '.join(SELECT_SCALES)}")
    if target not in TARGETS:
        raise DeparaError(f"target {target!r}: expected one of {', '.join(TARGETS)}")
    out_dir = check_results_dir(out, "--out", keep=DEMO_INPUTS)  # replaced whole at the end: checked first
    cache = check_cache_dir(cache_dir, "--cache")
    out_dir, cache = ensure_dir(out_dir), ensure_dir(cache)
    cfg = SELECT_SCALES[scale]
    say = _Narrator(progress)
    seconds: dict[str, float] = {}

    start = time.perf_counter()
    say(f"[bold]step 1/4[/bold] your images: {cfg['select_per_class']} real handwritten digits per class "
        "(scikit-learn), as class sub-folders")
    data_dir, test = demo_images(out_dir / "data", cfg, seed, target)
    seconds["data"] = round(time.perf_counter() - start, 2)

    start = time.perf_counter()
    say(f"[bold]step 2/4[/bold] the zoo: {len(DEMO_ZOO)} torchvision models trained here on embedded sources "
        "(cached)")
    zoo = _demo_zoo(out_dir / "zoo.toml", cache / f"demo-select-v{ZOO_VERSION}-{scale}-seed{seed}", cfg, seed,
                    progress)
    seconds["zoo"] = round(time.perf_counter() - start, 2)

    start = time.perf_counter()
    from ..selection.job import select

    boot = {k: cfg[k] for k in ("n_boot", "peer_boot") if k in cfg}  # the showcase: select's defaults
    sel = select(data_dir, zoo, protocol="linear", probes=10_000, seed=seed, cache_dir=cache, progress=progress,
                 **boot)
    seconds["select"] = round(time.perf_counter() - start, 2)

    start = time.perf_counter()
    say("[bold]step 4/4[/bold] ground truth: a linear probe per (model, layer) on held-out real digits (cached)")
    truth, computed = linear_probe_truth(sel, zoo, data_dir, test)
    seconds["truth"] = round(time.perf_counter() - start, 2)

    files = _write_demo_report(out_dir, sel, truth, cfg, scale, target, seed, seconds, computed)
    say(f"[bold green]report:[/bold green] {terminal(files['report'])}")  # a path may hold "[/x]"
    return {**files, "selection": sel, "truth": truth, "seconds": seconds}


def demo_images(folder: Path, cfg: dict, seed: int, target: str = "jittered"
                ) -> tuple[Path, tuple[np.ndarray, np.ndarray]]:
    """Write the select images (``cfg["select_per_class"]`` per digit) as class folders under ``folder``; return
    (folder, (test images N×32×32×3 uint8, labels): ``cfg["test_per_class"]`` other digits per class)."""
    import shutil

    from PIL import Image
    from sklearn.datasets import load_digits

    from ..extraction.folders import staged_folder
    from .data.synth_digits import jittered_digit, real_digits

    rng = np.random.default_rng(seed)
    k, t = cfg["select_per_class"], cfg["test_per_class"]
    if target == "digits":
        pools = {int(d): imgs for d, imgs in real_digits(DEMO_SIZE, None, seed).items()}
    else:
        bunch = load_digits()
        pools = {d: list(bunch.images[bunch.target == d]) for d in range(10)}
    draw = np.random.default_rng(seed + 1)  # the pictures' own randomness, apart from the choice of digits
    chosen: dict[str, list[np.ndarray]] = {}
    test_x, test_y = [], []
    for d, pool in pools.items():
        order = rng.permutation(len(pool))
        imgs = [pool[i] if target == "digits" else jittered_digit(pool[i], draw, DEMO_SIZE)
                for i in order[:k + t]]
        chosen[str(d)] = imgs[:k]
        test_x += imgs[k:]
        test_y += [d] * t
    if folder.is_dir():
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
        x = np.stack([render_digit(d, rng, DEMO_SIZE, fonts, plain=True) for d in range(10) for _ in range(n)])
        return x, np.repeat(np.arange(10), n)
    from .taskbank.scenes import generate_scenes

    scenes = generate_scenes(cfg["scenes"], size=DEMO_SIZE, seed=seed)
    x = np.clip(np.rint(scenes.image * 255), 0, 255).astype(np.uint8)
    return x, scenes.count - 1


def _train_source(arch: str, x: np.ndarray, y: np.ndarray, epochs: int, seed: int, progress: bool, desc: str):
    """A torchvision ``arch`` trained from scratch on (x, y): Adam (lr 1e-3), batch 64, ``epochs`` passes."""
    import torch
    from torchvision import models as tvm

    torch.manual_seed(seed)
    n_classes = int(y.max()) + 1
    model = tvm.get_model(arch, weights=None, num_classes=n_classes)
    if epochs == 0:
        return model.eval()
    xt = (torch.from_numpy(x).permute(0, 3, 1, 2).float() / 255.0 - 0.5) / 0.5
    yt = torch.from_numpy(y).long()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    g = torch.Generator().manual_seed(seed)
    from tqdm.auto import tqdm

    steps = epochs * ((len(xt) + 63) // 64)
    with tqdm(total=steps, disable=not progress, desc=desc, leave=False) as bar:
        model.train()
        for _ in range(epochs):
            perm = torch.randperm(len(xt), generator=g)
            for b in range(0, len(xt), 64):
                idx = perm[b:b + 64]
                loss = torch.nn.functional.cross_entropy(model(xt[idx]), yt[idx])
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
                epochs = cfg["scene_epochs"] if key == "scenes" else cfg["epochs"]
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


def linear_probe_truth(sel: Any, zoo: Path, data_dir: Path,
                       test: tuple[np.ndarray, np.ndarray]) -> tuple[dict[tuple[str, str], float], int]:
    """The measured truth (:data:`TRUTH`) of every candidate of ``sel``, and how many were computed (not read
    from the store). Each value is stored under the candidate's weights hash and layer, the select images'
    and the test images' content and labels, and :data:`TRUTH`; a model whose layers are all stored is not
    loaded."""
    import hashlib

    from ..extraction.probes import ProbeSet
    from ..extraction.store import GraphStore
    from ..extraction.zoo import read_zoo

    store = GraphStore(sel.settings["cache"])
    train = ProbeSet.from_folder(data_dir, DEMO_PREPROCESS)
    y_train = np.array([int(pid.split("/")[0]) for pid in train.ids])  # class folders are the digits 0..9
    test_x, test_y = test
    test_set = ProbeSet.from_images(list(test_x), preprocess=DEMO_PREPROCESS)
    opts = {"truth": TRUTH, "preprocess": DEMO_PREPROCESS, "test": test_set.content_hash(),
            "test_labels": hashlib.sha256(np.ascontiguousarray(test_y, dtype=np.int64).tobytes()).hexdigest()}
    truth: dict[tuple[str, str], float] = {}
    computed = 0
    for entry in read_zoo(zoo):
        info = sel.models[entry.name]
        keys = {la: store.key(info["weights_hash"], la, train.content_hash(), opts, kind="demotruth")
                for la in info["layers"]}
        for la, key in keys.items():
            value = store.get_array(key)
            if value is not None and value.shape == (1,):
                truth[(entry.name, la)] = float(value[0])
        missing = [la for la in info["layers"] if (entry.name, la) not in truth]
        if missing:
            accs = _probe_accuracies(entry.load(), missing, train.tensor(), y_train, test_set.tensor(), test_y)
            for la, acc in accs.items():
                store.put_array(keys[la], np.array([acc]))
                truth[(entry.name, la)] = acc
            computed += len(missing)
    return truth, computed


def _probe_accuracies(model: Any, layers: list[str], x_train: Any, y_train: np.ndarray, x_test: Any,
                      y_test: np.ndarray) -> dict[str, float]:
    """Held-out accuracy (%) of a logistic-regression probe on each layer's pooled features."""
    import torch
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from ..extraction.extract import capture_features

    feats = {}
    for split, x in (("train", x_train), ("test", x_test)):
        parts = [capture_features(model, x[i:i + 256], layers) for i in range(0, len(x), 256)]
        feats[split] = {la: _probe_features(torch.cat([p[la] for p in parts])) for la in layers}
    out = {}
    for la in layers:
        clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500, C=0.1))
        clf.fit(feats["train"][la], y_train)
        out[la] = float(100.0 * clf.score(feats["test"][la], y_test))
    return out


def _scorer_rows(sel: Any, acc: np.ndarray) -> list[dict[str, Any]]:
    """Per scorer: its pick, the pick's measured accuracy and regret, its rank correlations with the truth."""
    from ..evaluation.rank_quality import rank_quality

    cands = sel.candidates
    best = float(np.max(acc))
    rows = []
    for s in sel.scorers:
        v = sel.values[s]
        ok = np.isfinite(v)
        pick = int(np.nanargmax(np.where(ok, v, -np.inf)))
        q = rank_quality(acc[ok], v[ok], ks=()) if ok.sum() > 2 else None
        rho, tau = (q.spearman, q.kendall) if q is not None else (float("nan"), float("nan"))
        rows.append({"scorer": s, "pick": f"{cands[pick][0]}:{cands[pick][1]}", "pick_accuracy": acc[pick],
                     "regret": best - acc[pick], "spearman": float(rho), "kendall": float(tau)})
    rows.sort(key=lambda r: (r["scorer"] != sel.scorer, r["regret"]))
    return rows


def truth_sentence(sel: Any, truth: dict[tuple[str, str], float]) -> str:
    """The demo's one line: select's own sentence (:attr:`Selection.summary`: the pick, its interval, how sure,
    what is too close to call, notes) followed by the measured truth (:data:`TRUTH`) of the pick, the runner-up,
    the best and the worst candidate and the best untrained layer. ``truth``: (model, layer) → accuracy (%)."""
    cands = sel.candidates
    acc = np.array([truth[c] for c in cands])
    name = [f"{m}:{la}" for m, la in cands]
    best, worst = int(np.argmax(acc)), int(np.argmin(acc))
    pick, runner = sel.order[0], sel.order[1] if len(sel.order) > 1 else sel.order[0]
    text = (f"{sel.summary}. Measured (linear probe, {len(cands)} candidates, held-out real digits): the pick "
            f"{name[pick]} {acc[pick]:.1f}%, the runner-up {name[runner]} {acc[runner]:.1f}%, the best {name[best]} "
            f"{acc[best]:.1f}% (regret {acc[best] - acc[pick]:.1f} points), the worst {name[worst]} "
            f"{acc[worst]:.1f}%")
    untrained = [acc[c] for c in range(len(cands)) if cands[c][0].endswith("-untrained")]
    return text + (f", the best untrained layer {max(untrained):.1f}%" if untrained else "")


def _write_demo_report(out_dir: Path, sel: Any, truth: dict[tuple[str, str], float], cfg: dict, scale: str,
                       target: str, seed: int, seconds: dict[str, float], computed: int) -> dict[str, Any]:
    from ..io.files import write_csv

    cands = sel.candidates
    acc = np.array([truth[c] for c in cands])
    name = [f"{m}:{la}" for m, la in cands]
    best, worst = int(np.argmax(acc)), int(np.argmin(acc))
    pick, runner = sel.order[0], sel.order[1] if len(sel.order) > 1 else sel.order[0]
    rows = _scorer_rows(sel, acc)
    s = sel.scorer
    truth_rows = sorted(({"candidate": name[c], "model": cands[c][0], "layer": cands[c][1],
                          "linear_probe_accuracy": acc[c], s: float(sel.values[s][c])} for c in range(len(cands))),
                        key=lambda r: -r["linear_probe_accuracy"])
    untrained = [c for c in range(len(cands)) if cands[c][0].endswith("-untrained")]
    summary = truth_sentence(sel, truth)
    sel.settings.update({"demo": {"scale": scale, "target": target, "seed": seed, **cfg, "zoo_version": ZOO_VERSION,
                                  "zoo": {k: {"arch": a, "source": t} for k, (a, t, _) in DEMO_ZOO.items()},
                                  "truth": TRUTH, "truth_computed": computed, "seconds": seconds}})
    extra = {"truth_best": name[best], "regret": round(float(acc[best] - acc[pick]), 2),
             "pick_accuracy": round(float(acc[pick]), 2),
             "pick_runner_up": name[runner], "pick_runner_up_accuracy": round(float(acc[runner]), 2),
             "truth_best_accuracy": round(float(acc[best]), 2), "truth_worst": name[worst],
             "truth_worst_accuracy": round(float(acc[worst]), 2),
             "truth_spread": round(float(acc[best] - acc[worst]), 2)}
    if np.isfinite(rows[0]["spearman"]):  # undefined with fewer than 3 ranked candidates: left out, never "nan"
        extra["spearman"] = round(rows[0]["spearman"], 4)
    if untrained:
        extra["truth_best_untrained_accuracy"] = round(float(max(acc[c] for c in untrained)), 2)

    def write(folder: Path) -> None:  # the demo's tables and the selection's files: one results folder
        write_csv(folder / "scorers_vs_truth.csv", rows)
        write_csv(folder / "truth.csv", truth_rows)
        sel.write_into(folder, extra=extra, tables={"scorers_vs_truth": "scorers_vs_truth.csv", "truth": "truth.csv"},
                       summary=summary)

    write_results_folder(out_dir, write, keep=DEMO_INPUTS)  # the demo's own inputs (images, zoo) stay in the folder
    files = render_report(out_dir)
    return {"summary": summary, "summaries": {"select": summary}, "report": files.html, "markdown": files.markdown}
