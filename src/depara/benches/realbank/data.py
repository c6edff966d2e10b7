"""Real-image data of the real-image bank: target tasks and source pretraining sets, all offline.

Every image is returned as float32 3×32×32 in [-1, 1] (grey images repeated over RGB), so every model of the zoo
reads every target.

Targets (each a *pool* of labelled images; a seed draws a stratified train/test split from it):

- scikit-learn ``digits`` (8×8 grey, upsampled): 10-way; odd vs even. The **second half** of the digits (by a
  fixed permutation) is the pool; the first half is a source pretraining set (disjoint images).
- Fashion-MNIST **test** file (``/usr/share/datasets/fashion-mnist`` or ``$DEPARA_FASHION_MNIST``): 10-way;
  shoes vs clothes; shirt vs T-shirt. The **train** file feeds a source (disjoint images). Absent → skipped.
- scikit-image ``lfw_subset``: face vs non-face (100 + 100 images).
- scikit-image sample photos: which of six photos a random 32×32 patch comes from.
- the 200 VisDA-2017 real photos (``$DEPARA_SHARED_DATA/visda_real_probe200``): 12-way; vehicles vs not.

Few-shot variants (``…@10``) train on 10 images per class of the same split and test on the same test images.
"""

from __future__ import annotations

import gzip
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Callable

import numpy as np

from ...errors import DeparaError
from ...io.files import shared_data_dir
from ..taskbank.probesets import FASHION_MNIST_DIRS, resize_images, to_rgb01, to_tensor_layout

SIZE = 32
PHOTO_TARGET = ("astronaut", "coffee", "chelsea", "rocket", "colorwheel", "immunohistochemistry")
PHOTO_SOURCE = ("brick", "grass", "gravel", "coins", "moon", "clock", "page", "text", "camera", "horse",
                "hubble_deep_field", "retina")
FMNIST_SHOES = (5, 7, 9)  # sandal, sneaker, ankle boot
VISDA_VEHICLES = ("aeroplane", "bicycle", "bus", "car", "motorcycle", "train", "truck")


class Unavailable(Exception):
    """A data set that is not installed here (its targets/sources are skipped with this reason)."""


@dataclass(frozen=True)
class Pool:
    """Labelled images: x N×3×32×32 float32 in [-1, 1], y N int64 (0..K−1)."""

    x: np.ndarray
    y: np.ndarray

    @property
    def n_classes(self) -> int:
        return int(self.y.max()) + 1


def _layout(images01: np.ndarray) -> np.ndarray:
    """N×H×W(×3) in [0, 1] → N×3×32×32 in [-1, 1]."""
    out = np.stack([resize_images(to_rgb01(im), SIZE) for im in images01])
    return to_tensor_layout(np.clip(out, 0, 1))


# ---------------------------------------------------------------------------------------------- raw sets
@lru_cache(maxsize=None)
def _digits() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    d = load_digits()
    order = np.random.default_rng(1797).permutation(len(d.target))
    return _layout(d.images[order] / 16.0), d.target[order].astype(np.int64)


def digits_half(which: str) -> tuple[np.ndarray, np.ndarray]:
    """The source half (``"source"``) or the target half (``"target"``) of sklearn digits (disjoint)."""
    x, y = _digits()
    h = len(y) // 2
    return (x[:h], y[:h]) if which == "source" else (x[h:], y[h:])


def _fashion_dir() -> Path:
    dirs = [os.environ["DEPARA_FASHION_MNIST"]] if os.environ.get("DEPARA_FASHION_MNIST") else []
    for d in [*dirs, *FASHION_MNIST_DIRS]:
        if (Path(d) / "t10k-images-idx3-ubyte.gz").is_file():
            return Path(d)
    raise Unavailable("Fashion-MNIST not installed (Debian package dataset-fashion-mnist, "
                      "/usr/share/datasets/fashion-mnist); its targets and source are skipped")


def _idx(path: Path) -> np.ndarray:
    with gzip.open(path, "rb") as fh:
        raw = fh.read()
    dims = raw[3]
    shape = tuple(int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(dims))
    return np.frombuffer(raw, np.uint8, offset=4 + 4 * dims).reshape(shape)


@lru_cache(maxsize=None)
def fashion(split: str, n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``n`` seeded-random Fashion-MNIST images of ``split`` ("train" | "t10k"), with labels."""
    d = _fashion_dir()
    images = _idx(d / f"{split}-images-idx3-ubyte.gz")
    labels = _idx(d / f"{split}-labels-idx1-ubyte.gz").astype(np.int64)
    pick = np.sort(np.random.default_rng([seed, 28, len(split)]).choice(len(labels), size=min(n, len(labels)),
                                                                         replace=False))
    return _layout(images[pick] / 255.0), labels[pick]


@lru_cache(maxsize=None)
def lfw() -> tuple[np.ndarray, np.ndarray]:
    """scikit-image ``lfw_subset``: 100 faces then 100 non-faces (label 1 = face)."""
    import skimage.data

    imgs = skimage.data.lfw_subset()
    y = np.r_[np.ones(100), np.zeros(len(imgs) - 100)].astype(np.int64)
    return _layout(np.clip(imgs, 0, 1)), y


def _photo(name: str) -> np.ndarray:
    import skimage.data

    img = to_rgb01(getattr(skimage.data, name)())
    step = max(1, min(img.shape[:2]) // 256)
    return img[::step, ::step]


@lru_cache(maxsize=None)
def photo_patches(names: tuple[str, ...], per_class: int, seed: int, size: int = SIZE) -> tuple[np.ndarray, np.ndarray]:
    """``per_class`` random square crops (side 1/8 to 1/3 of the shorter side) of each photo, resized to ``size``
    (the same crops whatever the size); label = photo."""
    rng = np.random.default_rng([seed, 77])
    xs, ys = [], []
    for k, name in enumerate(names):
        img = _photo(name)
        h, w = img.shape[:2]
        for _ in range(per_class):
            side = int(rng.uniform(1 / 8, 1 / 3) * min(h, w))
            r, c = int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1))
            xs.append(resize_images(img[r:r + side, c:c + side], size))
            ys.append(k)
    return to_tensor_layout(np.clip(np.stack(xs), 0, 1)), np.array(ys, np.int64)


@lru_cache(maxsize=None)
def visda(size: int = SIZE) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    """The shared VisDA real photos (centre square crop resized to ``size``), labels 0..11 by sorted class name,
    class names."""
    from PIL import Image

    root = shared_data_dir() / "visda_real_probe200"
    files = sorted(p for p in root.glob("*.jpg")) if root.is_dir() else []
    if not files:
        raise Unavailable(f"{root}: no VisDA photos (set DEPARA_SHARED_DATA); the VisDA targets are skipped")
    classes = tuple(sorted({p.name.rsplit("_", 1)[0] for p in files}))
    out, ys = [], []
    for p in files:
        with Image.open(p) as im:
            img = to_rgb01(np.asarray(im.convert("RGB")))
        h, w = img.shape[:2]
        s = min(h, w)
        out.append(resize_images(img[(h - s) // 2:(h - s) // 2 + s, (w - s) // 2:(w - s) // 2 + s], size))
        ys.append(classes.index(p.name.rsplit("_", 1)[0]))
    return to_tensor_layout(np.clip(np.stack(out), 0, 1)), np.array(ys, np.int64), classes


# ---------------------------------------------------------------------------------------------- targets
def _fm(n: int) -> tuple[np.ndarray, np.ndarray]:
    return fashion("t10k", n, 0)


def _target_digits10(n):
    x, y = digits_half("target")
    return Pool(x, y)


def _target_digits_parity(n):
    x, y = digits_half("target")
    return Pool(x, y % 2)


def _target_fm10(n):
    x, y = _fm(n)
    return Pool(x, y)


def _target_fm_shoes(n):
    x, y = _fm(n)
    return Pool(x, np.isin(y, FMNIST_SHOES).astype(np.int64))


def _target_fm_shirt(n):
    x, y = _fm(4 * n)
    keep = np.isin(y, (0, 6))
    return Pool(x[keep], (y[keep] == 6).astype(np.int64))


def _target_lfw(n):
    return Pool(*lfw())


def _target_photos(n):
    return Pool(*photo_patches(PHOTO_TARGET, max(20, n // len(PHOTO_TARGET)), 0))


def _target_visda12(n):
    x, y, _ = visda()
    return Pool(x, y)


def _target_visda_vehicles(n):
    x, y, classes = visda()
    veh = np.array([classes[i] in VISDA_VEHICLES for i in y])
    return Pool(x, veh.astype(np.int64))


#: name → (pool builder taking the wanted pool size, description)
TARGETS: dict[str, tuple[Callable[[int], Pool], str]] = {
    "digits10": (_target_digits10, "sklearn digits, 10-way (target half of the images)"),
    "digits-parity": (_target_digits_parity, "sklearn digits, odd vs even"),
    "fmnist10": (_target_fm10, "Fashion-MNIST test images, 10-way"),
    "fmnist-shoes": (_target_fm_shoes, "Fashion-MNIST, shoes (sandal, sneaker, boot) vs clothes"),
    "fmnist-shirt": (_target_fm_shirt, "Fashion-MNIST, shirt vs T-shirt"),
    "lfw-face": (_target_lfw, "scikit-image lfw_subset, face vs non-face"),
    "photo-patch": (_target_photos, "which of 6 scikit-image photos a patch comes from"),
    "visda12": (_target_visda12, "200 VisDA real photos, 12-way (17 per class, 13 trucks)"),
    "visda-vehicle": (_target_visda_vehicles, "200 VisDA real photos, vehicle vs not"),
}
FEW_SHOT = 10  # images per class of the few-shot variants
#: targets whose pool is already few-shot sized (no separate few-shot variant)
SMALL_POOLS = ("visda12", "visda-vehicle")


def load_target(name: str, pool_size: int) -> Pool:
    """The labelled pool of target ``name`` (``base`` or ``base@K`` for a K-shot variant; same pool)."""
    base = name.split("@")[0]
    if base not in TARGETS:
        raise DeparaError(f"target {name!r}: expected one of {', '.join(TARGETS)} (optionally with @K)")
    return TARGETS[base][0](pool_size)


@dataclass(frozen=True)
class Split:
    """Indices into a pool: train (the practitioner's labelled set) and test (never seen by scorers)."""

    train: np.ndarray
    test: np.ndarray


def make_split(y: np.ndarray, *, seed: int, n_train: int, n_test: int, shots: int | None = None,
               test_fraction: float = 0.4) -> Split:
    """A stratified split of a pool drawn by ``seed``.

    Test: ``min(n_test, test_fraction·N)`` images, stratified. Train: from the rest, ``shots`` per class when given,
    else ``n_train`` images stratified (all the rest when fewer).
    """
    rng = np.random.default_rng([int(seed), 4242, len(y)])
    classes = np.unique(y)
    n = len(y)
    test_total = int(min(n_test, round(test_fraction * n)))
    test, rest = [], []
    for c in classes:
        idx = rng.permutation(np.flatnonzero(y == c))
        k = max(1, int(round(test_total * len(idx) / n)))
        test.append(idx[:k])
        rest.append(idx[k:])
    train = []
    rest_total = sum(len(r) for r in rest)
    for r in rest:
        if shots is not None:
            take = min(len(r), shots)
        else:
            take = min(len(r), max(1, int(round(n_train * len(r) / max(1, rest_total)))))
        train.append(r[:take])
    return Split(np.sort(np.concatenate(train)), np.sort(np.concatenate(test)))


# ---------------------------------------------------------------------------------------------- sources
def _scene_task(task: str, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    from ..taskbank.scenes import generate_scenes
    from ..taskbank.tasks import get_task, task_inputs

    s = generate_scenes(n, size=SIZE, seed=seed, start=10**6)
    t = get_task(task)
    return task_inputs(t, s), t.targets(s).astype(np.int64)


@lru_cache(maxsize=None)
def _synth_digits(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    from ..data.synth_digits import digit_fonts, render_digit

    fonts = digit_fonts()
    rng = np.random.default_rng([seed, 31])
    y = np.arange(n) % 10
    x = np.stack([render_digit(int(d), rng, SIZE, fonts) for d in y]) / 255.0
    return _layout(x), y.astype(np.int64)


def source_data(task: str, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Training images and labels of a source pretraining task (``n`` at most)."""
    if task == "fmnist":
        return fashion("train", n, seed)
    if task == "digits":
        x, y = digits_half("source")
        return x[:n], y[:n]
    if task == "textures":
        return photo_patches(PHOTO_SOURCE, max(1, n // len(PHOTO_SOURCE)), seed)
    if task == "synth-digits":
        return _synth_digits(n, seed)
    if task in ("scene-shape", "scene-count"):
        return _scene_task(task.split("-")[1], n, seed)
    raise DeparaError(f"source task {task!r}: unknown")
