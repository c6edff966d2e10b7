"""depara.benches.calibration: select's shipped scorer recomputed for a bench, and the reliability diagram, the
picks' record and the too-close record of hand-made cases."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import rankdata

from depara.benches import calibration as C
from depara.selection.verdict import Verdict


def test_shipped_values_are_the_rank_average_of_the_registry_parts():
    from depara.core.similarity_edges import probe_edges, resampled_label_agreement
    from depara.estimators.registry import SourceInputs, TargetInputs, get_estimator
    from depara.options import DEFAULT_EDGE_COMPARISON, DEFAULT_EDGE_KNN_K, DEFAULT_EDGE_SCALE, DEFAULT_RANK_PEER
    from depara.selection.scorers import LABELS_DEFAULT

    from depara.evaluation.uncertainty import BENCH_SCORER

    assert C.SHIPPED == LABELS_DEFAULT == f"depara_labels_{DEFAULT_RANK_PEER}" == BENCH_SCORER
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(3), 8)
    feats = [rng.normal(size=(24, 5)) + s * np.eye(3, 5)[y] for s in (0.5, 1.5, 3.0)]
    halves = np.array([np.sort(rng.permutation(24)[:12]) for _ in range(3)])
    got = C.shipped_values(feats, y, halves)
    assert got.shape == (1, 3, 4)
    label, peer = get_estimator("depara_labels"), get_estimator(DEFAULT_RANK_PEER)
    full = [[label.score(SourceInputs(features=f), TargetInputs(labels=y)) for f in feats],
            [peer.score(SourceInputs(features=f), TargetInputs(labels=y)) for f in feats]]
    np.testing.assert_allclose(got[0, :, 0], (rankdata(full[0]) + rankdata(full[1])) / 2)
    for r, idx in enumerate(halves, start=1):  # 12 probes: k = min(DEFAULT_EDGE_KNN_K, 12 − 2) = 10
        e = [resampled_label_agreement(probe_edges(f, pooling="pooled", scale=DEFAULT_EDGE_SCALE), y,
                                       DEFAULT_EDGE_COMPARISON, idx[None], min(DEFAULT_EDGE_KNN_K, 10))[0]
             for f in feats]
        p = [peer.score(SourceInputs(features=f[idx]), TargetInputs(labels=y[idx])) for f in feats]
        np.testing.assert_allclose(got[0, :, r], (rankdata(e) + rankdata(p)) / 2)


def _rows() -> list[dict]:
    """Two targets of 3 candidates with a hand-made verdict each (shares, pick, too-close set) and truth."""
    a = Verdict({C.SHIPPED: np.array([[2.5, 3.0], [1.0, 2.0], [1.5, 2.8]])}, [0, 2, 1], 3,
                np.array([0.7, 0.05, 0.25]), [], [2])
    b = Verdict({C.SHIPPED: np.array([[2.9, 3.0], [1.0, 1.5], [1.0, 2.0]])}, [0, 2, 1], 3,
                np.array([0.95, 0.0, 0.05]), [], [])
    return (C.candidate_rows("a", ["x", "y", "z"], np.array([3.0, 1.0, 2.0]), a, np.array([80.0, 70.0, 80.5]))
            + C.candidate_rows("b", ["x", "y", "z"], np.array([3.0, 1.0, 2.0]), b, np.array([90.0, 60.0, 75.0])))


def test_candidate_rows_and_the_reliability_diagram_by_hand():
    rows = _rows()
    assert [(r["pick"], r["too_close"], r["best"], r["within1"]) for r in rows[:3]] == [
        (True, False, False, True), (False, False, False, False), (False, True, True, True)]
    np.testing.assert_allclose([r["regret"] for r in rows], [0.5, 10.5, 0.0, 0.0, 30.0, 15.0])
    assert rows[0]["lo"] == 2.5 and rows[0]["hi"] == 3.0 and rows[0]["share"] == 0.7
    # shares 0.7, 0.05, 0.25 | 0.95, 0.0, 0.05 in bins [0, 0.1), [0.1, 0.5), [0.5, 1]
    table = C.reliability_rows(rows, (0.0, 0.1, 0.5, 1.0))
    assert [t["count"] for t in table] == [3, 1, 2]
    np.testing.assert_allclose([t["mean_share"] for t in table], [0.1 / 3, 0.25, 0.825])
    np.testing.assert_allclose([t["best_rate"] for t in table], [0.0, 1.0, 0.5])  # y(a), y(b), z(b); z(a); x(a), x(b)
    np.testing.assert_allclose([t["within1_rate"] for t in table], [0.0, 1.0, 1.0])
    np.testing.assert_allclose([t["mean_regret"] for t in table], [(10.5 + 30 + 15) / 3, 0.0, 0.25])


def test_picks_thresholds_and_too_close_by_hand():
    picks = C.pick_rows(_rows())
    assert [(p["target"], p["pick"], p["too_close"], p["best_in_set"], p["within1_outside"]) for p in picks] == [
        ("a", "x", 1, True, False), ("b", "x", 0, True, False)]
    assert picks[0]["regret"] == pytest.approx(0.5) and picks[0]["within1"] and not picks[0]["best"]
    th = {t["share_at_least"]: t for t in C.threshold_rows(picks, (0.5, 0.9, 0.99))}
    assert th[0.5]["picks"] == 2 and th[0.5]["best_rate"] == 0.5 and th[0.5]["mean_regret"] == pytest.approx(0.25)
    assert th[0.9]["picks"] == 1 and th[0.9]["best_rate"] == 1.0 and th[0.9]["within1_rate"] == 1.0
    assert th[0.99]["picks"] == 0 and np.isnan(th[0.99]["best_rate"])
    summary = C.too_close_summary(picks)
    assert summary == {"targets": 2, "best_in_set": 1.0, "within1_in_set": 1.0, "within1_outside": 0.0,
                       "mean_set_size": 1.5, "mean_candidates": 3.0}


def test_label_free_values_are_the_edge_spearman_on_each_half_sample(tmp_path):
    """select's label-free default against a target model: E = Spearman of the source's and the target's edges,
    on all probes and on the subgraph of every half-sample (scipy's own Spearman on squareform's sub-matrices)."""
    from scipy.spatial.distance import squareform
    from scipy.stats import spearmanr

    from depara.core.graph import Graph
    from depara.evaluation.uncertainty import BENCH_LABEL_FREE_SCORER, half_samples
    from depara.selection.scorers import DEFAULT_SCORER

    assert C.LABEL_FREE == DEFAULT_SCORER[("target_model", "linear")] == DEFAULT_SCORER[("target_model", "finetune")]
    assert C.LABEL_FREE == BENCH_LABEL_FREE_SCORER == "depara_e"
    n = 8
    target_edges = np.arange(n * (n - 1) // 2, dtype=np.float64)[::-1] % 11  # ties on purpose
    source_edges = [target_edges + 0.01 * np.arange(target_edges.size),  # nearly the target's order
                    np.arange(target_edges.size, dtype=np.float64) % 7,
                    -target_edges]
    graph = lambda e: Graph(np.ones((n, 2), np.float32), np.asarray(e, np.float32))  # noqa: E731
    halves = half_samples(n, 5, seed=1)
    got = C.label_free_values([graph(e) for e in source_edges], graph(target_edges), halves)
    assert got.shape == (1, 3, 6)
    for r, idx in enumerate([np.arange(n), *halves]):
        sub = lambda e: squareform(squareform(e)[np.ix_(idx, idx)], checks=False)  # noqa: E731
        want = [spearmanr(sub(e), sub(target_edges)).statistic for e in source_edges]
        np.testing.assert_allclose(got[0, :, r], want, atol=1e-9)
    keep = tmp_path / "kept.npy"
    point, said = C.label_free_verdict([graph(e) for e in source_edges], graph(target_edges), 40, 0, keep=keep)
    assert said.order[0] == 0 and said.order[-1] == 2 and said.shares[0] > 0.5 and said.shares[2] == 0
    assert said.shares.sum() == pytest.approx(1.0)
    np.testing.assert_array_equal(np.load(keep)[0, :, 0], point)  # kept, and re-read the same
    assert C.label_free_verdict([graph(e) for e in source_edges], graph(target_edges), 40, 0,
                                keep=keep)[1].order == said.order
