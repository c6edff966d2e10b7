"""`depara select`'s faster paths give the values of the plain ones: PED on every half-sample at once against
one fit per half-sample, the label graph's score with its edges built once, the non-ranking peers' intervals
opt-in (``peer_boot``)."""

from __future__ import annotations

import numpy as np
import pytest

from depara.errors import DeparaError
from depara.estimators import depara_family
from depara.estimators.evidence import logme, ped, ped_resampled
from depara.estimators.registry import get_estimator
from depara.evaluation.uncertainty import half_samples
from depara.selection.scoring import Resamples, peer_halves, peer_score


def _classes(n: int, d: int, c: int, sep: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = np.arange(n) % c
    return (rng.normal(size=(n, d)) + sep * rng.normal(size=(c, d))[y]).astype(np.float32), y


# (N, D, classes, separation): wide (N/2 < D, LogME on the N×N Gram) and narrow (N/2 > D, on the D×D one),
# overlapping classes (PED takes several steps) and well-separated ones (no overlap: no step)
CASES = [(40, 64, 4, 0.3, 0), (60, 5, 3, 0.5, 1), (30, 12, 2, 0.05, 2), (48, 16, 6, 20.0, 3)]


@pytest.mark.parametrize("case", CASES)
def test_ped_resampled_equals_one_fit_per_half_sample(case):
    n, d, c, sep, seed = case
    f, y = _classes(n, d, c, sep, seed)
    halves = half_samples(n, 25, seed, y)
    expected = np.array([ped(f[h], y[h]) for h in halves])
    np.testing.assert_allclose(ped_resampled(f, y, halves), expected, rtol=1e-9, atol=1e-12)


def test_ped_resampled_coincident_class_means_do_not_move():
    # two classes with the same samples: their means coincide, no direction to move (ped_features: no move)
    rng = np.random.default_rng(4)
    base = rng.normal(size=(10, 6))
    f, y = np.concatenate([base, base]), np.repeat([0, 1], 10)
    rows = np.array([np.r_[0:10, 10:20:2], np.r_[0:5, 10:20]])
    np.testing.assert_allclose(ped_resampled(f, y, rows), [ped(f[r], y[r]) for r in rows], rtol=1e-9)
    np.testing.assert_allclose(ped_resampled(f, y, np.arange(20)[None]), [logme(f, y)], rtol=1e-9)


def test_ped_resampled_refuses_a_row_without_some_class():
    f, y = _classes(12, 4, 3, 1.0, 5)
    with pytest.raises(DeparaError, match="idx_sets: row 1 lacks a class"):
        ped_resampled(f, y, np.array([[0, 1, 2, 3], [0, 3, 6, 9]]))
    with pytest.raises(DeparaError, match="idx_sets"):
        ped_resampled(f, y, np.array([[0, 1, 99]]))


def test_peer_halves_equals_peer_score_row_by_row():
    f, y = _classes(40, 32, 4, 0.4, 6)
    halves = half_samples(40, 12, 0, y)
    ped_est, logme_est = get_estimator("ped"), get_estimator("logme")
    assert ped_est.resampled is not None and logme_est.resampled is None
    for est in (ped_est, logme_est):
        expected = [peer_score(est.name, f[h], y[h]) for h in halves]
        np.testing.assert_allclose(peer_halves(est, f, y, halves), expected, rtol=1e-9, atol=1e-12)
    # unstratified halves of tiny classes: a half-sample without some class goes row by row (PED on the
    # relabelled classes it has; NaN with a single class)
    f, y = _classes(12, 3, 4, 1.0, 7)
    rows = np.array([[0, 1, 2, 5], [0, 4, 8, 8], [0, 4, 1, 5]])  # row 1: class 0 only
    expected = [peer_score("ped", f[r], y[r]) for r in rows]
    assert np.isfinite(expected[0]) and np.isnan(expected[1]) and np.isfinite(expected[2])
    np.testing.assert_allclose(peer_halves(ped_est, f, y, rows), expected, rtol=1e-12)


def test_label_graph_score_builds_its_edges_once(monkeypatch):
    f, y = _classes(30, 8, 3, 0.5, 8)
    res = Resamples(30, half_samples(30, 15, 0, y))
    est = get_estimator("depara_labels")
    edges = depara_family.depara_labels_edges(None, f)
    expected = np.concatenate([depara_family.depara_labels_resampled(edges, y, np.arange(30)[None]),
                               depara_family.depara_labels_resampled(edges, y, res.halves)])
    calls = []
    original = depara_family.depara_labels_edges
    monkeypatch.setattr(depara_family, "depara_labels_edges", lambda *a: calls.append(1) or original(*a))
    np.testing.assert_array_equal(res.at_once(est, None, f, y), expected)
    assert len(calls) == 1 and expected.shape == (16,)
