"""Leave-one-out k-NN accuracy (``knn``) against scikit-learn's KNeighborsClassifier + LeaveOneOut."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.model_selection import LeaveOneOut, cross_val_score
from sklearn.neighbors import KNeighborsClassifier
from sklearn.preprocessing import StandardScaler

from depara import get_estimator
from depara.errors import DeparaError
from depara.estimators.registry import SourceInputs, TargetInputs
from depara.estimators.knn_baseline import knn_accuracy


@pytest.mark.parametrize("k", [1, 3, 5])
def test_equals_sklearn_leave_one_out(k):
    rng = np.random.default_rng(k)
    y = np.repeat([0, 1, 2], 12)
    f = rng.normal(size=(36, 4)) * [1.0, 10.0, 0.1, 3.0] + 1.5 * y[:, None]
    z = StandardScaler().fit_transform(f)  # standardised on all N, as knn_accuracy does
    want = cross_val_score(KNeighborsClassifier(n_neighbors=k), z, y, cv=LeaveOneOut()).mean()
    assert knn_accuracy(f, y, k=k) == pytest.approx(want, abs=1e-12)


def test_hand_case():
    # 1-D points 0, 1, 10, 11 with labels 0, 1, 1, 1: each point's nearest other point is its pair.
    f = np.array([[0.0], [1.0], [10.0], [11.0]])
    assert knn_accuracy(f, np.array([0, 1, 1, 1]), k=1) == 0.5  # points 0 and 1 are misread
    assert knn_accuracy(f, np.array([0, 0, 1, 1]), k=1) == 1.0


def test_registered_opt_in():
    est = get_estimator("knn")
    assert not est.default and est.needs_labels and est.needs_features
    f = np.array([[0.0], [1.0], [2.0], [3.0], [10.0], [11.0], [12.0], [13.0]])  # k = 5: 3 of a point's own + 2
    y = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    assert est.score(SourceInputs(features=f), TargetInputs(labels=y)) == 1.0


@pytest.mark.parametrize("args, match", [
    ((np.zeros((4, 2)), np.array([0, 1, 0])), "labels"),
    ((np.full((4, 2), np.nan), np.array([0, 1, 0, 1])), "features"),
    ((np.zeros((4, 2)), np.array([0, 1, 0, 1]), 4), "k"),
])
def test_bad_input_names_the_argument(args, match):
    with pytest.raises(DeparaError, match=match):
        knn_accuracy(*args)
