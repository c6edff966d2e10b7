"""VGG with batch norm: torchvision's vgg11_bn … vgg19_bn, and a narrow variant for CPUs and small inputs.

Both share torchvision's module names (``features.<i>``, ``classifier.0/3/6``), so a layer of one is addressed
the same way in the other and torchvision's ImageNet state dicts load without renaming.

A *transfer unit* is one weight layer counted the way the paper counts layers #1..#L: a conv with its batch norm,
or a fully-connected layer. Depth k transfers units 1..k.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch import nn

from ...io.files import atomic_path
from ...errors import DeparaError

TORCHVISION_ARCHS = ("vgg11_bn", "vgg13_bn", "vgg16_bn", "vgg19_bn")
NARROW_ARCHS = tuple(f"narrow_{a}" for a in TORCHVISION_ARCHS)
ARCHS = TORCHVISION_ARCHS + NARROW_ARCHS
_CFG_KEY = {"vgg11_bn": "A", "vgg13_bn": "B", "vgg16_bn": "D", "vgg19_bn": "E"}
MODEL_INFO = "model.json"


@dataclass
class ModelInfo:
    """What is needed to rebuild a model and feed it: saved as ``model.json`` beside its weights."""

    arch: str
    classes: list[str]
    width: float = 1.0
    image_size: int = 224
    mean: list[float] = field(default_factory=lambda: [0.485, 0.456, 0.406])
    std: list[float] = field(default_factory=lambda: [0.229, 0.224, 0.225])
    domain: str = ""

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict, where: str) -> "ModelInfo":
        try:
            info = cls(**{k: data[k] for k in ("arch", "classes", "width", "image_size", "mean", "std", "domain")
                          if k in data})
        except TypeError as exc:
            raise DeparaError(f"{where}: not a depara model description ({exc})") from None
        if info.arch not in ARCHS:
            raise DeparaError(f"{where}: unknown arch '{info.arch}' (expected one of {', '.join(ARCHS)})")
        return info


def _narrow_cfg(cfg: list, width: float) -> list:
    return [v if v == "M" else max(1, int(round(v * width))) for v in cfg]


def build_model(arch: str, num_classes: int, *, width: float = 1.0) -> nn.Module:
    """Build a VGG-bn with freshly initialised weights (seed torch first for a reproducible init).

    ``vgg*_bn``: torchvision's model (input 224×224 or smaller: its adaptive pool makes any size ≥ 32 work).
    ``narrow_vgg*_bn``: the same layer sequence with every conv ``width`` times as wide, a 1×1 adaptive pool and a
    classifier of two hidden FC layers 4× the last conv width (dropout 0.3) — for 32×32 inputs on a CPU.
    ReLUs are not in-place, so forward hooks see each layer's own output.
    """
    from torchvision.models import vgg as tv_vgg

    if arch not in ARCHS:
        raise DeparaError(f"arch '{arch}': expected one of {', '.join(ARCHS)}")
    if num_classes < 2:
        raise DeparaError(f"num_classes {num_classes}: expected at least 2 classes")
    base = arch.removeprefix("narrow_")
    if arch in TORCHVISION_ARCHS:
        model = getattr(tv_vgg, base)(weights=None, num_classes=num_classes)
    else:
        if not 0 < width <= 1:
            raise DeparaError(f"width {width}: expected 0 < width <= 1")
        cfg = _narrow_cfg(tv_vgg.cfgs[_CFG_KEY[base]], width)
        model = NarrowVGG(tv_vgg.make_layers(cfg, batch_norm=True), [v for v in cfg if v != "M"][-1], num_classes)
    for m in model.modules():
        if isinstance(m, nn.ReLU):
            m.inplace = False
    return model


class NarrowVGG(nn.Module):
    """torchvision's VGG layout (``features``, ``avgpool``, ``classifier.0/3/6``) with a 1×1 pool and a narrow head.

    Not built through ``torchvision.models.VGG`` because its constructor allocates the 25088×4096 ImageNet head.
    """

    def __init__(self, features: nn.Sequential, last: int, num_classes: int):
        super().__init__()
        hidden = 4 * last
        self.features = features
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        # dropout 0.3 and PyTorch's default Linear init: torchvision's N(0, 0.01) starves a narrow head of signal
        self.classifier = nn.Sequential(
            nn.Linear(last, hidden), nn.ReLU(True), nn.Dropout(0.3),
            nn.Linear(hidden, hidden), nn.ReLU(True), nn.Dropout(0.3),
            nn.Linear(hidden, num_classes))
        for m in self.features.modules():  # torchvision's VGG init for the conv part
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                nn.init.constant_(m.bias, 0)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.constant_(m.weight, 1)
                nn.init.constant_(m.bias, 0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.avgpool(self.features(x))
        return self.classifier(torch.flatten(x, 1))


@dataclass(frozen=True)
class TransferUnit:
    """Layer #index (1-based): its parameter modules (conv+bn or linear) and the module whose output is its map."""

    index: int
    kind: str  # "conv" | "fc"
    modules: tuple[str, ...]
    output: str


def transfer_units(model: nn.Module) -> list[TransferUnit]:
    """All weight layers of a VGG-bn in order: each conv with its batch norm, then each FC layer.

    The output of a unit is the ReLU after it (the logits for the last FC layer).
    """
    units: list[TransferUnit] = []
    for part in ("features", "classifier"):
        seq = getattr(model, part)
        mods = list(seq)
        for i, m in enumerate(mods):
            if isinstance(m, nn.Conv2d):
                bn = i + 1
                if bn >= len(mods) or not isinstance(mods[bn], nn.BatchNorm2d):
                    raise DeparaError(f"{part}.{i}: conv without batch norm (expected a VGG with batch norm)")
                out = bn + 1 if bn + 1 < len(mods) and isinstance(mods[bn + 1], nn.ReLU) else bn
                units.append(TransferUnit(len(units) + 1, "conv", (f"{part}.{i}", f"{part}.{bn}"), f"{part}.{out}"))
            elif isinstance(m, nn.Linear):
                out = i + 1 if i + 1 < len(mods) and isinstance(mods[i + 1], nn.ReLU) else i
                units.append(TransferUnit(len(units) + 1, "fc", (f"{part}.{i}",), f"{part}.{out}"))
    return units


def unit_state_keys(model: nn.Module, unit: TransferUnit) -> list[str]:
    """State-dict keys (parameters and BN buffers) of one transfer unit."""
    keys = []
    for name in unit.modules:
        keys += [f"{name}.{k}" for k in model.get_submodule(name).state_dict().keys()]
    return keys


def load_state_checked(model: nn.Module, state: dict[str, torch.Tensor], where: str, arch: str) -> None:
    """Load a full state dict, raising a one-line DeparaError if its keys or shapes are of another architecture."""
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    if missing or unexpected:
        key = (missing or unexpected)[0]
        raise DeparaError(f"{where}: weights of another architecture, not {arch} "
                          f"({'missing' if missing else 'unexpected'} key {key})")
    for k, v in own.items():
        if tuple(state[k].shape) != tuple(v.shape):
            raise DeparaError(f"{where}: weights of another architecture, not {arch} "
                              f"({k} has shape {tuple(state[k].shape)}, expected {tuple(v.shape)})")
    model.load_state_dict(state)


def save_weights(model: nn.Module, path: str | os.PathLike) -> Path:
    """Save a state dict as safetensors (atomically)."""
    from safetensors.torch import save_file

    state = {k: v.detach().contiguous().clone() for k, v in model.state_dict().items()}
    with atomic_path(path, "checkpoint") as tmp:
        save_file(state, str(tmp))
    return Path(path)


def read_weights(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    p = Path(path)
    if not p.is_file():
        raise DeparaError(f"{p}: checkpoint not found")
    try:
        return load_file(str(p))
    except Exception as exc:
        raise DeparaError(f"{p}: not a safetensors checkpoint ({type(exc).__name__})") from None


def save_info(info: ModelInfo, folder: str | os.PathLike) -> None:
    from ...io.files import write_json

    write_json(Path(folder) / MODEL_INFO, info.to_json())


def resolve_checkpoint(path: str | os.PathLike) -> tuple[Path, Path]:
    """``RUN`` folder (its ``best.safetensors``) or a ``.safetensors`` file → (weights file, model.json)."""
    p = Path(path)
    if p.is_dir():
        weights = p / "best.safetensors"
        if not weights.is_file():
            weights = p / "last.safetensors"
        if not weights.is_file():
            raise DeparaError(f"{p}: no best.safetensors or last.safetensors (not a finished `depara train` run)")
        return weights, p / MODEL_INFO
    if not p.is_file():
        raise DeparaError(f"{p}: checkpoint not found")
    return p, p.parent / MODEL_INFO


def load_checkpoint(path: str | os.PathLike) -> tuple[nn.Module, ModelInfo]:
    """Load a model saved by ``depara train`` (a run folder or its ``*.safetensors`` with ``model.json`` beside).

    The model is returned in eval mode. A weights file of another architecture than its ``model.json`` says
    raises a one-line DeparaError.
    """
    from ...io.files import read_json

    weights, info_path = resolve_checkpoint(path)
    if not info_path.is_file():
        raise DeparaError(f"{weights}: no {MODEL_INFO} beside it (saved by `depara train`)")
    info = ModelInfo.from_json(read_json(info_path), str(info_path))
    model = build_model(info.arch, info.num_classes, width=info.width)
    load_state_checked(model, read_weights(weights), str(weights), info.arch)
    model.eval()
    return model, info


def model_preprocess(info: ModelInfo, size: int | None = None):
    """The :class:`~depara.extraction.probes.Preprocess` a trained model expects: its image size (or ``size``), mean
    and std."""
    from ...extraction.probes import Preprocess

    s = int(size or info.image_size)
    return Preprocess(size=(s, s), mean=tuple(info.mean), std=tuple(info.std), name=f"{info.arch}-{s}px")
