"""depara.core.similarity_edges: the global / per-probe / kNN comparisons and the feature handling, against independent
computations (scipy, scikit-learn, brute force), with hypothesis properties (monotone transforms, permutations)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats
from scipy.spatial.distance import squareform
from sklearn.metrics import roc_auc_score

from depara.core.similarity_edges import (graph_agreement, knn_k, label_agreement, label_agreement_terms,
    probe_edges, probe_features, resampled_label_agreement)
from depara.errors import DeparaError
from depara.core.labels import label_edges


def _case(seed: int, n: int = 30, k: int = 3):
    rng = np.random.default_rng(seed)
    y = np.arange(n) % k
    rng.shuffle(y)
    f = rng.normal(size=(n, 8)) + 0.8 * np.eye(8)[y]  # some class structure
    return probe_edges(f), y, rng


def _rows(edges):
    s = squareform(np.asarray(edges, dtype=float))
    n = s.shape[0]
    return s, [np.arange(n) != i for i in range(n)]


def test_global_is_spearman_with_the_label_graph():
    e, y, _ = _case(0)
    assert label_agreement(e, y) == pytest.approx(stats.spearmanr(e, label_edges(y)).statistic, abs=1e-12)
    e2 = probe_edges(np.random.default_rng(1).normal(size=(30, 5)))
    assert graph_agreement(e, e2) == pytest.approx(stats.spearmanr(e, e2).statistic, abs=1e-12)


def test_per_probe_is_the_mean_rank_biserial_auc_of_each_row():
    e, y, _ = _case(2)
    s, masks = _rows(e)
    expected = np.mean([2 * roc_auc_score(y[m] == y[i], s[i, m]) - 1 for i, m in enumerate(masks)])
    assert label_agreement(e, y, "per_probe") == pytest.approx(expected, abs=1e-12)


def test_per_probe_with_a_target_graph_is_the_mean_row_spearman():
    e, _, rng = _case(3)
    t = probe_edges(rng.normal(size=(30, 4)))
    s, masks = _rows(e)
    tt = squareform(t.astype(float))
    expected = np.mean([stats.spearmanr(s[i, m], tt[i, m]).statistic for i, m in enumerate(masks)])
    assert graph_agreement(e, t, "per_probe") == pytest.approx(expected, abs=1e-12)


def test_knn_by_brute_force():
    e, y, rng = _case(4)
    n, k = 30, knn_k(30)
    s, masks = _rows(e)
    hits = []
    for i, m in enumerate(masks):
        others = np.flatnonzero(m)
        nn = others[np.argsort(-s[i, others], kind="stable")[:k]]  # no ties in random float edges
        hits.append(np.mean(y[nn] == y[i]) - (np.sum(y[others] == y[i]) / (n - 1)))
    assert k == 5 and label_agreement(e, y, "knn") == pytest.approx(np.mean(hits), abs=1e-12)
    t = probe_edges(rng.normal(size=(30, 4)))
    tt = squareform(t.astype(float))
    over = []
    for i, m in enumerate(masks):
        others = np.flatnonzero(m)
        a = set(others[np.argsort(-s[i, others])[:k]])
        b = set(others[np.argsort(-tt[i, others])[:k]])
        over.append(len(a & b) / k - k / (n - 1))
    assert graph_agreement(e, t, "knn") == pytest.approx(np.mean(over), abs=1e-12)


def test_knn_ties_are_split_fractionally():
    # 4 probes, probe 0 equally similar to 1, 2, 3; k = 1: each neighbour has probability 1/3.
    s = np.array([[0, .5, .5, .5], [.5, 0, .9, .1], [.5, .9, 0, .2], [.5, .1, .2, 0]])
    y = np.array([0, 0, 1, 1])
    terms = label_agreement_terms(squareform(s, checks=False), y, "knn", k=1)
    assert terms[0] == pytest.approx(1 / 3 - 1 / 3)  # one same-class probe out of three tied
    assert terms[1] == pytest.approx(0 - 1 / 3)  # nearest of 1 is 2 (class 1)


def test_a_graph_agrees_perfectly_with_itself_and_with_its_classes():
    y = np.repeat([0, 1, 2], 6)
    f = np.eye(3)[y] + 0.01 * np.random.default_rng(0).normal(size=(18, 3))
    e = probe_edges(f)
    assert label_agreement(e, y, "per_probe") == pytest.approx(1.0)
    assert label_agreement(e, y, "knn") == pytest.approx(np.mean(1 - 5 / 17))  # k = 4 ≤ 5 same-class probes
    assert graph_agreement(e, e, "per_probe") == pytest.approx(1.0)


def test_feature_handling():
    rng = np.random.default_rng(5)
    f = rng.normal(size=(12, 3, 2, 2)) * np.array([1.0, 10.0, 100.0])[None, :, None, None]
    pooled = probe_features(f, pooling="pooled")
    np.testing.assert_allclose(pooled, f.mean(axis=(2, 3)), rtol=1e-6)
    z = probe_features(f, pooling="pooled", scale="standardised")
    np.testing.assert_allclose(z, stats.zscore(f.mean(axis=(2, 3)), axis=0), rtol=1e-5, atol=1e-5)
    assert probe_features(f).shape == (12, 12)
    # the standardised edges are the Pearson correlations of the z-scored rows' cosine (hand computation)
    zz = stats.zscore(f.mean(axis=(2, 3)), axis=0)
    zz /= np.linalg.norm(zz, axis=1, keepdims=True)
    np.testing.assert_allclose(probe_edges(f, pooling="pooled", scale="standardised"),
                               squareform(zz @ zz.T, checks=False), atol=1e-5)
    const = np.concatenate([rng.normal(size=(12, 2)), np.ones((12, 1))], axis=1)
    assert probe_features(const, scale="standardised").shape == (12, 2)  # the constant dimension is dropped


def test_bad_input_names_the_argument():
    e, y, _ = _case(6)
    with pytest.raises(DeparaError, match="comparison: expected one of global, per_probe, knn"):
        label_agreement(e, y, "nope")
    with pytest.raises(DeparaError, match="labels: 29 labels for a graph of 30"):
        label_agreement(e, y[:-1], "per_probe")
    with pytest.raises(DeparaError, match="source_edges: 4 values is not N"):
        label_agreement(np.ones(4), y[:3], "knn")
    with pytest.raises(DeparaError, match="k: expected 1 <= k"):
        label_agreement(e, y, "knn", k=29)
    with pytest.raises(DeparaError, match="pooling: expected one of flat, pooled"):
        probe_features(np.ones((4, 3)), pooling="max")
    with pytest.raises(DeparaError, match="features: every dimension is constant"):
        probe_features(np.ones((4, 3)), scale="standardised")


def test_resampled_identity_row_is_the_point_estimate():
    e, y, rng = _case(7)
    idx = np.vstack([np.arange(30), rng.integers(0, 30, size=(5, 30))])
    for comp in ("global", "per_probe", "knn"):
        vals = resampled_label_agreement(e, y, comp, idx)
        assert vals[0] == pytest.approx(label_agreement(e, y, comp), abs=1e-12)
        assert np.all(np.isfinite(vals))
    # a resample is scored as its own probe set: its distinct probes' graph, every term recomputed there
    from scipy.spatial.distance import squareform

    keep = np.unique(idx[1])
    own = squareform(squareform(e)[np.ix_(keep, keep)], checks=False)
    for comp in ("per_probe", "knn"):
        assert resampled_label_agreement(e, y, comp, idx)[1] == pytest.approx(label_agreement(own, y[keep], comp),
                                                                             abs=1e-12)


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 10_000), st.sampled_from(["global", "per_probe", "knn"]))
def test_invariant_to_monotone_transforms_and_probe_permutations(seed, comparison):
    rng = np.random.default_rng(seed)
    n = 16
    y = rng.integers(0, 3, size=n)
    y[:3] = [0, 1, 2]
    e = rng.uniform(-1, 1, size=n * (n - 1) // 2)  # distinct values (ties have probability 0)
    t = rng.uniform(-1, 1, size=e.shape)
    base_l, base_g = label_agreement(e, y, comparison), graph_agreement(e, t, comparison)
    # a strictly increasing transform of either graph's edges changes nothing
    assert label_agreement(np.exp(3 * e), y, comparison) == pytest.approx(base_l, abs=1e-12)
    assert graph_agreement(np.tanh(2 * e) * 5 + 1, t ** 3, comparison) == pytest.approx(base_g, abs=1e-12)
    # permuting the probes (both graphs and the labels) changes nothing
    perm = rng.permutation(n)
    pe = squareform(squareform(e)[np.ix_(perm, perm)], checks=False)
    pt = squareform(squareform(t)[np.ix_(perm, perm)], checks=False)
    assert label_agreement(pe, y[perm], comparison) == pytest.approx(base_l, abs=1e-12)
    assert graph_agreement(pe, pt, comparison) == pytest.approx(base_g, abs=1e-12)


def test_registered_depara_labels_reads_the_frozen_options():
    """The one label-graph score: the registry's depara_labels = label_agreement of the frozen edges."""
    from depara import options as O
    from depara.estimators.depara_family import depara_labels_edges
    from depara.estimators.registry import SourceInputs, TargetInputs, get_estimator

    rng = np.random.default_rng(8)
    f = rng.normal(size=(20, 6, 3, 3))
    y = np.arange(20) % 4
    est = get_estimator("depara_labels")
    # a default method (the frozen default where labels are given), reading features on the labelled samples
    assert est.default and est.needs_labels and est.needs_features and not est.needs_graph
    assert not est.needs_target_model
    src = SourceInputs(features=f)
    expected = label_agreement(probe_edges(f, pooling=O.DEFAULT_EDGE_FEATURES, scale=O.DEFAULT_EDGE_SCALE), y,
                               O.DEFAULT_EDGE_COMPARISON, O.DEFAULT_EDGE_KNN_K)  # k = 10 ≤ N − 2 = 18
    assert est.score(src, TargetInputs(labels=y)) == pytest.approx(expected, abs=1e-12)
    np.testing.assert_array_equal(depara_labels_edges(None, f),
                                  probe_edges(f, pooling=O.DEFAULT_EDGE_FEATURES, scale=O.DEFAULT_EDGE_SCALE))


def test_pool_features_is_the_one_pooling_for_maps_tokens_and_vectors():
    """Maps: mean over space; tokens N×T×D: mean over tokens; N×D unchanged — and probe_features uses it."""
    from depara.core.similarity_edges import pool_features, probe_features

    rng = np.random.default_rng(5)
    maps, tokens, vec = rng.normal(size=(6, 3, 4, 5)), rng.normal(size=(6, 7, 3)), rng.normal(size=(6, 3))
    np.testing.assert_allclose(pool_features(maps), maps.mean(axis=(2, 3)), rtol=1e-6)
    np.testing.assert_allclose(pool_features(tokens), tokens.mean(axis=1), rtol=1e-6)
    np.testing.assert_allclose(pool_features(vec), vec, rtol=1e-6)
    assert pool_features(maps).dtype == np.float32 and pool_features(tokens).shape == (6, 3)
    np.testing.assert_allclose(probe_features(tokens, pooling="pooled"), probe_features(tokens.mean(axis=1)),
                               rtol=1e-5, atol=1e-6)


def test_torch_pooling_follows_the_same_rule():
    import torch

    from depara.core.similarity_edges import pool_features, pooling_kind
    from depara.extraction.source_features import pool_features as pool_tensor

    rng = np.random.default_rng(3)
    for shape, kind in (((4, 3, 5, 2), "maps"), ((4, 7, 3), "tokens"), ((4, 6), "flat"), ((4, 2, 3, 2, 2), "maps")):
        x = rng.normal(size=shape).astype(np.float32)
        assert pooling_kind(len(shape)) == kind
        pooled = pool_tensor(torch.from_numpy(x)).numpy()
        np.testing.assert_allclose(pooled, pool_features(x), rtol=1e-5, atol=1e-6)
    assert pool_tensor(torch.from_numpy(rng.normal(size=(4, 7, 3)).astype(np.float32))).shape == (4, 3)  # tokens
