"""The torch layer of the harness: each source model's features and head probabilities on the target images, and
DEPARA graphs of several models on one probe set.

Every model sees the images through ITS OWN preprocessing, so sources with different input sizes (224 px ImageNet
models beside 256 px Taskonomy encoders, or small custom networks) can be scored together: give the images as a
:class:`~depara.extraction.probes.ProbeSet` (raw images) and, per model, a
:class:`~depara.extraction.probes.Preprocess` (``preprocess``: one for all, or a mapping name → preprocess); a model
without one gets :func:`default_preprocess` (the input size and normalisation its weights declare, e.g. timm's
``pretrained_cfg``, else the probe set's own). A model that cannot run at the size it is given fails with a one-line
DeparaError naming the model and the size.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Mapping

import numpy as np

from ..core.similarity_edges import pooling_kind
from ..errors import DeparaError, exception_reason
from ..estimators.registry import SourceInputs
from ..options import DEFAULT_BATCH_SIZE, GraphOptions

if TYPE_CHECKING:  # pragma: no cover
    import torch
    from torch import nn

    from ..core.graph import Graph
    from .probes import Preprocess, ProbeSet

__all__ = ["last_linear", "pool_features", "default_preprocess", "extract_inputs", "build_depara_graphs",
           "PreprocessSpec"]

#: One preprocessing for every model, or a mapping model name → preprocessing (missing names: the default).
PreprocessSpec = Any


def last_linear(model: "nn.Module") -> str | None:
    """Name of the last ``nn.Linear`` in module order (the classifier head of most vision models), or None."""
    from torch import nn

    name = None
    for n, m in model.named_modules():
        if isinstance(m, nn.Linear):
            name = n
    return name


def pool_features(t: "torch.Tensor") -> "torch.Tensor":
    """:func:`depara.core.similarity_edges.pool_features` for a torch tensor, by the same rule
    (:func:`~depara.core.similarity_edges.pooling_kind`: B×C×spatial… maps → B×C, B×T×D tokens → B×D, B×D kept),
    computed in the tensor's own dtype and device."""
    kind = pooling_kind(t.ndim)
    if kind == "tokens":
        return t.mean(dim=1)
    if kind == "maps":
        return t.flatten(2).mean(dim=2)
    return t.reshape(t.shape[0], -1)


def default_preprocess(model: "nn.Module", fallback: "str | Preprocess" = "imagenet") -> "Preprocess":
    """The preprocessing a model declares: timm's ``pretrained_cfg`` / ``default_cfg`` (input size, mean, std,
    crop fraction), else ``fallback``."""
    from .probes import Preprocess

    cfg = getattr(model, "pretrained_cfg", None) or getattr(model, "default_cfg", None)
    if isinstance(cfg, Mapping) and cfg.get("input_size"):
        _, h, w = (int(v) for v in cfg["input_size"])
        crop = float(cfg.get("crop_pct") or 1.0)
        return Preprocess(size=(h, w), mean=tuple(cfg.get("mean", (0.485, 0.456, 0.406))),
                          std=tuple(cfg.get("std", (0.229, 0.224, 0.225))),
                          resize=int(round(min(h, w) / crop)) if crop < 1 else None, center_crop=crop < 1,
                          name=f"{cfg.get('architecture', 'model')}-{h}x{w}")
    return Preprocess.parse(fallback)


def _preprocess_for(name: str, model: "nn.Module", images: "ProbeSet", preprocess: PreprocessSpec) -> "Preprocess":
    from .probes import Preprocess

    chosen = preprocess.get(name) if isinstance(preprocess, Mapping) else preprocess
    return Preprocess.parse(chosen) if chosen is not None else default_preprocess(model, images.preprocess)


def _check_preprocess_names(preprocess: PreprocessSpec, names) -> None:
    if isinstance(preprocess, Mapping):
        unknown = sorted(set(map(str, preprocess)) - set(names))
        if unknown:
            raise DeparaError(f"preprocess: {unknown[0]!r} is not a model name (models: {', '.join(names)})")


def _loader(name: str, model: "nn.Module", images, preprocess: PreprocessSpec):
    """(N, size label, load(a, b) -> float tensor B×C×H×W) of ``images`` as ``model`` sees them."""
    import torch

    from .probes import ProbeSet

    if isinstance(images, ProbeSet):
        prep = _preprocess_for(name, model, images, preprocess)
        return len(images), "×".join(map(str, prep.size)), lambda a, b: images.tensor(prep, slice(a, b))
    if not isinstance(images, torch.Tensor) or images.ndim != 4:
        raise DeparaError(f"images: expected a ProbeSet or a float tensor N×C×H×W, got "
                          f"{getattr(images, 'shape', type(images).__name__)}")
    if preprocess is not None:
        raise DeparaError("preprocess: only applies to a ProbeSet of raw images; the images tensor is already "
                          "preprocessed")
    return images.shape[0], "×".join(map(str, images.shape[2:])), lambda a, b: images[a:b]


def extract_inputs(models: Mapping[str, "nn.Module"], images: "ProbeSet | torch.Tensor", *,
                   feature_layer: str | Mapping[str, str] | None = None, batch_size: int = 64,
                   device: Any = None, progress: bool = False, preprocess: PreprocessSpec = None
                   ) -> dict[str, SourceInputs]:
    """Run each model ONCE over the target ``images`` → features and head probabilities.

    Args:
        models: name → model.
        images: a :class:`~depara.extraction.probes.ProbeSet` of raw target images (each model gets its own
            preprocessing, see the module docstring), or a float tensor N×C×H×W already preprocessed for every
            model.
        feature_layer: module name (one for all, or per model); default = the INPUT of the model's last
            ``nn.Linear`` (the penultimate representation). Feature maps of more than 2 dimensions are
            global-average pooled to B×C.
        preprocess: with a ProbeSet, one preprocessing for all or a mapping name → preprocessing.

    Returns:
        name → :class:`~depara.estimators.registry.SourceInputs` with ``features`` (N×D float32) and ``probs`` =
        softmax of the model output when it is B×K with K ≥ 2 (else None).
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise DeparaError(f"batch_size: expected a positive integer, got {batch_size!r}")
    _check_preprocess_names(preprocess, list(models))
    out: dict[str, SourceInputs] = {}
    for name, model in models.items():
        layer = feature_layer.get(name) if isinstance(feature_layer, Mapping) else feature_layer
        n, size, load = _loader(name, model, images, preprocess)
        out[name] = _extract_one(name, model, n, size, load, layer, batch_size, device, progress)
    return out


def _extract_one(name: str, model: "nn.Module", n: int, size: str, load, layer: str | None, batch_size: int,
                 device: Any, progress: bool) -> SourceInputs:
    import torch
    from tqdm.auto import tqdm

    modules = dict(model.named_modules())
    if layer is None:
        head = last_linear(model)
        if head is None:
            raise DeparaError(f"source {name}: no nn.Linear head found; give a feature layer name")
        module, use_input = modules[head], True
    else:
        if layer not in modules:
            raise DeparaError(f"source {name}: no layer named {layer!r}")
        module, use_input = modules[layer], False
    captured: list = []

    def hook(_m, inputs, output):
        captured.append(pool_features((inputs[0] if use_input else output).detach()).float().cpu())

    dev = torch.device(device) if device is not None else next(
        (p.device for p in model.parameters()), torch.device("cpu"))
    was_training = model.training
    model.eval()
    handle = module.register_forward_hook(hook)
    feats, probs = [], []
    try:
        with torch.no_grad():
            for start in tqdm(range(0, n, batch_size), desc=f"features {name}", leave=False, disable=not progress):
                x = load(start, min(n, start + batch_size)).to(dev, torch.float32)
                try:
                    y = model(x)
                except DeparaError:
                    raise
                except (RuntimeError, ValueError) as exc:
                    raise DeparaError(f"source {name}: the model cannot run on {size} inputs "
                                      f"({exception_reason(exc, 160)}); "
                                      f"give it its own preprocessing (preprocess={{{name!r}: ...}})") from None
                feats.append(captured.pop())
                captured.clear()
                if isinstance(y, torch.Tensor) and y.ndim == 2 and y.shape[1] >= 2:
                    probs.append(torch.softmax(y.double(), dim=1).cpu())
    finally:
        handle.remove()
        model.train(was_training)
    f = torch.cat(feats).numpy()
    if not np.all(np.isfinite(f)):
        raise DeparaError(f"source {name}: features contain NaN or inf")
    p = torch.cat(probs).numpy() if len(probs) == len(feats) else None
    return SourceInputs(features=f, probs=p)


def build_depara_graphs(models: Mapping[str, "nn.Module"], probes: "ProbeSet | torch.Tensor", *,
                        layer: str | Mapping[str, str] | None = None, options: GraphOptions | None = None,
                        preprocess: PreprocessSpec = None, batch_size: int = DEFAULT_BATCH_SIZE, device: Any = None,
                        progress: bool = False) -> dict[str, "Graph"]:
    """One DEPARA graph per model on ``probes`` via :func:`depara.extraction.extract.build_graph`, all with ``options``.

    ``layer``: module name (one for all or per model); default = the model's last ``nn.Linear`` (its output, the
    task head). With a ProbeSet each model sees the probes through its own preprocessing (as
    :func:`extract_inputs`); the node grid of ``options`` makes the graphs comparable across input sizes.
    """
    import torch

    from .extract import build_graph
    from .probes import ProbeSet

    _check_preprocess_names(preprocess, list(models))
    graphs = {}
    for name, model in models.items():
        lay = layer.get(name) if isinstance(layer, Mapping) else layer
        if lay is None:
            lay = last_linear(model)
            if lay is None:
                raise DeparaError(f"model {name}: no nn.Linear head found; give a graph layer name")
        prep = _preprocess_for(name, model, probes, preprocess) if isinstance(probes, ProbeSet) else None
        try:
            graphs[name] = build_graph(model, probes, lay, options, preprocess=prep, meta={"model": name},
                                       batch_size=batch_size, device=device, progress=progress)
        except (RuntimeError, ValueError) as exc:
            if isinstance(exc, DeparaError):
                raise
            size = "×".join(map(str, prep.size)) if prep is not None else \
                "×".join(map(str, probes.shape[2:])) if isinstance(probes, torch.Tensor) else "?"
            raise DeparaError(f"model {name}: cannot build its graph on {size} inputs "
                              f"({exception_reason(exc, 160)}); "
                              f"give it its own preprocessing (preprocess={{{name!r}: ...}})") from None
    return graphs
