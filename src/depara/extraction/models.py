"""Load models by name (torchvision, timm, local files) and list their layers with output shapes.

Model specs accepted by :func:`load_model`:

* ``torchvision:<name>`` — ``torchvision.models.get_model(name, weights=...)``. ``weights``: ``None`` (random
  init, the default), ``"DEFAULT"`` or a weights name of that model (``"IMAGENET1K_V1"``), loaded by torchvision's
  own mechanism from the torch hub cache (``$TORCH_HOME/hub/checkpoints``), so they work offline once cached;
  or a path to a state-dict file (see below).
* ``timm:<name>`` — ``timm.create_model(name)``; ``weights="DEFAULT"`` loads timm's pretrained weights from the
  local cache only (no download); a path loads a state-dict file.
* ``file:<path>`` — a whole model, by its suffix: ``.pt2``, a ``torch.export`` program (``torch.export.save``;
  :func:`load_exported`, with the module names of the model it was exported from); ``.onnx``, an ONNX model
  converted by onnx2torch (:func:`load_onnx`, the optional extra ``depara[onnx]``; layer names are the ONNX node
  names); any other suffix, a TorchScript file (``torch.jit.save``). Or a state dict (``.safetensors``, or a
  ``torch.save``'d dict of tensors, read with ``weights_only=True``) for an architecture named in the spec's
  query: ``file:w.pt?arch=vgg11_bn`` (a torchvision name, or ``timm:<name>``), or by ``arch=``. The number of
  classes of the final layer is read from the state dict when it differs from the architecture's default.

Files are never unpickled beyond ``torch.load(weights_only=True)``, except a ``.pt2`` file the user names as
the model: ``torch.export.load`` unpickles parts of it, so such a file must come from a trusted source, like any
model code. Set ``DEPARA_OFFLINE=1`` to fail at once (instead of trying to download) when named weights are not
cached. Every model is returned in eval mode.

``seed``: a model built with random weights (``weights=None``) is initialised right after
``torch.manual_seed(seed)`` (:func:`seeded`), so the same seed gives the same weights in any process, whatever
else drew random numbers before; the global RNG state is left as it was.
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
from ..estimators.checks import count

STATE_DICT_SUFFIXES = (".pt", ".pth", ".bin", ".safetensors", ".ckpt")
#: Whole-model files read by their suffix (any other suffix: TorchScript, else a state dict).
EXPORT_SUFFIX, ONNX_SUFFIX = ".pt2", ".onnx"
ONNX_INSTALL = 'pip install "depara[onnx]"'


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
               num_classes: int | None = None, seed: int | None = None) -> nn.Module:
    """A model from a spec (see the module docstring), in eval mode.

    weights: ``None`` | ``"DEFAULT"`` | a weights name | a path to a state-dict file (torchvision/timm specs).
    arch: architecture for a ``file:`` state dict (``"vgg11_bn"``, ``"torchvision:vgg11_bn"``, ``"timm:<name>"``).
    num_classes: size of the final layer when building an architecture (default: the library's, or inferred
        from the state dict).
    seed: build under :func:`seeded` (random initialisation reproducible in any process); None = the global
        RNG as it stands.
    """
    kind, name, query = parse_spec(spec)
    if "num_classes" in query:
        num_classes = _positive_int(query["num_classes"], f"model {spec!r}: num_classes")
    with seeded(seed):
        if kind == "file":
            model = _load_file(Path(name), query.get("arch") or arch, num_classes, spec)
        else:
            if query.get("arch"):
                raise DeparaError(f"model {spec!r}: arch= applies to file: specs only")
            model = _build(kind, name, weights, num_classes)
    return model.eval()


@contextlib.contextmanager
def seeded(seed: int | None):
    """Run the block with torch's CPU RNG seeded by ``torch.manual_seed(seed)``, restoring its state after (so
    the caller's random stream is untouched); ``None``: do nothing. Models are built on the CPU, so their
    random initialisation draws from this generator only."""
    if seed is None:
        yield
        return
    seed = count(seed, "seed", minimum=0)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


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
    loader = _torchvision if kind == "torchvision" else _timm
    model = loader(name, None if path is not None else weights, num_classes)
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
    kwargs: dict[str, Any] = {} if num_classes is None else {"num_classes": num_classes}
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
                              f"({exception_reason(exc, 160)})") from None
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
    kwargs: dict[str, Any] = {} if num_classes is None else {"num_classes": num_classes}
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
    _model_file(path)
    suffix = path.suffix.lower()
    if suffix in (EXPORT_SUFFIX, ONNX_SUFFIX):
        if arch or num_classes is not None:
            raise DeparaError(f"model {spec!r}: arch= and num_classes= apply to state-dict files, not to a "
                              f"whole-model {suffix} file")
        return load_exported(path) if suffix == EXPORT_SUFFIX else load_onnx(path)
    if suffix != ".safetensors":
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
    build = lambda n: _build(arch_kind, arch_name, None, n)  # noqa: E731
    return _load_state(build(num_classes), state, build, path, num_classes)


def _model_file(path: str | os.PathLike) -> Path:
    """``path`` as a Path, refused in one line unless it is a file."""
    path = Path(path)
    if not path.is_file():
        raise DeparaError(f"model file {path}: not found")
    return path


def load_exported(path: str | os.PathLike) -> nn.Module:
    """A ``torch.export`` program file (``torch.export.save``, ``.pt2``) as a module with the module names of the
    model it was exported from (``torch.export.unflatten``), so layers are named as in that model.

    ``torch.export.load`` unpickles parts of the file: call this only on a file the user named as a model.
    The program must have been exported with a dynamic batch axis (``dynamic_shapes``), since depara runs it on
    batches of probes; a fixed batch size is refused here, in one line. It keeps the mode it was exported in
    (``.eval()`` on the loaded module does not turn batch statistics off), so a program exported in training mode
    (batch norm with batch statistics, active dropout) is refused too: export from ``model.eval()``.
    """
    path = _model_file(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            program = torch.export.load(str(path))
    except Exception as exc:  # noqa: BLE001 - a zip of another kind, a truncated file, a newer format ...
        raise DeparaError(f"model file {path}: not a torch.export program ({exception_reason(exc, 160)})") from None
    users = set(program.graph_signature.user_inputs)
    for node in program.graph.nodes:
        val = node.meta.get("val") if node.op == "placeholder" and node.name in users else None
        if isinstance(val, torch.Tensor) and val.dim() > 0 and isinstance(val.shape[0], int):
            raise DeparaError(f"model file {path}: input {node.name!r} has a fixed batch size {val.shape[0]}; "
                              "export it with a dynamic batch axis, e.g. torch.export.export(model, (x,), "
                              "dynamic_shapes=({0: torch.export.Dim('batch')},)) with x of 2 or more images")
    trained = _training_mode_op(program)
    if trained:
        raise DeparaError(f"model file {path}: exported in training mode ({trained}); export it from model.eval()")
    try:
        return torch.export.unflatten(program)
    except Exception as exc:  # noqa: BLE001 - programs unflatten cannot rebuild (rare)
        raise DeparaError(f"model file {path}: its module names cannot be restored "
                          f"({exception_reason(exc, 160)})") from None


def _training_mode_op(program: Any) -> str | None:
    """What the first training-mode operation of an exported program does (batch norm with batch statistics,
    active dropout), or None. ``aten.batch_norm`` / ``native_batch_norm`` take ``training`` as their 6th argument,
    ``aten.dropout`` ``train`` as its 3rd; the ``_legit`` batch-norm variants other than ``_no_training`` train."""
    for node in program.graph.nodes:
        name = str(node.target) if node.op == "call_function" else ""
        if "batch_norm" in name and ("_legit" in name and "no_training" not in name
                                     or len(node.args) > 5 and node.args[5] is True):
            return "batch norm uses the batch's statistics"
        if "dropout" in name and len(node.args) > 2 and node.args[2] is True:
            return "dropout drops units at random"
    return None


def load_onnx(path: str | os.PathLike) -> nn.Module:
    """An ONNX model file as a torch module, converted by onnx2torch (the optional extra ``depara[onnx]``).

    Its layers are named after the ONNX graph's nodes, leading ``/`` removed (``layer1/layer1.0/relu_1/Relu``
    for a torchvision ResNet exported by ``torch.onnx.export``); ``depara layers file:model.onnx`` lists them.
    The file is parsed as protobuf (no code runs). The model's first input should have a dynamic batch axis
    (``dynamic_axes`` in ``torch.onnx.export``). A fixed batch size of 1 with a fixed image size (a common export
    default) is accepted as far as the converted graph takes a batch image by image: :func:`batch_safe_layers`
    compares every node's output for two random images in one batch with its outputs for each alone; from the
    first node that differs or fails on (a ``Reshape`` to a constant batch of 1, typically in a detector's head)
    on, layers are refused by :func:`depara.extraction.extract.resolve_layer` and left out of ``layers="auto"``
    (the model's ``batch_safe_layers`` / ``batch_unsafe_from`` say where). Any other fixed batch size, or a fixed
    batch of 1 with a dynamic image size, is refused in one line.
    """
    path = _model_file(path)
    try:
        import onnx
        from onnx2torch import convert
    except ImportError:
        raise DeparaError(f"model file {path}: ONNX models need onnx and onnx2torch; install the extra with "
                          f"{ONNX_INSTALL}") from None
    try:
        proto = onnx.load(str(path))
    except Exception as exc:  # noqa: BLE001 - DecodeError, OSError ...
        raise DeparaError(f"model file {path}: not a readable ONNX model ({exception_reason(exc, 160)})") from None
    weights = {init.name for init in proto.graph.initializer}
    inputs = [i for i in proto.graph.input if i.name not in weights]
    dims = inputs[0].type.tensor_type.shape.dim if inputs else []
    fixed = [d.dim_value if d.HasField("dim_value") else None for d in dims]
    if fixed and fixed[0] is not None and (fixed[0] != 1 or None in fixed[1:] or 0 in fixed[1:]):
        raise DeparaError(f"model file {path}: input {inputs[0].name!r} has a fixed batch size {fixed[0]}"
                          f"{'' if fixed[0] != 1 else ' and no fixed image size to check it at'}; export it with a "
                          f"dynamic batch axis, e.g. torch.onnx.export(..., "
                          f"dynamic_axes={{{inputs[0].name!r}: {{0: 'batch'}}}})")
    _inline_identity_weights(proto)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = convert(proto)
    except Exception as exc:  # noqa: BLE001 - NotImplementedError for an operator onnx2torch lacks, ...
        raise DeparaError(f"model file {path}: onnx2torch cannot convert it ({exception_reason(exc, 160)})") from None
    if fixed and fixed[0] == 1:
        _mark_batch_safe(model, tuple(fixed[1:]), f"model file {path}: input {inputs[0].name!r}")
    return model


def _mark_batch_safe(model: nn.Module, shape: tuple[int, ...], what: str) -> None:
    """Record on ``model`` which layers take a batch image by image (see :func:`load_onnx`); refuse it when none do."""
    safe, first_bad = batch_safe_layers(model, shape)
    if first_bad is None:
        return
    if not safe:
        raise DeparaError(f"{what} has a fixed batch size 1 and its first node {first_bad!r} does not take a batch "
                          "image by image; export it with a dynamic batch axis")
    model.batch_safe_layers = frozenset(safe)
    model.batch_unsafe_from = first_bad


def batch_safe_layers(model: nn.Module, shape: Sequence[int]) -> tuple[list[str], str | None]:
    """The modules of ``model`` (in call order) whose outputs for two random images of ``shape`` (C, H, W) in one
    batch equal their outputs for each image alone, up to the first that differs or fails (its name second; None
    when every module passes). Equal: within 1e-4 relative to the output's scale (batch sizes may use other
    kernels). Outputs that are not one row per image (shapes, constants) are not judged and not listed."""
    x = torch.randn(2, *shape, generator=torch.Generator().manual_seed(0))
    first, second = (leaf_outputs(model, x[i:i + 1])[0] for i in range(2))
    together, failed_in = leaf_outputs(model, x)
    safe = []
    for name, (shape2, sample2) in together.items():
        if name not in first or name not in second:
            return safe, name
        (shape1, sample1), (shape1b, sample1b) = first[name], second[name]
        if not shape1 or shape1[0] != 1:  # not one row per image (a shape, a constant): not judged
            continue
        if shape1b != shape1 or shape2 != (2, *shape1[1:]):
            return safe, name
        both = torch.cat([sample1, sample1b])
        if not torch.allclose(sample2, both, rtol=1e-4, atol=1e-4 * max(1.0, float(both.abs().max()))):
            return safe, name
        safe.append(name)
    return safe, failed_in


#: Entries of each image's output that :func:`batch_safe_layers` compares (evenly spaced; all when fewer): keeps
#: its memory at a few MB for any network, while a batch that mixes images changes (nearly) every entry.
BATCH_CHECK_ENTRIES = 4096


def leaf_outputs(model: nn.Module, x: torch.Tensor) -> tuple[dict[str, tuple[tuple, torch.Tensor]], str | None]:
    """{module name: (shape, sample)} of the first tensor output of each leaf module in one forward pass of ``x``
    (no grad), in call order — the sample: :data:`BATCH_CHECK_ENTRIES` evenly spaced entries of each row
    (float64) — and the name of the module the pass failed in (None when it ran through)."""
    from .extract import OUTPUT_LAYER

    outputs: dict[str, tuple[tuple, torch.Tensor]] = {}
    entered: list[str] = []
    finished: set[str] = set()

    def record(name: str, out: Any) -> None:
        finished.add(name)
        if torch.is_tensor(out) and name not in outputs:
            rows = out.detach().reshape(out.shape[0], -1) if out.ndim else out.detach().reshape(1, 1)
            cols = torch.linspace(0, rows.shape[1] - 1, min(rows.shape[1], BATCH_CHECK_ENTRIES)).round().long()
            outputs[name] = (tuple(out.shape), rows[:, cols].double())

    handles = []
    for name, module in model.named_modules():
        if not name or next(module.children(), None) is not None:
            continue
        handles.append(module.register_forward_pre_hook(lambda _m, _i, n=name: entered.append(n)))
        handles.append(module.register_forward_hook(lambda _m, _i, out, n=name: record(n, out)))
    failed_in = None
    try:
        with torch.no_grad():
            model(x)
    except Exception:  # noqa: BLE001 - a node that refuses a batch of 2 (a constant Reshape, a fixed Expand)
        failed_in = next((n for n in reversed(entered) if n not in finished), OUTPUT_LAYER)
    finally:
        for h in handles:
            h.remove()
    return outputs, failed_in


def _inline_identity_weights(proto: Any) -> None:
    """Replace each ``Identity`` node whose input is a weight (an initializer) by a copy of that weight under the
    node's output name. ``torch.onnx.export`` writes one such node per duplicate of a shared tensor (e.g. equal
    conv weights after batch-norm folding), which onnx2torch cannot convert (KeyError on the weight's name)."""
    weights = {init.name: init for init in proto.graph.initializer}
    keep = []
    for node in proto.graph.node:
        if node.op_type == "Identity" and not node.domain and len(node.input) == 1 and node.input[0] in weights:
            copy = proto.graph.initializer.add()
            copy.CopyFrom(weights[node.input[0]])
            copy.name = node.output[0]
        else:
            keep.append(node)
    if len(keep) < len(proto.graph.node):
        del proto.graph.node[:]
        proto.graph.node.extend(keep)


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
