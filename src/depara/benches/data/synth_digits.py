"""An offline synthetic→real domain pair of digits, in the VisDA layout (one subfolder per class).

``synthetic``: digits 0–9 rendered from the fonts bundled with matplotlib (``mpl-data/fonts/ttf``: DejaVu, STIX,
Computer Modern) with a random font, size, rotation, shift, stroke width, colours, textured background and pixel
noise — the analogue of VisDA's rendered CAD models. ``real``: scikit-learn's 1,797 real handwritten digits
(``load_digits``, 8×8, ~180 per class) upsampled to the same size — the analogue of VisDA's real photos.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ...errors import DeparaError
from ...extraction.folders import staged_folder

CLASSES = tuple(str(d) for d in range(10))
# Fonts of mpl-data that hold ordinary digit glyphs (the STIX size variants and cmex/cmsy are symbol fonts).
_FONT_PREFIXES = ("DejaVuSans.", "DejaVuSans-", "DejaVuSansMono", "DejaVuSerif.", "DejaVuSerif-", "STIXGeneral",
                  "cmr10", "cmb10", "cmss10", "cmtt10", "cmti10")


def digit_fonts() -> list[Path]:
    """The TrueType files bundled with matplotlib that render digits (sorted, for determinism)."""
    import matplotlib
    from matplotlib import font_manager

    ttf_dir = Path(matplotlib.get_data_path()) / "fonts" / "ttf"
    found = sorted(Path(p) for p in font_manager.findSystemFonts(fontpaths=[str(ttf_dir)], fontext="ttf"))
    fonts = [p for p in found if p.name.startswith(_FONT_PREFIXES)]
    if not fonts:
        raise DeparaError(f"{ttf_dir}: no digit fonts found in matplotlib's bundled fonts")
    return fonts


def _texture(rng: np.random.Generator, size: int) -> np.ndarray:
    """A smooth random background (size×size×3 float in [0, 1]): a colour plus low-frequency noise."""
    from PIL import Image

    base = rng.uniform(0.0, 1.0, size=3)
    cells = int(rng.integers(2, 7))
    coarse = rng.normal(0.0, rng.uniform(0.05, 0.25), size=(cells, cells, 3))
    coarse_img = Image.fromarray(((np.clip(coarse, -1, 1) + 1) * 127.5).astype(np.uint8))
    smooth = np.asarray(coarse_img.resize((size, size), Image.BICUBIC), dtype=np.float32) / 127.5 - 1.0
    return np.clip(base[None, None, :] + smooth, 0.0, 1.0)


def render_digit(digit: int, rng: np.random.Generator, size: int, fonts: list[Path]) -> np.ndarray:
    """Render one synthetic digit: returns size×size×3 uint8."""
    from PIL import Image, ImageDraw, ImageFont

    big = 2 * size  # render at twice the size, then downsample (anti-aliasing)
    background = _texture(rng, big)
    bg_lum = float(background.mean())
    # ink colour: random, but far enough in luminance from the background to stay legible
    for _ in range(20):
        ink = rng.uniform(0.0, 1.0, size=3)
        if abs(float(ink.mean()) - bg_lum) > 0.3:
            break
    else:
        ink = np.full(3, 0.0 if bg_lum > 0.5 else 1.0)
    font = ImageFont.truetype(str(fonts[int(rng.integers(len(fonts)))]), size=int(big * rng.uniform(0.5, 0.85)))
    layer = Image.new("L", (big, big), 0)
    draw = ImageDraw.Draw(layer)
    stroke = int(rng.integers(0, 4))
    draw.text((big / 2, big / 2), str(digit), fill=255, font=font, anchor="mm", stroke_width=stroke, stroke_fill=255)
    shift = rng.uniform(-0.12, 0.12, size=2) * big
    layer = layer.rotate(float(rng.uniform(-25, 25)), resample=Image.BILINEAR,
                         translate=(float(shift[0]), float(shift[1])))
    alpha = np.asarray(layer, dtype=np.float32)[..., None] / 255.0
    img = background * (1 - alpha) + ink[None, None, :] * alpha
    img8 = Image.fromarray((img * 255).astype(np.uint8)).resize((size, size), Image.LANCZOS)
    noisy = np.asarray(img8, dtype=np.float32) + rng.normal(0.0, rng.uniform(0.0, 12.0), size=(size, size, 3))
    return np.clip(noisy, 0, 255).astype(np.uint8)


def real_digits(size: int, per_class: int | None, seed: int) -> dict[str, list[np.ndarray]]:
    """scikit-learn's real handwritten digits, upsampled to size×size×3 uint8, ``per_class`` of each (all if None)."""
    from PIL import Image
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = (bunch.images * (255.0 / 16.0)).astype(np.uint8)  # N×8×8, values 0..16 in the source
    rng = np.random.default_rng(seed)
    out: dict[str, list[np.ndarray]] = {}
    for d in range(10):
        idx = np.flatnonzero(bunch.target == d)
        if per_class is not None:
            if per_class > len(idx):
                raise DeparaError(f"real_per_class {per_class}: digit {d} has only {len(idx)} real images")
            idx = np.sort(rng.choice(idx, size=per_class, replace=False))
        out[str(d)] = [np.repeat(np.asarray(Image.fromarray(images[i]).resize((size, size), Image.BICUBIC))[..., None],
                                 3, axis=2) for i in idx]
    return out


def make_synth_digits(out: str | os.PathLike, *, synthetic_per_class: int = 200, real_per_class: int | None = None,
                      size: int = 32, seed: int = 0, progress: bool = False) -> dict:
    """Write ``out/synthetic/<digit>/*.png`` and ``out/real/<digit>/*.png``.

    ``synthetic_per_class`` rendered images per digit; ``real_per_class`` real digits per class (default all,
    ~180). Each domain folder is built under a temporary name and renamed when complete.
    Returns ``{"synthetic": path, "real": path, "counts": {"synthetic": n, "real": n}}``.
    """
    from PIL import Image

    if size < 8:
        raise DeparaError(f"size {size}: expected at least 8 pixels")
    if synthetic_per_class < 1:
        raise DeparaError(f"synthetic_per_class {synthetic_per_class}: expected at least 1")
    if real_per_class is not None and real_per_class < 1:
        raise DeparaError(f"real_per_class {real_per_class}: expected at least 1")
    out = Path(out)
    fonts = digit_fonts()
    rng = np.random.default_rng(seed)
    iterator = [(d, i) for d in range(10) for i in range(synthetic_per_class)]
    if progress:
        from tqdm import tqdm

        iterator = tqdm(iterator, desc="rendering synthetic digits", unit="img")
    with staged_folder(out / "synthetic", what="synthetic domain folder") as tmp:
        for d, i in iterator:
            (tmp / str(d)).mkdir(exist_ok=True)
            Image.fromarray(render_digit(d, rng, size, fonts)).save(tmp / str(d) / f"syn_{d}_{i:05d}.png")
    real = real_digits(size, real_per_class, seed)
    with staged_folder(out / "real", what="real domain folder") as tmp:
        for d, imgs in real.items():
            (tmp / d).mkdir()
            for i, img in enumerate(imgs):
                Image.fromarray(img).save(tmp / d / f"real_{d}_{i:04d}.png")
    return {"synthetic": str(out / "synthetic"), "real": str(out / "real"),
            "counts": {"synthetic": 10 * synthetic_per_class, "real": sum(len(v) for v in real.values())}}
