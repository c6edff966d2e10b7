"""Candidate layers of a model for ``layers="auto"`` / ``"all"`` (`depara select --layers`).

``auto`` is the output of each stage (or block) of the model's trunk, shallow to deep: never a container that
holds the whole trunk, never the classifier head (the logits; name it to get it). The rules, first match wins
(families are recognised by module names, so torchvision and timm definitions of the same family agree):

=========================================  ===========================================================================
family (how it is recognised)              auto candidates
=========================================  ===========================================================================
TorchScript                                ``output`` (hooks are not available)
ViT-style (``patch_embed`` and a           every third block, ending with the last (``blocks.2``, ``blocks.5``,
``blocks`` Sequential: timm ViT, DeiT,     ``blocks.8``, ``blocks.11`` for 12 blocks); at most 12
BEiT, EVA, Mixer)
timm (the model carries ``feature_info``)  the modules timm's ``feature_info`` names (its feature-pyramid levels:
                                           the stem's output, then each stage's), at most 8 evenly spaced
ResNet / ResNeXt / Wide ResNet             ``layer1`` … ``layer4`` (each residual stage's output)
(``layer1``…``layer4`` children)
VGG / AlexNet (``features`` made of        each ``features.<i>`` that is a MaxPool2d (the end of each conv stage)
Conv2d, ReLU, BatchNorm2d, MaxPool2d)
torchvision ViT (``encoder.layers``)       every third encoder block, ending with the last (at most 12)
a trunk container: ``trunk_output``        each child of the trunk container that is itself a module of modules (a
(RegNet), ``features`` (MobileNet,         stage or block; single convolutions, norms and activations are left
EfficientNet, ConvNeXt, Swin, DenseNet,    out), except the stem ``features.0``: RegNet ``trunk_output.block1`` …
SqueezeNet), ``layers`` (MNASNet),         ``block4``, MNASNet's six ``layers.<i>`` stacks, MaxViT ``blocks.0`` …
``blocks`` (MaxViT), ``stages``            ``blocks.3``, DenseNet's dense blocks and transitions, SqueezeNet's Fire
                                           modules; at most 8 evenly spaced, the last always included
a flat ``torch.fx`` graph (an ONNX file      the end of each resolution level of the trunk, from the first module with
converted by onnx2torch: every node a      parameters on: the last module output (N×C×H×W) before the spatial size
top-level module, e.g. ``Conv/0``)         drops, and the last one of the smallest level; the trunk ends where the
                                           size first grows again (a detector's neck or a decoder) or at the end.
                                           Global poolings (a 1×1 output from a module without parameters, or
                                           from a larger level than 2×2: squeeze-and-excitation, the head's
                                           pooling) and everything after the trunk (logits,
                                           softmax, reshapes) are never offered. Sizes come from one forward pass of
                                           a zero image at the model's input size (hooks on its leaf modules);
                                           ResNet-18 exported to ONNX gives its stem and ``layer1`` … ``layer4``
                                           outputs; at most 8, evenly spaced, the last included
anything else                              each top-level child that is a module of modules (GoogLeNet's and
                                           Inception's convolution blocks and inception modules, ShuffleNet's
                                           stages), except auxiliary heads (``aux*``) and a trailing classifier;
                                           a list of blocks holding over half the model is opened into its
                                           blocks (lukemelas' EfficientNet: ``_conv_stem``, ``_blocks.<i>``,
                                           ``_conv_head``);
                                           for a model of single layers only (a plain Sequential), each top-level
                                           child except Dropout / Identity / Flatten and a final Linear. At most 8,
                                           evenly spaced, the last included
=========================================  ===========================================================================

``all`` is every named module whose output is one tensor (found by one forward pass of a zero image at the
model's input size), except top-level containers that only hold others.
"""

from __future__ import annotations

from typing import Sequence

from torch import nn

from ..errors import DeparaError

__all__ = ["auto_layers", "all_layers", "family", "resolution_ends", "MAX_AUTO", "MAX_BLOCKS"]

#: At most this many auto candidates per model (evenly spaced over depth, the deepest always kept).
MAX_AUTO = 8
#: Transformer block lists (every third block) keep at most this many.
MAX_BLOCKS = 12
#: Trunk containers, looked up in this order: the first one the model has (a Sequential / ModuleList of >= 2
#: children) is the trunk whose stages are the candidates.
TRUNKS = ("trunk_output", "features", "layers", "blocks", "stages")
#: Names of classifier heads, never offered by the generic rule.
HEADS = ("fc", "head", "heads", "classifier", "logits")
_PLAIN = (nn.Conv2d, nn.ReLU, nn.MaxPool2d, nn.BatchNorm2d)
_SKIP = (nn.Dropout, nn.Identity, nn.Flatten)


def _timm_levels(model: nn.Module) -> tuple[list[str], bool]:
    """The module names of timm's ``feature_info`` that exist in ``model`` (empty when it has none), and whether
    they all have the same reduction (a uniform block stack: ViT, Mixer; not a pyramid of stages)."""
    info = getattr(model, "feature_info", None)
    if not isinstance(info, Sequence) or isinstance(info, str):
        return [], False
    info = [f for f in info if isinstance(f, dict)]
    modules = dict(model.named_modules())
    names = [n for n in dict.fromkeys(f.get("module") for f in info) if isinstance(n, str) and n in modules]
    return names, len(names) > 1 and len({f.get("reduction") for f in info}) == 1


def _trunk(model: nn.Module) -> tuple[str, nn.Module] | None:
    for name in ("encoder.layers", *TRUNKS):
        try:
            mod = model.get_submodule(name)
        except AttributeError:
            continue
        if isinstance(mod, (nn.Sequential, nn.ModuleList)) and len(mod) >= 2:
            return name, mod
    return None


def family(model: nn.Module) -> str:
    """The rule :func:`auto_layers` applies to ``model``: ``torchscript``, ``vit``, ``timm``, ``resnet``,
    ``vgg``, ``trunk``, ``graph`` or ``generic`` (see the module docstring)."""
    import torch
    import torch.fx

    if isinstance(model, torch.jit.ScriptModule):
        return "torchscript"
    children = dict(model.named_children())
    levels, uniform = _timm_levels(model)
    if uniform or ("patch_embed" in children and isinstance(children.get("blocks"), (nn.Sequential, nn.ModuleList))):
        return "vit"
    if levels:
        return "timm"
    if all(f"layer{i}" in children for i in range(1, 5)):
        return "resnet"
    feats = children.get("features")
    if isinstance(feats, nn.Sequential) and any(isinstance(m, nn.MaxPool2d) for m in feats) and \
            all(isinstance(m, _PLAIN) for m in feats):
        return "vgg"
    if _trunk(model) is not None:
        return "trunk"
    return "graph" if isinstance(model, torch.fx.GraphModule) else "generic"


def _spaced(names: Sequence[str], limit: int = MAX_AUTO) -> list[str]:
    names = list(names)
    if len(names) <= limit:
        return names
    step = (len(names) - 1) / (limit - 1)
    return list(dict.fromkeys(names[round(i * step)] for i in range(limit)))


def _every_third(names: Sequence[str]) -> list[str]:
    """Blocks ``n-1, n-4, …`` of a uniform block list (transformer blocks), shallow to deep, at most
    :data:`MAX_BLOCKS`."""
    return _spaced(list(names)[::-1][::3][::-1], MAX_BLOCKS)


def _is_container(module: nn.Module) -> bool:
    return next(module.children(), None) is not None


def _is_head(name: str, module: nn.Module) -> bool:
    """A classifier head: a Linear, or a child named like one (``fc``, ``head(s)``, ``classifier``, ``logits``)."""
    return isinstance(module, nn.Linear) or name.lower() in HEADS


def _leaf_count(module: nn.Module) -> int:
    return sum(1 for m in module.modules() if not _is_container(m))


def _open_block_lists(model: nn.Module, blocks: list[tuple[str, nn.Module]]) -> list[tuple[str, nn.Module]]:
    """``blocks`` with each list of blocks that holds most of the model (a Sequential / ModuleList of >= 2
    modules of modules with over half of the model's layers: lukemelas' EfficientNet ``_blocks``) replaced by its
    blocks, so that no candidate is the whole trunk."""
    total, out = _leaf_count(model), []
    for name, mod in blocks:
        kids = list(mod.named_children())
        if isinstance(mod, (nn.Sequential, nn.ModuleList)) and len(kids) >= 2 and \
                all(_is_container(k) for _, k in kids) and 2 * _leaf_count(mod) > total:
            out.extend((f"{name}.{k}", km) for k, km in kids)
        else:
            out.append((name, mod))
    return out


def _generic(model: nn.Module) -> list[str]:
    children = list(model.named_children())
    blocks = [(n, m) for n, m in children if _is_container(m) and not n.lower().startswith("aux")]
    blocks = _open_block_lists(model, blocks)
    while blocks and _is_head(*blocks[-1]):
        blocks.pop()
    if blocks:
        return _spaced([n for n, _ in blocks])
    names = [n for n, m in children if not isinstance(m, _SKIP)]
    if names and isinstance(dict(children)[names[-1]], nn.Linear) and len(names) > 1:
        names = names[:-1]
    if not names:
        raise DeparaError(f"model {type(model).__name__}: no child modules to offer as layers; name the layers "
                          "(or 'output')")
    return _spaced(names)


def _graph_outputs(model: nn.Module, input_size: Sequence[int]) -> list[tuple[str, tuple[int, int], bool]]:
    """(module name, (H, W), whether the module has parameters) of each N×C×H×W module output of one zero image,
    in call order, from the first module with parameters on; empty when the model does not run on it."""
    import torch

    from .models import leaf_outputs

    outputs, failed_in = leaf_outputs(model, torch.zeros(1, *input_size))
    if failed_in is not None:
        return []
    modules, started, out = dict(model.named_modules()), False, []
    for name, (shape, _) in outputs.items():
        params = next(modules[name].parameters(), None) is not None
        started = started or params
        if started and len(shape) == 4:
            out.append((name, (shape[2], shape[3]), params))
    return out


def resolution_ends(outputs: Sequence[tuple[str, tuple[int, int], bool]]) -> list[str]:
    """The last name of each resolution level of ``outputs`` ((name, (H, W), has parameters) in depth order): a
    level ends where the spatial size drops; the walk stops where it first grows again. A global pooling is passed
    over: a drop to 1×1 by a module without parameters, or from a level larger than 2×2."""
    ends: list[str] = []
    level, last = 0, None
    for name, (h, w), params in outputs:
        area = h * w
        if last is not None and area == 1 < level and (level > 4 or not params):
            continue
        if last is not None and area > level:
            break
        if last is not None and area < level:
            ends.append(last)
        level, last = area, name
    return ends + ([last] if last is not None else [])


def auto_layers(model: nn.Module, input_size: Sequence[int] = (3, 224, 224)) -> list[str]:
    """The documented candidate layers of ``model`` (see the module docstring), shallow to deep. ``input_size``
    (C, H, W) is read only by the ``graph`` rule (a flat ``torch.fx`` graph: the sizes of its outputs). A model that
    takes a batch image by image only up to a node (``batch_safe_layers``, an ONNX file with a fixed batch size
    of 1) gets the candidates before it."""
    from .extract import batch_unsafe_from, is_batch_safe

    names = _family_layers(model, input_size)
    kept = [n for n in names if is_batch_safe(model, n)]
    if not kept:
        raise DeparaError(f"model {type(model).__name__}: no auto candidate comes before node "
                          f"{batch_unsafe_from(model)!r}, from which it no longer takes a batch image by image; "
                          "name the layers")
    return kept


def _family_layers(model: nn.Module, input_size: Sequence[int]) -> list[str]:
    fam = family(model)
    children = dict(model.named_children())
    if fam == "torchscript":
        return ["output"]
    if fam == "vit":
        levels, _ = _timm_levels(model)
        return _every_third(levels or [f"blocks.{n}" for n, _ in children["blocks"].named_children()])
    if fam == "timm":
        return _spaced(_timm_levels(model)[0])
    if fam == "resnet":
        return [f"layer{i}" for i in range(1, 5)]
    if fam == "vgg":
        return [f"features.{i}" for i, m in enumerate(children["features"]) if isinstance(m, nn.MaxPool2d)]
    if fam == "trunk":
        key, trunk = _trunk(model)  # type: ignore[misc]
        if key == "encoder.layers":
            return _every_third([f"{key}.{n}" for n, _ in trunk.named_children()])
        named = list(trunk.named_children())
        if key == "features" and len(named) > 1:
            named = named[1:]  # torchvision's features[0] is the stem
        stages = [f"{key}.{n}" for n, m in named if _is_container(m)]
        if stages:
            return _spaced(stages)
    if fam == "graph":
        ends = resolution_ends(_graph_outputs(model, input_size))
        if ends:
            return _spaced(ends)
    return _generic(model)


def all_layers(model: nn.Module, input_size: Sequence[int]) -> list[str]:
    """Every named module whose output is a tensor at ``input_size`` (C, H, W), in ``named_modules`` order."""
    from .models import list_layers

    shapes = list_layers(model, input_size)
    return [name for name, shape in shapes if shape is not None]
