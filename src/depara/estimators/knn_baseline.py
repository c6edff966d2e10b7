"""Leave-one-out k-NN accuracy: the plain baseline every transferability claim needs (registered opt-in as
``knn``: default runs keep their columns).

A 42,000-experiment study (arXiv 2503.18528) finds the k-NN accuracy of the target labels in a source's features
beating the published estimators; a score that does not beat it adds nothing. Each sample is classified by the
majority label of its k nearest other samples (Euclidean distance on the features standardised per dimension;
ties between classes go to the smallest class index, as scikit-learn's ``KNeighborsClassifier`` does); the score
is the fraction classified correctly. numpy only; O(N²) memory in float64 (N = 2,000: 32 MB).
"""

from __future__ import annotations

import numpy as np

from ..errors import DeparaError
from ..options import DEFAULT_KNN_NEIGHBOURS
from .registry import FEATURE_LABEL, estimator

__all__ = ["knn_accuracy"]


@estimator("knn", tags=FEATURE_LABEL, label="k-NN accuracy", aliases=("knn_accuracy",), default=False,
           description="leave-one-out k-NN accuracy of the labels in the source's standardised features",
           reference="Plain baseline; cf. arXiv 2503.18528",
           adapter=lambda s, t: knn_accuracy(s.features, t.labels))
def knn_accuracy(features, labels, k: int = DEFAULT_KNN_NEIGHBOURS) -> float:
    """Leave-one-out k-NN accuracy of ``labels`` (N class indices) in ``features`` (N×D, trailing axes flattened).

    Dimensions are standardised over the N samples (constant ones dropped). Raises DeparaError naming the argument
    on bad input (fewer than k + 1 samples, non-finite values, labels of the wrong length).
    """
    f = np.asarray(features, dtype=np.float64)
    y = np.asarray(labels)
    if f.ndim < 2 or f.shape[0] < 2:
        raise DeparaError(f"features: expected N×D with N >= 2 samples, got shape {f.shape}")
    f = f.reshape(f.shape[0], -1)
    if not np.all(np.isfinite(f)):
        raise DeparaError("features: contains NaN or inf")
    if y.ndim != 1 or y.shape[0] != f.shape[0] or not np.issubdtype(y.dtype, np.number) \
            or np.any(y != np.round(y)) or np.any(y < 0):
        raise DeparaError(f"labels: expected {f.shape[0]} integer class indices 0..C-1")
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= int(k) <= f.shape[0] - 1:
        raise DeparaError(f"k: expected an integer 1 <= k <= N-1 = {f.shape[0] - 1}, got {k!r}")
    k = int(k)
    y = y.astype(np.int64)
    f = f - f.mean(axis=0)
    sd = f.std(axis=0)
    keep = sd > 1e-12 * max(float(sd.max(initial=0.0)), np.finfo(float).tiny)
    f = f[:, keep] / sd[keep] if keep.any() else f[:, :0]
    sq = (f * f).sum(axis=1)
    dist = sq[:, None] + sq[None, :] - 2.0 * (f @ f.T)
    np.fill_diagonal(dist, np.inf)
    nearest = np.argsort(dist, axis=1, kind="stable")[:, :k]
    votes = np.zeros((f.shape[0], int(y.max()) + 1))
    np.add.at(votes, (np.repeat(np.arange(f.shape[0]), k), y[nearest].ravel()), 1.0)
    return float(np.mean(votes.argmax(axis=1) == y))
