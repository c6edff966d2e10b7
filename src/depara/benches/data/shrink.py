"""Shrink the train split of a split domain folder to 1/ratio per class (val and test unchanged)."""

from __future__ import annotations

import os
from pathlib import Path

from ...io.files import write_json
from ...errors import DeparaError
from ...extraction.folders import FLAT_TEST_LABELS, SPLITS, list_split, place_file, staged_folder
from .split import class_rng

FRACTION_NAMES = {10: "tenth", 100: "hundredth"}


def fraction_name(ratio: int) -> str:
    """``10 -> "tenth"``, ``100 -> "hundredth"``, otherwise ``"1of<ratio>"``."""
    return FRACTION_NAMES.get(int(ratio), f"1of{int(ratio)}")


def fraction_ratio(name: str) -> int:
    """Inverse of :func:`fraction_name`."""
    for r, n in FRACTION_NAMES.items():
        if n == name:
            return r
    if name.startswith("1of") and name[3:].isdigit() and int(name[3:]) >= 1:
        return int(name[3:])
    raise DeparaError(f"fraction '{name}': expected tenth, hundredth or 1of<N>")


def shrink_count(n: int, ratio: int) -> int:
    """How many of ``n`` train images to keep: n / ratio rounded half up, at least one."""
    return max(1, int(n / ratio + 0.5))


def shrink_domain(data: str | os.PathLike, out: str | os.PathLike, *, ratio: int = 10, seed: int = 0,
                  mode: str = "link") -> dict:
    """Write ``out/<domain>_<fraction>/``: ``data``'s train split cut to 1/ratio per class (≥ 1 image each),
    its val and test splits unchanged. ``data`` is a split domain folder (``train/``, ``val/``, ``test/``).

    Returns ``{"path", "counts": {class: n_kept}}``. Built under a temporary name, renamed at the end.
    """
    data = Path(data)
    if int(ratio) != ratio or ratio < 1:
        raise DeparaError(f"ratio {ratio}: expected an integer >= 1")
    ratio = int(ratio)
    for split in SPLITS:
        if not (data / split).is_dir():
            raise DeparaError(f"{data}: no {split}/ folder (expected a split domain folder; run `depara data split`)")
    train = list_split(data, "train")
    val = list_split(data, "val")
    test = list_split(data, "test")
    domain = data.resolve().name
    final = Path(out) / f"{domain}_{fraction_name(ratio)}"
    kept: dict[str, int] = {}
    with staged_folder(final, what="shrunk domain folder") as tmp:
        for name, paths in train.items():
            k = shrink_count(len(paths), ratio)
            idx = sorted(class_rng(seed, name).permutation(len(paths))[:k].tolist())
            (tmp / "train" / name).mkdir(parents=True)
            for i in idx:
                place_file(paths[i], tmp / "train" / name / paths[i].name, mode)
            kept[name] = k
        for split, classes in (("val", val), ("test", test)):
            flat = split == "test" and (data / "test" / FLAT_TEST_LABELS).is_file()
            for name, paths in classes.items():
                dest = tmp / split if flat else tmp / split / name
                dest.mkdir(parents=True, exist_ok=True)
                for p in paths:
                    place_file(p, dest / p.name, mode)
            if flat:
                place_file(data / "test" / FLAT_TEST_LABELS, tmp / "test" / FLAT_TEST_LABELS, "copy")
        write_json(tmp / "shrink.json", {"source": str(data), "ratio": ratio, "seed": seed, "kept": kept})
    return {"path": str(final), "counts": kept}
