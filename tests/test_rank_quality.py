"""rank_quality: THE evaluation of one ranking, against scipy's own functions and hand-computed cases."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from depara.errors import DeparaError
from depara.evaluation.rank_quality import pessimistic_order, precision_recall_at_k, rank_quality


def test_hand_computed_case_with_ties():
    # truth: b and d best (0.9), c 0.7, a 0.5; scores tie b and c at the top
    q = rank_quality([0.5, 0.9, 0.7, 0.9], [1, 2, 2, 0], names="abcd", ks=(1, 3, 9))
    assert (q.pick, q.pick_name, q.pick_truth) == (2, "c", 0.7)  # worst truth among the tied top scores
    assert (q.best, q.best_name, q.best_truth) == (1, "b", 0.9)
    assert q.regret == pytest.approx(0.2) and q.relative_accuracy == pytest.approx(0.7 / 0.9)
    # relevant top-1 = {b}; ranked c, b, a, d -> P@1 = 0; relevant top-3 = {b, d, c} -> c, b hit -> 2/3
    assert q.p_at_k == {1: 0.0, 3: pytest.approx(2 / 3)}  # K = 9 > S dropped
    assert q.as_row()["pick"] == "c" and q.as_row()["p_at_3"] == pytest.approx(2 / 3)


def test_constant_scores_are_worst_case_and_nan_correlations():
    q = rank_quality([3.0, 1.0, 2.0], [0.0, 0.0, 0.0])
    assert q.pick == 1 and q.regret == 2.0 and q.p_at_k[1] == 0.0
    assert np.isnan(q.kendall) and np.isnan(q.spearman) and np.isnan(q.pearson) and np.isnan(q.weighted_tau)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 4), st.integers(0, 4)), min_size=3, max_size=12))
def test_matches_scipy_and_brute_force(pairs):
    truth = np.array([p[0] for p in pairs], dtype=float) + np.arange(len(pairs)) * 1e-3  # distinct truths
    scores = np.array([p[1] for p in pairs], dtype=float)
    q = rank_quality(truth, scores, ks=range(1, len(pairs) + 1))
    if np.ptp(scores) > 0:
        assert q.kendall == pytest.approx(stats.kendalltau(scores, truth).statistic)
        assert q.spearman == pytest.approx(stats.spearmanr(scores, truth).statistic)
        assert q.pearson == pytest.approx(stats.pearsonr(scores, truth).statistic)
        assert q.weighted_tau == pytest.approx(stats.weightedtau(scores, truth).statistic)
    top = np.flatnonzero(scores == scores.max())
    assert q.pick_truth == truth[top].min()
    for k, p in q.p_at_k.items():
        relevant = set(np.argsort(-truth)[:k])
        # pessimistic: among the candidates tied at the K-th score, count only as many relevant ones as must be in
        kth = np.sort(scores)[::-1][k - 1]
        above = [i for i in range(len(scores)) if scores[i] > kth]
        tied = [i for i in range(len(scores)) if scores[i] == kth]
        slots = k - len(above)
        hits = sum(i in relevant for i in above) + max(0, slots - sum(i not in relevant for i in tied))
        assert p == pytest.approx(hits / k)


def test_shares_the_tie_rule_with_the_paper_curve():
    # one target (row 0) over 4 sources: the curve's hits at K equal rank_quality's P@K·K when relevant = K
    rng = np.random.default_rng(0)
    truth = np.full((5, 5), np.nan)
    truth[0, 1:] = rng.permutation(4) + 1.0
    scores = np.zeros((5, 5))
    scores[0, 1:] = [1, 1, 0, 1]
    for k in (1, 2, 3):
        curve = precision_recall_at_k(scores, truth, relevant=k, ks=[k])
        assert curve.hits[0] == rank_quality(truth[0, 1:], scores[0, 1:], ks=[k]).p_at_k[k] * k
    assert list(pessimistic_order(np.array([1, 1, 0]), np.array([5, 2, 9]))) == [1, 0, 2]


@pytest.mark.parametrize("truth, scores, match", [
    ([1, 2], [1, 2, 3], "scores"), ([1, np.nan], [1, 2], "truth"), ([[1, 2]], [[1, 2]], "truth"), ([], [], "truth")])
def test_bad_input_names_the_argument(truth, scores, match):
    with pytest.raises(DeparaError, match=match):
        rank_quality(truth, scores)


def test_task_matrix_correlations_are_rank_quality_per_target():
    from depara.evaluation.rank_quality import rank_correlations

    rng = np.random.default_rng(1)
    scores, truth = rng.random((6, 6)), rng.random((6, 6))
    scores[2, :] = 0.5  # a constant row: NaN correlations, pessimistic pick
    rc = rank_correlations(scores, truth, names=list("abcdef"))
    assert len(rc.per_target) == 6
    for i, q in enumerate(rc.per_target):
        cand = [j for j in range(6) if j != i]
        want = rank_quality(truth[i, cand], scores[i, cand], ks=())
        assert (q.pick_truth, q.regret) == (want.pick_truth, want.regret) == (rc.top1_truth[i], rc.regret[i])
        assert q.pick_name == "abcdef"[cand[want.pick]]
        np.testing.assert_equal(q.kendall, rc.kendall[i])


def test_rank_average_is_one_rule_for_select_and_the_bank():
    """One rank average (depara.evaluation.rank_quality.rank_average) for select's default and the pretrained
    bank's combinations: NaN and ±inf are missing; a candidate missing from any part has none, the others are
    ranked without it (scipy's average ranks, 1 = lowest); further axes are handled one index at a time."""
    from scipy.stats import rankdata

    from depara.benches.realbank import rule
    from depara.evaluation.rank_quality import rank_average
    from depara.selection import scoring

    x = np.array([0.1, np.nan, 0.3, 0.2, 5.0])
    y = np.array([3.0, 1.0, 2.0, 2.0, np.inf])
    # candidates 0, 2, 3: x (0.1, 0.3, 0.2) -> (1, 3, 2); y (3, 2, 2) -> (3, 1.5, 1.5)
    np.testing.assert_array_equal(rank_average(np.stack([x, y])), [2.0, np.nan, 2.25, 1.75, np.nan])
    ok = np.isfinite(x) & np.isfinite(y)
    np.testing.assert_array_equal(rank_average(np.stack([x, y]))[ok], (rankdata(x[ok]) + rankdata(y[ok])) / 2)
    cube = np.stack([np.stack([x, x[::-1]], axis=1), np.stack([y, y[::-1]], axis=1)])  # parts × candidates × 2
    got = rank_average(cube)
    np.testing.assert_array_equal(got[:, 0], rank_average(np.stack([x, y])))
    np.testing.assert_array_equal(got[:, 1], rank_average(np.stack([x[::-1], y[::-1]])))
    assert np.isnan(rank_average(np.full((2, 3), np.nan))).all()
    assert scoring.rank_average is rank_average and rule.rank_average is rank_average
    with pytest.raises(DeparaError, match="parts: expected scorers × candidates"):
        rank_average(np.ones(3))
