"""depara.extraction.extract with ``nodes=False``: forward passes only, graphs without nodes, the same edges and features."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.spatial.distance import pdist
from torch import nn

from depara.errors import DeparaError
from depara.extraction.extract import build_graphs
from depara.core.graph import Graph

from _core_torch_helpers import random_images, tiny_vgg

torch.set_num_threads(1)
LAYERS = ["0", "2", "6", "8", "12"]


def _features_of(net, x, layers, **kw):
    kept: dict[str, np.ndarray] = {}
    graphs = build_graphs(net, x, layers, on_features=lambda name, f: kept.__setitem__(name, np.array(f)), **kw)
    return graphs, kept


@pytest.mark.parametrize("budget", [2048, 0])  # features in RAM, and spilled to disk
def test_nodeless_extraction_equals_the_features_and_edges_of_the_full_one(budget):
    net = tiny_vgg()
    x = random_images(7)
    full, f_full = _features_of(net, x, LAYERS, batch_size=3, feature_memory_mb=budget)
    bare, f_bare = _features_of(net, x, LAYERS, batch_size=3, feature_memory_mb=budget, nodes=False)
    for name in LAYERS:
        np.testing.assert_array_equal(f_bare[name], f_full[name])
        np.testing.assert_array_equal(bare[name].edges, full[name].edges)
        assert bare[name].nodes.shape == (7, 0) and full[name].nodes.shape[1] > 0
        assert bare[name].probe_ids == full[name].probe_ids
        assert bare[name].meta["nodes"] is False and "nodes" not in full[name].meta
        assert bare[name].meta["node_grid"] == []
        same = {k: v for k, v in full[name].meta.items() if k != "node_grid"}
        assert {k: v for k, v in bare[name].meta.items() if k not in ("node_grid", "nodes")} == same
    # independent: the edges are the centred cosines of the layer's output (scipy)
    with torch.no_grad():
        feats = net[:7](x).flatten(1).double().numpy()
    np.testing.assert_allclose(bare["6"].edges, 1.0 - pdist(feats - feats.mean(axis=0), "cosine"), atol=1e-5)


def test_nodeless_extraction_runs_no_backward_pass(monkeypatch):
    def no_grad(*args, **kwargs):
        raise AssertionError("torch.autograd.grad called")

    seen: list[bool] = []
    net = tiny_vgg()
    handle = net[4].register_forward_hook(lambda m, i, o: seen.append(o.requires_grad or torch.is_grad_enabled()))
    monkeypatch.setattr(torch.autograd, "grad", no_grad)
    try:
        graphs = build_graphs(net, random_images(6), ["4", "12"], batch_size=4, nodes=False)
        with pytest.raises(DeparaError, match="autograd.grad called"):  # the monkeypatch does bite
            build_graphs(net, random_images(6), ["4"], batch_size=4)
    finally:
        handle.remove()
    assert seen[:2] == [False, False]  # both batches of the node-less run: no autograd graph
    assert set(graphs) == {"4", "12"}


def test_in_place_activation_after_a_captured_layer_nodeless():
    torch.manual_seed(2)
    net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(inplace=True), nn.Conv2d(4, 4, 3, padding=1),
                        nn.ReLU(inplace=True))
    x = random_images(5, size=8)
    together = build_graphs(net, x, ["0", "3"], nodes=False)
    alone = build_graphs(net, x, ["0"], nodes=False)
    np.testing.assert_array_equal(together["0"].edges, alone["0"].edges)
    np.testing.assert_array_equal(together["0"].edges, build_graphs(net, x, ["0", "3"])["0"].edges)


def test_nodeless_graph_round_trips_through_a_file(tmp_path):
    g = build_graphs(tiny_vgg(), random_images(5), ["6"], nodes=False)["6"]
    back = Graph.load(g.save(tmp_path / "g.safetensors"))
    assert back == g and back.nodes.shape == (5, 0) and back.meta["nodes"] is False


def test_bad_nodes_argument():
    with pytest.raises(DeparaError, match="nodes: expected True or False"):
        build_graphs(tiny_vgg(), random_images(4), ["6"], nodes="no")


def test_nodeless_source_graphs_are_compared_like_label_graphs():
    """S = λE and V undefined (NaN) wherever a graph without nodes is involved; its E is the full graph's E."""
    from depara.core.similarity import node_similarity, rank_sources, similarity, similarity_matrix

    net, x = tiny_vgg(), random_images(8)
    full = build_graphs(net, x, ["2", "8"])
    bare = build_graphs(net, x, ["2", "8"], nodes=False)
    e = similarity(full["2"], full["8"], lam=1.0) - node_similarity(full["2"], full["8"])
    assert similarity(bare["2"], full["8"], lam=2.0) == pytest.approx(2.0 * e, abs=1e-12)
    rows = {r.name: r for r in rank_sources({"bare": bare["2"], "full": full["2"]}, full["8"])}
    assert rows["bare"].E == pytest.approx(rows["full"].E, abs=1e-12) and np.isnan(rows["bare"].V)
    assert rows["full"].V == pytest.approx(node_similarity(full["2"], full["8"]))
    m = similarity_matrix({"b": bare["2"], "f": full["8"]})
    assert np.isnan(m.V[0, 1]) and m.S[0, 1] == pytest.approx(m.E[0, 1])
    with pytest.raises(DeparaError, match="no nodes"):
        node_similarity(bare["2"], full["8"])
