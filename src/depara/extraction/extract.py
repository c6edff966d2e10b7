"""The torch layer: features and attribution maps of named layers of any PyTorch model, and DEPARA graphs.

For a model m, a layer ℓ (a name from ``model.named_modules()``) and probes x_i (docs/method.md §1):

* feature of x_i = the output f_ℓ(x_i) of the module, flattened;
* scalar of x_i = s(f_ℓ(x_i)) with s = ``sum`` / ``mean`` / ``l2`` (Euclidean norm) over the output's elements;
* attribution map of x_i = the attribution of that scalar to the input pixels, by

  - ``input_x_gradient`` (default): x ⊙ ∂s/∂x;
  - ``saliency``: |∂s/∂x|;
  - ``integrated_gradients``, ``deeplift``: Captum, zero baseline;
  - ``lrp``: Captum's LRP with the ε-rule, ε = 1e-4 (only for models built of the layer types Captum has
    LRP rules for: Conv2d, Linear, BatchNorm2d, pooling, ReLU, Dropout, Tanh);

  then reduced over colour channels (``mean``: signed mean; ``abs_mean``: mean of absolute values; ``none``)
  and resampled to a common ``node_size`` grid (area averaging when shrinking, bilinear when enlarging), so
  models with different input sizes give comparable nodes.

Several layers (:func:`build_graphs`): one forward pass per batch captures the outputs of all layers; for
``input_x_gradient`` / ``saliency`` each layer's map is ``torch.autograd.grad`` of *that layer's* scalar alone,
which returns a fresh gradient (nothing is accumulated in ``.grad``), so no layer's map leaks into another's
(the original code's bug 1). For the other methods Captum runs once per layer on a model cut at that layer.
The per-layer backward passes cost more than the forward pass (K layers: K input-gradient passes, layer k's
through the model below k). They are distinct vector–Jacobian products, so no single backward gives them
exactly; ``torch.autograd.grad(..., is_grads_batched=True)`` over the stacked layer scalars gives the same maps
to the bit but was 1.15–2.3× *slower* on CPU (every row of the vmap runs the backward from the deepest layer;
``benchmarks/bench_select.py`` measures both), so the loop stays.

Graphs without nodes (``build_graphs(..., nodes=False)``): when only the edges are needed (DEPARA's edge term,
the label graph comparison, the peers on pooled features), the extraction is a forward pass per batch under
``torch.no_grad`` and no attribution is computed; the graphs have N×0 nodes (like a label graph,
:meth:`Graph.from_labels`), their edges are those of the full extraction, and ``meta["nodes"]`` is False.
When not even the edges are needed, :func:`pooled_features` gives each layer's output averaged over space, pooled
in the forward hook as it is produced (no copy of any layer's full output is kept).

The model runs in eval mode (restored afterwards) with its parameters' ``requires_grad`` switched off during
extraction, and on ``device`` (default: the device of its parameters). Each image's scalar must depend on that
image only (true in eval mode for ordinary networks), so a batch's gradients are the per-image gradients.
A layer is read on its FIRST call in a forward pass; the forward pass stops as soon as every requested layer
has been read, so early layers are cheap.
"""

from __future__ import annotations

import difflib
import os
import re
import warnings
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch
from torch import nn

from ..errors import DeparaError, exception_reason
from ..core.edges import edges_from_features
from ..core.graph import Graph
from ..core.ids import check_probe_ids
from ..options import (DEFAULT_BATCH_SIZE, DEFAULT_FEATURE_MEMORY_MB, IG_STEPS, LRP_EPSILON, AttributionMethod,
    GraphOptions, Scalar)
from .probes import Preprocess, ProbeSet
#: Hex characters of each probe's SHA-256 kept in ``meta["probe_digests_short"]`` (to name a differing probe).
PROBE_DIGEST_CHARS = 12
#: The name that means "the model's own output" when no module carries it.
OUTPUT_LAYER = "output"


# --------------------------------------------------------------------------------------------- layers
def resolve_layer(model: nn.Module, layer: str) -> nn.Module:
    """The module called ``layer`` in ``model.named_modules()`` ("" or "output" = the whole model).

    An unknown name raises a DeparaError listing the closest names.
    """
    if not isinstance(layer, str):
        raise DeparaError(f"layer: expected a module name (str), got {type(layer).__name__}")
    modules = dict(model.named_modules())
    if layer in modules or layer == OUTPUT_LAYER:
        check_batch_safe(model, layer)
        return modules.get(layer, model)
    names = [n for n in modules if n]
    close = difflib.get_close_matches(layer, names, n=5, cutoff=0.5)
    hint = f"; did you mean {', '.join(close)}?" if close else \
        f"; the model has {len(names)} named modules (e.g. {', '.join(names[:5])}); see `depara layers`"
    raise DeparaError(f"layer {layer!r}: no module of that name in the model{hint}")


def batch_unsafe_from(model: nn.Module) -> str | None:
    """The node from which ``model`` no longer takes a batch image by image (None: it does throughout): recorded by
    :func:`depara.extraction.models.load_onnx` for an ONNX file with a fixed batch size of 1."""
    return getattr(model, "batch_unsafe_from", None)


def is_batch_safe(model: nn.Module, layer: str) -> bool:
    """Whether ``layer``'s output takes a batch image by image (every layer of a model without a record)."""
    safe = getattr(model, "batch_safe_layers", None)
    return safe is None or layer in safe


def check_batch_safe(model: nn.Module, layer: str) -> None:
    """Refuse ``layer`` where :func:`is_batch_safe` says no, in one line naming the node it comes at or after."""
    if is_batch_safe(model, layer):
        return
    raise DeparaError(f"layer {layer!r}: comes at or after node {batch_unsafe_from(model)!r}, from which this model "
                      "(an ONNX file with a fixed batch size 1) no longer takes a batch image by image; pick an "
                      "earlier layer (`depara layers` marks the auto ones) or export the model with a dynamic "
                      "batch axis")


class _StopForward(BaseException):
    """Raised by a hook once every requested layer has been read (BaseException: never swallowed by models)."""


class LayerCapture:
    """Forward hooks recording the first output of each named module; stops the pass when all are read."""

    def __init__(self, model: nn.Module, layers: Sequence[str], stop_early: bool = True,
                 keep: Callable[[str, torch.Tensor], Any] | None = None):
        self.model = model
        self.layers = list(layers)
        self.outputs: dict[str, Any] = {}
        self.stop_early = stop_early
        self.keep = keep  # keep(name, output) → what is recorded (read at once: no copy of the output needed)
        self._handles: list[Any] = []
        modules = {name: resolve_layer(model, name) for name in dict.fromkeys(self.layers)}
        self._root_layers = [name for name in self.layers if modules[name] is model]
        for name, module in modules.items():
            if module is model:
                continue
            try:
                self._handles.append(module.register_forward_hook(self._hook(name)))
            except Exception as exc:  # noqa: BLE001 - e.g. TorchScript modules refuse hooks
                self.remove()
                raise DeparaError(f"layer {name!r}: cannot attach a forward hook ({type(exc).__name__}); "
                                  f"for TorchScript models only the output (layer {OUTPUT_LAYER!r}) is available") \
                    from None

    def _hook(self, name: str) -> Callable:
        def hook(module, inputs, output):
            if name in self.outputs:
                return
            if not isinstance(output, torch.Tensor):
                raise DeparaError(f"layer {name!r}: its output is a {type(output).__name__}, not a tensor; "
                                  "pick a module that returns one tensor")
            if self.keep is not None:
                self.outputs[name] = self.keep(name, output)
                if self.stop_early and not self._root_layers and len(self.outputs) == len(set(self.layers)):
                    raise _StopForward
                return
            if self.stop_early and not self._root_layers and len(self.outputs) + 1 == len(set(self.layers)):
                self.outputs[name] = output
                raise _StopForward
            # The pass goes on: a later in-place op (ReLU(inplace=True)) could overwrite this tensor, so keep a
            # (differentiable) copy of the value it has now.
            self.outputs[name] = output.clone()
        return hook

    def run(self, inputs: torch.Tensor) -> dict[str, torch.Tensor]:
        """One forward pass; returns {layer: output} (graph kept when grad is enabled)."""
        self.outputs = {}
        try:
            output = self.model(inputs)
        except _StopForward:
            output = None
        for name in self._root_layers:
            if not isinstance(output, torch.Tensor):
                raise DeparaError(f"layer {name!r}: the model's output is a {type(output).__name__}, not a tensor")
            self.outputs[name] = output if self.keep is None else self.keep(name, output)
        missing = [n for n in self.layers if n not in self.outputs]
        if missing:
            raise DeparaError(f"layer {missing[0]!r}: the module was not called in the forward pass")
        return self.outputs

    def remove(self) -> None:
        for h in self._handles:
            h.remove()
        self._handles = []

    def __enter__(self) -> "LayerCapture":
        return self

    def __exit__(self, *exc) -> None:
        self.remove()


def capture_features(model: nn.Module, inputs: torch.Tensor, layers: Sequence[str] | str) -> dict[str, torch.Tensor]:
    """Outputs of the named ``layers`` for ``inputs`` (B×...), from ONE forward pass, detached.

    Returns {layer: tensor B×...} in the order of ``layers``. The model runs as it is (call ``model.eval()``
    first for inference behaviour).
    """
    layers = [layers] if isinstance(layers, str) else list(layers)
    with torch.no_grad(), LayerCapture(model, layers) as cap:
        outs = cap.run(inputs)
    return {name: outs[name].detach() for name in layers}


# ---------------------------------------------------------------------------------------- attribution
def _scalar(output: torch.Tensor, scalar: str) -> torch.Tensor:
    """B×... layer output → B per-image scalars."""
    flat = output.reshape(output.shape[0], -1)
    if scalar == "sum":
        return flat.sum(dim=1)
    if scalar == "mean":
        return flat.mean(dim=1)
    return torch.linalg.vector_norm(flat, dim=1)


class _LayerScalar(nn.Module):
    """A forward function for Captum: the model cut at ``layer``, returning the per-image scalar (B,)."""

    def __init__(self, model: nn.Module, layer: str, scalar: str, lrp: bool = False):
        super().__init__()
        self.model = model
        self.layer = layer
        self.scalar = scalar
        self.lrp = lrp

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with LayerCapture(self.model, [self.layer]) as cap:
            out = cap.run(x)[self.layer]
        value = _scalar(out, self.scalar)
        if not self.lrp:
            return value
        # Captum's LRP treats the gradient arriving at the layer's output as the relevance share of each unit
        # (one-hot for a class target) and multiplies by the returned value at the end. For s = sum/mean of
        # z the relevance of unit k is z_k·s/Σz (LRP of a linear readout), for s = ‖z‖ it is z_k²/‖z‖: give the
        # output a gradient equal to those shares (R_k / s) while keeping its value s.
        z = out.reshape(out.shape[0], -1)
        relevance = z * z if self.scalar == "l2" else z
        total = relevance.sum(dim=1, keepdim=True)
        total = total + torch.where(total >= 0, 1.0, -1.0) * 1e-12
        share = (relevance / total).detach()
        surrogate = (z * share).sum(dim=1)
        return surrogate + (value - surrogate).detach()


def _captum_attribution(model: nn.Module, layer: str, x: torch.Tensor, method: str, scalar: str) -> torch.Tensor:
    import captum.attr as ca

    fn = _LayerScalar(model, layer, scalar, lrp=method == "lrp")
    x = x.detach().requires_grad_(True)
    baseline = torch.zeros_like(x)
    if method == "integrated_gradients":
        return ca.IntegratedGradients(fn).attribute(x, baselines=baseline, n_steps=IG_STEPS,
                                                    internal_batch_size=max(1, x.shape[0]))
    if method == "deeplift":
        try:
            with _not_in_place(model):
                return ca.DeepLift(fn).attribute(x, baselines=baseline)
        except (AssertionError, RuntimeError, NotImplementedError) as exc:
            first = exception_reason(exc, 160).split(". ")[0]
            raise DeparaError(f"method deeplift: Captum cannot run DeepLift on this model at layer {layer!r} "
                              f"({first}; DeepLift needs each activation module to be called once per forward, "
                              "e.g. not ResNet's shared ReLU); use another method") from None
    if method == "lrp":
        from captum.attr._utils.lrp_rules import EpsilonRule

        lrp = ca.LRP(fn)
        for module in fn.modules():
            if type(module) in _lrp_rule_types():
                module.rule = EpsilonRule(epsilon=LRP_EPSILON)
        try:
            with _not_in_place(model):
                return lrp.attribute(x)
        except TypeError as exc:
            found = re.search(r"type <class '([\w.]+)'>", str(exc))
            what = found.group(1) if found else exception_reason(exc, 120)
            raise DeparaError(f"method lrp: Captum has no LRP rule for module type {what} in this model; "
                              "use another method") from None
        except RuntimeError as exc:
            raise DeparaError(f"method lrp: Captum cannot run LRP on this model at layer {layer!r} "
                              f"({exception_reason(exc, 160)}); use another method") from None
        finally:
            for module in fn.modules():
                if hasattr(module, "rule"):
                    del module.rule
    raise AssertionError(method)  # pragma: no cover - validated earlier


class _not_in_place:
    """Switch activations' ``inplace`` flag off while Captum's DeepLIFT/LRP hooks need their inputs intact."""

    def __init__(self, model: nn.Module):
        self.modules = [m for m in model.modules() if getattr(m, "inplace", False) is True]

    def __enter__(self) -> None:
        for m in self.modules:
            m.inplace = False

    def __exit__(self, *exc) -> None:
        for m in self.modules:
            m.inplace = True


def _lrp_rule_types() -> tuple[type, ...]:
    from captum.attr._core.lrp import SUPPORTED_LAYERS_WITH_RULES

    # Flatten/Identity only reshape: the ε-rule passes their relevance through unchanged (z = x).
    return (*SUPPORTED_LAYERS_WITH_RULES, nn.Flatten, nn.Identity)


def attribute_batch(model: nn.Module, x: torch.Tensor, layers: Sequence[str], method: str, scalar: str
                     ) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """Features and raw attributions (B×C×H×W, before channel reduction) for every layer of one batch."""
    feats: dict[str, torch.Tensor] = {}
    attrs: dict[str, torch.Tensor] = {}
    if method in ("input_x_gradient", "saliency"):
        x = x.detach().requires_grad_(True)
        with torch.enable_grad(), LayerCapture(model, layers) as cap:
            outs = cap.run(x)
            for k, name in enumerate(layers):
                out = outs[name]
                feats[name] = out.detach()
                if not out.requires_grad:
                    raise DeparaError(f"layer {name!r}: its output does not depend differentiably on the input")
                # A fresh gradient of this layer's scalar only: autograd.grad never accumulates (bug 1).
                (grad,) = torch.autograd.grad(_scalar(out, scalar).sum(), x, retain_graph=k < len(layers) - 1)
                attrs[name] = grad * x.detach() if method == "input_x_gradient" else grad.abs()
        return feats, attrs
    with torch.no_grad():
        feats = capture_features(model, x, layers)
    for name in layers:
        with torch.enable_grad(), warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=r"(?s).*hooks and attributes on non-linear", category=UserWarning)
            attrs[name] = _captum_attribution(model, name, x, method, scalar).detach()
    return feats, attrs


def _reduce_and_resample(attr: torch.Tensor, channel_reduction: str, node_size: tuple[int, int] | None
                         ) -> torch.Tensor:
    """B×C×H×W → B×h×w (channel-reduced) or B×C×h×w (``none``) on the node grid."""
    if channel_reduction == "mean":
        attr = attr.mean(dim=1, keepdim=True)
    elif channel_reduction == "abs_mean":
        attr = attr.abs().mean(dim=1, keepdim=True)
    if node_size is not None and tuple(attr.shape[-2:]) != node_size:
        shrink = node_size[0] <= attr.shape[-2] and node_size[1] <= attr.shape[-1]
        attr = nn.functional.adaptive_avg_pool2d(attr, node_size) if shrink else \
            nn.functional.interpolate(attr, size=node_size, mode="bilinear", align_corners=False)
    return attr[:, 0] if channel_reduction != "none" else attr


# ---------------------------------------------------------------------------------------------- graphs
def resolve_device(model: nn.Module, device: Any) -> torch.device:
    """The torch device to run on: ``device`` checked (DeparaError naming it), or the model's own when None."""
    if device is None:
        p = next(model.parameters(), None)
        return p.device if p is not None else torch.device("cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise DeparaError(f"device: {device!r} is not a torch device (expected e.g. 'cpu', 'cuda', 'cuda:1')") \
            from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise DeparaError(f"device {device!r}: CUDA is not available on this machine")
    return dev


def _batches(probes: ProbeSet | torch.Tensor, preprocess: Any, batch_size: int
             ) -> tuple[int, tuple[str, ...] | None, Callable[[int, int], torch.Tensor]]:
    if isinstance(probes, ProbeSet):
        prep = probes.preprocess if preprocess is None else Preprocess.parse(preprocess)
        return len(probes), probes.ids, lambda a, b: probes.tensor(prep, slice(a, b))
    if isinstance(probes, torch.Tensor):
        if probes.ndim != 4 or not probes.is_floating_point():
            raise DeparaError(f"probes: expected a ProbeSet or a float tensor N×C×H×W, got "
                              f"{probes.dtype} tensor of shape {tuple(probes.shape)}")
        if not torch.isfinite(probes).all():
            raise DeparaError("probes: the input tensor has NaN/Inf values")
        return probes.shape[0], None, lambda a, b: probes[a:b]
    raise DeparaError(f"probes: expected a ProbeSet or a tensor N×C×H×W, got {type(probes).__name__}")


class ModelState:
    """Eval mode, no parameter gradients, on ``device``; restores training mode and requires_grad afterwards."""

    def __init__(self, model: nn.Module, device: torch.device):
        self.model, self.device = model, device

    def __enter__(self) -> nn.Module:
        self.training = self.model.training
        self.requires = [(p, p.requires_grad) for p in self.model.parameters()]
        self.model.eval().to(self.device)
        for p, _ in self.requires:
            p.requires_grad_(False)
        return self.model

    def __exit__(self, *exc) -> None:
        for p, flag in self.requires:
            p.requires_grad_(flag)
        self.model.train(self.training)


def _progress(total: int, enabled: bool, desc: str):
    from ..io.progress import progress_bar

    return progress_bar(total=total, enabled=enabled, desc=desc, unit="probe")


def _finite(t: torch.Tensor, what: str, layer: str, ids: Sequence[str], start: int) -> None:
    bad = ~torch.isfinite(t.reshape(t.shape[0], -1)).all(dim=1)
    if bad.any():
        i = int(torch.nonzero(bad)[0, 0])
        raise DeparaError(f"layer {layer!r}: {what} contain NaN/Inf (first at probe {ids[start + i]!r})")


class _FeatureStore:
    """Per-layer N×... float32 feature arrays, filled batch by batch, in RAM while they fit ``budget_bytes``.

    Once the first batch gives every layer's feature shape, layers are kept in RAM from the smallest up while
    the running total stays within the budget; the rest spill to raw float32 files in a
    ``tempfile.TemporaryDirectory``. Spilled batches are written with plain file writes (they go to the page
    cache, not into this process's memory) and read back as a read-only ``np.memmap`` one layer at a time, so
    at most one spilled layer is mapped at once. :meth:`close` (always called: the store is a context manager)
    deletes the directory, also on errors and KeyboardInterrupt.
    """

    def __init__(self, n_probes: int, budget_bytes: int):
        self.n = n_probes
        self.budget = budget_bytes
        self.shapes: dict[str, tuple[int, ...]] = {}
        self.ram: dict[str, np.ndarray] = {}
        self.files: dict[str, Any] = {}  # layer -> open binary file of a spilled layer
        self._tmp: Any = None

    def allocate(self, shapes: Mapping[str, tuple[int, ...]]) -> None:
        """Decide RAM or disk for each layer from its per-probe feature shape (no batch axis)."""
        from ..io.files import temp_dir

        sizes = {name: 4 * self.n * int(np.prod(shape, dtype=np.int64)) for name, shape in shapes.items()}
        used = 0
        for name in sorted(sizes, key=sizes.get):
            self.shapes[name] = (self.n, *shapes[name])
            if used + sizes[name] <= self.budget:
                self.ram[name] = np.empty(self.shapes[name], dtype=np.float32)
                used += sizes[name]
                continue
            if self._tmp is None:  # named by PID: a later run removes it if this process dies (SIGKILL)
                self._tmp = temp_dir()
            path = os.path.join(self._tmp.name, f"layer{len(self.files)}.f32")
            fh = open(path, "w+b")
            fh.truncate(sizes[name])
            self.files[name] = fh

    def write(self, name: str, start: int, block: np.ndarray) -> None:
        """Store features of probes ``start:start+B`` (B×..., cast to float32)."""
        if name in self.ram:
            self.ram[name][start:start + block.shape[0]] = block
            return
        fh = self.files[name]
        fh.seek(start * (int(np.prod(self.shapes[name][1:], dtype=np.int64)) * 4))
        np.ascontiguousarray(block, dtype=np.float32).tofile(fh)

    def take(self, name: str) -> np.ndarray:
        """The layer's full N×... features (an array, or a read-only memmap of its file); the store lets go."""
        if name in self.ram:
            return self.ram.pop(name)
        fh = self.files.pop(name)
        fh.flush()
        mm = np.memmap(fh.name, dtype=np.float32, mode="r", shape=self.shapes[name])
        fh.close()
        return mm

    def close(self) -> None:
        self.ram.clear()
        for fh in self.files.values():
            fh.close()
        self.files.clear()
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def __enter__(self) -> "_FeatureStore":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def memory_budget(feature_memory_mb: Any) -> int:
    """``feature_memory_mb`` (a finite number >= 0; DeparaError naming it otherwise) as a byte budget."""
    if isinstance(feature_memory_mb, bool) or not isinstance(feature_memory_mb, (int, float, np.integer,
                                                                                 np.floating)) \
            or not np.isfinite(feature_memory_mb) or feature_memory_mb < 0:
        raise DeparaError(f"feature_memory_mb: expected a number of megabytes >= 0 (0 = keep features on disk), "
                          f"got {feature_memory_mb!r}")
    return int(feature_memory_mb * 2**20)


def graph_options(options: GraphOptions | None = None, **changes: Any) -> GraphOptions:
    """``options`` (default :data:`depara.options.DEFAULT_GRAPH_OPTIONS`) with ``changes`` applied (field names of
    :class:`~depara.options.GraphOptions`; anything else raises DeparaError naming it)."""
    if options is not None and not isinstance(options, GraphOptions):
        raise DeparaError(f"options: expected a depara.options.GraphOptions, got {type(options).__name__}")
    base = options if options is not None else GraphOptions()
    return base.replace(**changes) if changes else base


def build_graphs(model: nn.Module, probes: ProbeSet | torch.Tensor, layers: Sequence[str],
                 options: GraphOptions | None = None, *, batch_size: int = DEFAULT_BATCH_SIZE, device: Any = None,
                 progress: bool = False, probe_ids: Sequence[str] | None = None,
                 preprocess: "str | Preprocess | None" = None, meta: Mapping[str, Any] | None = None,
                 feature_memory_mb: float = DEFAULT_FEATURE_MEMORY_MB,
                 on_features: Callable[[str, np.ndarray], None] | None = None, nodes: bool = True,
                 **option_changes: Any) -> dict[str, Graph]:
    """DEPARA graphs of ``model`` at each of ``layers`` on ``probes``: {layer: Graph}, in the order of ``layers``.

    probes: a :class:`~depara.extraction.probes.ProbeSet` (preprocessed with ``preprocess``, default the set's own) or a
        float tensor N×C×H×W of already preprocessed images (ids from ``probe_ids``, default "0".."N−1").
    options: how the graph is built (:class:`~depara.options.GraphOptions`: method, scalar, channel_reduction,
        node_size, center, edge); default THE defaults shared with the CLI. ``option_changes`` are shorthand for
        ``options.replace(...)`` (e.g. ``scalar="mean", node_size=None``); other names raise DeparaError.
        ``node_size`` (default 56×56) resamples every map to one grid so models with different input sizes
        give comparable nodes; None keeps the input's H×W grid.
    meta: extra metadata recorded in every graph (e.g. ``{"model": "torchvision:vgg11_bn"}``); the options are
        recorded too (``options.to_meta()``: method, scalar, channel_reduction, node_size, center, edge).
    feature_memory_mb: RAM budget (MiB) for the N×D float32 features of all layers, held until their graphs
        are built; layers beyond it (largest first) are kept in a temporary file (memory-mapped when read,
        deleted afterwards, also on error). 0 = every layer on disk. The graphs are identical either way.
        E.g. VGG conv1 at 224 px: 64×224×224×4 B ≈ 12.8 MB per probe, 2.6 GB for 200 probes.
    on_features: optional ``on_features(layer, features)`` called with each layer's N×... float32 features
        (possibly memory-mapped) before its graph is built, e.g. to keep pooled features for the label-based
        peers from the same pass (:func:`depara.select`).
    nodes: False = no attribution maps: one forward pass per batch under ``torch.no_grad`` gives the features
        only, and each graph has N×0 nodes (its node term is undefined, as for a label graph) and
        ``meta["nodes"] = False``; its edges equal those of the full extraction. For callers that need only edges.

    One forward pass per batch serves all layers' features (and, for gradient methods, all attributions).
    Raises DeparaError on unknown layers/options and on NaN/Inf in features or attributions (naming the layer).
    """
    opts = graph_options(options, **option_changes)
    graphs: dict[str, Graph] = {}
    base: dict[str, Any] = {}

    def make(name: str, attrs: np.ndarray, features: np.ndarray, ids: tuple[str, ...]) -> None:
        if not base:
            base.update(graph_meta(probes, opts, preprocess=preprocess, meta=meta, nodes=bool(nodes)))
        if on_features is not None:
            on_features(name, features)
        graphs[name] = graph_from_parts(attrs, features, opts, ids, layer_meta(base, name, attrs, probes))

    extract_parts(model, probes, layers, opts, batch_size=batch_size, device=device, progress=progress,
                  probe_ids=probe_ids, preprocess=preprocess, meta=meta, feature_memory_mb=feature_memory_mb,
                  nodes=nodes, on_parts=make)
    return graphs


def extract_parts(model: nn.Module, probes: ProbeSet | torch.Tensor, layers: Sequence[str],
                  options: GraphOptions | None = None, *, batch_size: int = DEFAULT_BATCH_SIZE, device: Any = None,
                  progress: bool = False, probe_ids: Sequence[str] | None = None,
                  preprocess: "str | Preprocess | None" = None, meta: Mapping[str, Any] | None = None,
                  feature_memory_mb: float = DEFAULT_FEATURE_MEMORY_MB, nodes: bool = True,
                  on_parts: Callable[[str, np.ndarray, np.ndarray, tuple[str, ...]], None]) -> None:
    """The parts of :func:`build_graphs`' graphs, one pass over the probes: ``on_parts(layer, maps, features, ids)``.

    maps: N×h×w float32 attribution maps (channel-reduced, on the node grid; N×0 when ``nodes`` is False);
    features: N×… float32 (possibly
    memory-mapped, valid only during the call). Every per-probe quantity depends on that probe alone (and on
    its batch: run the same batches to get the same bits), so the parts of consecutive probe ranges, joined,
    are the parts of the whole set: the Ray engine's probe shards (:mod:`depara.extraction.engine`) rest on this.
    Arguments as :func:`build_graphs`.
    """
    opts = graph_options(options)
    layers = _checked_run(model, layers, batch_size)
    n, set_ids, load = _batches(probes, preprocess, int(batch_size))
    # Validated before the (possibly long) extraction, with the same rules Graph applies.
    ids = check_probe_ids(probe_ids if probe_ids is not None else set_ids or None, n)
    dev = resolve_device(model, device)
    budget = memory_budget(feature_memory_mb)
    method, scalar = opts.method.value, opts.scalar.value
    if not isinstance(nodes, (bool, np.bool_)):
        raise DeparaError(f"nodes: expected True or False, got {nodes!r}")

    with _FeatureStore(n, budget) as feats:
        model_name = str((meta or {}).get("model") or type(model).__name__)
        attrs = _extract(model, load, n, ids, layers, feats, method=method, scalar=scalar,
                         channel_reduction=opts.channel_reduction.value, grid=opts.node_size,
                         batch_size=int(batch_size), dev=dev, progress=progress, model_name=model_name,
                         nodes=bool(nodes))
        for name in layers:
            features = feats.take(name)
            on_parts(name, attrs.pop(name), features, ids)
            del features


def _checked_run(model: nn.Module, layers: Sequence[str] | str, batch_size: Any) -> list[str]:
    """The checks of an extraction run before any batch: the layers (each once, each a module of ``model``), the
    batch size, the model; one-line DeparaErrors naming the argument. Returns the layer names."""
    layers = list(dict.fromkeys([layers] if isinstance(layers, str) else layers))
    if not layers:
        raise DeparaError("layers: expected at least one layer name")
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise DeparaError(f"batch_size: expected a positive integer, got {batch_size!r}")
    if not isinstance(model, nn.Module):
        raise DeparaError(f"model: expected a torch.nn.Module, got {type(model).__name__}")
    for name in layers:
        resolve_layer(model, name)
    return layers


def graph_meta(probes: ProbeSet | torch.Tensor, options: GraphOptions | None = None, *,
               preprocess: "str | Preprocess | None" = None, meta: Mapping[str, Any] | None = None,
               nodes: bool = True) -> dict[str, Any]:
    """The metadata :func:`build_graphs` records in every graph of one run (before :func:`layer_meta`);
    ``"nodes": False`` for graphs built without attribution maps."""
    opts = graph_options(options)
    base = {**dict(meta or {}), **opts.to_meta()}
    if isinstance(probes, ProbeSet):
        base["preprocess"] = (probes.preprocess if preprocess is None else Preprocess.parse(preprocess)).describe()
        # What the probes ARE (not only their ids): comparisons refuse graphs over different images.
        base["probe_hash"] = probes.content_hash()
        base["probe_digests_short"] = [d[:PROBE_DIGEST_CHARS] for d in probes.probe_digests()]
    if not nodes:
        base["nodes"] = False
    elif opts.method.value == "lrp":
        base["lrp_epsilon"] = LRP_EPSILON
    elif opts.method.value == "integrated_gradients":
        base["ig_steps"] = IG_STEPS
    return base


def layer_meta(base: Mapping[str, Any], layer: str, maps: np.ndarray, probes: ProbeSet | torch.Tensor
               ) -> dict[str, Any]:
    """One layer's graph metadata: :func:`graph_meta` plus the layer, its node grid and the input size."""
    size = list(probes.shape[1:]) if isinstance(probes, torch.Tensor) else list(base["preprocess"]["size"])
    grid = [] if base.get("nodes") is False else list(maps.shape[1:])
    return {**base, "layer": layer, "node_grid": grid, "input_size": size}


def graph_from_parts(maps: np.ndarray, features: np.ndarray, options: GraphOptions | None,
                     probe_ids: Sequence[str], meta: Mapping[str, Any]) -> Graph:
    """The graph of one layer from its :func:`extract_parts` (all probes) and :func:`layer_meta`."""
    opts = graph_options(options)
    if meta.get("nodes") is False:
        # The edges exactly as Graph.from_arrays computes them; the nodes are N×0 (no attribution).
        n = features.shape[0]
        return Graph(np.zeros((n, 0), np.float32),
                     edges_from_features(features, center=bool(opts.center), edge=opts.edge.value), probe_ids,
                     dict(meta))
    g = Graph.from_arrays(maps, features, center=opts.center, edge=opts.edge.value, probe_ids=probe_ids,
                          channel_reduction=None, meta=meta)
    g.meta["channel_reduction"] = opts.channel_reduction.value
    return g


def _extract(model: nn.Module, load: Callable[[int, int], torch.Tensor], n: int, ids: Sequence[str],
             layers: Sequence[str], feats: _FeatureStore, *, method: str, scalar: str, channel_reduction: str,
             grid: tuple[int, int] | None, batch_size: int, dev: torch.device, progress: bool,
             model_name: str = "model", nodes: bool = True) -> dict[str, np.ndarray]:
    """Run all batches: features go into ``feats``; returns the attribution maps {layer: N×...} float32
    ({layer: N×0} when ``nodes`` is False: forward passes only, no attribution)."""
    attrs: dict[str, np.ndarray] = {}
    with ModelState(model, dev), _progress(n, progress, f"depara {method if nodes else 'features'}") as bar:
        for start in range(0, n, batch_size):
            x = load(start, min(n, start + batch_size)).to(dev, torch.float32)
            if nodes:
                f_batch, a_batch = _run_batch(lambda: attribute_batch(model, x, layers, method, scalar),
                                              model_name, x)
            else:
                f_batch = _run_batch(lambda: capture_features(model, x, layers), model_name, x)
                a_batch = {name: x.new_zeros((x.shape[0], 0)) for name in layers}
            reduced = {}
            for name in layers:
                reduced[name] = _reduce_and_resample(a_batch[name], channel_reduction, grid) if nodes \
                    else a_batch[name]
                _finite(f_batch[name], "features", name, ids, start)
                if nodes:
                    _finite(reduced[name], "attributions", name, ids, start)
            if not attrs:
                feats.allocate({name: tuple(f_batch[name].shape[1:]) for name in layers})
                attrs = {name: np.empty((n, *reduced[name].shape[1:]), dtype=np.float32) for name in layers}
            for name in layers:
                feats.write(name, start, f_batch[name].float().cpu().numpy())
                attrs[name][start:start + x.shape[0]] = reduced[name].float().cpu().numpy()
            del f_batch, a_batch, reduced
            bar.update(x.shape[0])
    return attrs


def pooled_features(model: nn.Module, probes: ProbeSet | torch.Tensor, layers: Sequence[str], *,
                    batch_size: int = DEFAULT_BATCH_SIZE, device: Any = None, progress: bool = False,
                    preprocess: "str | Preprocess | None" = None, model_name: str | None = None
                    ) -> dict[str, np.ndarray]:
    """Each layer's output on the probes averaged over space (:func:`depara.core.similarity_edges.pool_features`,
    the same values as pooling :func:`build_graphs`' features): {layer: N×C float32}.

    One forward pass per batch (``torch.inference_mode``, eval mode, stopped after the deepest layer); each layer's
    output is pooled in its hook as it is produced, so no layer's full output is copied or kept: for callers
    that need the pooled features only (``depara select``'s label scores when no graph edges are needed).
    A non-finite feature raises a DeparaError naming the layer and the probe, as :func:`build_graphs` does.
    """
    from ..core.similarity_edges import pool_features

    layers = _checked_run(model, layers, batch_size)
    n, set_ids, load = _batches(probes, preprocess, int(batch_size))
    ids = check_probe_ids(set_ids or None, n)
    dev = resolve_device(model, device)
    out: dict[str, np.ndarray] = {}

    def pool(_name: str, output: torch.Tensor) -> np.ndarray:
        return pool_features(np.ascontiguousarray(output.detach().float().cpu().numpy()))

    with ModelState(model, dev), _progress(n, progress, "depara features") as bar, \
            torch.inference_mode(), LayerCapture(model, layers, keep=pool) as cap:
        for start in range(0, n, int(batch_size)):
            x = load(start, min(n, start + int(batch_size))).to(dev, torch.float32)
            batch = _run_batch(lambda: cap.run(x), model_name or type(model).__name__, x)
            for name in layers:
                block = batch[name]
                bad = ~np.isfinite(block).all(axis=1)
                if bad.any():
                    raise DeparaError(f"layer {name!r}: features contain NaN/Inf (first at probe "
                                      f"{ids[start + int(np.flatnonzero(bad)[0])]!r})")
                if name not in out:
                    out[name] = np.empty((n, *block.shape[1:]), dtype=np.float32)
                out[name][start:start + block.shape[0]] = block
            bar.update(x.shape[0])
    return {name: out[name] for name in layers}


def _run_batch(fn: Callable[[], Any], model_name: str, x: torch.Tensor) -> Any:
    """``fn()`` (the model on the batch ``x``); the user's model failing says which model and why, in one line."""
    if x.ndim != 4:
        raise DeparaError(f"probes: expected images C×H×W, got batch shape {tuple(x.shape)}")
    try:
        return fn()
    except (DeparaError, MemoryError):
        raise
    except Exception as exc:  # noqa: BLE001 - e.g. a head that needs another input size, half-precision
        # weights, or a model whose forward raises (KeyError, AssertionError, a TorchScript exception, ...)
        raise DeparaError(f"model {model_name}: cannot run on float32 probes of preprocess size "
                          f"{x.shape[-2]}x{x.shape[-1]} ({exception_reason(exc)})") from None


def build_graph(model: nn.Module, probes: ProbeSet | torch.Tensor, layer: str,
                options: GraphOptions | None = None, **kwargs: Any) -> Graph:
    """The DEPARA graph of ``model`` at one ``layer``; ``options`` and keyword arguments as :func:`build_graphs`."""
    if not isinstance(layer, str):
        raise DeparaError(f"layer: expected one module name (str), got {type(layer).__name__}; "
                          "use build_graphs for several layers")
    return build_graphs(model, probes, [layer], options, **kwargs)[layer]


def attribution_maps(model: nn.Module, inputs: torch.Tensor, layer: str, *, method: str = "input_x_gradient",
                     scalar: str = "l2") -> torch.Tensor:
    """Raw attribution maps B×C×H×W of one batch for one layer (no channel reduction, no resampling).

    Like :func:`build_graphs`: eval mode and frozen parameters during the call, on the model's device.
    """
    method = AttributionMethod.parse(method, "method").value
    scalar = Scalar.parse(scalar, "scalar").value
    resolve_layer(model, layer)
    dev = resolve_device(model, None)
    with ModelState(model, dev):
        return attribute_batch(model, inputs.to(dev), [layer], method, scalar)[1][layer]


__all__ = ["LRP_EPSILON", "IG_STEPS", "GraphOptions", "graph_options", "build_graph", "build_graphs",
           "extract_parts", "graph_meta", "layer_meta", "graph_from_parts",
           "capture_features", "pooled_features", "attribution_maps", "attribute_batch", "resolve_layer",
           "batch_unsafe_from", "is_batch_safe", "check_batch_safe",
           "LayerCapture", "ModelState"]

