"""Procedural CLASSIFICATION targets of the task bank and their measured transfer ground truth (round 4).

The bank's own targets are mostly dense/regression tasks; the label-graph default of depara compares a source
graph with CLASS labels. This module adds class-label targets computed from the same rendered scenes
(:class:`~depara.benches.taskbank.scenes.SceneBatch`) and measures how well each of the bank's task encoders transfers
to them under two protocols, so that label-graph candidates can be chosen on procedural class-label targets.

Targets (:data:`CLASS_TARGETS`, fixed before any measurement; every label is an int64 in 0..C−1). "Largest object"
is the instance with most visible pixels (ties: the lowest instance id, as the renderer's ``shape``); "visible"
means at least :data:`VISIBLE_MIN_PIXELS` pixels (the renderer's rule for ``count``):

==================  ===  ==================================================================================
``shape``            4   shape class of the largest visible object (the renderer's ``shape``)
``count``            4   number of visible objects − 1 (1..4 objects)
``count_parity``     2   number of visible objects mod 2 (0 even, 1 odd)
``light_side``       4   quadrant of the light's azimuth ``atan2(l_y, l_x)`` in [0, 2π): ⌊azimuth / (π/2)⌋
``object_hue``       4   hue (HSV, [0, 1)) of the mean albedo of the largest object's pixels: ⌊4·hue⌋
``background_hue``   4   hue of the mean albedo of the background pixels (instance 0): ⌊4·hue⌋
``size``             3   area fraction of the largest object: < :data:`SIZE_THRESHOLDS`\\[0] → 0, < [1] → 1, else 2
``position``         4   quadrant of the largest object's pixel centroid: 2·(y ≥ H/2) + (x ≥ W/2)
``has_sphere``       2   1 when a sphere (semantic class 1) has at least VISIBLE_MIN_PIXELS visible pixels
``depth_near``       3   mean depth of the largest object's pixels, cut at :data:`DEPTH_THRESHOLDS` (0 = nearest)
==================  ===  ==================================================================================

The thresholds of ``size`` and ``depth_near`` are fixed constants: the tertiles, rounded to 3 decimals, of 2000
scenes of a reference draw that no bank split uses (``generate_scenes(2000, size=32, seed=REFERENCE_SEED)``,
:func:`reference_thresholds` recomputes them).

Every target also has a few-shot variant ``name@10``: 10 labelled images per class.

Ground truth (:func:`measure_truth`) for each (target, source encoder), for each seed of ``seeds``:

- labelled pool: the bank's ``limited`` split; the full variant trains on a stratified 80 % subsample of it
  (:func:`stratified_subsample`), ``@10`` on 10 images per class (:func:`few_shot_indices`); the test set is the
  bank's ``test`` split (every image);
- (a) **linear probe**: the frozen encoder's flattened ``rep`` output (8×S/4×S/4) →
  :func:`depara.benches.realbank.truth.linear_probe` (standardised L2 logistic regression, C = 1), test accuracy;
- (b) **fine-tuning**: ``conv3`` + ``rep`` + a fresh :class:`~depara.benches.taskbank.networks.GlobalHead` trained
  together (Adam: lr 1e-3 for conv3/rep, 1e-2 for the head; batch 32; :attr:`TruthSettings.ft_steps` steps) on top of
  the frozen ``conv1``/``conv2`` (their output computed once), test accuracy.

The seed changes the subsample, the head's initialisation and the batch order. One checksummed JSON entry per
(bank config, target, source, seeds, settings) under ``cache_root/classify``; a corrupt entry is re-measured.
"""

from __future__ import annotations

import colorsys
import copy
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch

from ...errors import DeparaError
from .cache import fingerprint, load_json_entry, save_json_entry
from .scenes import SceneBatch, generate_scenes

__all__ = ["ClassTarget", "CLASS_TARGETS", "CLASS_TARGET_NAMES", "FEW_SHOT", "get_class_target", "target_variants",
           "parse_variant", "stratified_subsample", "few_shot_indices", "train_indices", "degenerate_reason",
           "TruthSettings", "measure_truth", "reference_thresholds", "SIZE_THRESHOLDS", "DEPTH_THRESHOLDS"]

VISIBLE_MIN_PIXELS = 3
FEW_SHOT = 10
FULL_FRACTION = 0.8
#: the reference draw of the thresholds (a stream no bank split uses: the bank draws seed 0)
REFERENCE_SEED = 20261130
REFERENCE_N = 2000
#: tertiles of the largest object's area fraction on the reference draw (:func:`reference_thresholds`)
SIZE_THRESHOLDS = (0.1, 0.132)
#: tertiles of the largest object's mean depth on the reference draw
DEPTH_THRESHOLDS = (0.325, 0.518)
#: a target is dropped at a scale when one class holds more than this share of its labelled pool + test set
MAX_CLASS_SHARE = 0.9


@dataclass(frozen=True)
class ClassTarget:
    """One procedural class-label target: ``fn(scenes) -> int64 labels (N,) in 0..n_classes−1``."""

    name: str
    n_classes: int
    fn: Callable[[SceneBatch], np.ndarray]
    description: str = ""

    def labels(self, scenes: SceneBatch) -> np.ndarray:
        y = np.asarray(self.fn(scenes), dtype=np.int64)
        if y.shape != (len(scenes),) or y.min(initial=0) < 0 or y.max(initial=0) >= self.n_classes:
            raise DeparaError(f"class target {self.name}: labels outside 0..{self.n_classes - 1}")
        return y


# ------------------------------------------------------------------------------------------ label functions
def _largest_mask(s: SceneBatch) -> np.ndarray:
    """N×H×W boolean mask of each scene's largest visible object (most pixels; ties: lowest instance id)."""
    inst = np.asarray(s.instance).astype(np.int64)
    n = inst.shape[0]
    k = int(inst.max(initial=0)) + 1
    counts = np.stack([np.bincount(inst[i].ravel(), minlength=k) for i in range(n)])  # N×K, column 0 background
    counts[:, 0] = -1
    largest = counts.argmax(axis=1)  # first maximum: lowest id
    return (inst == largest[:, None, None]) & (largest[:, None, None] > 0)


def _hue_bins(rgb: np.ndarray, bins: int = 4) -> np.ndarray:
    hue = np.array([colorsys.rgb_to_hsv(*map(float, c))[0] for c in rgb])
    return np.minimum((hue * bins).astype(np.int64), bins - 1)


def _masked_mean(a: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Mean of N×H×W(×C) ``a`` over each scene's mask (the whole image where the mask is empty)."""
    m = mask.astype(np.float64)
    empty = m.reshape(len(m), -1).sum(axis=1) == 0
    m[empty] = 1.0
    if a.ndim == 4:
        return (a * m[..., None]).sum(axis=(1, 2)) / m.sum(axis=(1, 2))[:, None]
    return (a * m).sum(axis=(1, 2)) / m.sum(axis=(1, 2))


def _cut(v: np.ndarray, thresholds: Sequence[float]) -> np.ndarray:
    return np.searchsorted(np.asarray(thresholds, dtype=np.float64), v, side="right").astype(np.int64)


def _area_fraction(s: SceneBatch) -> np.ndarray:
    m = _largest_mask(s)
    return m.reshape(len(m), -1).mean(axis=1)


def _mean_depth(s: SceneBatch) -> np.ndarray:
    return _masked_mean(np.asarray(s.depth, np.float64), _largest_mask(s))


def _light_side(s: SceneBatch) -> np.ndarray:
    lx, ly = np.asarray(s.light, np.float64)[:, 0], np.asarray(s.light, np.float64)[:, 1]
    az = np.mod(np.arctan2(ly, lx), 2 * np.pi)
    return np.minimum((az // (np.pi / 2)).astype(np.int64), 3)


def _position(s: SceneBatch) -> np.ndarray:
    m = _largest_mask(s).astype(np.float64)
    h, w = m.shape[1:]
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64) + 0.5
    tot = np.maximum(m.sum(axis=(1, 2)), 1.0)
    cy, cx = (m * yy).sum(axis=(1, 2)) / tot, (m * xx).sum(axis=(1, 2)) / tot
    return (2 * (cy >= h / 2) + (cx >= w / 2)).astype(np.int64)


def _has_sphere(s: SceneBatch) -> np.ndarray:
    sem = np.asarray(s.semantic)
    return ((sem == 1).reshape(len(sem), -1).sum(axis=1) >= VISIBLE_MIN_PIXELS).astype(np.int64)


_TARGETS = (
    ClassTarget("shape", 4, lambda s: np.asarray(s.shape, np.int64), "shape class of the largest visible object"),
    ClassTarget("count", 4, lambda s: np.asarray(s.count, np.int64) - 1, "number of visible objects (1..4)"),
    ClassTarget("count_parity", 2, lambda s: np.asarray(s.count, np.int64) % 2,
                "number of visible objects: even (0) or odd (1)"),
    ClassTarget("light_side", 4, _light_side, "quadrant of the light's azimuth"),
    ClassTarget("object_hue", 4, lambda s: _hue_bins(_masked_mean(np.asarray(s.albedo, np.float64), _largest_mask(s))),
                "hue bin of the largest object's albedo"),
    ClassTarget("background_hue", 4,
                lambda s: _hue_bins(_masked_mean(np.asarray(s.albedo, np.float64), np.asarray(s.instance) == 0)),
                "hue bin of the background's mean albedo"),
    ClassTarget("size", 3, lambda s: _cut(_area_fraction(s), SIZE_THRESHOLDS),
                "area fraction of the largest object (small / medium / large)"),
    ClassTarget("position", 4, _position, "quadrant of the largest object's centroid"),
    ClassTarget("has_sphere", 2, _has_sphere, "a sphere is visible"),
    ClassTarget("depth_near", 3, lambda s: _cut(_mean_depth(s), DEPTH_THRESHOLDS),
                "mean depth of the largest object (near / middle / far)"),
)
CLASS_TARGETS: dict[str, ClassTarget] = {t.name: t for t in _TARGETS}
CLASS_TARGET_NAMES: tuple[str, ...] = tuple(CLASS_TARGETS)


def get_class_target(name: str) -> ClassTarget:
    """The class target ``name`` (without an ``@10`` suffix); unknown names raise a DeparaError."""
    if name not in CLASS_TARGETS:
        raise DeparaError(f"class target {name!r}: expected one of {', '.join(CLASS_TARGET_NAMES)}")
    return CLASS_TARGETS[name]


def target_variants(names: Sequence[str] = CLASS_TARGET_NAMES) -> list[str]:
    """Every target and its few-shot variant: ``[shape, shape@10, count, count@10, ...]``."""
    return [v for n in names for v in (n, f"{n}@{FEW_SHOT}")]


def parse_variant(variant: str) -> tuple[ClassTarget, int | None]:
    """``"size@10"`` → (size's target, 10); ``"size"`` → (size's target, None)."""
    name, _, shots = str(variant).partition("@")
    if shots and shots != str(FEW_SHOT):
        raise DeparaError(f"target variant {variant!r}: expected NAME or NAME@{FEW_SHOT}")
    return get_class_target(name), (FEW_SHOT if shots else None)


def reference_thresholds(n: int = REFERENCE_N, seed: int = REFERENCE_SEED) -> dict[str, tuple[float, float]]:
    """Tertiles (rounded to 3 decimals) of the largest object's area fraction and mean depth on the reference draw."""
    s = generate_scenes(n, size=32, seed=seed)
    return {k: tuple(float(round(q, 3)) for q in np.quantile(v, [1 / 3, 2 / 3]))
            for k, v in (("size", _area_fraction(s)), ("depth_near", _mean_depth(s)))}


# ------------------------------------------------------------------------------------------------- samplers
def stratified_subsample(labels: np.ndarray, seed: int, fraction: float = FULL_FRACTION) -> np.ndarray:
    """Sorted indices of a stratified subsample: ``round(fraction·n_c)`` (at least 1) of each class c, drawn
    without replacement by ``default_rng([seed, 1])``."""
    y = np.asarray(labels)
    rng = np.random.default_rng([int(seed), 1])
    out = []
    for c in np.unique(y):
        idx = np.flatnonzero(y == c)
        out.append(rng.choice(idx, size=max(1, int(round(fraction * len(idx)))), replace=False))
    return np.sort(np.concatenate(out))


def few_shot_indices(labels: np.ndarray, seed: int, per_class: int = FEW_SHOT) -> np.ndarray:
    """Sorted indices of exactly ``per_class`` images of every class (``default_rng([seed, 2])``); a class with
    fewer images raises a DeparaError."""
    y = np.asarray(labels)
    rng = np.random.default_rng([int(seed), 2])
    out = []
    for c in np.unique(y):
        idx = np.flatnonzero(y == c)
        if len(idx) < per_class:
            raise DeparaError(f"labels: class {c} has {len(idx)} images, fewer than {per_class} per class")
        out.append(rng.choice(idx, size=per_class, replace=False))
    return np.sort(np.concatenate(out))


def train_indices(labels: np.ndarray, shots: int | None, seed: int) -> np.ndarray:
    """The labelled training images of one seed: :func:`few_shot_indices` for ``@10``, else the 80 % subsample."""
    return few_shot_indices(labels, seed, shots) if shots else stratified_subsample(labels, seed)


def degenerate_reason(target: ClassTarget, y_pool: np.ndarray, y_test: np.ndarray) -> str | None:
    """Why ``target`` is dropped at a scale (None when kept): one class holds more than :data:`MAX_CLASS_SHARE` of
    the labelled pool + test set, fewer than 2 classes occur, or a class of the pool has fewer than
    :data:`FEW_SHOT` images (no few-shot variant possible)."""
    y = np.concatenate([y_pool, y_test])
    share = np.bincount(y, minlength=target.n_classes) / len(y)
    if share.max() > MAX_CLASS_SHARE:
        return f"class {int(share.argmax())} holds {share.max():.0%} of the images (> {MAX_CLASS_SHARE:.0%})"
    present = np.unique(y_pool)
    if len(present) < 2:
        return "fewer than 2 classes in the labelled pool"
    low = np.bincount(y_pool)[present].min()
    if low < FEW_SHOT:
        return f"a class has {low} labelled images, fewer than {FEW_SHOT}"
    return None


# --------------------------------------------------------------------------------------------- ground truth
@dataclass(frozen=True)
class TruthSettings:
    """Settings of the classification ground truth (their fingerprint is part of every cache key)."""

    ft_steps: int = 60
    ft_lr_body: float = 1e-3
    ft_lr_head: float = 1e-2
    ft_batch: int = 32
    lp_c: float = 1.0

    def key(self) -> dict:
        return {**asdict(self), "v": 1}


def _split(encoder) -> tuple[torch.nn.Sequential, torch.nn.Sequential]:
    """(conv1 → relu2, conv3 → rep) of an :class:`~depara.benches.taskbank.networks.Encoder`, sharing its modules."""
    mods = list(encoder.children())
    return torch.nn.Sequential(*mods[:4]), torch.nn.Sequential(*mods[4:])


@torch.no_grad()
def lower_and_rep(encoder, x: np.ndarray, batch_size: int = 256) -> tuple[torch.Tensor, np.ndarray]:
    """(frozen ``conv1``→``relu2`` output N×2w×S/2×S/2, flattened ``rep`` output N×(8·S/4·S/4) float64)."""
    lower, upper = _split(encoder)
    hs, fs = [], []
    for i in range(0, len(x), batch_size):
        h = lower(torch.from_numpy(x[i:i + batch_size]))
        hs.append(h)
        fs.append(upper(h).flatten(1))
    return torch.cat(hs), torch.cat(fs).double().numpy()


def fine_tune(encoder, h_train: torch.Tensor, y_train: np.ndarray, h_test: torch.Tensor, y_test: np.ndarray, *,
              n_classes: int, image_size: int, width: int, seed: int, st: TruthSettings) -> float:
    """Test accuracy after training a copy of ``conv3`` + ``rep`` and a fresh GlobalHead for ``st.ft_steps`` steps
    on the frozen lower layers' output ``h_train`` (N×2w×S/2×S/2), by the real-image bank's fine-tuning loop
    (:func:`depara.benches.realbank.truth.train_and_test`)."""
    from ..realbank.truth import train_and_test
    from .networks import GlobalHead

    upper = copy.deepcopy(_split(encoder)[1])
    torch.manual_seed(seed)
    head = GlobalHead(n_classes, image_size // 4, width)
    return train_and_test(upper, head, h_train, y_train, h_test, y_test, steps=st.ft_steps, lr_upper=st.ft_lr_body,
                          lr_head=st.ft_lr_head, batch=st.ft_batch, seed=seed)


def truth_path(cache_root: Path, variant: str, source: str, key: str) -> Path:
    return Path(cache_root) / "classify" / variant.replace("@", "_at") / f"{source}-{key}.json"


def measure_truth(cfg, cache_root: Path, variant: str, source: str, encoder, data, seeds: Sequence[int], *,
                  st: TruthSettings = TruthSettings(), features: dict | None = None) -> dict:
    """Both protocols for one (target variant, source encoder) on every seed: ``{"linear_probe": [acc per seed],
    "fine_tune": [...], "train_sizes": [...], "seconds": s, "cached": bool}``.

    ``cfg``/``data``: the bank's :class:`~depara.benches.taskbank.train.BankConfig` and
    :class:`~depara.benches.taskbank.train.SceneData`; ``features``: an optional dict shared across calls that keeps
    each source's frozen outputs on the limited and test splits (computed once per source). One cache entry per
    (bank config, target, source, seeds, settings); a corrupt or stale entry is re-measured.
    """
    target, shots = parse_variant(variant)
    seeds = [int(s) for s in seeds]
    key = fingerprint({"bank": cfg.key(), "target": variant, "source": source, "seeds": seeds, "st": st.key(),
                       "thresholds": [SIZE_THRESHOLDS, DEPTH_THRESHOLDS]})
    path = truth_path(cache_root, variant, source, key)
    hit = load_json_entry(path, key)
    if hit is not None:
        return {**hit, "cached": True}
    from .tasks import get_task, task_inputs

    features = {} if features is None else features
    if source not in features:
        clean = get_task("autoencoding")
        features[source] = {split: lower_and_rep(encoder, task_inputs(clean, data.scenes(split)))
                            for split in ("limited", "test")}
    (h_pool, f_pool), (h_test, f_test) = features[source]["limited"], features[source]["test"]
    y_pool, y_test = target.labels(data.scenes("limited")), target.labels(data.scenes("test"))
    from ..realbank.truth import linear_probe

    t0 = time.perf_counter()
    out = {"linear_probe": [], "fine_tune": [], "train_sizes": []}
    for seed in seeds:
        tr = train_indices(y_pool, shots, seed)
        out["train_sizes"].append(int(len(tr)))
        out["linear_probe"].append(linear_probe(f_pool[tr], y_pool[tr], f_test, y_test, st.lp_c))
        ft_seed = int(fingerprint({"k": key, "seed": seed}), 16) % 2**31
        out["fine_tune"].append(fine_tune(encoder, h_pool[torch.from_numpy(tr)], y_pool[tr], h_test, y_test,
                                          n_classes=target.n_classes, image_size=cfg.image_size, width=cfg.width,
                                          seed=ft_seed, st=st))
    out["seconds"] = time.perf_counter() - t0
    save_json_entry(path, key, out)
    return {**out, "cached": False}
