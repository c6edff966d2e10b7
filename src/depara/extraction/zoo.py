"""Candidate models for `depara select`: model specs and the zoo file (TOML).

A zoo file lists candidates, one ``[[model]]`` table each::

    [[model]]
    name = "resnet18-in1k"                  # required, unique: how the model is named in the results
    spec = "torchvision:resnet18"           # required: torchvision:<name>, timm:<name> or file:<path>[?arch=...]
    weights = "DEFAULT"                     # optional: None/"none" (random init), "DEFAULT", a weights name,
                                            #   or a state-dict path (relative to the zoo file's folder)
    preprocessing = "imagenet"              # optional: "imagenet", "taskonomy", "WxH[:mean:std]"
                                            #   (default: the weights' own transform, else "imagenet")
    layers = ["layer3", "layer4"]           # optional: "auto" (default), "all", or a list of module names

    [[model]]
    name = "digits-cnn"
    spec = "file:nets/digits.pt"            # file: paths are relative to the zoo file's folder
    preprocessing = "32x32:0.5:0.5"

Every entry is checked when the file is read: a missing ``name`` or ``spec``, an unknown field, a field of the
wrong type, a duplicate name or a non-finite preprocessing mean/std raises a one-line
:class:`~depara.errors.DeparaError` naming the file and the entry. Nothing is loaded until the selection runs.

Relative ``file:`` and ``weights`` paths are resolved against the zoo file's folder (links included) and must stay
inside it: ``../model.pt``, or a link leading out of the folder, is refused. A model elsewhere is named on purpose
with an absolute path, which is used as given. A path that names a FIFO, device or folder is refused as such.

On the command line (``--models``) a candidate is ``SPEC[@WEIGHTS]``: ``torchvision:resnet18@DEFAULT``,
``timm:deit_tiny_patch16_224@DEFAULT``, ``file:net.pt``; its name is the spec's model name (file stem for files).
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from ..errors import DeparaError
from .probes import Preprocess
from ..io.readers import exists, read_bytes_limited, real_path, regular_file

if TYPE_CHECKING:  # pragma: no cover
    from torch import nn

__all__ = ["ModelEntry", "read_zoo", "parse_model_specs"]

_FIELDS = ("name", "spec", "weights", "preprocessing", "layers")
#: The largest zoo file read (a zoo lists models, it is never large).
MAX_ZOO_BYTES = 4 * 2**20
_REQUIRED = ("name", "spec")


@dataclass(frozen=True)
class ModelEntry:
    """One candidate model: how to load it, how to preprocess images for it, which layers to try.

    ``module``: an already built ``nn.Module`` (Python API only); then ``spec`` is just a label.
    """

    name: str
    spec: str
    weights: Any = None
    preprocessing: "str | Preprocess | None" = None
    layers: "str | tuple[str, ...]" = "auto"
    module: Any = field(default=None, compare=False, repr=False)

    def load(self, seed: int | None = None) -> "nn.Module":
        """The model in eval mode (``module`` when given, else :func:`depara.extraction.models.load_model`, built
        under ``seed`` when one is given)."""
        if self.module is not None:
            from torch import nn

            if not isinstance(self.module, nn.Module):
                raise DeparaError(f"model {self.name}: expected a torch.nn.Module, got {type(self.module).__name__}")
            return self.module.eval()
        from .models import load_model

        try:
            return load_model(self.spec, self.weights, seed=seed)
        except DeparaError as exc:
            msg = str(exc)
            raise DeparaError(msg if self.name in msg else f"model {self.name}: {msg}") from None

    def preprocess(self, model: "nn.Module | None" = None) -> Preprocess:
        """The explicit ``preprocessing``, else the named weights' own transform, else ``imagenet``."""
        if self.preprocessing is not None:
            try:
                return Preprocess.parse(self.preprocessing)
            except DeparaError as exc:
                raise DeparaError(f"model {self.name}: {exc}") from None
        found = _weights_preprocess(self.spec, self.weights, model) if self.module is None else None
        return found or Preprocess.parse("imagenet")


def _weights_preprocess(spec: str, weights: Any, model: Any) -> Preprocess | None:
    """The preprocessing the library ships with the weights (torchvision transforms / timm pretrained_cfg)."""
    kind, _, name = spec.partition(":")
    kind = kind.strip().lower()
    if kind == "torchvision" and isinstance(weights, str) and weights.lower() not in ("none", "") \
            and "/" not in weights and not weights.lower().endswith((".pt", ".pth", ".safetensors", ".bin")):
        try:
            from torchvision import models as tvm

            enum = tvm.get_model_weights(name.split("?")[0])
            w = enum.DEFAULT if weights.upper() == "DEFAULT" else enum[weights.split(".")[-1]]
            t = w.transforms()
            crop, resize = int(t.crop_size[0]), int(t.resize_size[0])
            return Preprocess(size=(crop, crop), mean=tuple(t.mean), std=tuple(t.std), resize=resize,
                              center_crop=True, name=f"torchvision:{w.name}")
        except Exception:  # noqa: BLE001 - unknown weights are reported when the model loads
            return None
    if kind == "timm" and model is not None and isinstance(getattr(model, "pretrained_cfg", None), dict):
        cfg = model.pretrained_cfg
        try:
            _, h, w = (int(v) for v in cfg["input_size"])
            crop_pct = float(cfg.get("crop_pct") or 1.0)
            return Preprocess(size=(h, w), mean=tuple(cfg["mean"]), std=tuple(cfg["std"]),
                              resize=int(round(min(h, w) / crop_pct)), center_crop=True, name=f"timm:{name}")
        except (KeyError, TypeError, ValueError):
            return None
    return None


def _spec_name(spec: str) -> str:
    kind, _, rest = spec.partition(":")
    rest = rest.split("?")[0]
    return Path(rest).stem if kind.strip().lower() == "file" else rest.strip()


def parse_model_specs(specs: str | Sequence[str]) -> list[ModelEntry]:
    """``"torchvision:resnet18@DEFAULT,file:net.pt"`` (or a list) → entries named after the spec's model.

    Duplicate names get ``#2``, ``#3`` appended. An empty list raises a DeparaError.
    """
    items = [specs] if isinstance(specs, str) else list(specs)
    parts = [p.strip() for item in items for p in str(item).split(",") if p.strip()]
    if not parts:
        raise DeparaError("models: no model spec given (expected e.g. 'torchvision:resnet18@DEFAULT')")
    out: list[ModelEntry] = []
    seen: dict[str, int] = {}
    for part in parts:
        spec, weights = part, None
        kind = part.partition(":")[0].strip().lower()
        if "@" in part and kind in ("torchvision", "timm"):
            spec, _, weights = part.rpartition("@")
            if not weights:
                raise DeparaError(f"model {part!r}: empty weights after '@' (expected e.g. @DEFAULT)")
        from .models import parse_spec

        parse_spec(spec)  # unknown sources fail here, before anything loads
        name = _spec_name(spec)
        seen[name] = seen.get(name, 0) + 1
        if seen[name] > 1:
            name = f"{name}#{seen[name]}"
        out.append(ModelEntry(name=name, spec=spec, weights=_none(weights)))
    return out


def _none(value: Any) -> Any:
    return None if isinstance(value, str) and value.strip().lower() in ("", "none") else value


def read_zoo(path: str | os.PathLike) -> list[ModelEntry]:
    """The entries of a zoo TOML file (see the module docstring), validated; relative paths resolved."""
    p = Path(path)
    if not exists(p):
        raise DeparaError(f"zoo file {p}: not found")
    raw = read_bytes_limited(p, "zoo file", MAX_ZOO_BYTES)  # a folder or a FIFO is named as what it is
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise DeparaError(f"zoo file {p}: not a text file (expected TOML)") from None
    except tomllib.TOMLDecodeError as exc:
        raise DeparaError(f"zoo file {p}: not valid TOML ({exc})") from None
    except RecursionError:
        raise DeparaError(f"zoo file {p}: nested too deeply (arrays or tables inside each other thousands of "
                          "levels deep); not a zoo file") from None
    unknown_top = sorted(set(data) - {"model"})
    if unknown_top:
        raise DeparaError(f"zoo file {p}: unknown top-level key {unknown_top[0]!r} (expected [[model]] tables)")
    models = data.get("model")
    if not isinstance(models, list) or not models:
        raise DeparaError(f"zoo file {p}: no [[model]] entries")
    base = p.resolve().parent
    out: list[ModelEntry] = []
    names: set[str] = set()
    for i, entry in enumerate(models, start=1):
        where = f"zoo file {p}: entry {i}"
        if not isinstance(entry, dict):
            raise DeparaError(f"{where}: expected a [[model]] table")
        if isinstance(entry.get("name"), str):
            where += f" ({entry['name']!r})"
        for key in _REQUIRED:
            if key not in entry:
                raise DeparaError(f"{where}: missing field {key!r} (required: {', '.join(_REQUIRED)})")
        unknown = sorted(set(entry) - set(_FIELDS))
        if unknown:
            raise DeparaError(f"{where}: unknown field {unknown[0]!r} (expected {', '.join(_FIELDS)})")
        for key in ("name", "spec", "weights", "preprocessing"):
            if key in entry and not isinstance(entry[key], str):
                raise DeparaError(f"{where}: field {key!r} must be a string, got {type(entry[key]).__name__}")
        name = entry["name"].strip()
        if not name:
            raise DeparaError(f"{where}: field 'name' is empty")
        if name in names:
            raise DeparaError(f"{where}: duplicate name {name!r} (names must be unique)")
        names.add(name)
        layers = entry.get("layers", "auto")
        if isinstance(layers, list):
            if not layers or not all(isinstance(x, str) and x for x in layers):
                raise DeparaError(f"{where}: field 'layers' must be 'auto', 'all' or a non-empty list of names")
            layers = tuple(layers)
        elif layers not in ("auto", "all"):
            raise DeparaError(f"{where}: field 'layers' must be 'auto', 'all' or a list of names, got {layers!r}")
        spec = entry["spec"].strip()
        from .models import parse_spec

        try:
            kind, target, query = parse_spec(spec)
        except DeparaError as exc:
            raise DeparaError(f"{where}: {exc}") from None
        if kind == "file":
            qs = "&".join(f"{k}={v}" for k, v in query.items())
            spec = f"file:{_zoo_path(target, base, where, 'spec')}" + (f"?{qs}" if qs else "")
        weights = _none(entry.get("weights"))
        if isinstance(weights, str) and ("/" in weights or weights.lower().endswith(
                (".pt", ".pth", ".safetensors", ".bin", ".ckpt"))):
            weights = str(_zoo_path(weights, base, where, "weights"))
        if "preprocessing" in entry:
            _check_preprocessing(entry["preprocessing"], where)
        out.append(ModelEntry(name=name, spec=spec, weights=weights, preprocessing=entry.get("preprocessing"),
                              layers=layers))
    return out


def _zoo_path(target: str, base: Path, where: str, field: str) -> Path:
    """A model or weights path of a zoo entry: an absolute path as given (on purpose: anywhere); a relative one
    resolved against the zoo file's folder ``base`` (links too) and confined to it. An existing path must be a
    regular file (a FIFO or folder is named as such); a missing one is reported when the model loads."""
    p = Path(target)
    if not p.is_absolute():
        p = base / p
        real = real_path(p)
        if not real.is_relative_to(real_path(base)):
            raise DeparaError(f"{where}: field {field!r} path {target!r} resolves to {real}, outside the zoo file's "
                              f"folder {base} (give an absolute path to use a file elsewhere)")
    if exists(p):
        regular_file(p, f"{where}: field {field!r} file")
    return p


def _check_preprocessing(value: str, where: str) -> None:
    """``preprocessing`` parses (:meth:`Preprocess.parse`: sizes, finite mean and std)."""
    try:
        Preprocess.parse(value)
    except DeparaError as exc:
        raise DeparaError(f"{where}: field 'preprocessing': {exc}") from None
