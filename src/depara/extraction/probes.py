"""Probe sets: the images every compared model sees, with their ids and preprocessing.

A :class:`ProbeSet` holds the *raw* images (file paths, or in-memory images) and their ids; each model gets the
probes in its own preprocessing through :meth:`ProbeSet.tensor`, so models with different input sizes can be
compared on one probe set. Two graphs are comparable only when built on identical ids in identical order.

Probe ids:

* folder: the path of each image relative to the folder, POSIX style (``"cat/001.jpg"``), sorted;
* image-list file (the original ``imlist_200.txt`` format, one image per line): the entry as written in the list.

Reading probe files (one door, :func:`_open_image`, for folders and lists alike):

* symlinks are resolved first: a file or folder that resolves **outside the probe root** (the folder, or the
  list's ``root``) is refused with a one-line error, and so is a folder reached twice (a **symlink loop** or a
  second link to the same folder), so links can never multiply the probes or read another folder;
* **special files** (FIFOs, devices, sockets) are never opened (``stat`` first): in a folder they are skipped
  with a note (logged on ``depara.extraction.probes`` and kept in :attr:`ProbeSet.notes`); named in a list they are an
  error;
* images over Pillow's decompression-bomb limit (``PIL.Image.MAX_IMAGE_PIXELS`` ≈ 89.5 Mpx) are refused with a
  one-line error before any pixel is decoded; a file Pillow cannot decode is a one-line error naming it;
* the first frame of a multi-frame file (GIF, TIFF) is used; pixels are converted to 8-bit RGB **by mode**:

  ====================  ==================================================================================
  mode                  conversion
  ====================  ==================================================================================
  RGB, L, 1, P, CMYK,   Pillow's ``convert("RGB")`` (P without transparency; CMYK by Pillow's formula)
  YCbCr
  RGBA, LA, PA, P or    alpha composited over **black** (each channel × alpha / 255), then RGB
  L/RGB with a
  transparency key
  I;16, I;16B, I;16L    16-bit: value / 65535 → [0, 1] (so 65535 is white, not every value above 255)
  I (32-bit integers)   values in 0..255 as 8-bit; else values in 0..65535 as 16-bit (/ 65535); else the
                        image's min–max range mapped to [0, 1]
  F (32-bit float)      values in [0, 1] as they are (×255); else the image's min–max range mapped to [0, 1];
                        NaN/Inf is an error
  others (LAB, HSV, …)  Pillow's ``convert("RGB")`` when it has one, else a one-line error
  ====================  ==================================================================================

  In-memory arrays follow the same rules by dtype: uint8 as is, bool ×255, uint16 / 65535, other integers like
  mode I, floats like mode F (within 1e-6 of [0, 1] counts as [0, 1] and is clipped); a 4th channel is alpha.
  Min–max of a constant image gives black.

Every graph built from a ProbeSet records :meth:`ProbeSet.content_hash` (``meta["probe_hash"]``) and the
preprocessing, and comparisons refuse graphs over different images with the same ids.

Preprocessing presets (:class:`Preprocess`):

* ``"imagenet"``: resize the short side to 256, centre-crop 224×224, ImageNet mean/std normalisation;
* ``"taskonomy"``: resize to 256×256, scaled to [−1, 1] (mean 0.5, std 0.5);
* custom: ``Preprocess(size=(H, W), mean=..., std=...)`` or the string ``"WxH[:m1,m2,m3:s1,s2,s3]"``
  (``"64x64"``: resize to 64×64 and scale to [0, 1]; ``"64x64:0.5:0.5"``: to [−1, 1]).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import stat
import warnings
from dataclasses import dataclass
from pathlib import Path, PurePath
from typing import Any, Iterable, Iterator, Sequence

import numpy as np
import torch

from ..errors import DeparaError, exception_reason
from ..io.readers import exists as _exists, file_entry as _file_entry, real_path as _real

log = logging.getLogger(__name__)

#: Largest intermediate image the preprocessing may make (a short-side resize of a 1×100000 image would make
#: 256×25.6M pixels): beyond it the probe is refused with a one-line error.
MAX_RESIZED_PIXELS = 64 * 2**20
#: Largest probe-list file read (bytes).
MAX_LIST_BYTES = 64 * 2**20

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
        if size[0] * size[1] > MAX_RESIZED_PIXELS:
            raise DeparaError(f"preprocess size {size[0]}×{size[1]}: {size[0] * size[1]} pixels per image, more than "
                              f"the limit of {MAX_RESIZED_PIXELS}")
        object.__setattr__(self, "size", size)
        mean = tuple(float(m) for m in np.atleast_1d(self.mean))
        std = tuple(float(s) for s in np.atleast_1d(self.std))
        if len(mean) == 1:
            mean = mean * 3
        if len(std) == 1:
            std = std * 3
        if len(mean) != 3 or len(std) != 3:
            raise DeparaError(f"preprocess mean/std: expected 1 or 3 values each, got {len(mean)} and {len(std)}")
        for what, values in (("mean", mean), ("std", std)):
            if not all(np.isfinite(values)):
                raise DeparaError(f"preprocess {what}: expected finite numbers, got {values}")
        if any(s <= 0 for s in std):
            raise DeparaError(f"preprocess std: expected positive values, got {std}")
        object.__setattr__(self, "mean", mean)
        object.__setattr__(self, "std", std)
        if self.resize is not None and not isinstance(self.resize, int):
            object.__setattr__(self, "resize", pair_of_sizes(self.resize, "preprocess resize"))
        if isinstance(self.resize, tuple) and self.resize[0] * self.resize[1] > MAX_RESIZED_PIXELS:
            raise DeparaError(f"preprocess resize {self.resize[0]}×{self.resize[1]}: more than the limit of "
                              f"{MAX_RESIZED_PIXELS} pixels")

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
    except (TypeError, ValueError, OverflowError):  # OverflowError: int(inf)
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
                 *, origin: str = "images", notes: Sequence[str] = ()):
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
        #: What reading the probes skipped (special files), one line each; also logged on ``depara.extraction.probes``.
        self.notes: tuple[str, ...] = tuple(notes)
        self._decoded: dict[Preprocess, torch.Tensor] | None = None  # see keep_decoded
        self._decoded_budget = 0

    # ----------------------------------------------------------------------------------------- constructors
    @classmethod
    def from_folder(cls, root: str | os.PathLike, preprocess: "str | Preprocess" = "imagenet") -> "ProbeSet":
        """All image files under ``root`` (recursive; by extension; hidden files skipped), sorted by id.

        Links are followed only within ``root`` (after resolving them); a loop, a second path to one folder or a
        link leaving ``root`` is a DeparaError; FIFOs/devices/sockets are skipped with a note (:attr:`notes`).
        """
        root = Path(root)
        if not root.is_dir():
            raise DeparaError(f"probe folder {root}: not found or not a folder")
        found, notes = _walk_probe_folder(root)
        if not found:
            raise DeparaError(f"probe folder {root}: no image files found (empty probe set; "
                              f"extensions {', '.join(sorted(IMAGE_EXTENSIONS))})")
        found.sort(key=lambda item: item[0])
        paths = [p for _, p in found]
        for pid, path in found:
            _check_image_header(path, pid)
        return cls(paths, [pid for pid, _ in found], preprocess, origin=str(root), notes=notes)

    @classmethod
    def from_list(cls, list_file: str | os.PathLike, root: str | os.PathLike | None = None,
                  preprocess: "str | Preprocess" = "imagenet") -> "ProbeSet":
        """Images named in a list file, one per line, in the list's order (the original ``imlist_200.txt``).

        Each entry is resolved against ``root`` (default: the list file's folder). Blank lines and lines
        starting with ``#`` are skipped. A line whose first whitespace-separated column is an image name and
        whose whole text is not (``"cat/1.jpg 3"``) keeps only the first column, so label columns are
        tolerated while names with spaces (``"Waiting Room.JPG"``) are kept whole. An absolute entry that does
        not exist is looked up under ``root`` by its trailing path components (lists written on another machine,
        e.g. ``/disk2/.../collierville_rgb/point_14.png``). The id of a probe is its entry as written. Every image
        must resolve (links followed) inside ``root``: an entry leading elsewhere (``../x.png``, an absolute path
        outside ``root``, a link) is a DeparaError, and so is an entry that is a FIFO, device or socket.
        """
        from ..io.readers import read_bytes_limited

        list_file = Path(list_file)
        if not _exists(list_file):
            raise DeparaError(f"probe list {list_file}: file not found")
        root_dir = Path(root) if root is not None else list_file.parent
        if not root_dir.is_dir():
            raise DeparaError(f"probe root {root_dir}: not found or not a folder")
        data = read_bytes_limited(list_file, "probe list", MAX_LIST_BYTES)
        try:
            text = data.decode("utf-8-sig")
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
        root_real = _real(root_dir)
        for lineno, entry in entries:
            path = _resolve_entry(entry, root_dir)
            if path is None:
                raise DeparaError(f"probe list {list_file} line {lineno}: image {entry} not found "
                                  f"under root {root_dir}")
            real = _real(path)
            if not real.is_relative_to(root_real):
                raise DeparaError(f"probe list {list_file} line {lineno}: image {entry} resolves to {real}, outside "
                                  f"the probe root {root_dir} (give a root that holds the images)")
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

    def subset(self, indices: Sequence[int]) -> "ProbeSet":
        """The probes at ``indices`` (in that order), with the same preprocessing and origin."""
        idx = [int(i) for i in indices]
        digests = getattr(self, "_digests", None)
        sub = ProbeSet([self._sources[i] for i in idx], [self.ids[i] for i in idx], self.preprocess,
                       origin=self.origin)
        if digests is not None:  # content already hashed: keep it, files need not be read again
            sub._digests = tuple(digests[i] for i in idx)
        return sub

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

    @contextlib.contextmanager
    def keep_decoded(self, budget_bytes: int) -> Iterator[None]:
        """Within the block :meth:`tensor` decodes and preprocesses every probe once per preprocessing and serves
        later calls from memory (copies), while the decoded N×3×H×W float32 tensors fit ``budget_bytes`` in all
        (beyond it, as outside the block: decoded on every call). So models sharing a preprocessing share one
        decoding; the values are the same either way. Released at the end of the block."""
        self._decoded, self._decoded_budget = {}, int(budget_bytes)
        try:
            yield
        finally:
            self._decoded, self._decoded_budget = None, 0

    def tensor(self, preprocess: "str | Preprocess | None" = None,
               indices: Sequence[int] | slice | None = None) -> torch.Tensor:
        """The probes (all, or ``indices``) preprocessed: float32 tensor N×3×H×W."""
        prep = self.preprocess if preprocess is None else Preprocess.parse(preprocess)
        kept = self._decoded
        if kept is not None and prep not in kept and \
                sum(t.numel() * 4 for t in kept.values()) + len(self) * 12 * prep.size[0] * prep.size[1] \
                <= self._decoded_budget:
            kept[prep] = self._decode(prep, None)  # every probe decoded once, kept for the next calls
        if kept is not None and prep in kept:
            rows = slice(None) if indices is None else indices if isinstance(indices, slice) else list(indices)
            return kept[prep][rows].clone()
        return self._decode(prep, indices)

    def _decode(self, prep: Preprocess, indices: Sequence[int] | slice | None) -> torch.Tensor:
        """The probes (all, or ``indices``) read and preprocessed by ``prep``, without the kept tensors."""
        transform = prep.transform()
        if indices is None:
            idx = range(len(self))
        elif isinstance(indices, slice):
            idx = range(len(self))[indices]
        else:
            idx = list(indices)
        return torch.stack([_apply(prep, transform, self.image(i), self.ids[i]) for i in idx]) if len(idx) else \
            torch.empty((0, 3, *prep.size))


def _apply(prep: Preprocess, transform: Any, image: Any, pid: str) -> torch.Tensor:
    """``transform(image)`` after checking the size the resize step would produce; failures named."""
    w, h = image.size
    if isinstance(prep.resize, int):
        short, long_ = min(w, h), max(w, h)
        long_new = int(prep.resize * long_ / short)
        if prep.resize * long_new > MAX_RESIZED_PIXELS:
            raise DeparaError(f"probe {pid}: image {w}×{h} is too elongated for preprocess {prep.name!r} (resizing "
                              f"its short side to {prep.resize} gives {prep.resize}×{long_new} pixels, more than "
                              f"{MAX_RESIZED_PIXELS}); crop or pad it first")
    try:
        return transform(image)
    except (ValueError, RuntimeError, OSError, MemoryError) as exc:
        raise DeparaError(f"probe {pid}: preprocessing {prep.name!r} failed on a {w}×{h} image "
                          f"({exception_reason(exc)})") from None


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
        return candidate if _file_entry(candidate) else None
    root_real = _real(root)
    if _file_entry(p) and _real(p).is_relative_to(root_real):
        return p
    parts = PurePath(entry).parts[1:]
    for k in range(len(parts)):  # longest trailing part first
        candidate = root.joinpath(*parts[k:])
        if _file_entry(candidate):
            return candidate
    return p if _file_entry(p) else None  # outside the root: refused by the caller


def _walk_probe_folder(root: Path) -> tuple[list[tuple[str, Path]], list[str]]:
    """(id, path) of the image files under ``root`` and notes on skipped special files; see from_folder."""
    root_real = _real(root)
    visited = {root_real}
    found: list[tuple[str, Path]] = []
    notes: list[str] = []
    stack = [root]
    while stack:
        folder = stack.pop()
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError as exc:
            raise DeparaError(f"probe folder {folder}: cannot be listed ({exc.strerror or exc})") from None
        for entry in entries:
            if entry.name.startswith("."):
                continue
            path = Path(entry.path)
            rel = path.relative_to(root).as_posix()
            try:
                is_dir = entry.is_dir()  # links followed
            except OSError:
                is_dir = False
            if is_dir:
                real = _real(path)
                if not real.is_relative_to(root_real):
                    raise DeparaError(f"probe folder {root}: {rel} links to {real}, outside the probe folder "
                                      "(copy the images in, or give the folder that holds them)")
                if real in visited:
                    raise DeparaError(f"probe folder {root}: folder {rel} is reached a second time through a link "
                                      f"(a symlink loop or a second path to {real}); remove the link")
                visited.add(real)
                stack.append(path)
                continue
            if path.suffix.lower() not in IMAGE_EXTENSIONS:
                continue
            real = _real(path)
            if not real.is_relative_to(root_real):
                raise DeparaError(f"probe {rel}: links to {real}, outside the probe folder {root} (copy the image "
                                  "in, or give the folder that holds it)")
            if not stat.S_ISREG(_mode(path, rel, " (a broken link?)")):
                note = f"probe folder {root}: skipped {rel} (not a regular file: a FIFO, device or socket)"
                log.warning(note)
                notes.append(note)
                continue
            found.append((rel, path))
    return found, notes


def _mode(path: Any, pid: str, missing_hint: str = "") -> int:
    """``os.stat(path).st_mode`` (links followed) without opening the file; a one-line error naming the probe."""
    try:
        return os.stat(path).st_mode
    except FileNotFoundError:
        raise DeparaError(f"probe {pid}: file {path} not found{missing_hint}") from None
    except OSError as exc:
        raise DeparaError(f"probe {pid}: file {path} cannot be read ({exc.strerror or exc})") from None


def _regular(path: Any, pid: str) -> None:
    """Refuse (without opening it) a probe path that is missing or not a regular file (a FIFO would block)."""
    if not stat.S_ISREG(_mode(path, pid)):
        raise DeparaError(f"probe {pid}: {path} is not a regular file (a folder, FIFO, device or socket)")


def _open_image(path: Any, pid: str, *, decode: bool):
    """THE door for probe files: regular-file check, Pillow's bomb guard as an error, decoding errors named.

    ``decode=False`` reads the header only (cheap: ``from_folder``/``from_list`` check every file up front);
    ``decode=True`` returns the first frame converted to RGB by :func:`_to_rgb` (see the module docstring).
    """
    from PIL import Image

    _regular(path, pid)
    with warnings.catch_warnings():
        # Pillow only warns between MAX_IMAGE_PIXELS and twice that: refuse those as well.
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            with Image.open(path) as im:
                if not decode:
                    im.size  # noqa: B018 - touching the header
                    return None
                im.seek(0)
                return _to_rgb(im, pid, path)
        except DeparaError:
            raise
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            why = exception_reason(exc).rstrip(".")
            raise DeparaError(f"probe {pid}: file {path} is too large to decode safely ({why}; "
                              "Pillow's decompression-bomb limit, PIL.Image.MAX_IMAGE_PIXELS)") from None
        except FileNotFoundError:
            raise DeparaError(f"probe {pid}: file {path} not found") from None
        except MemoryError:
            raise DeparaError(f"probe {pid}: file {path} needs more memory to decode than is available") from None
        except Exception as exc:  # noqa: BLE001 - a hostile file can make Pillow raise almost anything
            if not decode:
                raise DeparaError(f"probe {pid}: file {path} is not a readable image ({type(exc).__name__})") \
                    from None
            raise DeparaError(f"probe {pid}: file {path} is corrupt or not an image "
                              f"({exception_reason(exc)})") from None


def _check_image_header(path: Path, pid: str) -> None:
    """Open the header only (cheap): names files that are not images; full decoding happens in tensor()."""
    _open_image(path, pid, decode=False)


def _scale_to_uint8(arr: np.ndarray, pid: str) -> np.ndarray:
    """Pixel values of any dtype → uint8 by the documented rules (module docstring), one image at a time."""
    if arr.dtype == np.uint8:
        return arr
    if arr.dtype == bool:
        return arr.astype(np.uint8) * 255
    if arr.size == 0:
        raise DeparaError(f"probe {pid}: empty image (shape {arr.shape})")
    if np.issubdtype(arr.dtype, np.integer):
        lo, hi = int(arr.min()), int(arr.max())
        if arr.dtype == np.uint16:
            unit = arr.astype(np.float64) / 65535.0
        elif lo >= 0 and hi <= 255:
            return arr.astype(np.uint8)
        elif lo >= 0 and hi <= 65535:
            unit = arr.astype(np.float64) / 65535.0
        else:
            unit = _min_max(arr.astype(np.float64))
    elif np.issubdtype(arr.dtype, np.floating):
        x = arr.astype(np.float64)
        if not np.isfinite(x).all():
            raise DeparaError(f"probe {pid}: image has NaN/Inf values")
        lo, hi = float(x.min()), float(x.max())
        unit = np.clip(x, 0.0, 1.0) if lo >= -1e-6 and hi <= 1.0 + 1e-6 else _min_max(x)
    else:
        raise DeparaError(f"probe {pid}: image values of dtype {arr.dtype}, expected integers or floats")
    return np.clip(np.rint(unit * 255.0), 0, 255).astype(np.uint8)


def _min_max(x: np.ndarray) -> np.ndarray:
    lo, hi = float(x.min()), float(x.max())
    return (x - lo) / (hi - lo) if hi > lo else np.zeros_like(x)


def _composite(rgba: np.ndarray) -> np.ndarray:
    """H×W×4 uint8 → H×W×3 uint8: alpha composited over black."""
    rgb = rgba[..., :3].astype(np.float64) * (rgba[..., 3:4].astype(np.float64) / 255.0)
    return np.clip(np.rint(rgb), 0, 255).astype(np.uint8)


def _to_rgb(im: Any, pid: str, source: Any):
    """A PIL image of any mode → RGB PIL image by the documented per-mode rules (module docstring)."""
    from PIL import Image

    mode = im.mode
    if mode == "RGB" and "transparency" not in im.info:
        return im.convert("RGB")
    if mode in ("RGBA", "LA", "PA", "RGBa", "La") or (mode in ("P", "L", "RGB", "1") and "transparency" in im.info):
        return Image.fromarray(_composite(np.asarray(im.convert("RGBA"))), "RGB")
    if mode.startswith("I;16") or mode in ("I", "F"):
        arr = np.asarray(im)
        if mode.startswith("I;16"):
            arr = arr.astype(np.uint16)
        gray = _scale_to_uint8(arr, pid)
        return Image.fromarray(np.stack([gray] * 3, axis=-1), "RGB")
    try:
        return im.convert("RGB")
    except (ValueError, OSError) as exc:
        raise DeparaError(f"probe {pid}: image {source} has mode {mode}, which cannot be converted to RGB "
                          f"({exception_reason(exc)})") from None


def _to_pil(source: Any, pid: str):
    from PIL import Image

    if isinstance(source, (str, os.PathLike)):
        return _open_image(source, pid, decode=True)
    if isinstance(source, Image.Image):
        try:
            return _to_rgb(source, pid, "in memory")
        except DeparaError:
            raise
        except Exception as exc:  # noqa: BLE001 - e.g. an image whose pixels were never loaded
            raise DeparaError(f"probe {pid}: in-memory image cannot be read "
                              f"({exception_reason(exc)})") from None
    arr = np.asarray(source)
    if arr.ndim == 2:
        arr = arr[..., None]
    if arr.ndim != 3 or arr.shape[-1] not in (1, 3, 4):
        raise DeparaError(f"probe {pid}: expected an H×W or H×W×C image array, got shape {arr.shape}")
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise DeparaError(f"probe {pid}: empty image array (shape {arr.shape})")
    alpha = None
    if arr.shape[-1] == 4:
        alpha, arr = arr[..., 3:], arr[..., :3]
    values = _scale_to_uint8(arr, pid)
    if values.shape[-1] == 1:
        values = np.repeat(values, 3, axis=-1)
    if alpha is not None:
        values = _composite(np.concatenate([values, _scale_to_uint8(alpha, pid)], axis=-1))
    return Image.fromarray(np.ascontiguousarray(values), "RGB")


def _digest(source: Any, pid: str) -> str:
    """SHA-256 of one probe's content (file bytes, PIL pixels + mode + size, or array bytes + dtype + shape)."""
    from PIL import Image

    h = hashlib.sha256()
    if isinstance(source, (str, os.PathLike)):
        _regular(source, pid)
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
