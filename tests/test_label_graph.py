"""The label graph (depara.core.labels, Graph.from_labels) against hand computations, and nodeless similarity."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import spearmanr

from depara.errors import DeparaError
from depara.core.graph import Graph
from depara.core.labels import depara_score, edge_similarities, hybrid_edge_similarity, label_edges
from depara.core.similarity import edge_similarity, node_similarity, rank_sources, similarity, similarity_matrix


def test_label_edges_hand_computation():
    # labels [0, 0, 1, 2]: p = (1/2, 1/4, 1/4), s = Σp² = 3/8.
    # same class: 1. class 0 vs 1: (0 − 1/2 − 1/4 + 3/8) / sqrt((1 − 1 + 3/8)(1 − 1/2 + 3/8)) = −3/8 / sqrt(3/8 · 7/8)
    # class 1 vs 2: (0 − 1/4 − 1/4 + 3/8) / (7/8) = −1/7.
    e01 = -0.375 / np.sqrt(0.375 * 0.875)
    expected = [1.0, e01, e01, e01, e01, -1.0 / 7.0]  # pairs (0,1) (0,2) (0,3) (1,2) (1,3) (2,3)
    np.testing.assert_allclose(label_edges([0, 0, 1, 2]), expected, rtol=1e-6)
    g = Graph.from_labels(["cat", "cat", "dog", "emu"], probe_ids=["a", "b", "c", "d"])
    np.testing.assert_allclose(g.edges, expected, rtol=1e-6)
    assert g.node_size == 0 and g.probe_ids == ("a", "b", "c", "d") and g.meta["n_classes"] == 3


def test_balanced_classes_give_two_values():
    e = label_edges([0, 1, 2, 0, 1, 2])
    assert set(np.round(e, 6)) == {1.0, round(-0.5, 6)}  # −1/(K−1) with K = 3


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(0, 4), min_size=3, max_size=30).filter(lambda y: len(set(y)) > 1))
def test_closed_form_equals_centred_one_hot_cosine(y):
    onehot = np.eye(5)[y]
    ref = Graph.from_arrays(onehot, onehot, center=True).edges
    np.testing.assert_allclose(label_edges(y), ref, atol=1e-6)


def test_one_class_and_bad_shapes_fail():
    with pytest.raises(DeparaError, match="one class"):
        label_edges([1, 1, 1, 1])
    with pytest.raises(DeparaError, match="1-D"):
        label_edges(np.zeros((4, 2)))
    with pytest.raises(DeparaError, match="at least 3"):
        Graph.from_labels([0, 1])


def test_edge_similarity_with_label_graph_is_spearman():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, size=20)
    feats = np.eye(3)[y] + 0.8 * rng.normal(size=(20, 3))
    src = Graph.from_arrays(rng.normal(size=(20, 4)), feats)
    lab = Graph.from_labels(y)
    expected = spearmanr(src.edges, lab.edges).statistic
    assert edge_similarity(src, lab) == pytest.approx(expected, abs=1e-9)
    assert edge_similarities([src.edges], lab.edges)[0] == pytest.approx(expected, abs=1e-9)
    # No node term: S = λE, node_similarity undefined, matrices NaN there, ranking rows V = NaN.
    assert similarity(src, lab, lam=2.0) == pytest.approx(2 * expected, abs=1e-9)
    with pytest.raises(DeparaError, match="no nodes"):
        node_similarity(src, lab)
    sims = similarity_matrix({"s": src, "t": src, "l": lab}, lam=0.5)
    assert np.isnan(sims.V[0, 2]) and np.isnan(sims.V[2, 2]) and sims.V[0, 1] == pytest.approx(1.0)
    assert sims.S[0, 2] == pytest.approx(0.5 * expected, abs=1e-9)
    (row,) = rank_sources({"s": src}, lab)
    assert np.isnan(row.V) and row.S == pytest.approx(expected, abs=1e-9)


def test_a_source_that_separates_the_classes_scores_higher():
    rng = np.random.default_rng(1)
    y = np.repeat([0, 1, 2, 3], 10)
    good = Graph.from_arrays(rng.normal(size=(40, 2)), np.eye(4)[y] * 3 + rng.normal(size=(40, 4)))
    bad = Graph.from_arrays(rng.normal(size=(40, 2)), rng.normal(size=(40, 4)))
    rows = rank_sources({"good": good, "bad": bad}, Graph.from_labels(y))
    assert [r.name for r in rows] == ["good", "bad"] and rows[0].E > 0.3 > abs(rows[1].E)


def test_hybrid_and_family_score():
    np.testing.assert_allclose(hybrid_edge_similarity([1.0, 0.0], [0.0, 1.0], 0.25), [0.75, 0.25])
    np.testing.assert_allclose(depara_score([1.0, 2.0], [0.5, 0.5], 0.0), [0.5, 0.5])
    np.testing.assert_allclose(depara_score([1.0, 2.0], [0.5, 0.5], 2.0), [2.5, 4.5])
    with pytest.raises(DeparaError, match="weight"):
        hybrid_edge_similarity([1.0], [1.0], 1.5)


def test_label_graph_round_trips_through_a_file(tmp_path):
    g = Graph.from_labels([0, 1, 1, 0, 2])
    assert Graph.load(g.save(tmp_path / "l.safetensors")) == g
