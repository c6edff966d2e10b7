"""The checks at the door and the small linear algebra the peer estimators share (numpy/scipy only).

Every estimator validates its inputs here: a bad input raises a one-line :class:`~depara.errors.DeparaError`
naming the argument. Conventions of the label-based estimators:

* ``features`` is N×D (any trailing shape is flattened per sample), finite, cast to float64.
* ``labels`` is a length-N vector of class indices 0..C−1 (integer-valued floats are accepted); every class
  0..C−1 must occur at least once and C ≥ 2. Remap arbitrary labels first, e.g. with
  ``np.unique(labels, return_inverse=True)[1]``.
"""

from __future__ import annotations

import numpy as np

from ..errors import DeparaError

__all__ = ["as_features", "as_class_indices", "one_hot_labels", "gram_eigh", "positive", "count", "minmax",
           "softmax_rows", "power_top_eigenvalue"]


def as_features(x, name: str, *, min_rows: int = 2) -> np.ndarray:
    """Return ``x`` as a finite float64 N×D array (trailing dimensions flattened)."""
    try:
        arr = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError):
        raise DeparaError(f"{name}: expected a numeric array, got {type(x).__name__}") from None
    if arr.ndim < 2:
        raise DeparaError(f"{name}: expected an N×D array (one row per sample), got shape {arr.shape}")
    arr = arr.reshape(arr.shape[0], -1)
    if arr.shape[0] < min_rows or arr.shape[1] < 1:
        raise DeparaError(f"{name}: expected at least {min_rows} rows and 1 column, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        bad = int(np.argwhere(~np.isfinite(arr))[0, 0])
        raise DeparaError(f"{name}: contains NaN or inf (first in row {bad})")
    return arr


def as_class_indices(y, name: str, n: int | None, *, require_all: bool = True,
                      min_classes: int = 2) -> tuple[np.ndarray, int]:
    """Return (int64 vector, C) for class indices 0..C−1; every class present when ``require_all``."""
    try:
        arr = np.asarray(y, dtype=np.float64)
    except (TypeError, ValueError):
        raise DeparaError(f"{name}: expected integer class indices, got {type(y).__name__}") from None
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr[:, 0]
    if arr.ndim != 1:
        raise DeparaError(f"{name}: expected a vector of N class indices, got shape {arr.shape}")
    if n is not None and arr.shape[0] != n:
        raise DeparaError(f"{name}: has {arr.shape[0]} entries but the features have {n} rows")
    if not np.all(np.isfinite(arr)) or np.any(arr != np.round(arr)) or np.any(arr < 0):
        raise DeparaError(f"{name}: expected integer class indices 0..C-1 (found a negative, fractional or NaN value)")
    idx = arr.astype(np.int64)
    n_classes = int(idx.max()) + 1 if idx.size else 0
    if require_all:
        present = np.bincount(idx, minlength=n_classes) > 0
        if not present.all():
            missing = int(np.flatnonzero(~present)[0])
            raise DeparaError(f"{name}: expected classes 0..{n_classes - 1} all present, class {missing} has no "
                              "sample (remap with np.unique(labels, return_inverse=True))")
        if n_classes < min_classes:
            raise DeparaError(f"{name}: needs at least {min_classes} classes, got {n_classes}")
    return idx, n_classes


def one_hot_labels(labels: np.ndarray, n_classes: int) -> np.ndarray:
    """N class indices → N×C one-hot float64 rows."""
    out = np.zeros((labels.shape[0], n_classes), dtype=np.float64)
    out[np.arange(labels.shape[0]), labels] = 1.0
    return out


def gram_eigh(f: np.ndarray) -> tuple[np.ndarray, np.ndarray, bool]:
    """Eigen-decomposition of the smaller Gram matrix of ``f`` (N×D).

    Returns (eigenvalues w ≥ 0 descending, eigenvectors, on_features) where ``on_features`` says the
    eigenvectors are D×k right singular vectors (N > D) rather than N×k left singular vectors.
    Eigenvalues below the usual rank tolerance (max(w)·max(N, D)·eps) are dropped: they are round-off.
    """
    n, d = f.shape
    on_features = n > d
    gram = f.T @ f if on_features else f @ f.T
    w, vec = np.linalg.eigh(gram)
    w, vec = w[::-1], vec[:, ::-1]
    tol = max(float(w[0]), 0.0) * max(n, d) * np.finfo(np.float64).eps
    keep = w > tol
    return w[keep], vec[:, keep], on_features


def positive(value, name: str) -> float:
    """``value`` as a finite float > 0; DeparaError naming ``name`` otherwise."""
    try:
        out = float(value)
    except (TypeError, ValueError):
        raise DeparaError(f"{name}: expected a positive number, got {value!r}") from None
    if not (np.isfinite(out) and out > 0):
        raise DeparaError(f"{name}: expected a positive number, got {value!r}")
    return out


def count(value, name: str, *, minimum: int = 1) -> int:
    """``value`` as an int ≥ ``minimum`` (bools refused); DeparaError naming ``name`` otherwise."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise DeparaError(f"{name}: expected an integer >= {minimum}, got {value!r}")
    return int(value)


def minmax(values, name: str) -> np.ndarray:
    """Min–max scale a vector over candidates to [0, 1], as the ETran/NCTI references do (constant → 0)."""
    v = np.asarray(values, dtype=np.float64)
    if v.ndim != 1 or v.size < 1 or not np.all(np.isfinite(v)):
        raise DeparaError(f"{name}: expected a non-empty finite vector of one value per candidate, got shape "
                          f"{v.shape}")
    span = v.max() - v.min()
    # The references divide by the span unguarded (NaN for a constant term); a constant term carries no
    # ranking information, so it is scored 0 for every candidate here.
    return (v - v.min()) / span if span > 0 else np.zeros_like(v)


def softmax_rows(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax of an N×C float array, in place (the max subtracted first)."""
    z = logits - logits.max(axis=1, keepdims=True)
    np.exp(z, out=z)
    z /= z.sum(axis=1, keepdims=True)
    return z


def power_top_eigenvalue(a: np.ndarray, iterations: int = 3) -> float:
    """The largest eigenvalue of symmetric PSD ``a`` by the short power iteration SFDA specifies.

    Starts from the row sums and runs ``iterations`` double steps, returning xᵀ A y for the last two iterates,
    exactly the estimate SFDA's adaptive shrinkage is defined with (so the shrinkage, hence the score, matches).
    """
    x = a.sum(axis=1)
    y = x
    for _ in range(iterations):
        t = a @ x
        y = t / np.linalg.norm(t)
        t = a @ y
        x = t / np.linalg.norm(t)
    return float(x @ a @ y)
