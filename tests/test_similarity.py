"""Similarity against scipy (spearmanr, cosine) and hand-computed values; batch = pairwise; properties; bad input."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.spatial.distance import cosine as cosine_distance
from scipy.stats import spearmanr

import importlib

import depara
from depara.errors import DeparaError
from depara.core.graph import Graph
from depara.core.similarity import (edge_similarity, edge_similarity_matrix, node_similarity, node_similarity_matrix,
    rank_sources, similarity, similarity_matrix)

# `depara.similarity` is the function (public API); its module is `depara.core.similarity`.
sim = importlib.import_module("depara.core.similarity")


def _tied_graph(rng, n=8, p=5, levels=4, ids=None, meta=None):
    """A graph whose edges take only a few values (many ties) and nodes with an all-zero map."""
    edges = rng.integers(0, levels, size=n * (n - 1) // 2).astype(np.float32)
    nodes = rng.normal(size=(n, p)).astype(np.float32)
    return Graph(nodes, edges, ids, meta)


def _reference_node_similarity(a, b):
    """Independent: scipy's cosine distance per probe, all-zero map → cosine 0."""
    vals = []
    for x, y in zip(a.astype(np.float64), b.astype(np.float64)):
        vals.append(0.0 if not x.any() or not y.any() else 1.0 - cosine_distance(x, y))
    return float(np.mean(vals))


# ------------------------------------------------------------------------------------------- against scipy
def test_edge_similarity_is_spearman_with_ties():
    rng = np.random.default_rng(0)
    for _ in range(5):
        g1, g2 = _tied_graph(rng), _tied_graph(rng)
        expected = spearmanr(g1.edges, g2.edges).statistic
        assert edge_similarity(g1, g2) == pytest.approx(expected, abs=1e-12)


def test_edge_similarity_hand_computed_with_ties():
    # ranks [1, 2.5, 2.5] and [3, 1, 2]; centred (-1, .5, .5)·(1, -1, 0) = -1.5; norms √1.5, √2 → -√3/2
    g1 = Graph(np.ones((3, 2)), [1.0, 2.0, 2.0])
    g2 = Graph(np.ones((3, 2)), [3.0, 1.0, 2.0])
    assert edge_similarity(g1, g2) == pytest.approx(-np.sqrt(3) / 2, abs=1e-12)
    assert node_similarity(g1, g2) == pytest.approx(1.0)
    assert similarity(g1, g2, lam=2.0) == pytest.approx(1.0 - np.sqrt(3))


def test_node_similarity_matches_scipy_cosine_with_zero_maps():
    rng = np.random.default_rng(1)
    a = rng.normal(size=(7, 6)).astype(np.float32)
    b = rng.normal(size=(7, 6)).astype(np.float32)
    a[2] = 0.0
    b[2] = 0.0  # zero in both: cosine 0 by convention
    b[4] = 0.0  # zero in one
    e = rng.normal(size=21)
    g1, g2 = Graph(a, e), Graph(b, e)
    assert node_similarity(g1, g2) == pytest.approx(_reference_node_similarity(a, b), abs=1e-12)
    # self-similarity of a graph with 1 zero map out of 7
    assert node_similarity(g1, g1) == pytest.approx(6 / 7)


def test_from_arrays_plus_similarity_match_independent_pipeline():
    """Graphs built by from_arrays, compared, equal the same pipeline written with scipy directly (ties included)."""
    from scipy.spatial.distance import pdist

    rng = np.random.default_rng(2)
    n = 10
    feats = [np.round(rng.normal(size=(n, 3)), 0) + rng.integers(0, 2, size=(n, 1)) for _ in range(2)]
    attrs = [rng.normal(size=(n, 2, 2, 3)) for _ in range(2)]
    g = [Graph.from_arrays(a, f, center=False, channel_reduction="mean") for a, f in zip(attrs, feats)]
    ref_edges = [1 - pdist(f, "cosine") for f in feats]
    assert len(np.unique(np.round(ref_edges[0], 6))) < len(ref_edges[0])  # the case has ties
    # float32 storage can split ties that are exact in float64, so compare against the stored edges' Spearman
    # and against the float64 reference to float32 precision
    assert edge_similarity(g[0], g[1]) == pytest.approx(spearmanr(g[0].edges, g[1].edges).statistic, abs=1e-12)
    ref_e = spearmanr(ref_edges[0].astype(np.float32), ref_edges[1].astype(np.float32)).statistic
    assert edge_similarity(g[0], g[1]) == pytest.approx(ref_e, abs=1e-9)
    ref_v = _reference_node_similarity(attrs[0].mean(axis=-1).reshape(n, -1), attrs[1].mean(axis=-1).reshape(n, -1))
    assert node_similarity(g[0], g[1]) == pytest.approx(ref_v, abs=1e-6)
    assert similarity(g[0], g[1], lam=0.25) == pytest.approx(ref_v + 0.25 * ref_e, abs=1e-6)


# ------------------------------------------------------------------------------------------- batches
def test_similarity_matrix_equals_pairwise_and_names():
    rng = np.random.default_rng(3)
    graphs = {f"m{i}": _tied_graph(rng, levels=5) for i in range(4)}
    mats = similarity_matrix(graphs, lam=0.5)
    assert mats.names == ("m0", "m1", "m2", "m3")
    for i, a in enumerate(graphs.values()):
        for j, b in enumerate(graphs.values()):
            assert mats.V[i, j] == pytest.approx(node_similarity(a, b), abs=1e-12)
            assert mats.E[i, j] == pytest.approx(edge_similarity(a, b), abs=1e-12)
            assert mats.S[i, j] == pytest.approx(similarity(a, b, lam=0.5), abs=1e-12)
    names, v, e, s = mats  # a NamedTuple
    assert v.dtype == np.float64 and s.shape == (4, 4)


def test_similarity_matrix_names_from_meta_or_index():
    rng = np.random.default_rng(4)
    gs = [_tied_graph(rng, meta={"model": "vgg", "layer": "f1"}), _tied_graph(rng, meta={"model": "vgg"}),
          _tied_graph(rng), _tied_graph(rng, meta={"model": "vgg"})]
    assert similarity_matrix(gs).names == ("vgg:f1", "vgg#1", "2", "vgg#3")


def test_node_matrix_in_probe_chunks(monkeypatch):
    rng = np.random.default_rng(5)
    nodes = [rng.normal(size=(9, 4)) for _ in range(3)]
    nodes[1][3] = 0.0
    whole = node_similarity_matrix(nodes)
    monkeypatch.setattr(sim, "_NODE_BLOCK_BYTES", 3 * 4 * 8 * 2)  # two probes per chunk
    np.testing.assert_allclose(node_similarity_matrix(nodes), whole, atol=1e-12)
    assert whole[0, 1] == pytest.approx(_reference_node_similarity(nodes[0], nodes[1]), abs=1e-12)


def test_edge_matrix_float32_close_to_float64():
    rng = np.random.default_rng(6)
    edges = [rng.normal(size=2000) for _ in range(3)]
    e64 = edge_similarity_matrix(edges)
    e32 = edge_similarity_matrix(edges, dtype=np.float32)
    np.testing.assert_allclose(e32, e64, atol=1e-5)
    assert e64[0, 2] == pytest.approx(spearmanr(edges[0], edges[2]).statistic, abs=1e-12)


def test_rank_sources_best_first():
    rng = np.random.default_rng(7)
    target = _tied_graph(rng, levels=6)
    near = Graph(target.nodes + 0.1 * rng.normal(size=target.nodes.shape), target.edges + rng.integers(0, 2, 28))
    far = _tied_graph(rng, levels=6)
    rows = rank_sources({"far": far, "near": near, "same": target}, target, lam=2.0)
    assert [r.name for r in rows] == ["same", "near", "far"]
    assert rows[0].S == pytest.approx(3.0) and rows[0].V == pytest.approx(1.0) and rows[0].E == pytest.approx(1.0)
    for r, g in zip(rows, (target, near, far)):
        assert r.S == pytest.approx(similarity(g, target, lam=2.0), abs=1e-12)
        assert r.V == pytest.approx(node_similarity(g, target), abs=1e-12)
        assert r.E == pytest.approx(edge_similarity(g, target), abs=1e-12)
    # equal scores: by name
    assert [r.name for r in rank_sources({"b": target, "a": target}, target)] == ["a", "b"]


def test_top_level_reexports():
    assert depara.similarity is similarity and depara.rank_sources is rank_sources
    assert depara.similarity_matrix is similarity_matrix and depara.Graph is Graph


# ------------------------------------------------------------------------------------------- bad input
def test_different_probe_ids_rejected():
    rng = np.random.default_rng(8)
    g1 = _tied_graph(rng, n=4, ids=["a", "b", "c", "d"])
    g2 = _tied_graph(rng, n=4, ids=["a", "b", "d", "c"])
    g3 = _tied_graph(rng, n=4, ids=["a", "b", "c", "x"])
    g4 = _tied_graph(rng, n=5)
    with pytest.raises(DeparaError, match=r"different probes \(same probe ids in a different order\)"):
        edge_similarity(g1, g2)
    with pytest.raises(DeparaError, match=r"different probes \(probe 3 is 'd' vs 'x'\)"):
        node_similarity(g1, g3)
    with pytest.raises(DeparaError, match=r"different probes \(4 vs 5 probes\)"):
        similarity(g1, g4)
    with pytest.raises(DeparaError, match=r"graphs 'p' and 'q' are over different probes"):
        similarity_matrix({"p": g1, "q": g2})
    with pytest.raises(DeparaError, match=r"target and source 'q' are over different probes"):
        rank_sources({"q": g2}, g1)


def test_different_node_sizes_rejected():
    rng = np.random.default_rng(9)
    g1, g2 = _tied_graph(rng, p=4), _tied_graph(rng, p=9)
    with pytest.raises(DeparaError, match=r"different node sizes \(4 vs 9 values"):
        node_similarity(g1, g2)
    assert np.isfinite(edge_similarity(g1, g2))  # edges do not depend on the node grid


def test_constant_edges_name_the_graph():
    rng = np.random.default_rng(10)
    good = _tied_graph(rng, n=4)
    flat = Graph(np.ones((4, 5)), np.full(6, 0.3), meta={"model": "resnet", "layer": "fc"})
    with pytest.raises(DeparaError, match=r"edge vector of graph g2 \(resnet:fc\) is constant.*undefined"):
        edge_similarity(good, flat)
    with pytest.raises(DeparaError, match=r"edge vector of graph 'flat' is constant"):
        similarity_matrix({"ok": good, "flat": flat})
    with pytest.raises(DeparaError, match=r"edge vector of the target graph is constant"):
        rank_sources({"ok": good}, flat)


def test_default_lambda_is_the_edge_term_alone():
    """λ = ∞ (frozen node weight 0): S = E exactly, for one pair, a matrix and a ranking; a finite λ adds V."""
    rng = np.random.default_rng(13)
    g1, g2, g3 = (_tied_graph(rng) for _ in range(3))
    assert similarity(g1, g2) == edge_similarity(g1, g2)
    assert similarity(g1, g2, lam=0.5) == pytest.approx(node_similarity(g1, g2) + 0.5 * edge_similarity(g1, g2))
    m = similarity_matrix({"a": g1, "b": g2, "c": g3})
    np.testing.assert_array_equal(m.S, m.E)
    rows = rank_sources({"b": g2, "c": g3}, g1)
    assert [r.S for r in rows] == [r.E for r in rows] and rows[0].E >= rows[1].E


@pytest.mark.parametrize("lam", [-1.0, float("nan"), "abc"])
def test_bad_lambda(lam):
    rng = np.random.default_rng(11)
    g = _tied_graph(rng)
    with pytest.raises(DeparaError, match=r"lam: expected"):
        similarity(g, g, lam=lam)


def test_bad_collections():
    rng = np.random.default_rng(12)
    g = _tied_graph(rng)
    with pytest.raises(DeparaError, match=r"graphs: no graphs given"):
        similarity_matrix({})
    with pytest.raises(DeparaError, match=r"single Graph"):
        similarity_matrix(g)
    with pytest.raises(DeparaError, match=r"sources\[x\]: expected a depara Graph, got ndarray"):
        rank_sources({"x": np.ones(3)}, g)
    with pytest.raises(DeparaError, match=r"g2: expected a depara Graph"):
        node_similarity(g, "not a graph")


# ------------------------------------------------------------------------------------------- properties
@st.composite
def graph_pairs(draw):
    n = draw(st.integers(3, 7))
    p = draw(st.integers(1, 5))
    seed = draw(st.integers(0, 2**31))
    rng = np.random.default_rng(seed)
    levels = draw(st.sampled_from([3, 1000]))  # few levels: many ties
    graphs = []
    for _ in range(3):
        edges = rng.integers(0, levels, size=n * (n - 1) // 2).astype(np.float32)
        if np.ptp(edges) == 0:
            edges[0] += 1  # keep Spearman defined
        graphs.append(Graph(rng.normal(size=(n, p)), edges))
    return graphs


PROPS = settings(max_examples=40, deadline=None)


@PROPS
@given(graph_pairs(), st.floats(0, 5))
def test_symmetry(gs, lam):
    a, b, _ = gs
    assert similarity(a, b, lam) == pytest.approx(similarity(b, a, lam), abs=1e-12)
    assert edge_similarity(a, b) == pytest.approx(edge_similarity(b, a), abs=1e-12)


@PROPS
@given(graph_pairs())
def test_self_similarity_is_one(gs):
    a = gs[0]
    assert node_similarity(a, a) == pytest.approx(1.0, abs=1e-9)
    assert edge_similarity(a, a) == pytest.approx(1.0, abs=1e-9)


@PROPS
@given(st.integers(0, 2**31), st.integers(-20, 20), st.floats(1e-3, 1e3), st.booleans(),
       st.sampled_from(["cosine", "correlation"]))
def test_edges_invariant_to_positive_scaling_of_features(seed, power, scale, center, edge):
    rng = np.random.default_rng(seed)
    attr, feat, other = rng.normal(size=(6, 3)), rng.normal(size=(6, 4)), rng.normal(size=(6, 4))
    g = Graph.from_arrays(attr, feat, center=center, edge=edge)
    ref = Graph.from_arrays(attr, other, center=center, edge=edge)
    # a power of two scales exactly in floating point: edges and E are bit-identical
    g_pow2 = Graph.from_arrays(attr, feat * 2.0**power, center=center, edge=edge)
    np.testing.assert_array_equal(g_pow2.edges, g.edges)
    assert edge_similarity(g_pow2, ref) == edge_similarity(g, ref)
    # any positive scale: equal up to rounding
    g_scaled = Graph.from_arrays(attr, feat * scale, center=center, edge=edge)
    np.testing.assert_allclose(g_scaled.edges, g.edges, atol=1e-6)


@PROPS
@given(graph_pairs(), st.floats(1e-3, 1e3))
def test_nodes_invariant_to_positive_scaling_of_attributions(gs, scale):
    a, b, _ = gs
    a_scaled = Graph(a.nodes * scale, a.edges)
    assert node_similarity(a_scaled, b) == pytest.approx(node_similarity(a, b), abs=1e-6)


@PROPS
@given(graph_pairs(), st.floats(0, 3))
def test_matrix_equals_pairwise(gs, lam):
    mats = similarity_matrix(gs, lam=lam)
    for i, a in enumerate(gs):
        for j, b in enumerate(gs):
            assert mats.S[i, j] == pytest.approx(similarity(a, b, lam), abs=1e-9)
            assert mats.E[i, j] == pytest.approx(spearmanr(a.edges, b.edges).statistic, abs=1e-9)
