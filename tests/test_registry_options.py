"""The estimator registry and the graph options: one list of estimators, one set of defaults."""

from __future__ import annotations

import numpy as np
import pytest

from depara.estimators import baselines
from depara.errors import DeparaError
from depara.estimators.registry import (Estimator, SourceInputs, TargetInputs, get_estimator, list_estimators,
    parse_estimators, register_estimator)
from depara.options import DEFAULT_GRAPH_OPTIONS, ChannelReduction, GraphOptions, Scalar


def test_registry_lists_every_estimator_with_its_needs():
    names = [e.name for e in list_estimators()]
    assert names[:8] == ["logme", "leep", "nce", "hscore", "transrate", "rsa", "cka", "depara"]
    assert {e.name for e in list_estimators(needs_source_probs=True)} == {"leep", "nce"}
    assert {e.name for e in list_estimators(needs_labels=False, needs_graph=False)} == {"rsa", "cka"}
    assert {e.name for e in list_estimators(supports_regression=True, needs_graph=False)} == {"logme", "rsa", "cka"}
    assert get_estimator("H-Score") is get_estimator("hscore") and get_estimator("linear_cka").fn is baselines.linear_cka
    recent = ["sfda", "nleep", "parc", "gbc", "pactran", "etran", "ncti", "ped"]
    assert [n for n in names if n in recent] == recent  # issue 12's peers, registered after DEPARA's variants
    assert all(get_estimator(n).needs_labels and not get_estimator(n).supports_regression for n in recent)
    # the defaults: the peers, DEPARA (target model) and the frozen label-graph default (labels)
    assert parse_estimators(None) == names[:8] + ["depara_labels"] + recent
    assert parse_estimators("cka, logme,all")[:2] == ["cka", "logme"]
    with pytest.raises(DeparaError, match="methods: unknown method 'nope'"):
        parse_estimators("logme,nope")
    with pytest.raises(DeparaError, match="already registered"):
        register_estimator(Estimator("logme", baselines.logme, needs_labels=True))


def test_adapters_call_the_plain_functions():
    rng = np.random.default_rng(0)
    f = rng.normal(size=(30, 4))
    y = np.arange(30) % 3
    p = rng.dirichlet(np.ones(5), size=30)
    src, tgt = SourceInputs(features=f, probs=p), TargetInputs(labels=y)
    assert get_estimator("logme").score(src, tgt) == baselines.logme(f, y)
    assert get_estimator("leep").score(src, tgt) == baselines.leep(p, y)
    assert get_estimator("nce").score(src, tgt) == baselines.nce(p.argmax(1), y)
    assert get_estimator("cka").score(src, tgt) == baselines.linear_cka(f, np.eye(3)[y])
    with pytest.raises(DeparaError, match="method leep: source s has no source-head probabilities"):
        get_estimator("leep").check({"s": SourceInputs(features=f)}, tgt)
    with pytest.raises(DeparaError, match="method hscore: needs class labels"):
        get_estimator("hscore").check({"s": src}, TargetInputs(labels=f[:, 0], regression=True))


def test_graph_options_defaults_and_validation():
    o = GraphOptions()
    assert o == DEFAULT_GRAPH_OPTIONS and o.scalar == "l2" and o.node_size == (56, 56) and o.center is True
    assert GraphOptions(scalar="sum", channel_reduction="abs_mean", node_size=0).to_meta() == {
        "method": "input_x_gradient", "scalar": "sum", "channel_reduction": "abs_mean", "node_size": None,
        "center": True, "edge": "cosine"}
    assert GraphOptions(node_size=12).node_size == (12, 12) and GraphOptions(node_size=(4, 6)).node_size == (4, 6)
    assert o.replace(scalar=Scalar.mean).node == "mean/mean" and ChannelReduction("none") == "none"
    for bad, match in [(dict(scalar="max"), "scalar: expected one of sum, mean, l2"),
                       (dict(node_size=-1), "node_size"), (dict(edge="l1"), "edge"), (dict(center="yes"), "center")]:
        with pytest.raises(DeparaError, match=match):
            GraphOptions(**bad)
    with pytest.raises(DeparaError, match="lam: not a graph option"):
        o.replace(lam=2)


def test_cli_defaults_are_the_api_defaults_and_graphs_record_their_options():
    import inspect

    from depara.cli.core import extract
    from depara.extraction.extract import build_graph
    from depara.options import DEFAULT_BATCH_SIZE, DEFAULT_NODE_SIZE

    from _core_torch_helpers import random_images, tiny_vgg

    p = {k: v.default.default for k, v in inspect.signature(extract).parameters.items()}
    d = DEFAULT_GRAPH_OPTIONS
    assert (p["method"], p["scalar"], p["channel_reduction"], p["edge"], p["center"]) == (
        d.method, d.scalar, d.channel_reduction, d.edge, d.center)
    assert (p["node_size"], p["batch_size"]) == (DEFAULT_NODE_SIZE, DEFAULT_BATCH_SIZE) and d.node_size == (56, 56)
    g = build_graph(tiny_vgg(), random_images(4), "2")
    assert {k: g.meta[k] for k in d.to_meta()} == d.to_meta() and g.nodes.shape == (4, 56 * 56)
    g2 = build_graph(tiny_vgg(), random_images(4), "2", GraphOptions(scalar="sum", node_size=None))
    assert g2.meta["scalar"] == "sum" and g2.meta["node_size"] is None and g2.meta["node_grid"] == [32, 32]
    with pytest.raises(DeparaError, match="lam: not a graph option"):
        build_graph(tiny_vgg(), random_images(4), "2", lam=2.0)


def test_frozen_scorer_defaults_equal_the_committed_config():
    """depara.options carries the defaults frozen in configs/defaults.toml (round 6: chosen on two real benches)."""
    import tomllib
    from pathlib import Path

    from depara import options as O

    frozen = tomllib.loads((Path(__file__).resolve().parents[1] / "configs" / "defaults.toml").read_text())["depara"]
    assert (O.DEFAULT_NODE_WEIGHT, O.DEFAULT_LABEL_WEIGHT) == (frozen["node_weight"], frozen["label_weight"])
    assert (O.DEFAULT_EDGE_COMPARISON, O.DEFAULT_EDGE_FEATURES, O.DEFAULT_EDGE_SCALE, O.DEFAULT_PROBES) == (
        frozen["edge_comparison"], frozen["edge_features"], frozen["edge_scale"], frozen["probes"])
    assert O.DEFAULT_LAYER == frozen["layer"]
    assert O.DEFAULT_RANK_PEER == frozen["peer"]
    assert O.DEFAULT_EDGE_KNN_K == frozen["knn_k"]


def test_the_registered_label_score_uses_the_frozen_k():
    """``depara_labels`` compares with DEFAULT_EDGE_KNN_K neighbours (at most N − 2), not ⌊√N⌋."""
    from depara import options as O
    from depara.core.similarity_edges import label_agreement, label_agreement_terms, probe_edges
    from depara.estimators.depara_family import depara_labels_resampled, frozen_knn_k

    assert O.DEFAULT_EDGE_COMPARISON == "knn" and O.DEFAULT_EDGE_KNN_K == 10
    assert (frozen_knn_k(200), frozen_knn_k(12), frozen_knn_k(8), frozen_knn_k(3)) == (10, 10, 6, 1)
    rng = np.random.default_rng(3)
    y = np.repeat(np.arange(4), 16)  # N = 64: ⌊√N⌋ = 8, so k = 10 is a different neighbourhood
    f = rng.normal(size=(64, 6)) + 0.8 * np.eye(4, 6)[y]
    edges = probe_edges(f, pooling=O.DEFAULT_EDGE_FEATURES, scale=O.DEFAULT_EDGE_SCALE)
    got = get_estimator("depara_labels").score(SourceInputs(features=f), TargetInputs(labels=y))
    # by hand: each probe's 10 most similar others, the same-class share minus the chance share 15/63
    s = squareform_rows(edges, 64)
    lift = [np.mean(y[np.argsort(-s[i])[:10]] == y[i]) - 15 / 63 for i in range(64)]
    assert got == pytest.approx(np.mean(lift), abs=1e-12)
    assert got == pytest.approx(label_agreement(edges, y, "knn", 10))
    assert got != pytest.approx(label_agreement(edges, y, "knn", None))
    halves = np.array([np.sort(rng.permutation(64)[:9]) for _ in range(2)])  # 9 probes: k = 7
    from scipy.spatial.distance import squareform

    full = squareform(np.asarray(edges, float), checks=False)  # each half's own graph: the edges among its probes
    want = [np.nanmean(label_agreement_terms(squareform(full[np.ix_(h, h)], checks=False), y[h], "knn", 7))
            for h in halves]
    np.testing.assert_allclose(depara_labels_resampled(edges, y, halves), want, atol=1e-12)


def squareform_rows(edges, n):
    """The N×N similarity matrix of condensed edges with −inf on the diagonal (a probe is not its own neighbour)."""
    from scipy.spatial.distance import squareform

    s = squareform(np.asarray(edges, float), checks=False)
    np.fill_diagonal(s, -np.inf)
    return s
    assert (DEFAULT_GRAPH_OPTIONS.scalar, DEFAULT_GRAPH_OPTIONS.channel_reduction) == (
        frozen["node_scalar"], frozen["node_reduction"])


def test_absurd_node_grid_is_refused_before_extraction():
    with pytest.raises(DeparaError, match="node_size: 1000000x1000000 .* exceeds the limit"):
        GraphOptions(node_size=1000000)
    assert GraphOptions(node_size=1024).node_size == (1024, 1024)
