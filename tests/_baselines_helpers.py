"""Fixed, seeded inputs on which depara.estimators.baselines was compared with the reference implementations.

The reference numbers held in tests/test_baselines.py were computed by running thuml/LogME (commit 56551ca)
and tllib.ranking of thuml/Transfer-Learning-Library (commit c4aa59e) locally on exactly these arrays.
numpy's PCG64 streams are stable across versions, so the arrays are reproducible.
"""

from __future__ import annotations

import numpy as np


def softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def classification_case(seed: int, n: int, d: int, n_classes: int, shift: float = 0.7):
    """Features with class-dependent means (so every estimator sees real signal) and balanced labels."""
    rng = np.random.default_rng(seed)
    labels = rng.permutation(np.arange(n) % n_classes)
    centres = rng.standard_normal((n_classes, d))
    features = rng.standard_normal((n, d)) + shift * centres[labels]
    return features, labels


def source_head_case(seed: int, n: int, n_source: int, n_classes: int):
    """Source-head probabilities that partly depend on the target label, and their argmax labels."""
    rng = np.random.default_rng(seed)
    labels = rng.permutation(np.arange(n) % n_classes)
    affinity = rng.standard_normal((n_classes, n_source)) * 2.0
    logits = rng.standard_normal((n, n_source)) + affinity[labels]
    probs = softmax(logits)
    return probs, probs.argmax(axis=1), labels


def regression_case(seed: int, n: int, d: int, n_targets: int):
    rng = np.random.default_rng(seed)
    features = rng.standard_normal((n, d))
    weights = rng.standard_normal((d, n_targets))
    targets = features @ weights + 0.5 * rng.standard_normal((n, n_targets))
    return features, targets


CASES = {
    # name: (kind, kwargs)
    "cls_tall": ("cls", dict(seed=0, n=300, d=24, n_classes=5)),       # N > D, full rank
    "cls_wide": ("cls", dict(seed=1, n=40, d=96, n_classes=4)),         # N < D: LogME PR 24 case
    "cls_many": ("cls", dict(seed=2, n=500, d=64, n_classes=10, shift=0.3)),
    "reg": ("reg", dict(seed=3, n=120, d=10, n_targets=3)),
    "reg_wide": ("reg", dict(seed=4, n=30, d=50, n_targets=2)),
    "head": ("head", dict(seed=5, n=400, n_source=12, n_classes=6)),
    "head_big": ("head", dict(seed=6, n=1000, n_source=50, n_classes=20)),
}


def make(name: str):
    kind, kw = CASES[name]
    if kind == "cls":
        return classification_case(**kw)
    if kind == "reg":
        return regression_case(**kw)
    return source_head_case(**kw)


def scaled_case(case: dict) -> tuple[np.ndarray, np.ndarray]:
    """:func:`classification_case` of ``case``'s kwargs, features times its optional ``scale`` (recent estimators b)."""
    kw = dict(case)
    scale = kw.pop("scale", 1.0)
    f, y = classification_case(**kw)
    return f * scale, y


def general_features(case: dict, general: dict) -> np.ndarray:
    """PED's "general dataset" features for ``case``: Gaussian, seeded from the case's seed + an offset."""
    rng = np.random.default_rng(case["seed"] + general["seed_offset"])
    return general["loc"] + general["scale"] * rng.standard_normal((general["n"], case["d"]))
