"""Target data of ``depara score``: a labelled image folder, an ``.npz`` of precomputed arrays, a truth file.

Each loader validates at the door and raises a one-line :class:`~depara.errors.DeparaError` naming its argument
(``root``, ``path``); the CLI maps those names to its flags.

The ``.npz`` layout (``allow_pickle=False``, nothing executed):

* target file: ``labels`` (N class indices) or ``targets`` (N or N×T, regression), optionally ``features``
  (N×Dt features of a model trained on the target: the RSA/CKA reference);
* source file: ``features`` (N×D, the source's features on the same N samples) and/or ``probs`` (N×Cs softmax of
  the source's own head).

Truth file: JSON ``{source: value}``, or CSV with a ``source`` column and one value column (``accuracy``,
``truth`` or ``value`` preferred, else the first other column).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DeparaError, exception_reason

__all__ = ["labelled_images", "probe_subset", "load_npz", "NpzTarget", "load_target_npz", "load_source_npz",
           "read_truth", "TRUTH_COLUMNS"]

#: Preferred value columns of a truth CSV, in order.
TRUTH_COLUMNS = ("accuracy", "truth", "value")


def labelled_images(root: str | os.PathLike, preprocess: Any = "imagenet"):
    """A target dataset stored as ``root/<class>/<image>``: (ProbeSet of all images, labels (N,), class names).

    Classes are the sorted subfolder names (label = index); images are found recursively inside each class
    folder and sorted by their path relative to ``root`` (the ProbeSet id).
    """
    from ..extraction.probes import ProbeSet

    base = Path(root)
    if not base.is_dir():
        raise DeparaError(f"root {base}: not found or not a folder of class subfolders")
    classes = sorted(d.name for d in base.iterdir() if d.is_dir() and not d.name.startswith("."))
    if len(classes) < 2:
        raise DeparaError(f"root {base}: expected at least 2 class subfolders, found {len(classes)}")
    found = ProbeSet.from_folder(base, preprocess)
    index = {c: i for i, c in enumerate(classes)}
    labels = []
    for pid in found.ids:
        top = pid.split("/", 1)[0]
        if "/" not in pid or top not in index:
            raise DeparaError(f"root {base}: image {pid} is not inside a class subfolder")
        labels.append(index[top])
    labels = np.asarray(labels, dtype=np.int64)
    empty = [c for c in classes if not np.any(labels == index[c])]
    if empty:
        raise DeparaError(f"root {base}: class folder {empty[0]!r} holds no image")
    return found, labels, classes


def load_npz(path: str | os.PathLike, what: str = "path") -> dict[str, np.ndarray]:
    """All arrays of an ``.npz`` file (``allow_pickle=False``)."""
    p = Path(path)
    if not p.is_file():
        raise DeparaError(f"{what} {p}: file not found")
    import zipfile

    try:
        with np.load(p, allow_pickle=False) as data:
            if not hasattr(data, "files"):  # a plain .npy array, not an archive of named arrays
                raise DeparaError(f"{what} {p}: a single .npy array, expected an .npz archive of named arrays")
            return {k: data[k] for k in data.files}
    except DeparaError:
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        # truncated archives raise BadZipFile/EOFError; object arrays ValueError (pickles are never loaded)
        raise DeparaError(f"{what} {p}: not a readable .npz ({exception_reason(exc, 160)})") from None


@dataclass(frozen=True)
class NpzTarget:
    """The arrays of a target ``.npz``: labels (or regression targets) and optional target-model features."""

    labels: np.ndarray
    features: np.ndarray | None


def load_target_npz(path: str | os.PathLike, regression: bool = False) -> NpzTarget:
    """Labels (``labels``; with ``regression`` ``targets``, either accepted) and optional ``features``."""
    data = load_npz(path)
    key, alt = ("targets", "labels") if regression else ("labels", "targets")
    if key in data:
        labels = data[key]
    elif alt in data:
        labels = data[alt]
    else:
        raise DeparaError(f"path {path}: no '{key}' array (keys: {', '.join(sorted(data)) or 'none'})")
    shape = np.shape(labels)
    if (len(shape) != 1 and not (regression and len(shape) == 2)) or shape[0] == 0:
        want = "N targets or an N×T array" if regression else "a vector of N class labels"
        raise DeparaError(f"path {path}: '{key if key in data else alt}' has shape {shape}, expected {want}")
    return NpzTarget(labels=labels, features=data.get("features"))


def load_source_npz(path: str | os.PathLike):
    """A source ``.npz`` as :class:`~depara.estimators.registry.SourceInputs` (``features`` and/or ``probs``)."""
    from ..estimators.registry import SourceInputs

    arrays = load_npz(path)
    if "features" not in arrays and "probs" not in arrays:
        raise DeparaError(f"path {path}: no 'features' or 'probs' array")
    return SourceInputs(features=arrays.get("features"), probs=arrays.get("probs"))


def read_truth(path: str | os.PathLike) -> dict[str, float]:
    """Ground truth per source from a JSON ``{source: value}`` or a CSV (``source`` + a value column)."""
    from ..io.files import read_csv, read_json

    path = Path(path)
    if path.suffix.lower() == ".json":
        data = read_json(path)
        if not isinstance(data, dict):
            raise DeparaError(f"path {path}: expected a JSON object {{source: value}}")
        items = data.items()
    else:
        rows = read_csv(path)
        if not rows or "source" not in rows[0]:
            raise DeparaError(f"path {path}: expected a CSV with a 'source' column and a value column")
        cols = [c for c in rows[0] if c != "source"]
        col = next((c for c in TRUTH_COLUMNS if c in cols), cols[0] if cols else None)
        if col is None:
            raise DeparaError(f"path {path}: no value column besides 'source'")
        items = [(r["source"], r[col]) for r in rows]
    out: dict[str, float] = {}
    for name, value in items:
        if str(name) in out:
            raise DeparaError(f"path {path}: source {name!r} is listed twice")
        try:
            v = float(value)
        except (TypeError, ValueError):
            raise DeparaError(f"path {path}: value for {name!r} is not a number ({value!r})") from None
        if not np.isfinite(v):
            raise DeparaError(f"path {path}: value for {name!r} is {value!r}, expected a finite number")
        out[str(name)] = v
    if not out:
        raise DeparaError(f"path {path}: no source rows (expected one value per source)")
    return out


def probe_subset(images, max_probes: int, seed: int = 0):
    """At most ``max_probes`` of a ProbeSet's images, drawn with ``seed`` and kept in their original order: the
    DEPARA probes of ``depara score`` when no probe folder is given. Returns a ProbeSet (same preprocessing)."""
    from ..extraction.probes import ProbeSet

    if isinstance(max_probes, bool) or not isinstance(max_probes, (int, np.integer)) or max_probes < 3:
        raise DeparaError(f"max_probes: expected an integer >= 3 (a graph needs 3 probes), got {max_probes!r}")
    pick = np.sort(np.random.default_rng(seed).permutation(len(images))[:int(max_probes)])
    return ProbeSet.from_images([images.image(int(i)) for i in pick], ids=[images.ids[int(i)] for i in pick],
                                preprocess=images.preprocess)
