"""Split a domain folder of class subfolders into train/val/test, per class and deterministically."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Sequence

import numpy as np

from ...io.files import write_csv, write_json
from ...errors import DeparaError
from ...extraction.folders import (FLAT_TEST_LABELS, SPLITS, list_class_folder, place_file, staged_folder,
    verify_images)


def parse_ratios(ratios: str | Sequence[float]) -> tuple[float, float, float]:
    """Parse ``"7:2:1"`` / ``(0.7, 0.2, 0.1)`` into three fractions summing to 1.

    Accepted: fractions summing to 1, or parts summing to 10 or 100 (``7:2:1``, ``70:20:10``).
    """
    if isinstance(ratios, str):
        try:
            values = [float(v) for v in ratios.replace(",", ":").split(":")]
        except ValueError:
            raise DeparaError(f"ratios '{ratios}': expected three numbers like 7:2:1") from None
    else:
        values = [float(v) for v in ratios]
    if len(values) != 3 or any(v < 0 for v in values) or values[0] <= 0:
        raise DeparaError(f"ratios {ratios}: expected three non-negative numbers train:val:test with train > 0")
    total = sum(values)
    for scale in (1.0, 10.0, 100.0):
        if abs(total - scale) < 1e-6 * scale:
            return tuple(v / scale for v in values)  # type: ignore[return-value]
    raise DeparaError(f"ratios {ratios}: sum to {total:g}; expected fractions summing to 1 "
                      f"or parts summing to 10 or 100 (e.g. 7:2:1)")


def split_counts(n: int, fractions: Sequence[float]) -> list[int]:
    """Largest-remainder allocation of ``n`` items to the fractions (counts sum exactly to ``n``)."""
    raw = np.asarray(fractions, dtype=float) * n
    counts = np.floor(raw).astype(int)
    remainder = n - counts.sum()
    order = np.argsort(-(raw - counts), kind="stable")
    counts[order[:remainder]] += 1
    return counts.tolist()


def class_rng(seed: int, name: str) -> np.random.Generator:
    """A generator seeded by (seed, class name): each class's split is independent of the other classes."""
    digest = hashlib.sha256(f"{seed}:{name}".encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "little"))


def split_domain(src: str | os.PathLike, out: str | os.PathLike, *, ratios: str | Sequence[float] = "7:2:1",
                 seed: int = 0, mode: str = "link", flat_test: bool = False, domain: str | None = None,
                 verify: bool = True) -> dict:
    """Split ``src`` (a folder of class subfolders) into ``out/<domain>/{train,val,test}/<class>/``.

    Each class is shuffled by its own seeded generator and cut by ``ratios`` (largest-remainder rounding), so
    every image lands in exactly one split and the result depends only on ``seed``. Files are hard links
    (``mode="link"``, copies across devices), symlinks or copies. ``flat_test`` puts the test images directly in
    ``test/`` as ``<class>_<file>`` with ``test_labels.csv`` (the original experiment's layout). The whole
    domain folder is built under a temporary name and renamed at the end: a failure leaves nothing behind.
    Returns ``{"domain", "path", "counts": {class: [n_train, n_val, n_test]}}``.
    """
    src = Path(src)
    fractions = parse_ratios(ratios)
    classes = list_class_folder(src, what="source domain folder", confine=True)
    domain = domain or src.resolve().name
    counts: dict[str, list[int]] = {}
    for name, paths in classes.items():
        c = split_counts(len(paths), fractions)
        empty = [s for s, k, f in zip(SPLITS, c, fractions) if f > 0 and k == 0]
        if empty:
            need = int(np.ceil(1.0 / min(f for f in fractions if f > 0)))
            raise DeparaError(f"class '{name}' in {src}: {len(paths)} images, too few for ratios "
                              f"{':'.join(f'{f:g}' for f in fractions)} ({'/'.join(empty)} would be empty; "
                              f"needs about {need})")
        counts[name] = c
    if verify:
        verify_images([p for paths in classes.values() for p in paths])
    out = Path(out)
    test_rows: list[dict] = []
    with staged_folder(out / domain, what="split domain folder") as tmp:
        for name, paths in classes.items():
            order = class_rng(seed, name).permutation(len(paths))
            n_train, n_val, _ = counts[name]
            parts = {"train": order[:n_train], "val": order[n_train:n_train + n_val], "test": order[n_train + n_val:]}
            for split, idx in parts.items():
                if split == "test" and flat_test:
                    dest_dir = tmp / "test"
                else:
                    dest_dir = tmp / split / name
                dest_dir.mkdir(parents=True, exist_ok=True)
                for i in sorted(idx.tolist()):
                    p = paths[i]
                    fname = f"{name}_{p.name}" if (split == "test" and flat_test) else p.name
                    place_file(p, dest_dir / fname, mode)
                    if split == "test" and flat_test:
                        test_rows.append({"file": fname, "class": name})
        if flat_test:
            (tmp / "test").mkdir(exist_ok=True)
            write_csv(tmp / "test" / FLAT_TEST_LABELS, test_rows, header=["file", "class"])
        write_json(tmp / "split.json", {"source": str(src), "ratios": list(fractions), "seed": seed, "mode": mode,
                                        "flat_test": flat_test, "counts": counts})
    return {"domain": domain, "path": str(out / domain), "counts": counts}
