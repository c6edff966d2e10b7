"""Stored edge ranks (exact, bit-identical similarities) and the blocked, memory-mapped similarity matrix."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from scipy.stats import rankdata, spearmanr

from depara.core.edges import attach_edge_ranks, doubled_ranks, standardized_edge_ranks
from depara.errors import DeparaError
from depara.core.graph import Graph
from depara.core.similarity import similarity_matrix, standardized_ranks
from depara.core.similarity_blocked import blocks_count, build_stack, block_size_for, similarity_matrix_blocked


def _graphs(g=7, n=12, p=5, seed=0, ties=False):
    rng = np.random.default_rng(seed)
    m = n * (n - 1) // 2
    ids = [f"p{i}" for i in range(n)]
    out = []
    for k in range(g):
        edges = rng.integers(-3, 4, m) / 4 if ties else np.tanh(rng.standard_normal(m))
        nodes = rng.standard_normal((n, p))
        nodes[k % n] = 0  # an all-zero map (cosine 0)
        out.append(Graph(nodes, edges, ids, {"model": f"m{k}", "layer": "l"}))
    return out


@settings(max_examples=60, deadline=None)
@given(hnp.arrays(np.float32, st.integers(2, 60), elements=st.sampled_from([-1.0, -0.5, 0.0, 0.25, 0.3, 1.0])))
def test_stored_ranks_are_exact_and_give_bit_identical_standardised_ranks(edges):
    doubled = doubled_ranks(edges)
    assert doubled.dtype == np.int32
    np.testing.assert_array_equal(doubled, 2 * rankdata(edges))  # scipy's average ranks, doubled, exactly
    if np.ptp(edges) == 0:
        with pytest.raises(DeparaError, match="constant"):
            standardized_edge_ranks(edges, doubled, "g")
        return
    assert np.array_equal(standardized_edge_ranks(edges, doubled, "g"), standardized_ranks(edges))


def test_ranks_saved_and_loaded_with_the_graph(tmp_path):
    g = _graphs(1, ties=True)[0]
    g.save(tmp_path / "plain.safetensors")
    assert Graph.load(tmp_path / "plain.safetensors").edge_ranks is None  # optional: old files load as before
    attach_edge_ranks(g).save(tmp_path / "ranked.safetensors")
    back = Graph.load(tmp_path / "ranked.safetensors")
    np.testing.assert_array_equal(back.edge_ranks, 2 * rankdata(g.edges))
    assert back == g


@pytest.mark.parametrize("corrupt, why", [
    (lambda r: r[::-1].copy(), "do not order the stored edges"),
    (lambda r: r + 1, "not the doubled average ranks"),
    (lambda r: r.astype(np.float32), "must be int32"),
    (lambda r: r[:-1], "must be int32 of shape"),
])
def test_corrupt_stored_ranks_are_refused_naming_the_file(tmp_path, corrupt, why):
    g = _graphs(1)[0]
    g.edge_ranks = corrupt(doubled_ranks(g.edges))
    g.save(tmp_path / "bad.safetensors")
    with pytest.raises(DeparaError, match=why) as info:
        Graph.load(tmp_path / "bad.safetensors")
    assert "bad.safetensors" in str(info.value)


def test_similarity_matrix_with_stored_ranks_is_bit_identical_and_matches_scipy():
    plain = _graphs(ties=True)
    ranked = [attach_edge_ranks(Graph(g.nodes, g.edges, g.probe_ids, g.meta)) for g in plain]
    a, b = similarity_matrix(plain), similarity_matrix(ranked)
    assert np.array_equal(a.E, b.E) and np.array_equal(a.V, b.V) and a.names == b.names
    rho = spearmanr(np.stack([g.edges for g in plain]), axis=1).statistic  # independent: scipy
    np.testing.assert_allclose(b.E, rho, atol=1e-12)
    f32 = similarity_matrix(ranked, dtype=np.float32)
    np.testing.assert_allclose(f32.E, b.E, atol=1e-5)
    np.testing.assert_allclose(f32.V, b.V, atol=1e-5)


@pytest.mark.parametrize("memory_mb", [0.001, 0.004, 100])
def test_blocked_equals_in_ram(tmp_path, memory_mb):
    graphs = [attach_edge_ranks(g) for g in _graphs(g=7)]
    graphs[3].edge_ranks = None  # mixed: one graph is ranked on the fly
    ref = similarity_matrix(graphs, lam=0.5)
    got = similarity_matrix_blocked(graphs, lam=0.5, workdir=tmp_path, memory_mb=memory_mb, dtype=np.float64)
    assert got.names == ref.names
    for x, y in ((got.V, ref.V), (got.E, ref.E), (got.S, ref.S)):
        np.testing.assert_allclose(x, y, atol=1e-12, rtol=0)
    assert list(tmp_path.glob("*.part")) == []


def test_blocked_from_files_float32_and_block_sizes(tmp_path):
    graphs = _graphs(g=5, seed=1)
    paths = []
    for k, g in enumerate(graphs):
        paths.append(tmp_path / f"g{k}.safetensors")
        attach_edge_ranks(g).save(paths[-1])
    stack = build_stack(paths, tmp_path / "work")
    assert stack.names == tuple(f"g{k}" for k in range(5)) and stack.dtype == "float32"
    per_row = (stack.n_edges + stack.node_width) * 4
    assert block_size_for(stack, 2 * 2 * per_row / 2**20) == 2 and blocks_count(5, 2) == 6
    got = similarity_matrix_blocked(None, workdir=tmp_path / "work", memory_mb=0.002, stack=stack)
    ref = similarity_matrix(graphs)
    np.testing.assert_allclose(got.S, ref.S, atol=1e-5)


def test_blocked_bad_input(tmp_path):
    a, b = _graphs(2)
    other = Graph(b.nodes[:-1], b.edges[: (11 * 10) // 2], [f"q{i}" for i in range(11)])
    with pytest.raises(DeparaError, match="different probes"):
        similarity_matrix_blocked([a, other], workdir=tmp_path)
    with pytest.raises(DeparaError, match="memory_mb"):
        similarity_matrix_blocked([a, b], workdir=tmp_path, memory_mb=0)
    with pytest.raises(DeparaError, match="engine"):
        similarity_matrix_blocked([a, b], workdir=tmp_path, engine="dask")
    with pytest.raises(DeparaError, match="no graphs"):
        similarity_matrix_blocked([], workdir=tmp_path)
    with pytest.raises(DeparaError, match="dtype"):
        similarity_matrix_blocked([a, b], workdir=tmp_path, dtype=np.int32)


def _save_all(graphs, folder, ranks=True, first=0):
    folder.mkdir(exist_ok=True)
    paths = []
    for k, g in enumerate(graphs):
        paths.append(folder / f"f{first + k}.safetensors")
        (attach_edge_ranks(g) if ranks else g).save(paths[-1])
    return paths


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_similarity_matrix_from_files_is_bit_identical_to_loaded_graphs(tmp_path, dtype):
    graphs = _graphs(g=6, seed=3, ties=True)
    paths = _save_all(graphs[:4], tmp_path) + _save_all(graphs[4:], tmp_path / "plain", ranks=False, first=4)
    loaded = [Graph.load(p) for p in paths]
    ref = similarity_matrix(loaded, lam=0.7, dtype=dtype)
    got = similarity_matrix(paths, lam=0.7, dtype=dtype)  # read range by range, never loaded as Graphs
    assert got.names == tuple(p.stem for p in paths)
    for x, y in ((got.S, ref.S), (got.V, ref.V), (got.E, ref.E)):
        assert np.array_equal(x, y)
    mixed = similarity_matrix({"a": paths[0], "b": loaded[1], "c": str(paths[2])}, lam=0.7, dtype=dtype)
    assert np.array_equal(mixed.E, ref.E[:3, :3]) and mixed.names == ("a", "b", "c")
    # Independent: scipy's Spearman of the edges, and the per-probe cosine mean by hand.
    rho = spearmanr(np.stack([g.edges for g in loaded]), axis=1).statistic
    np.testing.assert_allclose(got.E, rho, atol=1e-12 if dtype == np.float64 else 1e-5)
    x0, x1 = (g.nodes / np.where(np.linalg.norm(g.nodes, axis=1, keepdims=True) > 0,
                                 np.linalg.norm(g.nodes, axis=1, keepdims=True), 1) for g in loaded[:2])
    np.testing.assert_allclose(got.V[0, 1], np.einsum("ij,ij->i", x0, x1).mean(), atol=1e-6)


def test_node_blocks_of_probes_equal_one_block(tmp_path, monkeypatch):
    import depara.core.similarity as gs

    paths = _save_all(_graphs(g=5, seed=4), tmp_path)
    whole = similarity_matrix(paths)
    monkeypatch.setattr(gs, "_node_block_budget", lambda *a: 1)  # one probe per block: byte ranges of each file
    small = gs.similarity_matrix(paths)
    np.testing.assert_allclose(small.V, whole.V, atol=1e-12, rtol=0)


@pytest.mark.parametrize("corrupt, why", [
    (lambda r: r[::-1].copy(), "do not order the stored edges"),
    (lambda r: r + 1, "not the doubled average ranks"),
])
def test_similarity_matrix_from_corrupt_files_names_the_file(tmp_path, corrupt, why):
    a, b = _graphs(2, seed=5)
    attach_edge_ranks(a).save(tmp_path / "a.safetensors")
    b.edge_ranks = corrupt(doubled_ranks(b.edges))
    b.save(tmp_path / "bad.safetensors")
    with pytest.raises(DeparaError, match=why) as info:
        similarity_matrix([tmp_path / "a.safetensors", tmp_path / "bad.safetensors"])
    assert "bad.safetensors" in str(info.value)
    (tmp_path / "cut.safetensors").write_bytes((tmp_path / "a.safetensors").read_bytes()[:-10])
    with pytest.raises(DeparaError, match="cut.safetensors"):
        similarity_matrix([tmp_path / "a.safetensors", tmp_path / "cut.safetensors"])
    with pytest.raises(DeparaError, match="graphs"):
        similarity_matrix(tmp_path / "a.safetensors")


def test_label_graph_file_has_no_node_term(tmp_path):
    g = _graphs(1, n=8, seed=6)[0]
    lab = Graph.from_labels([0, 0, 1, 1, 2, 2, 0, 1], g.probe_ids)
    lab.save(tmp_path / "lab.safetensors")
    g.save(tmp_path / "g.safetensors")
    ref = similarity_matrix({"l": lab, "g": g}, lam=0.5)
    got = similarity_matrix({"l": tmp_path / "lab.safetensors", "g": tmp_path / "g.safetensors"}, lam=0.5)
    assert np.array_equal(got.E, ref.E) and np.isnan(got.V[0]).all() and got.V[1, 1] == ref.V[1, 1]
    assert np.array_equal(got.S, ref.S)
