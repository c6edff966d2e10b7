"""Probe sets for the task bank, in-domain and out-of-domain, as N×3×S×S float32 arrays in [-1, 1].

- ``in-domain``: fresh task-bank scenes (the ``probe`` split);
- ``skimage``: random square crops of scikit-image's sample photos (``skimage.data``, shipped with the package);
- ``visda``: the 200 VisDA-2017 real photos in ``$DEPARA_SHARED_DATA/visda_real_probe200/`` when present;
- ``fashion-mnist``: Fashion-MNIST test images from ``/usr/share/datasets/fashion-mnist/`` (Debian package
  ``dataset-fashion-mnist``) or ``$DEPARA_FASHION_MNIST`` when present.

The out-of-domain sets are optional: :func:`out_of_domain_probes` returns the ones it can build and, for each
missing one, the reason (so a run can say what it skipped).
"""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np

from ...io.files import shared_data_dir

SKIMAGE_PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "cat", "hubble_deep_field", "immunohistochemistry",
                  "retina", "colorwheel", "camera", "brick", "grass", "gravel", "coins", "moon", "clock", "page",
                  "text")
FASHION_MNIST_DIRS = ("/usr/share/datasets/fashion-mnist",)


def resize_images(img: np.ndarray, size: int) -> np.ndarray:
    """An H×W(×C) image resized to size×size (bilinear, anti-aliased), float32."""
    from skimage.transform import resize

    return resize(img, (size, size), order=1, anti_aliasing=True, preserve_range=True).astype(np.float32)


def to_rgb01(img: np.ndarray) -> np.ndarray:
    """uint8/bool/float H×W(×C) -> float32 H×W×3 in [0, 1]."""
    a = np.asarray(img)
    a = a.astype(np.float32) / (255.0 if a.dtype == np.uint8 else 1.0)
    if a.ndim == 2:
        a = np.repeat(a[..., None], 3, axis=2)
    return a[..., :3]


def to_tensor_layout(images: np.ndarray) -> np.ndarray:
    """N×S×S×3 in [0, 1] -> N×3×S×S in [-1, 1]."""
    return np.ascontiguousarray(np.moveaxis(images, -1, 1) * 2.0 - 1.0, dtype=np.float32)


def skimage_probes(n: int, size: int, seed: int = 0) -> np.ndarray:
    """``n`` random square crops (side 1/5 to 1/1 of the shorter side) of scikit-image's photos, resized."""
    import skimage.data

    photos = []
    for name in SKIMAGE_PHOTOS:
        try:
            img = to_rgb01(getattr(skimage.data, name)())
        except Exception:  # noqa: BLE001 - a photo needing an optional download is simply skipped
            continue
        # Shrink big photos once, so each crop's anti-aliased resize stays cheap.
        step = max(1, min(img.shape[:2]) // (8 * size))
        photos.append(img[::step, ::step] if step > 1 else img)
    if not photos:
        raise FileNotFoundError("no scikit-image sample photo could be loaded")
    rng = np.random.default_rng([int(seed), 2024])
    out = np.empty((n, size, size, 3), np.float32)
    for i in range(n):
        img = photos[i % len(photos)]
        h, w = img.shape[:2]
        side = int(rng.uniform(0.2, 1.0) * min(h, w))
        y, x = int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1))
        out[i] = resize_images(img[y:y + side, x:x + side], size)
    return to_tensor_layout(np.clip(out, 0, 1))


def visda_probes(n: int, size: int, seed: int = 0) -> np.ndarray:
    """Up to ``n`` of the shared VisDA real photos (sorted names, centre-cropped square, resized)."""
    from PIL import Image

    root = shared_data_dir() / "visda_real_probe200"
    files = sorted(p for p in root.glob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png")) if root.is_dir() else []
    if not files:
        raise FileNotFoundError(f"{root}: no VisDA probe photos")
    out = []
    for p in files[:n]:
        with Image.open(p) as im:
            img = to_rgb01(np.asarray(im.convert("RGB")))
        h, w = img.shape[:2]
        side = min(h, w)
        y, x = (h - side) // 2, (w - side) // 2
        out.append(resize_images(img[y:y + side, x:x + side], size))
    return to_tensor_layout(np.clip(np.stack(out), 0, 1))


def _fashion_file() -> Path:
    dirs = [os.environ["DEPARA_FASHION_MNIST"]] if os.environ.get("DEPARA_FASHION_MNIST") else []
    for d in [*dirs, *FASHION_MNIST_DIRS]:
        p = Path(d) / "t10k-images-idx3-ubyte.gz"
        if p.is_file():
            return p
    raise FileNotFoundError("Fashion-MNIST not installed (apt-get install dataset-fashion-mnist)")


def fashion_mnist_probes(n: int, size: int, seed: int = 0) -> np.ndarray:
    """``n`` seeded-random Fashion-MNIST test images, grey to RGB, resized to ``size``."""
    with gzip.open(_fashion_file(), "rb") as fh:
        raw = fh.read()
    count, rows, cols = (int.from_bytes(raw[i:i + 4], "big") for i in (4, 8, 12))
    images = np.frombuffer(raw, np.uint8, offset=16).reshape(count, rows, cols)
    pick = np.random.default_rng([int(seed), 28]).choice(count, size=min(n, count), replace=False)
    out = np.stack([resize_images(to_rgb01(images[i]), size) for i in np.sort(pick)])
    return to_tensor_layout(np.clip(out, 0, 1))


OUT_OF_DOMAIN = {"skimage": skimage_probes, "visda": visda_probes, "fashion-mnist": fashion_mnist_probes}


def out_of_domain_probes(n: int, size: int, seed: int = 0) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """``({name: N×3×S×S probes}, {name: why skipped})`` over :data:`OUT_OF_DOMAIN`."""
    sets, skipped = {}, {}
    for name, fn in OUT_OF_DOMAIN.items():
        try:
            sets[name] = fn(n, size, seed)
        except (FileNotFoundError, ImportError, OSError) as exc:
            skipped[name] = str(exc)
    return sets, skipped
