"""depara.evaluation.rank_quality: P@K / R@K as the paper counts them, rank correlations, truth helpers, bad input."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from depara.evaluation import rank_quality as ev
from depara.errors import DeparaError


# ------------------------------------------------------------------------------------------------ helpers
def _shared_truth(shared_data):
    sort_gt = np.loadtxt(shared_data / "taskonomy" / "sort_gt_18x20.csv", delimiter=",", dtype=int)
    return sort_gt, ev.truth_from_sort_gt(sort_gt)


def _affinity(shared_data, name):
    names, m = ev.read_matrix_csv(shared_data / "taskonomy" / name)
    return names, m


def _loop_count(scores, sort_gt, relevant=5):
    """Independent count, the paper's protocol in plain Python: per target, rank the 19 others by score (ties:
    non-relevant first), take top K, count members of sort_gt's first `relevant` sources."""
    n = len(sort_gt[0])
    hits = [0] * (n - 1)
    for row in sort_gt:
        target = int(row[0])
        rel = set(int(x) for x in row[1:1 + relevant])
        others = [s for s in range(n) if s != target]
        ranked = sorted(others, key=lambda s: (-scores[target][s], s in rel))
        for k in range(1, n):
            hits[k - 1] += len(set(ranked[:k]) & rel)
    t = len(sort_gt)
    prec = [h / (t * k) for k, h in zip(range(1, n), hits)]
    rec = [h / (t * relevant) for h in hits]
    return hits, prec, rec


# ------------------------------------------------------------------------------------------------ must-hold
def test_truth_as_scores_gives_the_oracle_curve(shared_data):
    _, truth = _shared_truth(shared_data)
    c = ev.precision_recall_at_k(truth, truth)
    k = np.arange(1, 20)
    np.testing.assert_array_equal(c.k, k)
    np.testing.assert_allclose(c.precision, np.minimum(1.0, 5.0 / k))
    np.testing.assert_allclose(c.hits, 18 * np.minimum(k, 5))
    np.testing.assert_allclose(c.recall, np.minimum(k, 5) / 5)
    orc = ev.oracle_curve(18, 19, 5)
    np.testing.assert_allclose(c.precision, orc.precision)
    assert c.n_targets == 18 and c.relevant == 5 and c.n_candidates == 19


def test_random_scores_average_to_relevant_over_candidates(shared_data):
    _, truth = _shared_truth(shared_data)
    rng = np.random.default_rng(0)
    prec = np.mean([ev.precision_recall_at_k(rng.random((20, 20)), truth).precision for _ in range(300)], axis=0)
    # per-seed std of P@1 is ~0.10; over 300 seeds the mean is within ~0.006 of 5/19
    np.testing.assert_allclose(prec, 5 / 19, atol=0.03)
    np.testing.assert_allclose(ev.random_curve(18, 19, 5).precision, 5 / 19)


def test_small_case_counted_by_hand():
    # 4 tasks (rows targets, columns sources); task 3 is a source only.
    nan = np.nan
    truth = np.array([[nan, 3.0, 2.0, 1.0],   # target 0: best sources 1, 2 (relevant=2)
                      [1.0, nan, 3.0, 2.0],   # target 1: best 2, 3
                      [3.0, 1.0, nan, 2.0],   # target 2: best 0, 3
                      [nan, nan, nan, nan]])
    scores = np.array([[0.0, 0.1, 0.9, 0.5],  # target 0 ranks 2, 3, 1 -> K1: {2} 1 hit; K2: {2,3} 1; K3: 2
                       [0.8, 0.0, 0.1, 0.2],  # target 1 ranks 0, 3, 2 -> K1: 0; K2: {0,3} 1; K3: 2
                       [0.7, 0.6, 0.0, 0.1]])  # target 2 ranks 0, 1, 3 -> K1: 1; K2: 1; K3: 2
    scores = np.vstack([scores, np.zeros(4)])
    c = ev.precision_recall_at_k(scores, truth, relevant=2)
    np.testing.assert_array_equal(c.hits, [2, 3, 6])
    np.testing.assert_allclose(c.precision, [2 / 3, 3 / 6, 6 / 9])
    np.testing.assert_allclose(c.recall, [2 / 6, 3 / 6, 6 / 6])
    np.testing.assert_array_equal(c.per_target_hits, [[1, 1, 2], [0, 1, 2], [1, 1, 2]])
    assert c.targets == ("0", "1", "2")
    assert c.at(2) == (3.0, 0.5, 0.5)
    rows = c.rows("m")
    assert rows[0] == {"method": "m", "K": 1, "hits": 2, "precision": 2 / 3, "recall": 1 / 3}
    # top-1 picks: target0 -> source 2 (truth 2 of best 3), target1 -> 0 (1 of 3), target2 -> 0 (3 of 3)
    rc = ev.rank_correlations(scores, truth)
    np.testing.assert_allclose(rc.top1_truth, [2, 1, 3])
    np.testing.assert_allclose(rc.relative_accuracy, [2 / 3, 1 / 3, 1])
    np.testing.assert_allclose(rc.regret, [1, 2, 0])
    np.testing.assert_array_equal(rc.top1_hit, [False, False, True])
    assert rc.mean["top1_hit_rate"] == pytest.approx(1 / 3)


def test_same_inputs_in_another_task_order_give_the_same_curve(shared_data):
    _, truth = _shared_truth(shared_data)
    names = [f"t{i}" for i in range(20)]
    rng = np.random.default_rng(1)
    scores = rng.random((20, 20))
    scores[3, :] = 0.5  # a constant row: ties must not depend on the order either
    scores[4, 7] = scores[4, 9] = scores[4, 11] = 0.99
    base = ev.precision_recall_at_k(scores, truth, names=names)
    perm = rng.permutation(20)
    p_names = [names[i] for i in perm]
    p_scores = scores[np.ix_(perm, perm)]
    p_truth = truth[np.ix_(perm, perm)]
    for ties in ("pessimistic", "expected"):
        a = ev.precision_recall_at_k(scores, truth, names=names, ties=ties)
        b = ev.precision_recall_at_k(p_scores, p_truth, names=p_names, ties=ties)
        np.testing.assert_allclose(a.hits, b.hits)
        np.testing.assert_allclose(a.precision, b.precision)
    # truth given in its own order with names: aligned before counting
    c = ev.precision_recall_at_k(scores, p_truth, names=names, truth_names=p_names)
    np.testing.assert_allclose(c.hits, base.hits)
    ra = ev.rank_correlations(scores, truth, names=names)
    rb = ev.rank_correlations(p_scores, p_truth, names=p_names)
    assert ra.mean == pytest.approx(rb.mean, nan_ok=True)


@pytest.mark.parametrize("matrix", ["affinity_16k_target_by_source.csv", "affinity_default_target_by_source.csv",
                                    "winrate_vs_pixels_16k_target_by_source.csv",
                                    "winrate_vs_task_16k_target_by_source.csv", "negated", "random", "constant"])
def test_pk_rk_equal_an_independent_count_on_shared_sort_gt(shared_data, matrix):
    sort_gt, truth = _shared_truth(shared_data)
    if matrix == "negated":
        scores = -_affinity(shared_data, "affinity_16k_target_by_source.csv")[1]
    elif matrix == "random":
        scores = np.random.default_rng(5).normal(size=(20, 20))
    elif matrix == "constant":
        scores = np.ones((20, 20))
    else:
        scores = _affinity(shared_data, matrix)[1]
    scores = np.where(np.isnan(scores), 0.0, scores)  # source-only rows are not evaluated
    hits, prec, rec = _loop_count(scores.tolist(), sort_gt.tolist())
    c = ev.precision_recall_at_k(scores, truth)
    np.testing.assert_array_equal(c.hits, hits)
    np.testing.assert_allclose(c.precision, prec)
    np.testing.assert_allclose(c.recall, rec)


def test_affinity_16k_reproduces_sort_gt(shared_data):
    sort_gt, truth = _shared_truth(shared_data)
    names, aff = _affinity(shared_data, "affinity_16k_target_by_source.csv")
    tasks = (shared_data / "taskonomy" / "tasks.txt").read_text().split()
    assert list(names) == tasks
    assert ev.relevant_sets(aff) == ev.relevant_sets(truth)
    rel = ev.relevant_sets(truth, 5, names=tasks)
    assert rel[tasks[0]] == [tasks[i] for i in sort_gt[0, 1:6]]
    scores = np.random.default_rng(2).random((20, 20))
    np.testing.assert_array_equal(ev.precision_recall_at_k(scores, aff).hits,
                                  ev.precision_recall_at_k(scores, truth).hits)


def test_truth_from_sort_gt_values():
    sort_gt = np.array([[0, 2, 1, 3], [2, 3, 0, 1]])
    t = ev.truth_from_sort_gt(sort_gt)
    assert np.all(np.isnan(t[1])) and np.all(np.isnan(t[3]))
    np.testing.assert_array_equal(t[0, [2, 1, 3]], [3, 2, 1])
    np.testing.assert_array_equal(t[2, [3, 0, 1]], [3, 2, 1])
    assert np.isnan(t[0, 0]) and np.isnan(t[2, 2])


# ----------------------------------------------------------------------------------------------------- ties
def test_ties_pessimistic_and_expected():
    truth = np.array([[np.nan, 3, 2, 1], [3, np.nan, 2, 1], [3, 2, np.nan, 1], [3, 2, 1, np.nan]], float)
    const = np.zeros((4, 4))
    pess = ev.precision_recall_at_k(const, truth, relevant=1)
    np.testing.assert_array_equal(pess.hits, [0, 0, 4])  # the relevant source is ranked last among ties
    exp = ev.precision_recall_at_k(const, truth, relevant=1, ties="expected")
    np.testing.assert_allclose(exp.hits, ev.random_curve(4, 3, 1).hits)  # = 4·K/3
    # a tie only between the best two (one relevant): pessimistic 0 hits at K=1, expected 0.5
    s = np.array([[0, 5, 5, 1]] * 4, float)
    s_truth = truth.copy()
    one = ev.precision_recall_at_k(s[:1].repeat(4, 0), s_truth, relevant=1, ks=[1])
    assert one.per_target_hits[0, 0] == 0
    one_e = ev.precision_recall_at_k(s[:1].repeat(4, 0), s_truth, relevant=1, ks=[1], ties="expected")
    assert one_e.per_target_hits[0, 0] == pytest.approx(0.5)
    rc = ev.rank_correlations(s, truth)
    assert rc.top1_truth[0] == 2  # worst of the tied top (sources 1 and 2: truth 3 and 2)
    assert ev.rank_correlations(s, truth, ties="expected").top1_truth[0] == pytest.approx(2.5)


def test_truth_ties_are_broken_by_name_not_position():
    truth = np.array([[np.nan, 1, 1, 0], [0, np.nan, 1, 1], [1, 1, np.nan, 0], [1, 0, 1, np.nan]], float)
    names = ["d", "c", "b", "a"]
    rel = ev.relevant_sets(truth, 1, names=names)
    assert rel == {"d": ["b"], "c": ["a"], "b": ["c"], "a": ["b"]}


# ---------------------------------------------------------------------------------------- rank correlations
def test_rank_correlations_match_scipy_per_target(shared_data):
    _, truth = _shared_truth(shared_data)
    scores = np.random.default_rng(3).random((20, 20))
    rc = ev.rank_correlations(scores, truth)
    targets = [i for i in range(20) if not np.all(np.isnan(truth[i]))]
    for row, i in enumerate(targets):
        cand = [j for j in range(20) if j != i]
        assert rc.spearman[row] == pytest.approx(stats.spearmanr(scores[i, cand], truth[i, cand])[0])
        assert rc.kendall[row] == pytest.approx(stats.kendalltau(scores[i, cand], truth[i, cand])[0])
        assert rc.weighted_tau[row] == pytest.approx(stats.weightedtau(scores[i, cand], truth[i, cand])[0])
    assert rc.mean["spearman"] == pytest.approx(np.mean(rc.spearman))
    assert rc.mean["n_targets"] == 18
    perfect = ev.rank_correlations(truth, truth)
    assert perfect.mean["spearman"] == pytest.approx(1) and perfect.mean["regret"] == 0
    assert np.isnan(ev.rank_correlations(np.ones((20, 20)), truth).spearman).all()
    assert len(rc.rows("x")) == 18 and rc.rows("x")[0]["method"] == "x"


# --------------------------------------------------------------------------------------------- properties
@settings(max_examples=40, deadline=None)
@given(st.integers(3, 9), st.integers(0, 2**31 - 1), st.data())
def test_curve_properties(n, seed, data):
    rng = np.random.default_rng(seed)
    relevant = data.draw(st.integers(1, n - 1))
    scores = rng.integers(0, 4, size=(n, n)).astype(float)  # many ties on purpose
    truth = rng.random((n, n))
    c = ev.precision_recall_at_k(scores, truth, relevant)
    t = n
    assert np.all(np.diff(c.hits) >= 0)
    assert c.hits[-1] == t * relevant  # all candidates taken: every relevant source is hit
    assert np.all(c.hits <= t * np.minimum(c.k, relevant))
    assert np.all((c.precision >= 0) & (c.precision <= 1) & (c.recall <= 1))
    e = ev.precision_recall_at_k(scores, truth, relevant, ties="expected")
    assert np.all(e.hits >= c.hits - 1e-9)  # pessimistic is a lower bound
    perm = rng.permutation(n)
    names = [f"x{i}" for i in range(n)]
    p = ev.precision_recall_at_k(scores[np.ix_(perm, perm)], truth[np.ix_(perm, perm)], relevant,
                                 names=[names[i] for i in perm])
    q = ev.precision_recall_at_k(scores, truth, relevant, names=names)
    np.testing.assert_allclose(p.hits, q.hits)


# --------------------------------------------------------------------------------------------- CSV I/O
def test_matrix_csv_round_trip(tmp_path):
    m = np.arange(9, dtype=float).reshape(3, 3) / 7
    m[1] = np.nan
    ev.write_matrix_csv(tmp_path / "m.csv", ["a", "b", "c"], m)
    names, back = ev.read_matrix_csv(tmp_path / "m.csv")
    assert names == ("a", "b", "c")
    np.testing.assert_array_equal(np.isnan(back), np.isnan(m))
    np.testing.assert_array_equal(back[~np.isnan(m)], m[~np.isnan(m)])


def test_matrix_csv_bad_input(tmp_path):
    with pytest.raises(DeparaError, match="file not found"):
        ev.read_matrix_csv(tmp_path / "nope.csv")
    (tmp_path / "a.csv").write_text("x,a,b\na,1,2\nc,3,4\n")
    with pytest.raises(DeparaError, match="row names"):
        ev.read_matrix_csv(tmp_path / "a.csv")
    (tmp_path / "b.csv").write_text("x,a,b\na,1,zz\nb,3,4\n")
    with pytest.raises(DeparaError, match="'zz' is not a number"):
        ev.read_matrix_csv(tmp_path / "b.csv")
    (tmp_path / "c.csv").write_text("x,a,b\na,1\nb,3,4\n")
    with pytest.raises(DeparaError, match="row a has 1 values"):
        ev.read_matrix_csv(tmp_path / "c.csv")


# ---------------------------------------------------------------------------------------------- bad input
def _ok():
    rng = np.random.default_rng(0)
    return rng.random((5, 5)), rng.random((5, 5))


def _one_line(exc_info):
    msg = str(exc_info.value)
    assert "\n" not in msg and msg
    return msg


def test_bad_shapes_and_task_sets():
    s, t = _ok()
    with pytest.raises(DeparaError, match=r"scores shape \(5, 5\) and truth shape \(4, 4\) differ") as e:
        ev.precision_recall_at_k(s, t[:4, :4])
    _one_line(e)
    with pytest.raises(DeparaError, match="expected a square"):
        ev.precision_recall_at_k(s[:, :4], t)
    with pytest.raises(DeparaError, match=r"missing tasks \['e'\]; unexpected tasks \['z'\]"):
        ev.precision_recall_at_k(s, t, names="abcde", truth_names="abcdz")
    with pytest.raises(DeparaError, match="4 names for a 5x5"):
        ev.precision_recall_at_k(s, t, names="abcd")
    with pytest.raises(DeparaError, match="duplicate task names"):
        ev.precision_recall_at_k(s, t, names="abcda")


def test_nan_scores_and_truth_name_the_task():
    s, t = _ok()
    s[2, 4] = np.nan
    with pytest.raises(DeparaError, match="target c, source e") as e:
        ev.precision_recall_at_k(s, t, names="abcde")
    _one_line(e)
    s, t = _ok()
    s[2, 2] = np.nan  # the diagonal is never a candidate
    ev.precision_recall_at_k(s, t, relevant=2)
    t[1, 3] = np.nan
    with pytest.raises(DeparaError, match="target b has no truth for source d"):
        ev.precision_recall_at_k(s, t, relevant=2, names="abcde")
    with pytest.raises(DeparaError, match="every row is NaN"):
        ev.precision_recall_at_k(s, np.full((5, 5), np.nan))
    s, t = _ok()
    s[0, 1] = np.inf
    with pytest.raises(DeparaError, match="non-finite score"):
        ev.rank_correlations(s, t)


def test_k_and_relevant_out_of_range():
    s, t = _ok()
    with pytest.raises(DeparaError, match=r"K=0 out of range: expected an integer in 1\.\.4"):
        ev.precision_recall_at_k(s, t, relevant=2, ks=[0, 1])
    with pytest.raises(DeparaError, match="K=5 out of range"):
        ev.precision_recall_at_k(s, t, relevant=2, ks=[5])
    with pytest.raises(DeparaError, match="K=1.5 out of range"):
        ev.precision_recall_at_k(s, t, relevant=2, ks=[1.5])
    with pytest.raises(DeparaError, match=r"relevant=5: expected an integer in 1\.\.4"):
        ev.precision_recall_at_k(s, t, relevant=5)
    with pytest.raises(DeparaError, match="relevant=0"):
        ev.precision_recall_at_k(s, t, relevant=0)
    with pytest.raises(DeparaError, match="ties='random'"):
        ev.precision_recall_at_k(s, t, relevant=2, ties="random")
    c = ev.precision_recall_at_k(s, t, ks=[2, 4], relevant=2)
    with pytest.raises(DeparaError, match="K=3 not in this curve"):
        c.at(3)


def test_bad_sort_gt():
    with pytest.raises(DeparaError, match="row 1: expected a permutation"):
        ev.truth_from_sort_gt([[0, 1, 2], [1, 1, 2]])
    with pytest.raises(DeparaError, match="row 1: target 0 appears twice"):
        ev.truth_from_sort_gt([[0, 1, 2], [0, 2, 1]])
    with pytest.raises(DeparaError, match="expected 4"):
        ev.truth_from_sort_gt([[0, 1, 2]], n_tasks=4)
    with pytest.raises(DeparaError, match="whole task indices"):
        ev.truth_from_sort_gt([[0, 1.5, 2]])
    with pytest.raises(DeparaError, match="2-D array"):
        ev.truth_from_sort_gt([0, 1, 2])


def test_combine():
    v, e = np.eye(3), np.ones((3, 3))
    np.testing.assert_allclose(ev.combine(v, e, 0.25), v + 0.25)
    with pytest.raises(DeparaError, match="differ"):
        ev.combine(v, e[:2], 1)
    with pytest.raises(DeparaError, match="lam: expected"):
        ev.combine(v, e, float("nan"))
    # λ = ∞: the edge term alone, whatever V is (even absent); V NaN (node-less graph) → λE
    np.testing.assert_array_equal(ev.combine(v, e, float("inf")), e)
    np.testing.assert_array_equal(ev.combine(np.full((3, 3), np.nan), e, float("inf")), e)
    np.testing.assert_allclose(ev.combine(np.array([np.nan, 0.5]), np.array([0.2, 0.4]), 2.0), [0.4, 1.3])
    assert ev.combine(0.5, 0.2, 1.0) == pytest.approx(0.7) and isinstance(ev.combine(0.5, 0.2, 1.0), float)


def test_default_lambda_follows_the_frozen_node_weight():
    import math

    from depara.options import DEFAULT_LAMBDA, DEFAULT_NODE_WEIGHT, format_lam

    assert DEFAULT_LAMBDA == (math.inf if DEFAULT_NODE_WEIGHT == 0 else 1 / DEFAULT_NODE_WEIGHT)
    assert format_lam(math.inf) == "∞" and format_lam(0.25) == "0.25"
