"""The pretrained bank's rule (depara.benches.realbank.rule) on hand-made tables."""

from __future__ import annotations

import numpy as np
import pytest

from depara.benches.realbank import rule as R

LAYERS = {"a": ("l1", "l2", "l3"), "b": ("l1", "l2", "l3"), "c": ("l1", "l2", "l3")}


def _layers(s):
    return LAYERS[s]


TRUTH = {  # per seed (2 seeds); best layers: a→l3 (0.9), b→l2 (0.7), c→l1 (0.5)
    "a": {"l1": [0.1, 0.1], "l2": [0.5, 0.5], "l3": [0.9, 0.9]},
    "b": {"l1": [0.2, 0.2], "l2": [0.7, 0.7], "l3": [0.3, 0.3]},
    "c": {"l1": [0.5, 0.5], "l2": [0.4, 0.4], "l3": [0.1, 0.1]},
}


def test_truth_views_take_each_sources_best_layer():
    model, layers, joint, per_seed = R.truth_views(TRUTH, ["a", "b", "c"], _layers)
    np.testing.assert_allclose(model, [0.9, 0.7, 0.5])
    np.testing.assert_allclose(per_seed, [[0.9, 0.7, 0.5]] * 2)
    assert joint.shape == (9,)


def test_reads_and_measures_by_hand():
    # scorer x: perfect layer order for a; for b it prefers l3 (truth 0.3, best is l2 0.7); for c perfect
    scores = {"a": {"x": {"l1": 0, "l2": 1, "l3": 2}}, "b": {"x": {"l1": 0, "l2": 1, "l3": 5}},
              "c": {"x": {"l1": 3, "l2": 2, "l3": 1}}}
    assert R.read_layers(np.array([0.0, 1.0, 5.0]), "below") == 1.0
    assert R.read_layers(np.array([3.0, np.nan, 1.0]), "max") == 3.0
    m = R.target_measures(TRUTH, scores, ["a", "b", "c"], R.Candidate(("x",), "last"), _layers)
    # model scores by the last layer: a 2, b 5, c 1 -> picks b (0.7) while a (0.9) is best: regret 20 points
    assert m["model_regret"] == pytest.approx(20.0)
    assert m["layer_pick"] == pytest.approx(2 / 3)
    # joint: the highest score of all 9 pairs is b/l3 (5): truth 0.3 vs best 0.9 -> 60 points
    assert m["joint_regret"] == pytest.approx(60.0)
    m_max = R.target_measures(TRUTH, scores, ["a", "b", "c"], R.Candidate(("x",), "max"), _layers)
    assert m_max["model_regret"] == pytest.approx(20.0)


def test_combination_averages_ranks():
    scores = {"a": {"x": {"l1": 0, "l2": 1, "l3": 2}, "y": {"l1": 9, "l2": 1, "l3": 0}},
              "b": {"x": {"l1": 0, "l2": 1, "l3": 1}, "y": {"l1": 0, "l2": 1, "l3": 2}},
              "c": {"x": {"l1": 5, "l2": 6, "l3": 7}, "y": {"l1": 0, "l2": 0, "l3": 3}}}
    model, layers, joint = R.candidate_views(scores, ["a", "b", "c"], R.Candidate(("x", "y"), "last"), _layers)
    # last-layer values: x (2, 1, 7) -> ranks (2, 1, 3); y (0, 2, 3) -> ranks (1, 2, 3); mean (1.5, 1.5, 3)
    np.testing.assert_allclose(model, [1.5, 1.5, 3.0])
    # source a's layers: x (0, 1, 2) -> (1, 2, 3); y (9, 1, 0) -> (3, 2, 1); mean (2, 2, 2)
    np.testing.assert_allclose(layers[0], [2.0, 2.0, 2.0])
    assert joint.shape == (9,)


def test_rule_score_and_choice():
    rows = [{"model_wtau": 0.5, "layer_wtau": 0.1}, {"model_wtau": 0.7, "layer_wtau": 0.3}]
    assert R.rule_score(rows) == pytest.approx(0.5 * 0.6 + 0.5 * 0.2)
    d, p = R.Candidate(("d",), "last"), R.Candidate(("p",), "last")
    combo = R.Candidate(("d", "p"), "last")
    chosen, _ = R.choose({d: 0.4, p: 0.6, combo: 0.55}, members={"d"})  # combo does not beat p: not eligible
    assert chosen == d
    chosen, _ = R.choose({d: 0.4, p: 0.6, combo: 0.65}, members={"d"})
    assert chosen == combo
    assert R.choose({d: 0.4, p: 0.6}, members=None)[0] == p


def test_missing_scores_rank_last():
    np.testing.assert_array_equal(R.lowest_for_missing(np.array([0.5, np.nan, 0.2])), [0.5, -0.8, 0.2])
    np.testing.assert_array_equal(R.lowest_for_missing(np.array([np.nan, np.nan])), [0.0, 0.0])
    scores = {s: {"x": {"l1": np.nan, "l2": np.nan, "l3": v}} for s, v in (("a", 1.0), ("b", np.nan), ("c", 0.0))}
    m = R.target_measures(TRUTH, scores, ["a", "b", "c"], R.Candidate(("x",), "last"), _layers)
    assert m["model_regret"] == 0.0  # a (the best) scores highest; b's missing score ranks it last


def test_a_combination_leaves_a_candidate_missing_from_a_part_unranked():
    """select's rule (depara.evaluation.rank_quality.rank_average): a candidate missing from one part has no rank
    average and the others are ranked without it; the rank measures then place it last, like a missing single
    score."""
    nan = np.nan
    scores = {"a": {"x": {"l1": 0, "l2": 1, "l3": 2}, "y": {"l1": 9, "l2": 1, "l3": 0}},
              "b": {"x": {"l1": 0, "l2": 1, "l3": 1}, "y": {"l1": 0, "l2": 1, "l3": nan}},
              "c": {"x": {"l1": 5, "l2": 6, "l3": 7}, "y": {"l1": 0, "l2": 0, "l3": 3}}}
    model, layers, joint = R.candidate_views(scores, ["a", "b", "c"], R.Candidate(("x", "y"), "last"), _layers)
    # last layer: b has no y -> no average; a, c: x (2, 7) -> (1, 2), y (0, 3) -> (1, 2): (1, NaN, 2)
    np.testing.assert_array_equal(model, [1.0, nan, 2.0])
    # source b's layers: l3 has no y; l1, l2: x (0, 1) -> (1, 2), y (0, 1) -> (1, 2)
    np.testing.assert_array_equal(layers[1], [1.0, 2.0, nan])
    assert np.isnan(joint[5]) and np.isfinite(np.delete(joint, 5)).all()
    # joint: x over the 8 other pairs (0,1,2, 0,1, 5,6,7) -> ranks (1.5,3.5,5, 1.5,3.5, 6,7,8); y (9,1,0, 0,1, 0,0,3)
    # -> (8, 5.5, 2.5, 2.5, 5.5, 2.5, 2.5, 7): a/l1 (1.5 + 8) / 2
    assert joint[0] == pytest.approx((1.5 + 8) / 2)
    m = R.target_measures(TRUTH, scores, ["a", "b", "c"], R.Candidate(("x", "y"), "last"), _layers)
    assert m["model_regret"] == pytest.approx(40.0)  # c (2) first, a next, b (no average) last: c's 0.5 vs a's 0.9


def test_model_truths_judge_the_model_ranking_per_protocol():
    """Round 6's 32-px bank: the model ranking against each protocol's own truth, the layers against the layers'."""
    scores = {"a": {"x": {"l1": 0, "l2": 1, "l3": 2}}, "b": {"x": {"l1": 0, "l2": 1, "l3": 5}},
              "c": {"x": {"l1": 3, "l2": 2, "l3": 1}}}
    cand = R.Candidate(("x",), "last")  # model scores a 2, b 5, c 1
    truths = {"lp": np.array([0.9, 0.7, 0.5]), "ft": np.array([0.5, 0.9, 0.1])}
    m = R.target_measures(TRUTH, scores, ["a", "b", "c"], cand, _layers, model_truths=truths)
    plain = R.target_measures(TRUTH, scores, ["a", "b", "c"], cand, _layers)
    # ft: the scores order b > a > c exactly as the truth does; lp: b picked (0.7) while a (0.9) is best
    assert m["model_regret_ft"] == 0.0 and m["model_kendall_ft"] == pytest.approx(1.0)
    assert m["model_wtau_ft"] == pytest.approx(1.0)
    assert m["model_regret_lp"] == pytest.approx(20.0)
    assert m["model_kendall_lp"] == pytest.approx(1 / 3)  # (a,b) discordant, (a,c) and (b,c) concordant
    assert m["model_regret"] == pytest.approx(10.0) and m["model_kendall"] == pytest.approx(2 / 3)
    assert m["model_wtau"] == pytest.approx((m["model_wtau_lp"] + 1.0) / 2)
    for k in ("layer_wtau", "layer_pick", "joint_regret"):  # the layers still read the layer truth
        assert m[k] == plain[k]


def test_two_bench_score_is_the_worse_bench_and_choose_reads_it():
    a = [{"model_wtau": 0.6, "layer_wtau": 0.2}]  # rule score 0.4
    b = [{"model_wtau": 0.2, "layer_wtau": 0.4}, {"model_wtau": 0.4, "layer_wtau": 0.2}]  # 0.3
    assert R.two_bench_score(a, b) == pytest.approx(0.3)
    assert R.two_bench_score(b, a) == pytest.approx(0.3)
    d, p = R.Candidate(("d",), "last"), R.Candidate(("p",), "last")
    combo = R.Candidate(("d", "p"), "last")
    ok = R.eligible({d: 0.4, p: 0.5, combo: 0.5}, members={"d"})  # a tie with a part is not a win
    assert set(ok) == {d}
