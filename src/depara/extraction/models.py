"""Load models by name (torchvision, timm, local files) and list their layers with output shapes.

Model specs accepted by :func:`load_model`:

* ``torchvision:<name>`` — ``torchvision.models.get_model(name, weights=...)``. ``weights``: ``None`` (random
  init, the default), ``"DEFAULT"`` or a weights name of that model (``"IMAGENET1K_V1"``), loaded by torchvision's
  own mechanism from the torch hub cache (``$TORCH_HOME/hub/checkpoints``), so they work offline once cached;
  or a path to a state-dict file (see below).
* ``timm:<name>`` — ``timm.create_model(name)``; ``weights="DEFAULT"`` loads timm's pretrained weights from the
  local cache only (no download); a path loads a state-dict file.
* ``file:<path>`` — a TorchScript file (``torch.jit.save``), or a state dict (``.safetensors``, or a
  ``torch.save``'d dict of tensors, read with ``weights_only=True``) for an architecture named in the spec's
  query: ``file:w.pt?arch=vgg11_bn`` (a torchvision name, or ``timm:<name>``), or by ``arch=``. The number of
  classes of the final layer is read from the state dict when it differs from the architecture's default.

Files are never unpickled beyond ``torch.load(weights_only=True)``. Set ``DEPARA_OFFLINE=1`` to fail at once
(instead of trying to download) when named weights are not cached. Every model is returned in eval mode.
"""

from __future__ import annotations

import contextlib
import io
import difflib
import os
import warnings
from pathlib import Path
from typing import Any, Mapping, Sequence
from urllib.parse import parse_qsl

import torch
from torch import nn

from ..errors import DeparaError, exception_reason

STATE_DICT_SUFFIXES = (".pt", ".pth", ".bin", ".safetensors", ".ckpt")


# -------------------------------------------------------------------------------------------- specs
def parse_spec(spec: str) -> tuple[str, str, dict[str, str]]:
    """``"torchvision:resnet18"`` → ("torchvision", "resnet18", {}); ``"file:w.pt?arch=vgg11"`` → query dict."""
    if not isinstance(spec, str) or ":" not in spec:
        raise DeparaError(f"model {spec!r}: expected 'torchvision:<name>', 'timm:<name>' or 'file:<path>'")
    kind, _, rest = spec.partition(":")
    kind = kind.strip().lower()
    if kind not in ("torchvision", "timm", "file"):
        close = difflib.get_close_matches(kind, ["torchvision", "timm", "file"], n=1)
        hint = f" (did you mean {close[0]}:?)" if close else ""
        raise DeparaError(f"model {spec!r}: unknown source {kind!r}{hint}; expected torchvision:, timm: or file:")
    name, query = rest, {}
    if "?" in rest:
        name, _, qs = rest.rpartition("?")
        query = dict(parse_qsl(qs, keep_blank_values=True))
        unknown = set(query) - {"arch", "num_classes"}
        if unknown:
            raise DeparaError(f"model {spec!r}: unknown option(s) {', '.join(sorted(unknown))} "
                              "(expected arch=, num_classes=)")
    if not name.strip():
        raise DeparaError(f"model {spec!r}: missing the name or path after {kind}:")
    return kind, name.strip(), query


def load_model(spec: str, weights: Any = None, *, arch: str | None = None,
               num_classes: int | None = None) -> nn.Module:
    """A model from a spec (see the module docstring), in eval mode.

    weights: ``None`` | ``"DEFAULT"`` | a weights name | a path to a state-dict file (torchvision/timm specs).
    arch: architecture for a ``file:`` state dict (``"vgg11_bn"``, ``"torchvision:vgg11_bn"``, ``"timm:<name>"``).
    num_classes: size of the final layer when building an architecture (default: the library's, or inferred
        from the state dict).
    """
    kind, name, query = parse_spec(spec)
    if "num_classes" in query:
        num_classes = _positive_int(query["num_classes"], f"model {spec!r}: num_classes")
    if kind == "file":
        model = _load_file(Path(name), query.get("arch") or arch, num_classes, spec)
    else:
        if query.get("arch"):
            raise DeparaError(f"model {spec!r}: arch= applies to file: specs only")
        model = _build(kind, name, weights, num_classes)
    return model.eval()


def _positive_int(value: Any, what: str) -> int:
    try:
        v = int(value)
    except (TypeError, ValueError):
        raise DeparaError(f"{what}: expected a positive integer, got {value!r}") from None
    if v <= 0:
        raise DeparaError(f"{what}: expected a positive integer, got {value!r}")
    return v


def _is_path(weights: Any) -> bool:
    if isinstance(weights, os.PathLike):
        return True
    return isinstance(weights, str) and ("/" in weights or os.sep in weights
                                         or weights.lower().endswith(STATE_DICT_SUFFIXES) or Path(weights).exists())


def _build(kind: str, name: str, weights: Any, num_classes: int | None) -> nn.Module:
    """Architecture ``name`` of library ``kind`` with named weights, none, or a state-dict file."""
    path = Path(weights) if weights is not None and _is_path(weights) else None
    if kind == "torchvision":
        model = _torchvision(name, None if path is not None else weights, num_classes)
    else:
        model = _timm(name, None if path is not None else weights, num_classes)
    if path is not None:
        state = _read_state_dict(path)
        model = _load_state(model, state, lambda n: _build(kind, name, None, n), path, num_classes)
    return model


# ----------------------------------------------------------------------------------------- torchvision
def _torchvision(name: str, weights: Any, num_classes: int | None) -> nn.Module:
    from torchvision import models as tvm

    available = tvm.list_models()
    if name not in available:
        raise DeparaError(f"model torchvision:{name}: unknown torchvision model{_suggest(name, available)}")
    kwargs: dict[str, Any] = {}
    if num_classes is not None:
        kwargs["num_classes"] = num_classes
    if weights is None or weights is False:
        return tvm.get_model(name, weights=None, **kwargs)
    enum = tvm.get_model_weights(name)
    key = "DEFAULT" if weights is True or str(weights).upper() == "DEFAULT" else str(weights).split(".")[-1]
    try:
        w = enum.DEFAULT if key == "DEFAULT" else enum[key]
    except KeyError:
        names = [m.name for m in enum]
        raise DeparaError(f"weights {weights!r} for torchvision:{name}: unknown; available: DEFAULT, "
                          f"{', '.join(names)}, or a path to a state-dict file") from None
    if num_classes is not None and num_classes != len(w.meta.get("categories", [])):
        raise DeparaError(f"model torchvision:{name}: num_classes={num_classes} does not match the "
                          f"{len(w.meta.get('categories', []))} classes of weights {w.name}")
    cached = Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(w.url)
    if not cached.is_file() and os.environ.get("DEPARA_OFFLINE"):
        raise DeparaError(f"weights {w.name} of torchvision:{name}: not in the torch hub cache, missing file "
                          f"{cached} (DEPARA_OFFLINE is set; copy the file there or unset it to download)")
    try:
        # torch.hub prints 'Downloading: ...' to stdout; keep stdout clean for the CLI's tables.
        with contextlib.redirect_stdout(io.StringIO()):
            return tvm.get_model(name, weights=w)
    except (OSError, RuntimeError) as exc:  # URLError is an OSError; a partial download a RuntimeError
        if cached.is_file():
            raise DeparaError(f"weights {w.name} of torchvision:{name}: cached file {cached} cannot be loaded "
                              f"({str(exc).splitlines()[0][:160]})") from None
        raise DeparaError(f"weights {w.name} of torchvision:{name}: not in the torch hub cache and cannot be "
                          f"downloaded; missing file {cached} ({type(exc).__name__})") from None


# ------------------------------------------------------------------------------------------------- timm
def _timm(name: str, weights: Any, num_classes: int | None) -> nn.Module:
    try:
        import timm
    except ImportError:
        raise DeparaError(f"model timm:{name}: the timm package is not installed (pip install timm)") from None
    if not timm.is_model(name):
        raise DeparaError(f"model timm:{name}: unknown timm model{_suggest(name, timm.list_models())}")
    kwargs: dict[str, Any] = {}
    if num_classes is not None:
        kwargs["num_classes"] = num_classes
    if weights is None or weights is False:
        return timm.create_model(name, pretrained=False, **kwargs)
    if not (weights is True or str(weights).upper() == "DEFAULT"):
        raise DeparaError(f"weights {weights!r} for timm:{name}: expected None, 'DEFAULT' or a path to a "
                          "state-dict file")
    import huggingface_hub.constants as hf_constants

    saved = hf_constants.HF_HUB_OFFLINE
    hf_constants.HF_HUB_OFFLINE = True  # cache only: never download at run time
    try:
        return timm.create_model(name, pretrained=True, **kwargs)
    except Exception as exc:  # noqa: BLE001 - timm/hub raise many kinds for a missing cache entry
        raise DeparaError(f"weights of timm:{name}: not in the local Hugging Face / torch hub cache "
                          f"({type(exc).__name__}); download them once with network, or pass a state-dict "
                          "file as weights") from None
    finally:
        hf_constants.HF_HUB_OFFLINE = saved


# ------------------------------------------------------------------------------------------------ files
def _load_file(path: Path, arch: str | None, num_classes: int | None, spec: str) -> nn.Module:
    if not path.is_file():
        raise DeparaError(f"model file {path}: not found")
    if path.suffix.lower() != ".safetensors":
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", FutureWarning)  # "torch.jit.load is deprecated"
                return torch.jit.load(str(path), map_location="cpu")
        except Exception:  # noqa: BLE001 - not TorchScript: try a state dict next
            pass
    state = _read_state_dict(path)
    if not arch:
        raise DeparaError(f"model file {path}: holds a state dict, not TorchScript; name its architecture, "
                          f"e.g. 'file:{path}?arch=resnet18' (torchvision) or '?arch=timm:<name>'")
    arch_kind, arch_name = ("torchvision", arch)
    if ":" in arch:
        arch_kind, _, arch_name = arch.partition(":")
        if arch_kind not in ("torchvision", "timm"):
            raise DeparaError(f"model {spec!r}: arch {arch!r}: expected a torchvision name or timm:<name>")
    build = (lambda n: _torchvision(arch_name, None, n)) if arch_kind == "torchvision" else \
        (lambda n: _timm(arch_name, None, n))
    return _load_state(build(num_classes), state, build, path, num_classes)


def _read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise DeparaError(f"weights file {path}: not found")
    if path.suffix.lower() == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            state: Any = load_file(str(path))
        except (SafetensorError, OSError, ValueError) as exc:
            raise DeparaError(f"weights file {path}: not a readable safetensors file ({exc})") from None
    else:
        try:
            state = torch.load(str(path), map_location="cpu", weights_only=True)
        except Exception as exc:  # noqa: BLE001 - UnpicklingError, RuntimeError (bad zip), EOFError ...
            raise DeparaError(f"weights file {path}: not TorchScript, safetensors or a weights-only state dict "
                              f"({type(exc).__name__}; pickled whole models are refused)") from None
    if isinstance(state, Mapping):
        for key in ("state_dict", "model", "model_state_dict"):
            if isinstance(state.get(key), Mapping):
                state = state[key]
                break
    if not isinstance(state, Mapping) or not state or \
            not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise DeparaError(f"weights file {path}: expected a dict of tensors (a state dict)")
    if all(k.startswith("module.") for k in state):  # saved from DataParallel
        state = {k[len("module."):]: v for k, v in state.items()}
    return dict(state)


def _load_state(model: nn.Module, state: Mapping[str, torch.Tensor], build, path: Path,
                num_classes: int | None) -> nn.Module:
    """Load ``state`` into ``model``; rebuild with the state's class count when only the head differs."""
    own = model.state_dict()
    mismatched = [k for k in state if k in own and own[k].shape != state[k].shape]
    if mismatched and num_classes is None:
        head = _head_weight_key(model)
        if head is not None and set(mismatched) <= {head, head[: -len("weight")] + "bias"} and head in state:
            model = build(int(state[head].shape[0]))
            own = model.state_dict()
            mismatched = [k for k in state if k in own and own[k].shape != state[k].shape]
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    if mismatched or missing or unexpected:
        detail = (f"shape of {mismatched[0]}: file {tuple(state[mismatched[0]].shape)} vs model "
                  f"{tuple(own[mismatched[0]].shape)}" if mismatched else
                  f"missing keys e.g. {missing[0]}" if missing else f"unexpected keys e.g. {unexpected[0]}")
        raise DeparaError(f"weights file {path}: does not fit the architecture ({detail})")
    model.load_state_dict(state)
    return model


def _head_weight_key(model: nn.Module) -> str | None:
    """The weight of the classifier head: the last Linear or Conv2d module (squeezenet's head is a conv)."""
    last = None
    for name, module in model.named_modules():
        if isinstance(module, (nn.Linear, nn.Conv2d)):
            last = name
    return f"{last}.weight" if last is not None else None


def _suggest(name: str, choices: Sequence[str]) -> str:
    close = difflib.get_close_matches(name, list(choices), n=5, cutoff=0.6)
    return f"; did you mean {', '.join(close)}?" if close else ""


# ----------------------------------------------------------------------------------------------- layers
def list_layers(model: nn.Module, input_size: Sequence[int] = (3, 224, 224)) -> list[tuple[str, tuple | None]]:
    """(name, output shape without the batch axis) of every named module, in ``named_modules()`` order.

    One forward pass of a zero image batch of one on the CPU in eval mode (training mode restored); the shape is
    None for modules not called in the forward pass or returning something other than one tensor.
    TorchScript models (no hooks) list only their output, under the name ``output``.
    """
    try:
        size = tuple(int(v) for v in input_size)
    except (TypeError, ValueError):
        raise DeparaError(f"input_size: expected integers C H W, got {input_size!r}") from None
    if len(size) < 1 or any(v <= 0 for v in size):
        raise DeparaError(f"input_size: expected positive integers C H W, got {input_size!r}")
    shapes: dict[str, tuple | None] = {}
    handles = []
    names = [n for n, _ in model.named_modules() if n]
    scripted = isinstance(model, torch.jit.ScriptModule)

    def hook_for(name):
        def hook(module, inputs, output):
            if name not in shapes:
                shapes[name] = tuple(output.shape[1:]) if isinstance(output, torch.Tensor) else None
        return hook

    if not scripted:
        for name, module in model.named_modules():
            if name:
                handles.append(module.register_forward_hook(hook_for(name)))
    training = model.training
    model.eval()
    p = next(model.parameters(), None)
    device = p.device if p is not None else torch.device("cpu")
    try:
        with torch.no_grad():
            out = model(torch.zeros((1, *size), device=device))
    except MemoryError:
        raise
    except Exception as exc:  # noqa: BLE001 - the user's model failed at this size: one line, with the reason
        raise DeparaError(f"input_size {size}: the model cannot run on it ({exception_reason(exc, 160)})") from None
    finally:
        for h in handles:
            h.remove()
        model.train(training)
    if scripted:
        return [("output", tuple(out.shape[1:]) if isinstance(out, torch.Tensor) else None)]
    return [(n, shapes.get(n)) for n in names]
