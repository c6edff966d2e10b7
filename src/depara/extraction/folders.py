"""Class-folder datasets (the VisDA layout): listing, validating, decoding and loading images.

A *domain folder* holds one subfolder per class, each with image files::

    synthetic/aeroplane/0001.png, synthetic/bicycle/0002.png, ...

A *split domain folder* holds ``train/``, ``val/`` and ``test/``, each a domain folder (``test/`` may be flat,
with ``test_labels.csv`` naming the class of each file).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from ..errors import DeparaError
from ..io.readers import real_path

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".ppm", ".pgm", ".webp", ".tif", ".tiff")
SPLITS = ("train", "val", "test")
FLAT_TEST_LABELS = "test_labels.csv"


def is_image(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in IMAGE_EXTENSIONS and not path.name.startswith(".")


def list_class_folder(root: str | os.PathLike, what: str = "domain folder", *,
                      confine: bool = False) -> dict[str, list[Path]]:
    """Return ``{class name: sorted image paths}`` of a folder of class subfolders.

    Raises a DeparaError when the folder is missing, has no class subfolders, or a class has no image; with
    ``confine`` also when a class folder or image links outside ``root`` (a folder the user named; the split
    folders depara writes with ``--mode symlink`` link back to their source on purpose).
    """
    root = Path(root)
    if not root.is_dir():
        raise DeparaError(f"{what} {root}: not a folder")
    class_dirs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not class_dirs:
        raise DeparaError(f"{what} {root}: no class subfolders (expected {root}/<class>/<image>)")
    classes: dict[str, list[Path]] = {}
    base = real_path(root)
    for d in class_dirs:
        images = sorted(p for p in d.iterdir() if is_image(p))
        for p in [d, *images] if confine else []:  # never read outside the folder the user named
            real = real_path(p)
            if not real.is_relative_to(base):
                raise DeparaError(f"{what} {root}: {p.relative_to(root)} links to {real}, outside the folder "
                                  "(copy the image in, or give the folder that holds it)")
        if not images:
            raise DeparaError(f"{what} {root}: class '{d.name}' has no images ({', '.join(IMAGE_EXTENSIONS[:3])}, ...)")
        classes[d.name] = images
    return classes


def list_flat_test(root: Path) -> dict[str, list[Path]]:
    """Read a flat test folder (``test_labels.csv`` with columns file,class) into ``{class: paths}``."""
    from ..io.readers import read_csv_records

    labels = root / FLAT_TEST_LABELS
    out: dict[str, list[Path]] = {}
    rows = read_csv_records(labels, "labels file")
    if not rows or not {"file", "class"} <= set(rows[0]):
        raise DeparaError(f"labels file {labels}: expected a header 'file,class' and one row per image")
    seen: set[str] = set()
    for i, row in enumerate(rows, start=2):
        name, cls = row["file"].strip(), row["class"].strip()
        if not name or not cls:
            raise DeparaError(f"labels file {labels} line {i}: empty file or class")
        if name in seen:
            raise DeparaError(f"labels file {labels} line {i}: {name!r} is listed twice")
        seen.add(name)
        path = root / name
        if os.path.realpath(path) != os.path.realpath(root / os.path.basename(name)) or not is_image(path):
            raise DeparaError(f"labels file {labels} line {i}: {name!r} is not an image file in {root}")
        out.setdefault(cls, []).append(path)
    extra = sorted(p.name for p in root.iterdir() if is_image(p) and p.name not in seen)
    if extra:  # an image without a label would silently leave the test set
        raise DeparaError(f"labels file {labels}: image {extra[0]!r} in {root} has no row"
                          + (f" (and {len(extra) - 1} more)" if len(extra) > 1 else ""))
    return {c: sorted(v) for c, v in sorted(out.items())}


def list_split(domain_root: str | os.PathLike, split: str) -> dict[str, list[Path]]:
    """List one split (train/val/test) of a split domain folder, class subfolders or flat test."""
    root = Path(domain_root) / split
    if split == "test" and (root / FLAT_TEST_LABELS).is_file():
        return list_flat_test(root)
    return list_class_folder(root, what=f"{split} split")


def check_same_classes(a: Mapping[str, object], b: Mapping[str, object], what_a: str, what_b: str) -> None:
    """Raise a DeparaError naming the classes that differ between two class sets."""
    sa, sb = set(a), set(b)
    if sa != sb:
        only_a = sorted(sa - sb)[:5]
        only_b = sorted(sb - sa)[:5]
        raise DeparaError(f"class sets differ: {what_a} has {only_a or 'nothing'} not in {what_b}, "
                          f"{what_b} has {only_b or 'nothing'} not in {what_a}")


def verify_images(paths: Sequence[Path]) -> None:
    """Decode-check every image (PIL ``verify``); the first one that fails raises a DeparaError naming it."""
    from PIL import Image

    for p in paths:
        try:
            with Image.open(p) as im:
                im.verify()
        except Exception as exc:  # PIL raises many types for broken files
            raise DeparaError(f"{p}: image failed to decode ({type(exc).__name__})") from None


def load_image(path: Path, size: int) -> np.ndarray:
    """Decode one image, convert to RGB and resize to ``size``×``size``; returns H×W×3 uint8."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            im = im.convert("RGB")
            if im.size != (size, size):
                im = im.resize((size, size), Image.BILINEAR)
            return np.asarray(im, dtype=np.uint8)
    except Exception as exc:
        raise DeparaError(f"{path}: image failed to decode ({type(exc).__name__})") from None


def load_images(paths: Sequence[Path], size: int) -> np.ndarray:
    """Decode images into one N×H×W×3 uint8 array."""
    out = np.empty((len(paths), size, size, 3), dtype=np.uint8)
    for i, p in enumerate(paths):
        out[i] = load_image(p, size)
    return out


def place_file(src: Path, dst: Path, mode: str) -> None:
    """Put ``src`` at ``dst`` as a hard link (falling back to a copy across devices), a symlink or a copy."""
    if mode == "link":
        try:
            os.link(src, dst)
            return
        except OSError:
            shutil.copy2(src, dst)
    elif mode == "symlink":
        os.symlink(os.path.abspath(src), dst)
    elif mode == "copy":
        shutil.copy2(src, dst)
    else:
        raise DeparaError(f"mode '{mode}': expected link, symlink or copy")


class staged_folder:
    """Context manager: build a folder under a hidden temporary name beside ``final``, rename on success.

    Nothing is left under the final name if the block raises, so a failed split/shrink never leaves a
    half-written dataset behind.
    """

    def __init__(self, final: str | os.PathLike, what: str = "output folder"):
        self.final = Path(final)
        self.what = what
        self.tmp = self.final.parent / f".{self.final.name}.partial"

    def __enter__(self) -> Path:
        if self.final.exists():
            raise DeparaError(f"{self.what} {self.final}: already exists (remove it or choose another out folder)")
        self.final.parent.mkdir(parents=True, exist_ok=True)
        if self.tmp.exists():
            shutil.rmtree(self.tmp)
        self.tmp.mkdir()
        return self.tmp

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            os.replace(self.tmp, self.final)
        else:
            shutil.rmtree(self.tmp, ignore_errors=True)
