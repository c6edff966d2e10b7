"""Step 1 of ``depara select``: the data (images, labels) and the candidate models, checked before any work."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import numpy as np

from ..errors import DeparaError

if TYPE_CHECKING:  # pragma: no cover
    from ..extraction.probes import ProbeSet
    from ..extraction.zoo import ModelEntry

__all__ = ["load_data", "subsample", "as_entries", "as_target", "check_model_files"]


# ===================================================================================================== data
def load_data(data: Any, labels: Any, preprocess_default: str = "imagenet") -> tuple["ProbeSet", np.ndarray | None,
                                                                                       list[str], str]:
    """→ (probe set, integer labels or None, class names, description). See :func:`select` for the forms."""
    from ..extraction.probes import ProbeSet

    class_names: list[str] = []
    if isinstance(data, ProbeSet):
        probes, desc = data, repr(data)
    elif isinstance(data, (str, os.PathLike)):
        path = Path(data)
        if path.is_dir():
            from ..extraction.probes import IMAGE_EXTENSIONS

            entries = [p for p in path.iterdir() if not p.name.startswith(".")]
            top_images = [p for p in entries if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS]
            subdirs = [p for p in entries if p.is_dir()]
            if top_images and subdirs:
                raise DeparaError(f"data {path}: mixes {len(top_images)} images at the top level with "
                                  f"{len(subdirs)} sub-folders (expected class sub-folders, or a flat folder of "
                                  "images)")
            probes = ProbeSet.from_folder(path, preprocess_default)
            if subdirs and labels is None:
                found = {pid.split("/", 1)[0] for pid in probes.ids}
                hollow = sorted(p.name for p in subdirs if p.name not in found)
                if hollow:  # a class silently dropped would change the label graph and every score
                    raise DeparaError(f"data {path}: class folder {hollow[0]!r} holds no image (remove it, or "
                                      "add its images)")
                labels = [pid.split("/", 1)[0] for pid in probes.ids]  # folder names, indexed below
            desc = f"{path} ({'class sub-folders' if subdirs else 'flat folder'})"
        elif path.is_file():
            probes = ProbeSet.from_list(path, preprocess=preprocess_default)
            desc = f"{path} (image list)"
        else:
            raise DeparaError(f"data {path}: not found (expected a folder of class sub-folders, a folder of "
                              "images, or an image-list file)")
    else:
        raise DeparaError(f"data: expected a folder, an image-list file or a ProbeSet, got {type(data).__name__}")
    if len(probes) < 3:
        raise DeparaError(f"data {desc}: {len(probes)} image(s); at least 3 are needed (graphs compare probe pairs)")
    if labels is not None:
        raw = np.asarray(labels)
        if raw.ndim != 1 or raw.shape[0] != len(probes):
            raise DeparaError(f"labels: expected {len(probes)} labels (one per image), got shape {raw.shape}")
        if raw.dtype.kind not in "iubfUS" or (raw.dtype.kind == "f" and not np.all(np.isfinite(raw))):
            # NaN would become a class of its own in np.unique; objects (None, mixed types) cannot be ordered
            bad = "NaN or inf" if raw.dtype.kind == "f" else f"values of dtype {raw.dtype}"
            raise DeparaError(f"labels: expected integer or string class labels, got {bad}")
        uniq, inv = np.unique(raw, return_inverse=True)
        class_names = [str(u) for u in uniq]
        labels = np.asarray(inv, dtype=np.int64)
    return probes, labels, class_names, desc


def subsample(probes: "ProbeSet", labels: np.ndarray | None, n: int, seed: int):
    """At most ``n`` probes, drawn without replacement under ``seed`` (kept in their original order)."""
    if len(probes) <= n:
        return probes, labels
    keep = np.sort(np.random.default_rng(seed).choice(len(probes), size=n, replace=False))
    return probes.subset(keep), (labels[keep] if labels is not None else None)


# =================================================================================================== models
def as_entries(models: Any) -> list["ModelEntry"]:
    """Models in any accepted form → validated, uniquely named entries (nothing is loaded)."""
    from ..extraction.zoo import ModelEntry, parse_model_specs, read_zoo

    if isinstance(models, os.PathLike) or isinstance(models, str) and models.lower().endswith(".toml"):
        return read_zoo(models)  # a path object is a zoo file whatever its name; a string one ending in .toml
    if isinstance(models, str):
        return parse_model_specs(models)
    items: list[Any]
    if isinstance(models, Mapping):
        items = []
        for name, item in models.items():
            if isinstance(item, ModelEntry):
                items.append(ModelEntry(name=str(name), spec=item.spec, weights=item.weights,
                                        preprocessing=item.preprocessing, layers=item.layers, module=item.module))
            elif isinstance(item, str):
                e = parse_model_specs(item)[0]
                items.append(ModelEntry(name=str(name), spec=e.spec, weights=e.weights))
            else:
                items.append(ModelEntry(name=str(name), spec=f"module:{name}", module=item))
    elif isinstance(models, Sequence):
        items = []
        for item in models:
            items.extend([item] if isinstance(item, ModelEntry) else parse_model_specs(str(item)))
    else:
        raise DeparaError(f"models: expected model specs, a zoo .toml file, or a dict name -> model, got "
                          f"{type(models).__name__}")
    if not items:
        raise DeparaError("models: no candidate model given")
    names = [e.name for e in items]
    dup = next((n for n in names if names.count(n) > 1), None)
    if dup is not None:
        raise DeparaError(f"models: duplicate model name {dup!r}")
    return items


def as_target(target: Any) -> "ModelEntry | None":
    from ..extraction.zoo import ModelEntry, parse_model_specs

    if target is None or isinstance(target, ModelEntry):
        return target
    if isinstance(target, str):
        e = parse_model_specs(target)
        if len(e) != 1:
            raise DeparaError(f"target_model {target!r}: expected one model spec")
        return ModelEntry(name=f"target:{e[0].name}", spec=e[0].spec, weights=e[0].weights)
    return ModelEntry(name="target", spec="module:target", module=target)


def check_model_files(entries: Sequence["ModelEntry"]) -> None:
    """A ``file:`` model that does not exist fails before any model is loaded or any image is read (not after
    the other candidates' extraction)."""
    from ..extraction.models import parse_spec

    for e in entries:
        if e.module is not None or not isinstance(e.spec, str) or not e.spec.lower().startswith("file:"):
            continue
        _, path, _ = parse_spec(e.spec)
        if not Path(path).expanduser().is_file():
            what = "is a folder" if Path(path).expanduser().is_dir() else "not found"
            raise DeparaError(f"model {e.name}: model file {path}: {what}")
