"""The task networks of the bank: ONE encoder architecture shared by every task, plus per-task heads.

The encoder maps an image (3×S×S in [-1, 1]) to the representation that is transferred and probed,
``REP_CHANNELS``×S/4×S/4 (8×8×8 at 32 px, the bank's counterpart of Taskonomy's 16×16×8). Because
every task uses the same encoder class, layer names match across tasks: ``conv1``, ``conv2``, ``conv3``,
``rep`` (the representation), each a module of :class:`Encoder` so forward hooks can read it.

Heads read the representation: a dense head upsamples it back to S×S with ``out_channels`` maps, a
global head downsamples it once and maps the flattened grid to ``out_channels`` numbers.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from .tasks import Task

REP_CHANNELS = 8
REP_LAYER = "rep"
ENCODER_LAYERS = ("conv1", "conv2", "conv3", "rep")


class Encoder(nn.Sequential):
    """conv(3→w) → conv(w→2w, stride 2) → conv(2w→2w, stride 2) → rep conv(2w→8): N×8×S/4×S/4."""

    def __init__(self, width: int = 16):
        w = int(width)
        super().__init__(OrderedDict([
            ("conv1", nn.Conv2d(3, w, 3, padding=1)), ("relu1", nn.ReLU()),
            ("conv2", nn.Conv2d(w, 2 * w, 3, stride=2, padding=1)), ("relu2", nn.ReLU()),
            ("conv3", nn.Conv2d(2 * w, 2 * w, 3, stride=2, padding=1)), ("relu3", nn.ReLU()),
            ("rep", nn.Conv2d(2 * w, REP_CHANNELS, 3, padding=1)),
        ]))


class DenseHead(nn.Module):
    """8×s×s representation → out_channels×4s×4s map (two nearest-neighbour upsamplings)."""

    def __init__(self, out_channels: int, width: int = 16):
        super().__init__()
        w = int(width)
        self.net = nn.Sequential(
            nn.Conv2d(REP_CHANNELS, 2 * w, 3, padding=1), nn.ReLU(), nn.Upsample(scale_factor=2),
            nn.Conv2d(2 * w, w, 3, padding=1), nn.ReLU(), nn.Upsample(scale_factor=2),
            nn.Conv2d(w, out_channels, 3, padding=1))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)


class GlobalHead(nn.Module):
    """8×s×s representation → out_channels numbers (one stride-2 conv, then a linear map of the grid)."""

    def __init__(self, out_channels: int, rep_size: int, width: int = 16):
        super().__init__()
        w = int(width)
        grid = (int(rep_size) + 1) // 2
        self.net = nn.Sequential(
            nn.Conv2d(REP_CHANNELS, w, 3, stride=2, padding=1), nn.ReLU(), nn.Flatten(),
            nn.Linear(w * grid * grid, 2 * w), nn.ReLU(), nn.Linear(2 * w, out_channels))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)


def make_head(task: Task, image_size: int, width: int = 16) -> nn.Module:
    """The head (decoder or readout) of ``task`` for images of ``image_size`` pixels."""
    if task.kind == "dense":
        return DenseHead(task.out_channels, width)
    return GlobalHead(task.out_channels, image_size // 4, width)


class TaskNet(nn.Module):
    """Encoder + the task's head; ``net.encoder`` is what is transferred and probed."""

    def __init__(self, task: Task, image_size: int = 32, width: int = 16):
        super().__init__()
        self.encoder = Encoder(width)
        self.head = make_head(task, image_size, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder(x))
