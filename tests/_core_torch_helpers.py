"""Tiny models and images for core-torch's tests (probes, extract, models, CLI)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn


def tiny_vgg(seed: int = 0, width: int = 4, n_classes: int = 5) -> nn.Sequential:
    """A VGG-style net a few channels wide for 32×32 inputs; layers named "0".."12" by nn.Sequential.

    0 conv, 1 bn, 2 relu, 3 maxpool, 4 conv, 5 bn, 6 relu, 7 maxpool, 8 conv, 9 relu, 10 avgpool, 11 flatten, 12 fc
    """
    torch.manual_seed(seed)
    net = nn.Sequential(
        nn.Conv2d(3, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(width, 2 * width, 3, padding=1), nn.BatchNorm2d(2 * width), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(2 * width, 2 * width, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(2), nn.Flatten(),
        nn.Linear(8 * width, n_classes),
    )
    # Non-trivial BatchNorm statistics, so eval mode differs from train mode.
    for m in net.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 1.5)
            m.weight.data.uniform_(0.5, 1.5)
    return net.eval()


class FixedSize(nn.Module):
    """A tiny classifier that only runs at ``size``×``size`` (its head is a Linear on the flattened map): a model
    with a fixed input size, for the different-input-size cases of the harness, ``select`` and the CLI."""

    def __init__(self, size: int, seed: int = 0, n_classes: int = 3):
        super().__init__()
        torch.manual_seed(seed)
        self.conv = nn.Conv2d(3, 2, 3, padding=1)
        self.flat = nn.Flatten()
        self.fc = nn.Linear(2 * size * size, n_classes)

    def forward(self, x):
        return self.fc(self.flat(torch.relu(self.conv(x))))


def random_images(n: int = 8, size: int = 32, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 3, size, size, generator=g)


def write_images(folder: Path, names: list[str], size: tuple[int, int] = (40, 30), seed: int = 0) -> list[Path]:
    """Random RGB PNG/JPEG images (by extension) at ``folder/name``; returns their paths."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    paths = []
    for name in names:
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        arr = rng.integers(0, 256, size=(size[1], size[0], 3), dtype=np.uint8)
        Image.fromarray(arr).save(path)
        paths.append(path)
    return paths


def write_shifted_images(folder: Path, n: int, shift: int = 0, mode: str = "RGB", seed: int = 0,
                         size: int = 16) -> None:
    """``n`` random size×size PNGs ``0.png``… in ``folder`` (made), pixels uniform in [shift, shift + 80) from
    ``default_rng(seed + shift)``, saved in PIL ``mode``: a shift per class makes the classes separable."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed + shift)
    for i in range(n):
        a = (rng.random((size, size, 3)) * 80 + shift).astype(np.uint8)
        Image.fromarray(a).convert(mode).save(folder / f"{i}.png")


def write_shifted_classes(root: Path, per_class: int, n_classes: int = 3, step: int = 60) -> Path:
    """Class folders ``root/class0``… of :func:`write_shifted_images`, class c shifted by ``step·c``; returns root."""
    for c in range(n_classes):
        write_shifted_images(root / f"class{c}", per_class, shift=step * c)
    return root
