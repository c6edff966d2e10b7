"""The real-image bank on pretrained sources: features extracted once and cached, linear-probe ground truth on the
cached features, and every scorer scored on the same cached features.

For each target (a labelled pool of real images) and seed, :func:`~.data.make_split` draws a stratified train/test
split. The truth of a (source, layer) is the test accuracy of a standardised logistic regression on the layer's
pooled features of the train images (:func:`~.truth.linear_probe`), per seed; model ranking reads each source's
ranking layer, layer ranking compares a source's four candidate layers. Scorers see the seed-0 train images only.

Cache layout (under ``cache_dir``): ``features/<source>/<image set>.safetensors`` (+ checksummed sidecar) and
``truth/<target>/<source>.json``; each entry is keyed by the source's package version and weight hash, the image
set and the settings, and is rebuilt when corrupt or stale.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from ..taskbank.cache import fingerprint, load_json_entry, load_tensors_entry, save_json_entry, save_tensors_entry
from . import data as D
from . import pretrained as P
from .truth import linear_probe

HIRES = 128  # side of the photo targets' images (VisDA, scikit-image photos); the others are at most 32 px
VERSION = 1


def _to01(x: np.ndarray) -> np.ndarray:
    """N×3×S×S in [-1, 1] (the bank's layout) → N×S×S×3 in [0, 1]."""
    return np.ascontiguousarray(((np.asarray(x, np.float32) + 1.0) / 2.0).transpose(0, 2, 3, 1))


def _digits():
    x, y = D.digits_half("target")
    return _to01(x[:400]), y[:400]


def _fmnist():
    x, y = D.fashion("t10k", 250, 0)
    return _to01(x), y


def _fmnist_shirt():
    x, y = D.fashion("t10k", 800, 0)
    keep = np.isin(y, (0, 6))
    return _to01(x[keep]), (y[keep] == 6).astype(np.int64)


def _lfw():
    x, y = D.lfw()
    return _to01(x), y


def _photos():
    x, y = D.photo_patches(D.PHOTO_TARGET, 25, 0, size=HIRES)
    return _to01(x), y


def _visda():
    x, y, _ = D.visda(HIRES)
    return _to01(x), y


#: image set → loader of (N×H×W×3 images in [0, 1], labels); features are extracted once per (source, set)
IMAGE_SETS: dict[str, Callable[[], tuple[np.ndarray, np.ndarray]]] = {
    "digits": _digits, "fmnist": _fmnist, "fmnist-shirt": _fmnist_shirt, "lfw": _lfw, "photos": _photos,
    "visda": _visda}


def _vehicles(y: np.ndarray) -> np.ndarray:
    classes = D.visda(HIRES)[2]
    return np.isin(np.asarray(classes)[y], D.VISDA_VEHICLES).astype(np.int64)


@dataclass(frozen=True)
class Target:
    name: str
    image_set: str
    relabel: Callable[[np.ndarray], np.ndarray] | None
    description: str

    def labels(self, y: np.ndarray) -> np.ndarray:
        return np.asarray(y if self.relabel is None else self.relabel(y), np.int64)


TARGETS: tuple[Target, ...] = (
    Target("digits10", "digits", None, "400 sklearn digits (of the target half), 10-way"),
    Target("digits-parity", "digits", lambda y: y % 2, "sklearn digits, odd vs even"),
    Target("fmnist10", "fmnist", None, "250 Fashion-MNIST test images, 10-way"),
    Target("fmnist-shoes", "fmnist", lambda y: np.isin(y, D.FMNIST_SHOES).astype(np.int64),
           "the same 250, shoes vs clothes"),
    Target("fmnist-shirt", "fmnist-shirt", None, "Fashion-MNIST shirts vs T-shirts (of 800 test images)"),
    Target("lfw-face", "lfw", None, "scikit-image lfw_subset, face vs non-face (200)"),
    Target("photo-patch", "photos", None, f"which of 6 scikit-image photos a {HIRES}-px patch comes from (150)"),
    Target("visda12", "visda", None, f"200 VisDA real photos at {HIRES} px, 12-way"),
    Target("visda-vehicle", "visda", _vehicles, "200 VisDA real photos, vehicle vs not"),
)


@dataclass(frozen=True)
class BenchConfig:
    """Settings of the pretrained bank (the cache keys hold them)."""

    seeds: int = 10
    n_train: int = 300
    n_test: int = 400
    lp_c: float = 1.0
    batch_size: int = P.BATCH_SIZE

    def split(self, y: np.ndarray, seed: int) -> D.Split:
        return D.make_split(y, seed=seed, n_train=self.n_train, n_test=self.n_test)


def available_image_sets() -> dict[str, str]:
    """image set → '' when loadable here, else the reason it is skipped (e.g. Fashion-MNIST not installed)."""
    out = {}
    for name, fn in IMAGE_SETS.items():
        try:
            fn()
            out[name] = ""
        except D.Unavailable as exc:
            out[name] = str(exc)
    return out


def features(source: str, image_set: str, cache_dir: Path, *, batch_size: int = P.BATCH_SIZE, model=None,
             log: Callable[[str], None] | None = None) -> dict[str, np.ndarray]:
    """Pooled features (layer → N×C float32) of ``source`` on ``image_set``, from the cache or extracted now."""
    spec = P.get_source(source)
    key = fingerprint({"source": P.source_version(spec), "set": image_set, "layers": spec.layers,
                       "size": spec.input_size, "hires": HIRES, "v": VERSION})
    path = Path(cache_dir) / "features" / source / f"{image_set}.safetensors"
    hit = load_tensors_entry(path, key)
    if hit is not None:
        return {k: v.numpy() for k, v in hit[0].items()}
    import torch

    images, _ = IMAGE_SETS[image_set]()
    model = P.load_source(source) if model is None else model
    t0 = time.perf_counter()
    feats = P.layer_features(spec, model, images, batch_size=batch_size)
    seconds = time.perf_counter() - t0
    save_tensors_entry(path, key, {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in feats.items()},
                       {"seconds": seconds, "n": len(images)})
    if log:
        log(f"{source} on {image_set}: {len(images)} images in {seconds:.0f} s")
    return feats


def truth(target: Target, source: str, feats: dict[str, np.ndarray], y: np.ndarray, cfg: BenchConfig,
          cache_dir: Path) -> dict[str, list[float]]:
    """layer → per-seed linear-probe test accuracies of ``source`` on ``target`` (cached)."""
    spec = P.get_source(source)
    key = fingerprint({"source": P.source_version(spec), "target": target.name, "seeds": cfg.seeds,
                       "n_train": cfg.n_train, "n_test": cfg.n_test, "c": cfg.lp_c, "hires": HIRES, "v": VERSION})
    path = Path(cache_dir) / "truth" / target.name / f"{source}.json"
    hit = load_json_entry(path, key)
    if hit is not None:
        return hit["accuracy"]
    t0 = time.perf_counter()
    acc = {layer: [] for layer in spec.layers}
    for seed in range(cfg.seeds):
        sp = cfg.split(y, seed)
        for layer in spec.layers:
            f = feats[layer]
            acc[layer].append(linear_probe(f[sp.train], y[sp.train], f[sp.test], y[sp.test], c=cfg.lp_c))
    save_json_entry(path, key, {"accuracy": acc, "seconds": time.perf_counter() - t0})
    return acc
