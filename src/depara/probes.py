"""Probe sets: the images every compared model sees, with their ids and preprocessing.

A :class:`ProbeSet` holds the *raw* images (file paths, or in-memory images) and their ids; each model gets the
probes in its own preprocessing through :meth:`ProbeSet.tensor`, so models with different input sizes can be
compared on one probe set. Two graphs are comparable only when built on identical ids in identical order.

Probe ids:

* folder: the path of each image relative to the folder, POSIX style (``"cat/001.jpg"``), sorted;
* image-list file (the original ``imlist_200.txt`` format, one image per line): the entry as written in the list.

Preprocessing presets (:class:`Preprocess`):

* ``"imagenet"``: resize the short side to 256, centre-crop 224×224, ImageNet mean/std normalisation;
* ``"taskonomy"``: resize to 256×256, scaled to [−1, 1] (mean 0.5, std 0.5);
* custom: ``Preprocess(size=(H, W), mean=..., std=...)`` or the string ``"WxH[:m1,m2,m3:s1,s2,s3]"``
  (``"64x64"``: resize to 64×64 and scale to [0, 1]; ``"64x64:0.5:0.5"``: to [−1, 1]).
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path, PurePath
from typing import Any, Iterable, Sequence

import numpy as np
import torch

from .errors import DeparaError

IMAGE_EXTENSIONS = frozenset(
    {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".pbm"})

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class Preprocess:
    """How one model wants its input images.

    ``size``: final (H, W). ``resize``: resize before the crop — an int resizes the short side (aspect kept),
    a pair resizes to exactly (H, W); ``None`` resizes straight to ``size``. ``center_crop``: crop the centre
    ``size`` after ``resize``. ``mean``/``std``: per-channel normalisation after scaling pixels to [0, 1].
    """

    size: tuple[int, int]
    mean: tuple[float, ...] = (0.0, 0.0, 0.0)
    std: tuple[float, ...] = (1.0, 1.0, 1.0)
    resize: int | tuple[int, int] | None = None
    center_crop: bool = False
    name: str = "custom"

    def __post_init__(self) -> None:
        size = pair_of_sizes(self.size, "preprocess size")
        object.__setattr__(self, "size", size)
        mean = tuple(float(m) for m in np.atleast_1d(self.mean))
        std = tuple(float(s) for s in np.atleast_1d(self.std))
        if len(mean) == 1:
            mean = mean * 3
        if len(std) == 1:
            std = std * 3
        if len(mean) != 3 or len(std) != 3:
            raise DeparaError(f"preprocess mean/std: expected 1 or 3 values each, got {len(mean)} and {len(std)}")
        if any(s <= 0 for s in std):
            raise DeparaError(f"preprocess std: expected positive values, got {std}")
        object.__setattr__(self, "mean", mean)
        object.__setattr__(self, "std", std)
        if self.resize is not None and not isinstance(self.resize, int):
            object.__setattr__(self, "resize", pair_of_sizes(self.resize, "preprocess resize"))

    @classmethod
    def parse(cls, spec: "str | Preprocess") -> "Preprocess":
        """A preset name (``imagenet``, ``taskonomy``), ``"WxH[:mean:std]"``, or a Preprocess (returned as is)."""
        if isinstance(spec, Preprocess):
            return spec
        if not isinstance(spec, str):
            raise DeparaError(f"preprocess: expected a preset name or Preprocess, got {type(spec).__name__}")
        key = spec.strip().lower()
        if key == "imagenet":
            return cls(size=(224, 224), mean=IMAGENET_MEAN, std=IMAGENET_STD, resize=256, center_crop=True,
                       name="imagenet")
        if key == "taskonomy":
            return cls(size=(256, 256), mean=(0.5,), std=(0.5,), resize=None, name="taskonomy")
        parts = key.split(":")
        if len(parts) not in (1, 3) or "x" not in parts[0]:
            raise DeparaError(f"preprocess {spec!r}: expected 'imagenet', 'taskonomy' or 'WxH[:mean:std]' "
                              "(e.g. '64x64:0.5,0.5,0.5:0.25,0.25,0.25')")
        try:
            w, h = (int(v) for v in parts[0].split("x"))
            mean = tuple(float(v) for v in parts[1].split(",")) if len(parts) == 3 else (0.0,)
            std = tuple(float(v) for v in parts[2].split(",")) if len(parts) == 3 else (1.0,)
        except ValueError:
            raise DeparaError(f"preprocess {spec!r}: expected 'WxH[:mean:std]' with numbers, "
                              "e.g. '64x64:0.5:0.5'") from None
        return cls(size=(h, w), mean=mean, std=std, name=spec.strip())

    def transform(self):
        """The torchvision transform: PIL RGB image -> 3×H×W float32 tensor."""
        from torchvision import transforms as T

        steps: list[Any] = []
        if self.resize is None:
            steps.append(T.Resize(self.size, antialias=True))
        else:
            steps.append(T.Resize(self.resize, antialias=True))
            if self.center_crop:
                steps.append(T.CenterCrop(self.size))
            elif self.resize != self.size:
                steps.append(T.Resize(self.size, antialias=True))
        steps += [T.ToTensor(), T.Normalize(self.mean, self.std)]
        return T.Compose(steps)

    def describe(self) -> dict:
        """JSON-friendly description (kept in graph metadata)."""
        return {"name": self.name, "size": list(self.size), "mean": list(self.mean), "std": list(self.std),
                "resize": self.resize if not isinstance(self.resize, tuple) else list(self.resize),
                "center_crop": self.center_crop}


def pair_of_sizes(value: Any, what: str) -> tuple[int, int]:
    if isinstance(value, (int, np.integer)):
        value = (int(value), int(value))
    try:
        h, w = (int(v) for v in value)
    except (TypeError, ValueError):
        raise DeparaError(f"{what}: expected an int or (H, W), got {value!r}") from None
    if h <= 0 or w <= 0:
        raise DeparaError(f"{what}: expected positive sizes, got {(h, w)}")
    return (h, w)


class ProbeSet:
    """An ordered set of probe images with ids; see the module docstring.

    ``sources``: for each probe either a file path or an in-memory image (PIL image, or H×W[×C] uint8 / float
    array in [0, 1]). ``ids``: one unique string per probe. ``preprocess``: the default preprocessing used by
    :meth:`tensor`.
    """

    def __init__(self, sources: Sequence[Any], ids: Sequence[str], preprocess: "str | Preprocess" = "imagenet",
                 *, origin: str = "images"):
        if len(sources) == 0:
            raise DeparaError(f"probe set {origin}: no images found (empty probe set)")
        if len(sources) != len(ids):
            raise DeparaError(f"probe set {origin}: {len(sources)} images but {len(ids)} ids")
        seen: set[str] = set()
        for pid in ids:
            if pid in seen:
                raise DeparaError(f"probe set {origin}: duplicate probe id {pid!r}")
            seen.add(pid)
        self._sources = list(sources)
        self.ids: tuple[str, ...] = tuple(str(i) for i in ids)
        self.preprocess = Preprocess.parse(preprocess)
        self.origin = origin

    # ----------------------------------------------------------------------------------------- constructors
    @classmethod
    def from_folder(cls, root: str | os.PathLike, preprocess: "str | Preprocess" = "imagenet") -> "ProbeSet":
        """All image files under ``root`` (recursive; by extension; hidden files skipped), sorted by id."""
        root = Path(root)
        if not root.is_dir():
            raise DeparaError(f"probe folder {root}: not found or not a folder")
        found: list[tuple[str, Path]] = []
        for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
            dirnames[:] = [d for d in dirnames if not d.startswith(".")]
            for fn in filenames:
                if fn.startswith(".") or Path(fn).suffix.lower() not in IMAGE_EXTENSIONS:
                    continue
                path = Path(dirpath) / fn
                found.append((path.relative_to(root).as_posix(), path))
        if not found:
            raise DeparaError(f"probe folder {root}: no image files found (empty probe set; "
                              f"extensions {', '.join(sorted(IMAGE_EXTENSIONS))})")
        found.sort(key=lambda item: item[0])
        paths = [p for _, p in found]
        for pid, path in found:
            _check_image_header(path, pid)
        return cls(paths, [pid for pid, _ in found], preprocess, origin=str(root))

    @classmethod
    def from_list(cls, list_file: str | os.PathLike, root: str | os.PathLike | None = None,
                  preprocess: "str | Preprocess" = "imagenet") -> "ProbeSet":
        """Images named in a list file, one per line, in the list's order (the original ``imlist_200.txt``).

        Each entry is resolved against ``root`` (default: the list file's folder). Blank lines and lines
        starting with ``#`` are skipped. A line whose first whitespace-separated column is an image name and
        whose whole text is not (``"cat/1.jpg 3"``) keeps only the first column, so label columns are
        tolerated while names with spaces (``"Waiting Room.JPG"``) are kept whole. An absolute entry that does
        not exist is looked up under ``root`` by its trailing path components (lists written on another machine,
        e.g. ``/disk2/.../collierville_rgb/point_14.png``). The id of a probe is its entry as written.
        """
        list_file = Path(list_file)
        if not list_file.is_file():
            raise DeparaError(f"probe list {list_file}: file not found")
        root_dir = Path(root) if root is not None else list_file.parent
        if not root_dir.is_dir():
            raise DeparaError(f"probe root {root_dir}: not found or not a folder")
        try:
            text = list_file.read_text(encoding="utf-8-sig")
        except UnicodeDecodeError:
            raise DeparaError(f"probe list {list_file}: not a text file (expected one image path per line)") \
                from None
        entries: list[tuple[int, str]] = []
        for lineno, raw in enumerate(text.splitlines(), start=1):
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            entries.append((lineno, _list_entry(line)))
        if not entries:
            raise DeparaError(f"probe list {list_file}: no entries (empty probe set)")
        paths = []
        for lineno, entry in entries:
            path = _resolve_entry(entry, root_dir)
            if path is None:
                raise DeparaError(f"probe list {list_file} line {lineno}: image {entry} not found "
                                  f"under root {root_dir}")
            _check_image_header(path, entry)
            paths.append(path)
        return cls(paths, [e for _, e in entries], preprocess, origin=str(list_file))

    @classmethod
    def from_images(cls, images: Iterable[Any], ids: Sequence[str] | None = None,
                    preprocess: "str | Preprocess" = "imagenet") -> "ProbeSet":
        """In-memory images (PIL images or H×W[×C] arrays); ids default to ``"0", "1", ...``."""
        images = list(images)
        if ids is None:
            ids = [str(i) for i in range(len(images))]
        return cls(images, list(ids), preprocess, origin="in-memory images")

    # ------------------------------------------------------------------------------------------- identity
    def probe_digests(self) -> tuple[str, ...]:
        """SHA-256 (hex) of each probe's content: the file's bytes, or an in-memory image's pixels and shape.

        Two probe sets with the same ids but different images differ here; graphs record :meth:`content_hash`
        so that comparisons can name the first differing probe, and caches key their entries by it.
        """
        cached = getattr(self, "_digests", None)
        if cached is None:
            cached = tuple(_digest(src, pid) for src, pid in zip(self._sources, self.ids))
            self._digests = cached
        return cached

    def content_hash(self) -> str:
        """SHA-256 (hex) over the ordered ids and :meth:`probe_digests` (not the preprocessing)."""
        h = hashlib.sha256()
        for pid, digest in zip(self.ids, self.probe_digests()):
            h.update(pid.encode("utf-8") + b"\0" + digest.encode("ascii") + b"\n")
        return h.hexdigest()

    # ------------------------------------------------------------------------------------------- access
    def __len__(self) -> int:
        return len(self.ids)

    def __repr__(self) -> str:
        return f"ProbeSet({len(self)} probes from {self.origin}, preprocess={self.preprocess.name!r})"

    def image(self, index: int):
        """The raw image ``index`` as an RGB PIL image (a corrupt file raises a DeparaError naming it)."""
        return _to_pil(self._sources[index], self.ids[index])

    def tensor(self, preprocess: "str | Preprocess | None" = None,
               indices: Sequence[int] | slice | None = None) -> torch.Tensor:
        """The probes (all, or ``indices``) preprocessed: float32 tensor N×3×H×W."""
        prep = self.preprocess if preprocess is None else Preprocess.parse(preprocess)
        transform = prep.transform()
        if indices is None:
            idx = range(len(self))
        elif isinstance(indices, slice):
            idx = range(len(self))[indices]
        else:
            idx = list(indices)
        return torch.stack([transform(self.image(i)) for i in idx]) if len(idx) else \
            torch.empty((0, 3, *prep.size))


def _list_entry(line: str) -> str:
    columns = line.split()
    if len(columns) > 1 and Path(columns[0]).suffix.lower() in IMAGE_EXTENSIONS \
            and Path(line).suffix.lower() not in IMAGE_EXTENSIONS:
        return columns[0]
    return line


def _resolve_entry(entry: str, root: Path) -> Path | None:
    p = Path(entry)
    if not p.is_absolute():
        candidate = root / p
        return candidate if candidate.is_file() else None
    if p.is_file():
        return p
    parts = PurePath(entry).parts[1:]
    for k in range(len(parts)):  # longest trailing part first
        candidate = root.joinpath(*parts[k:])
        if candidate.is_file():
            return candidate
    return None


def _check_image_header(path: Path, pid: str) -> None:
    """Open the header only (cheap): names files that are not images; full decoding happens in tensor()."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            im.size  # noqa: B018 - touching the header
    except FileNotFoundError:
        raise DeparaError(f"probe {pid}: file {path} not found") from None
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise DeparaError(f"probe {pid}: file {path} is not a readable image ({type(exc).__name__})") from None


def _to_pil(source: Any, pid: str):
    from PIL import Image

    if isinstance(source, (str, os.PathLike)):
        try:
            with Image.open(source) as im:
                return im.convert("RGB")
        except FileNotFoundError:
            raise DeparaError(f"probe {pid}: file {source} not found") from None
        except (OSError, ValueError, SyntaxError) as exc:
            raise DeparaError(f"probe {pid}: file {source} is corrupt or not an image ({exc})") from None
    if isinstance(source, Image.Image):
        return source.convert("RGB")
    arr = np.asarray(source)
    if arr.ndim == 2:
        arr = np.stack([arr] * 3, axis=-1)
    if arr.ndim != 3 or arr.shape[-1] not in (1, 3, 4):
        raise DeparaError(f"probe {pid}: expected an H×W or H×W×C image array, got shape {arr.shape}")
    if arr.shape[-1] == 1:
        arr = np.repeat(arr, 3, axis=-1)
    if arr.dtype != np.uint8:
        if not np.isfinite(arr).all():
            raise DeparaError(f"probe {pid}: image array has NaN/Inf values")
        arr = np.clip(np.rint(arr.astype(np.float64) * 255.0), 0, 255).astype(np.uint8)
    return Image.fromarray(arr[..., :3]).convert("RGB")


def _digest(source: Any, pid: str) -> str:
    """SHA-256 of one probe's content (file bytes, PIL pixels + mode + size, or array bytes + dtype + shape)."""
    from PIL import Image

    h = hashlib.sha256()
    if isinstance(source, (str, os.PathLike)):
        try:
            with open(source, "rb") as fh:
                for block in iter(lambda: fh.read(1 << 20), b""):
                    h.update(block)
        except OSError as exc:
            raise DeparaError(f"probe {pid}: cannot read file {source} ({exc.strerror or exc})") from None
    elif isinstance(source, Image.Image):
        h.update(f"pil:{source.mode}:{source.size}".encode())
        h.update(source.tobytes())
    else:
        arr = np.ascontiguousarray(np.asarray(source))
        h.update(f"array:{arr.dtype.str}:{arr.shape}".encode())
        h.update(arr.tobytes())
    return h.hexdigest()
