"""The source zoo of the real-image bank: small models of three families trained by depara, of varied quality.

A source is (family, pretraining task, number of training images, epochs). The pretraining tasks are real-image
tasks on images disjoint from every target pool (the Fashion-MNIST *train* file, the *source* half of sklearn
digits, texture patches of scikit-image photos not used by the photo target), rendered digits (synthetic) and the
procedural bank's scenes (shape class, object count). Quality is varied on purpose (data size, epochs), so the best
source differs between targets and is not simply the best-trained one.

Trained weights are cached as checksummed safetensors entries (:mod:`depara.benches.taskbank.cache`), keyed by the source's
settings; a corrupt entry is retrained.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from ..taskbank.cache import fingerprint, load_tensors_entry, save_tensors_entry, sha256_file
from .data import Unavailable, source_data
from .models import Net


@dataclass(frozen=True)
class SourceSpec:
    """One source model: ``family`` trained on ``task`` with ``n`` images for ``epochs`` epochs."""

    family: str
    task: str
    n: int
    epochs: int
    width: int = 16
    lr: float = 2e-3
    batch_size: int = 32

    @property
    def name(self) -> str:
        return f"{self.family}:{self.task}:{self.n}x{self.epochs}"

    def key(self, seed: int) -> str:
        return fingerprint({**asdict(self), "seed": int(seed), "v": 1})


HI, LO = (2000, 4), (400, 2)
_D_HI = (898, 6)  # the source half of sklearn digits has 898 images

#: The default zoo: 12 sources, 3 families × 4 pretraining tasks, quality deliberately mixed.
DEFAULT_ZOO = (
    SourceSpec("vgg", "fmnist", *HI), SourceSpec("vgg", "synth-digits", *HI), SourceSpec("vgg", "scene-shape", *LO),
    SourceSpec("vgg", "textures", *HI),
    SourceSpec("resnet", "fmnist", *LO), SourceSpec("resnet", "scene-count", *HI), SourceSpec("resnet", "textures", *LO),
    SourceSpec("resnet", "digits", *_D_HI),
    SourceSpec("mobilenet", "fmnist", *HI), SourceSpec("mobilenet", "synth-digits", *LO),
    SourceSpec("mobilenet", "scene-shape", *HI), SourceSpec("mobilenet", "textures", *LO),
)
DEMO_ZOO = (
    SourceSpec("vgg", "fmnist", 800, 2), SourceSpec("vgg", "scene-shape", 400, 2),
    SourceSpec("vgg", "textures", 800, 2), SourceSpec("resnet", "synth-digits", 400, 2),
    SourceSpec("resnet", "digits", 600, 3), SourceSpec("resnet", "fmnist", 300, 1),
    SourceSpec("mobilenet", "fmnist", 800, 2), SourceSpec("mobilenet", "textures", 300, 1),
)
TINY_ZOO = (
    SourceSpec("vgg", "digits", 200, 1, width=8), SourceSpec("resnet", "textures", 120, 1, width=8),
    SourceSpec("mobilenet", "scene-shape", 160, 1, width=8), SourceSpec("vgg", "synth-digits", 160, 1, width=8),
)


def train_source(spec: SourceSpec, seed: int) -> tuple[Net, dict]:
    """Train one source from scratch (Adam, cross-entropy, seeded); returns the net (eval mode) and info."""
    x, y = source_data(spec.task, spec.n, seed)
    n_classes = int(y.max()) + 1
    torch.manual_seed(int(spec.key(seed), 16) % 2**31)
    net = Net(spec.family, n_classes, spec.width)
    opt = torch.optim.Adam(net.parameters(), lr=spec.lr)
    rng = np.random.default_rng(int(spec.key(seed), 16) % 2**31)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    t0 = time.perf_counter()
    net.train()
    loss_sum = 0.0
    for _ in range(spec.epochs):
        order = torch.from_numpy(rng.permutation(len(y)))
        loss_sum = 0.0
        for i in range(0, len(y), spec.batch_size):
            idx = order[i:i + spec.batch_size]
            loss = F.cross_entropy(net(xt[idx]), yt[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            loss_sum += float(loss.detach()) * len(idx)
    net.eval()
    with torch.no_grad():
        acc = float((net(xt[:512]).argmax(1) == yt[:512]).float().mean())
    return net, {"source": spec.name, "n_classes": n_classes, "train_loss": loss_sum / len(y),
                 "train_accuracy_first512": acc, "seconds": time.perf_counter() - t0}


def load_or_train_zoo(zoo, cache_root: Path, seed: int, *, progress: Callable[[str], None] | None = None,
                      bar=None) -> tuple[dict[str, Net], dict[str, dict], dict[str, str]]:
    """``({name: net}, {name: info}, {name: why skipped})``: every source from cache when intact, else trained."""
    nets, infos, skipped = {}, {}, {}
    for spec in zoo:
        path = cache_root / "sources" / f"{spec.name.replace(':', '_')}-{spec.key(seed)}.safetensors"
        entry = load_tensors_entry(path, spec.key(seed))
        try:
            if entry is not None:
                state, info = entry
                net = Net(spec.family, int(info["n_classes"]), spec.width)
                net.load_state_dict(state)
                info = {**info, "cached": True}
            else:
                if progress:
                    progress(f"training source {spec.name}")
                net, info = train_source(spec, seed)
                save_tensors_entry(path, spec.key(seed), net.state_dict(), info)
                # the weights' hash keys the ground truth, the same on a fresh and on a cached run
                info = {**info, "file_sha256": sha256_file(path), "cached": False}
        except Unavailable as exc:
            skipped[spec.name] = str(exc)
            continue
        finally:
            if bar is not None:
                bar.update(1)
        net.eval()
        for p in net.parameters():
            p.requires_grad_(False)
        nets[spec.name] = net
        infos[spec.name] = {**asdict(spec), **info}
    return nets, infos, skipped
