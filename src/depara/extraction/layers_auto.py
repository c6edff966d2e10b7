"""Candidate layers of a model for ``layers="auto"`` / ``"all"`` (`depara select --layers`).

``auto`` is the output of each stage / block, per architecture family (recognised by module names, so
torchvision and timm definitions of the same family agree):

=====================================  =====================================================================
family (how it is recognised)          auto candidates
=====================================  =====================================================================
ResNet / ResNeXt / Wide ResNet         ``layer1`` … ``layer4`` (each residual stage's output)
(``layer1``…``layer4`` children)
VGG (``features`` made of Conv2d,      each ``features.<i>`` that is a MaxPool2d (the end of each conv stage)
ReLU, MaxPool2d)
MobileNet / EfficientNet /             each child of ``features`` (torchvision) or of ``blocks`` (timm) after
RegNet-style (``features`` or          the stem: the output of each inverted-residual stage; at most 8,
``blocks`` of stages)                  evenly spaced, the last always included
ViT / DeiT (timm: ``blocks`` of        every third block, ending with the last (``blocks.2``, ``blocks.5``,
transformer blocks, ``patch_embed``)   ``blocks.8``, ``blocks.11`` for 12 blocks)
TorchScript                            ``output`` (hooks are not available)
anything else                          each top-level child module whose output is a tensor, except a final
                                       Linear head (at most 8, evenly spaced, the last included)
=====================================  =====================================================================

``all`` is every named module whose output is one tensor (found by one forward pass of a zero image at the
model's input size), except top-level containers that only hold others.
"""

from __future__ import annotations

from typing import Sequence

from torch import nn

from ..errors import DeparaError

__all__ = ["auto_layers", "all_layers", "family", "MAX_AUTO"]

#: At most this many auto candidates per model (evenly spaced over depth, the deepest always kept).
MAX_AUTO = 8


def family(model: nn.Module) -> str:
    """The architecture family name used by :func:`auto_layers` (``resnet``, ``vgg``, ``stages``, ``vit``,
    ``torchscript`` or ``generic``)."""
    import torch

    if isinstance(model, torch.jit.ScriptModule):
        return "torchscript"
    children = dict(model.named_children())
    if all(f"layer{i}" in children for i in range(1, 5)):
        return "resnet"
    if "patch_embed" in children and isinstance(children.get("blocks"), nn.Sequential):
        return "vit"
    feats = children.get("features")
    if isinstance(feats, nn.Sequential) and any(isinstance(m, nn.MaxPool2d) for m in feats) and \
            all(isinstance(m, (nn.Conv2d, nn.ReLU, nn.MaxPool2d, nn.BatchNorm2d)) for m in feats):
        return "vgg"
    if isinstance(feats, nn.Sequential) or isinstance(children.get("blocks"), nn.Sequential):
        return "stages"
    return "generic"


def _spaced(names: Sequence[str], limit: int = MAX_AUTO) -> list[str]:
    names = list(names)
    if len(names) <= limit:
        return names
    step = (len(names) - 1) / (limit - 1)
    return list(dict.fromkeys(names[round(i * step)] for i in range(limit)))


def auto_layers(model: nn.Module) -> list[str]:
    """The documented candidate layers of ``model`` (see the module docstring), shallow to deep."""
    fam = family(model)
    children = dict(model.named_children())
    if fam == "torchscript":
        return ["output"]
    if fam == "resnet":
        return [f"layer{i}" for i in range(1, 5)]
    if fam == "vgg":
        return [f"features.{i}" for i, m in enumerate(children["features"]) if isinstance(m, nn.MaxPool2d)]
    if fam == "vit":
        n = len(children["blocks"])
        return [f"blocks.{i}" for i in range(n - 1, -1, -3)][::-1]
    if fam == "stages":
        key = "features" if isinstance(children.get("features"), nn.Sequential) else "blocks"
        n = len(children[key])
        start = 1 if key == "features" and n > 1 else 0  # torchvision's features[0] is the stem conv
        return _spaced([f"{key}.{i}" for i in range(start, n)])
    names = [name for name, m in children.items() if not isinstance(m, (nn.Dropout, nn.Identity, nn.Flatten))]
    if names and isinstance(children[names[-1]], nn.Linear) and len(names) > 1:
        names = names[:-1]
    if not names:
        raise DeparaError(f"model {type(model).__name__}: no child modules to offer as layers; name the layers "
                          "(or 'output')")
    return _spaced(names)


def all_layers(model: nn.Module, input_size: Sequence[int]) -> list[str]:
    """Every named module whose output is a tensor at ``input_size`` (C, H, W), in ``named_modules`` order."""
    from .models import list_layers

    shapes = list_layers(model, input_size)
    return [name for name, shape in shapes if shape is not None]
