"""Fine-tuning ground truth of the pretrained bank, on cached lower-stage outputs.

For each source the spatial output of one cached layer (:data:`CUTS`: the second-deepest candidate layer of every
source) is extracted once per image set and cached; the network's modules between that output and the deepest
candidate layer (the **top part**) and a fresh head on the globally average-pooled output (standardising
BatchNorm + linear, :func:`.models.fresh_head`) are then fine-tuned from the pretrained weights (deep-copied per
run) for a fixed budget of Adam steps (:class:`FinetuneConfig`) on the train images of the bank's own per-seed
split (:meth:`~.pretrained_bench.BenchConfig.split`), and scored by test accuracy. The model truth under
fine-tuning of a (target, source) is that accuracy, per seed (the bank's evaluation takes the mean over seeds).
No augmentation: the cached tensors are fixed.

BatchNorm stays in eval mode (frozen running statistics; its affine weights are trained): the batches are small
(:data:`FinetuneConfig.batch_size`) and the pools have 150–400 images, so batch statistics would be noisy and would
differ from the statistics the cached lower part was computed with; in eval mode the top part computes exactly the
pretrained network's function at step 0, which the tests check (the cut equals the full forward).

For the ONNX-converted sources (an onnx2torch ``torch.fx.GraphModule``) the top part is a sub-graph cut with
torch.fx (:func:`cut_graph`); for the others it is a ``Sequential`` of the network's own modules (:data:`CUTS`).
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn

from ...errors import DeparaError
from ...extraction.extract import capture_features
from ..taskbank.cache import fingerprint, load_json_entry, load_tensors_entry, save_json_entry, save_tensors_entry
from . import pretrained as P
from . import rule as R
from .models import fresh_head
from .pretrained_bench import HIRES, IMAGE_SETS, BenchConfig, Target
from .truth import train_and_test

VERSION = 1


@dataclass(frozen=True)
class Cut:
    """Where a source is cut: ``cached`` is the layer whose output is cached (a module name of the source), the
    top part runs from it to ``top`` (the deepest candidate layer); ``describe`` says what is fine-tuned."""

    cached: str
    top: str
    describe: str


#: source → its cut (every cached layer is the source's second-deepest candidate layer)
CUTS: dict[str, Cut] = {
    "mobilenet_v2-imagenet": Cut("features.13", "features.18",
                                 "features.14–18: 4 inverted-residual blocks and the 1×1 conv to 1280 channels "
                                 "(14×14 → 7×7)"),
    "efficientnet_lite1-imagenet": Cut("blocks.4", "bn2", "blocks.5 (5 MBConv blocks), blocks.6 (1), conv_head, bn2 "
                                                          "(15×15 → 8×8)"),
    "efficientnet_lite2-imagenet": Cut("blocks.4", "bn2", "blocks.5 (5 MBConv blocks), blocks.6 (1), conv_head, bn2 "
                                                          "(17×17 → 9×9)"),
    "pplcnet-doc-orientation": Cut("HardSwish/22", "HardSwish/26",
                                   "the last 2 depthwise-separable blocks with squeeze-excitation (graph nodes Conv/23 "
                                   "to HardSwish/26; 14×14 → 7×7)"),
    "craft-vgg16bn-text": Cut("features.29", "features.38",
                              "features.30–38: conv4_3, pool4, conv5_1, conv5_2 with their BatchNorms (16×16 → 8×8)"),
    "yolox-captcha-det": Cut("Concat_128", "Concat_141",
                             "the dark4 CSP block's output 1×1 conv, dark5's 3×3 stride-2 conv and the SPP's 1×1 "
                             "conv, each with SiLU, and the SPP max-pools (graph nodes Conv_129 to Concat_141; "
                             "26×26 → 13×13)"),
}


@dataclass(frozen=True)
class FinetuneConfig:
    """The fine-tuning budget (the cache keys hold it)."""

    steps: int = 28
    batch_size: int = 16
    lr_top: float = 3e-5
    lr_head: float = 3e-3


# ----------------------------------------------------------------------------------------------------- cutting
def _node_of(gm: torch.fx.GraphModule, name: str) -> torch.fx.Node:
    for node in gm.graph.nodes:
        if (node.op == "call_module" and node.target == name) or node.name == name:
            return node
    raise DeparaError(f"layer {name!r}: no node of that name in the graph")


def _ancestors(node: torch.fx.Node, stop: torch.fx.Node) -> set[torch.fx.Node]:
    seen, stack = set(), [node]
    while stack:
        n = stack.pop()
        if n in seen:
            continue
        seen.add(n)
        if n is not stop:
            stack.extend(n.all_input_nodes)
    return seen


def cut_graph(gm: torch.fx.GraphModule, start: str, end: str) -> torch.fx.GraphModule:
    """The sub-graph of ``gm`` from the output of node ``start`` (its input) to the output of node ``end``.

    Every node ``end`` needs must be computed from ``start`` (or be a constant); a cut that also needs another
    tensor of the network (a skip connection across it) raises DeparaError naming the node."""
    a, b = _node_of(gm, start), _node_of(gm, end)
    needed = _ancestors(b, a)
    graph, env = torch.fx.Graph(), {}
    env[a] = graph.placeholder("x")
    for node in gm.graph.nodes:
        if node not in needed or node is a:
            continue
        if node.op == "placeholder":
            raise DeparaError(f"layer {end!r}: needs the network's input besides {start!r} (a skip across the cut)")
        env[node] = graph.node_copy(node, lambda n: env[n])
    graph.output(env[b])
    return torch.fx.GraphModule(gm, graph)


def top_part(source: str, model: nn.Module) -> nn.Module:
    """The modules of ``model`` (the loaded source) between its cached layer and its deepest candidate layer, as
    one module taking the cached output; built from ``model``'s own modules (deep-copy it first to train it)."""
    cut = CUTS[source]
    if isinstance(model, torch.fx.GraphModule):
        return cut_graph(model, cut.cached, cut.top)
    if source == "mobilenet_v2-imagenet":
        return model.features[14:19]
    if source.startswith("efficientnet_lite"):
        return nn.Sequential(model.blocks[5], model.blocks[6], model.conv_head, model.bn2)
    if source == "craft-vgg16bn-text":
        return model.features[30:39]
    raise DeparaError(f"source {source!r}: no top part defined for fine-tuning")


# ----------------------------------------------------------------------------------------------------- caching
@torch.no_grad()
def cut_features(spec: P.PretrainedSource, model: nn.Module, images01: np.ndarray, layer: str,
                 batch_size: int = P.BATCH_SIZE) -> torch.Tensor:
    """The spatial output (N×C×H×W float32, contiguous) of ``layer`` of the source on ``images01``; the model is
    moved to the channels-last memory format in place, as :func:`.pretrained.layer_features` does."""
    fmt = torch.channels_last
    model = model.to(memory_format=fmt)
    parts = []
    for start in range(0, len(images01), batch_size):
        x = P.preprocess(spec, images01[start:start + batch_size]).contiguous(memory_format=fmt)
        parts.append(capture_features(model, x, [layer])[layer].float())
    return torch.cat(parts).contiguous()


def cached_input(source: str, image_set: str, cache_dir: Path, *, model=None,
                 log: Callable[[str], None] | None = None) -> torch.Tensor:
    """The cached layer's output of ``source`` on ``image_set`` (``cut/<source>/<set>.safetensors``), from the cache
    or extracted now (keyed like the pooled-feature cache, plus the cut layer)."""
    spec = P.get_source(source)
    layer = CUTS[source].cached
    key = fingerprint({"source": P.source_version(spec), "set": image_set, "layer": layer,
                       "size": spec.input_size, "hires": HIRES, "v": VERSION})
    path = Path(cache_dir) / "cut" / source / f"{image_set}.safetensors"
    hit = load_tensors_entry(path, key)
    if hit is not None:
        return hit[0]["x"]
    images, _ = IMAGE_SETS[image_set]()
    model = P.load_source(source) if model is None else model
    t0 = time.perf_counter()
    x = cut_features(spec, model, images, layer)
    seconds = time.perf_counter() - t0
    save_tensors_entry(path, key, {"x": x}, {"seconds": seconds, "n": len(images), "layer": layer})
    if log:
        log(f"{source} on {image_set}: {layer} {tuple(x.shape[1:])} of {len(images)} images in {seconds:.0f} s")
    return x


# ----------------------------------------------------------------------------------------------------- training
def finetune(top: nn.Module, x_train: torch.Tensor, y_train: np.ndarray, x_test: torch.Tensor, y_test: np.ndarray,
             cfg: FinetuneConfig, seed: int) -> float:
    """Test accuracy after fine-tuning a deep copy of ``top`` and a fresh seeded head
    (:func:`.models.fresh_head`: pooling, standardising BatchNorm, linear) on (x_train, y_train) for ``cfg.steps``
    Adam steps by the real-image bank's one fine-tuning loop (:func:`.truth.train_and_test`: the top part in eval
    mode, so its BatchNorm statistics stay frozen while every parameter trains). Tensors and modules in the
    channels-last memory format (oneDNN's convolutions run faster on it on CPUs)."""
    fmt = torch.channels_last
    top = copy.deepcopy(top).to(memory_format=fmt).eval()
    x_train, x_test = x_train.contiguous(memory_format=fmt), x_test.contiguous(memory_format=fmt)
    with torch.no_grad():
        width = top(x_train[:1]).shape[1]
    n_classes = int(max(np.max(y_train), np.max(y_test))) + 1
    head = fresh_head(width, n_classes, seed)
    return train_and_test(top, head, x_train, y_train, x_test, y_test, steps=cfg.steps, lr_upper=cfg.lr_top,
                          lr_head=cfg.lr_head, batch=cfg.batch_size, seed=seed)


def finetune_truth(target: Target, source: str, x: torch.Tensor, y: np.ndarray, cfg: BenchConfig,
                   ft: FinetuneConfig, seeds: int, cache_dir: Path, top: nn.Module) -> dict:
    """{'accuracy': per-seed fine-tuned test accuracies, 'seconds': per-seed CPU seconds} of ``source`` on
    ``target`` (cached under ``finetune/<target>/<source>.json``), on the bank's split of each seed."""
    spec = P.get_source(source)
    cut = CUTS[source]
    key = fingerprint({"source": P.source_version(spec), "target": target.name, "cut": [cut.cached, cut.top],
                       "n_train": cfg.n_train, "n_test": cfg.n_test, "ft": ft.__dict__, "hires": HIRES,
                       "v": VERSION})
    path = Path(cache_dir) / "finetune" / target.name / f"{source}.json"
    hit = load_json_entry(path, key)
    acc, sec = (hit["accuracy"], hit["seconds"]) if hit is not None else ([], [])
    for seed in range(len(acc), seeds):
        sp = cfg.split(y, seed)
        t0 = time.process_time()
        acc.append(finetune(top, x[sp.train], y[sp.train], x[sp.test], y[sp.test], ft, seed))
        sec.append(time.process_time() - t0)
        save_json_entry(path, key, {"accuracy": acc, "seconds": sec})
    return {"accuracy": acc[:seeds], "seconds": sec[:seeds]}


# ----------------------------------------------------------------------------------------------------- evaluation
def model_measures(ft_model: np.ndarray, scores_t: dict, sources, cand: R.Candidate, layers_of) -> dict:
    """Model ranking of one target against the fine-tune model truth ``ft_model`` (seed-mean accuracy per source,
    in ``sources`` order): weighted τ, Kendall τ-b and regret (points) of ``cand``'s model scores, read and
    combined exactly as :func:`.rule.target_measures` reads them for the linear-probe truth."""
    s_model = R.lowest_for_missing(R.candidate_views(scores_t, sources, cand, layers_of)[0])
    wtau, kendall, regret = R.rank_measures(s_model, np.asarray(ft_model, float))
    return {"model_wtau": wtau, "model_kendall": kendall, "model_regret": regret}
