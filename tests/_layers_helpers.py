"""Tiny data and models shared by the layer-transferability tests (test_data, test_train, test_layers_select)."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def write_class_folders(root: Path, counts: dict[str, int], size: int = 8, seed: int = 0) -> Path:
    """A domain folder of random PNG images: root/<class>/img_<i>.png, counts[class] each."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    for name, n in counts.items():
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            arr = rng.integers(0, 256, size=(size, size, 3), dtype=np.uint8)
            Image.fromarray(arr).save(root / name / f"img_{i:03d}.png")
    return root


def make_tiny_digits(root: Path, *, per_class: int = 6, seed: int = 0) -> Path:
    """synth-digits (per_class of each digit, 32 px) split 6:2:2 (4/1/1 per class) and shrunk by 2 (real_1of2).

    Returns the data folder holding synthetic/, real/, real_1of2/.
    """
    from depara.benches.data import make_synth_digits, shrink_domain, split_domain

    make_synth_digits(root / "digits", synthetic_per_class=per_class, real_per_class=per_class, size=32, seed=seed)
    data = root / "data"
    for domain in ("synthetic", "real"):
        split_domain(root / "digits" / domain, data, ratios="6:2:2", seed=seed)
    shrink_domain(data / "real", data, ratio=2, seed=seed)
    return data
