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
from .checks import as_class_indices, as_features, count
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
    f = as_features(features, "features")
    y, _ = as_class_indices(labels, "labels", f.shape[0], require_all=False, min_classes=1)
    k = count(k, "k")
    if k > f.shape[0] - 1:
        raise DeparaError(f"k: expected an integer 1 <= k <= N-1 = {f.shape[0] - 1}, got {k!r}")
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
