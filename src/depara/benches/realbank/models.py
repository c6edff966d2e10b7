"""The three architecture families of the real-image bank's source zoo, small enough for CPUs (32×32 RGB input).

Every model is ``Net(body, head)``: ``body`` maps N×3×32×32 to the representation N×C×4×4 and has the named stages
``stage1``, ``stage2``, ``stage3`` (``stage3`` = the representation: DEPARA graphs, LogME & co. read it);
``head`` is global average pooling + a linear classifier. Fine-tuning replaces the head.

- ``vgg``: plain VGG-style convolutions + max pooling, no normalisation;
- ``resnet``: ResNet-style basic blocks with BatchNorm and identity/projection shortcuts;
- ``mobilenet``: MobileNetV2-style inverted residual blocks (depthwise separable convolutions, BatchNorm, ReLU6).
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

FAMILIES = ("vgg", "resnet", "mobilenet")
REP_LAYER = "stage3"
STAGES = ("stage1", "stage2", "stage3")


def _vgg(w: int) -> nn.Sequential:
    def block(cin, cout, n):
        layers = []
        for i in range(n):
            layers += [nn.Conv2d(cin if i == 0 else cout, cout, 3, padding=1), nn.ReLU()]
        return nn.Sequential(*layers, nn.MaxPool2d(2))
    return nn.Sequential(OrderedDict([("stage1", block(3, w, 2)), ("stage2", block(w, 2 * w, 2)),
                                      ("stage3", block(2 * w, 4 * w, 1))]))


class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.short = (nn.Identity() if stride == 1 and cin == cout else
                      nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout)))

    def forward(self, x):
        out = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(self.bn2(self.conv2(out)) + self.short(x))


def _resnet(w: int) -> nn.Sequential:
    stem = nn.Sequential(nn.Conv2d(3, w, 3, 1, 1, bias=False), nn.BatchNorm2d(w), nn.ReLU())
    return nn.Sequential(OrderedDict([("stem", stem), ("stage1", BasicBlock(w, w, 2)),
                                      ("stage2", BasicBlock(w, 2 * w, 2)), ("stage3", BasicBlock(2 * w, 4 * w, 2))]))


class InvertedResidual(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int, expand: int = 2):
        super().__init__()
        hid = cin * expand
        self.block = nn.Sequential(
            nn.Conv2d(cin, hid, 1, bias=False), nn.BatchNorm2d(hid), nn.ReLU6(),
            nn.Conv2d(hid, hid, 3, stride, 1, groups=hid, bias=False), nn.BatchNorm2d(hid), nn.ReLU6(),
            nn.Conv2d(hid, cout, 1, bias=False), nn.BatchNorm2d(cout))
        self.residual = stride == 1 and cin == cout

    def forward(self, x):
        out = self.block(x)
        return x + out if self.residual else out


def _mobilenet(w: int) -> nn.Sequential:
    stem = nn.Sequential(nn.Conv2d(3, w, 3, 1, 1, bias=False), nn.BatchNorm2d(w), nn.ReLU6())
    return nn.Sequential(OrderedDict([
        ("stem", stem),
        ("stage1", nn.Sequential(InvertedResidual(w, w, 2))),
        ("stage2", nn.Sequential(InvertedResidual(w, 2 * w, 2))),
        ("stage3", nn.Sequential(InvertedResidual(2 * w, 4 * w, 2), nn.BatchNorm2d(4 * w), nn.ReLU6()))]))


_BODIES = {"vgg": _vgg, "resnet": _resnet, "mobilenet": _mobilenet}


class Net(nn.Module):
    """``body`` (stages → N×4w×4×4) + ``head`` (global average pool + linear)."""

    def __init__(self, family: str, n_classes: int, width: int = 16):
        super().__init__()
        self.family, self.width = family, int(width)
        self.body = _BODIES[family](self.width)
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4 * self.width, n_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))

    def reset_head(self, n_classes: int, seed: int) -> None:
        """A fresh classifier for ``n_classes`` (seeded) replacing the source head: pooled features standardised
        by a BatchNorm without affine parameters, then linear (so the head learns at the same pace whatever the
        scale of the source's features, as the standardised linear probe does)."""
        self.head = fresh_head(4 * self.width, n_classes, seed)


def fresh_head(width: int, n_classes: int, seed: int) -> nn.Sequential:
    """A seeded classifier on N×``width``×H×W maps: global average pooling, a BatchNorm without affine parameters
    (standardises the pooled features), then linear — the fine-tuning head of the real-image banks."""
    torch.manual_seed(seed)
    return nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.BatchNorm1d(width, affine=False),
                         nn.Linear(width, n_classes))


@torch.no_grad()
def pooled_features(body: nn.Module, x, batch_size: int = 256):
    """Global-average-pooled representation (N×4w float64 numpy) of images ``x`` (N×3×32×32 numpy)."""
    import numpy as np

    was = body.training
    body.eval()
    out = [body(torch.from_numpy(x[i:i + batch_size])).mean(dim=(2, 3)) for i in range(0, len(x), batch_size)]
    body.train(was)
    return torch.cat(out).double().numpy() if out else np.zeros((0, 0))


@torch.no_grad()
def logits(net: Net, x, batch_size: int = 256):
    """Head outputs (N×C float64 numpy) of images ``x``."""
    was = net.training
    net.eval()
    out = [net(torch.from_numpy(x[i:i + batch_size])) for i in range(0, len(x), batch_size)]
    net.train(was)
    return torch.cat(out).double().numpy()
