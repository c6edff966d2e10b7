"""Graph.from_arrays against scipy's own distances and a hand-computed case; validation; save/load."""

from __future__ import annotations

import json
import os
import sys

import numpy as np
import pytest
from scipy.spatial.distance import pdist, squareform

import depara
from depara.core import graph as graph_mod
from depara.errors import DeparaError
from depara.core.graph import Graph


def _rng(seed=0):
    return np.random.default_rng(seed)


# ------------------------------------------------------------------------------------------- construction
@pytest.mark.parametrize("center", [True, False])
def test_cosine_edges_match_scipy_pdist(center):
    rng = _rng(1)
    feats = rng.normal(size=(12, 3, 2, 2)) + 0.5
    g = Graph.from_arrays(rng.normal(size=(12, 4, 4)), feats, center=center)
    flat = feats.reshape(12, -1)
    if center:
        flat = flat - flat.mean(axis=0)
    np.testing.assert_allclose(g.edges, 1 - pdist(flat, "cosine"), atol=1e-6)
    assert g.edges.dtype == np.float32 and g.nodes.dtype == np.float32
    assert g.edges.shape == (12 * 11 // 2,)
    assert g.meta["edge"] == "cosine" and g.meta["center"] is center


@pytest.mark.parametrize("center", [True, False])
def test_correlation_edges_are_pearson_r(center):
    rng = _rng(2)
    feats = rng.normal(size=(9, 6))
    g = Graph.from_arrays(rng.normal(size=(9, 5)), feats, edge="correlation", center=center)
    flat = feats - feats.mean(axis=0) if center else feats
    # stored value = Pearson r = 1 - correlation distance
    np.testing.assert_allclose(g.edges, 1 - pdist(flat, "correlation"), atol=1e-6)
    np.testing.assert_allclose(g.edges[0], np.corrcoef(flat[0], flat[1])[0, 1], atol=1e-6)


def test_hand_computed_three_probes():
    feats = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    attr = np.array([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]])
    g = Graph.from_arrays(attr, feats, center=False)
    np.testing.assert_allclose(g.edges, [0.0, 1 / np.sqrt(2), 1 / np.sqrt(2)], atol=1e-7)
    # centred rows: (1/3, -2/3), (-2/3, 1/3), (1/3, 1/3)
    g = Graph.from_arrays(attr, feats, center=True)
    np.testing.assert_allclose(g.edges, [-0.8, -1 / np.sqrt(10), -1 / np.sqrt(10)], atol=1e-7)
    np.testing.assert_array_equal(g.nodes, attr.astype(np.float32))
    np.testing.assert_array_equal(feats, [[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])  # the input is left alone
    assert len(g) == 3 and g.probe_ids == ("0", "1", "2")
    np.testing.assert_allclose(g.edge_matrix(), squareform(g.edges) + np.eye(3), atol=1e-7)


def test_nodes_flattened_and_channel_reductions():
    rng = _rng(3)
    attr = rng.normal(size=(5, 4, 3, 2))  # N×H×W×C
    feats = rng.normal(size=(5, 7))
    g = Graph.from_arrays(attr, feats)
    np.testing.assert_allclose(g.nodes, attr.reshape(5, -1), rtol=1e-6)
    assert g.meta["channel_reduction"] is None
    g = Graph.from_arrays(attr, feats, channel_reduction="mean")
    np.testing.assert_allclose(g.nodes, attr.mean(axis=-1).reshape(5, -1), rtol=1e-6, atol=1e-7)
    g = Graph.from_arrays(attr, feats, channel_reduction="abs_mean", channel_axis=1)
    np.testing.assert_allclose(g.nodes, np.abs(attr).mean(axis=1).reshape(5, -1), rtol=1e-6)
    assert g.meta["channel_reduction"] == "abs_mean" and g.node_size == 6


def test_channel_reduction_in_chunks_of_a_memmap(tmp_path, monkeypatch):
    rng = _rng(4)
    attr = rng.normal(size=(11, 2, 3, 3)).astype(np.float32)
    path = tmp_path / "attr.npy"
    np.save(path, attr)
    mm = np.load(path, mmap_mode="r")
    monkeypatch.setattr(graph_mod, "CHUNK_BYTES", 100)  # force several probe chunks
    g = Graph.from_arrays(mm, rng.normal(size=(11, 4)), channel_reduction="abs_mean", channel_axis=1)
    np.testing.assert_allclose(g.nodes, np.abs(attr).mean(axis=1).reshape(11, -1), rtol=1e-6)


def test_probe_ids_and_meta_are_kept():
    rng = _rng(5)
    g = Graph.from_arrays(rng.normal(size=(4, 2)), rng.normal(size=(4, 3)), probe_ids=["a", "b", "c", "d"],
                          meta={"model": "m", "layer": "l"})
    assert g.probe_ids == ("a", "b", "c", "d")
    assert g.meta["model"] == "m" and g.name == "m:l"
    assert "m:l" in repr(g)


# ------------------------------------------------------------------------------------------- bad input
def _ok(n=5, seed=6):
    rng = _rng(seed)
    return rng.normal(size=(n, 3)), rng.normal(size=(n, 4))


def test_nan_in_features_counted():
    attr, feat = _ok()
    feat[0, 0] = np.nan
    feat[2, 1] = np.inf
    with pytest.raises(DeparaError, match=r"features contain 2 non-finite"):
        Graph.from_arrays(attr, feat)


def test_inf_in_attributions_counted():
    attr, feat = _ok()
    attr[1, 2] = -np.inf
    with pytest.raises(DeparaError, match=r"attributions contain 1 non-finite"):
        Graph.from_arrays(attr, feat)


def test_probe_count_mismatch():
    attr, feat = _ok()
    with pytest.raises(DeparaError, match=r"attributions have 5 probes but features have 4"):
        Graph.from_arrays(attr, feat[:4])


def test_fewer_than_three_probes():
    attr, feat = _ok()
    with pytest.raises(DeparaError, match=r"at least 3 probes, got 2"):
        Graph.from_arrays(attr[:2], feat[:2])


def test_zero_row_after_centring():
    feat = np.array([[1.0, 2.0], [-1.0, 0.0], [0.0, 1.0]])  # row 2 equals the mean over probes
    with pytest.raises(DeparaError, match=r"1 probe row\(s\) are all zero after centring.*probe index 2"):
        Graph.from_arrays(np.ones((3, 2)), feat)
    Graph.from_arrays(np.ones((3, 2)), feat, center=False)  # fine without centring


def test_zero_row_without_centring():
    feat = np.array([[1.0, 2.0], [0.0, 0.0], [0.0, 1.0]])
    with pytest.raises(DeparaError, match=r"1 probe row\(s\) are all zero, e.g. probe index 1; cosine"):
        Graph.from_arrays(np.ones((3, 2)), feat, center=False)


def test_constant_features_rejected():
    with pytest.raises(DeparaError, match=r"3 probe row\(s\) are all zero after centring"):
        Graph.from_arrays(np.ones((3, 2)), np.full((3, 4), 7.0))


def test_constant_row_for_correlation():
    feat = np.array([[1.0, 2.0, 3.0], [5.0, 5.0, 5.0], [0.0, 1.0, 0.0]])
    with pytest.raises(DeparaError, match=r"constant across feature dimensions"):
        Graph.from_arrays(np.ones((3, 2)), feat, edge="correlation", center=False)


@pytest.mark.parametrize("ids, pattern", [
    (["a", "b"], r"probe_ids: 2 ids for 5 probes"),
    (["a", "b", "c", "a", "e"], r"probe_ids: ids must be unique, 'a' occurs 2 times"),
    ("abcde", r"single string"),
])
def test_bad_probe_ids(ids, pattern):
    attr, feat = _ok()
    with pytest.raises(DeparaError, match=pattern):
        Graph.from_arrays(attr, feat, probe_ids=ids)


@pytest.mark.parametrize("kwargs, pattern", [
    ({"edge": "euclid"}, r"edge: expected one of cosine, correlation"),
    ({"channel_reduction": "max"}, r"channel_reduction"),
    ({"channel_reduction": "mean", "channel_axis": 0}, r"channel_axis=0"),
    ({"channel_reduction": "mean", "channel_axis": 5}, r"channel_axis=5"),
    ({"meta": {"x": object()}}, r"meta: must be JSON-serialisable"),
    ({"meta": ["x"]}, r"meta: expected a dict"),
])
def test_bad_options(kwargs, pattern):
    attr, feat = _ok()
    with pytest.raises(DeparaError, match=pattern):
        Graph.from_arrays(attr, feat, **kwargs)


def test_non_numeric_and_empty_arrays():
    _, feat = _ok()
    with pytest.raises(DeparaError, match=r"attributions: expected a numeric array"):
        Graph.from_arrays(np.array(["a"] * 5), feat)
    with pytest.raises(DeparaError, match=r"features: empty per-probe arrays"):
        Graph.from_arrays(np.ones((5, 2)), np.ones((5, 0)))


def test_constructor_validates_shapes():
    with pytest.raises(DeparaError, match=r"nodes: expected a 2-D array"):
        Graph(np.ones(4), np.ones(6))
    with pytest.raises(DeparaError, match=r"edges: 5 values, expected N\(N-1\)/2 = 6"):
        Graph(np.ones((4, 2)), np.ones(5))
    with pytest.raises(DeparaError, match=r"edges contain 1 non-finite"):
        Graph(np.ones((4, 2)), np.array([1, 2, 3, 4, 5, np.nan]))


# ------------------------------------------------------------------------------------------- storage
def _graph(seed=7, n=6):
    rng = _rng(seed)
    return Graph.from_arrays(rng.normal(size=(n, 2, 3)), rng.normal(size=(n, 5)),
                             probe_ids=[f"img/{i}.png" for i in range(n)], meta={"model": "toy", "layer": "fc"})


def test_save_load_round_trip(tmp_path):
    g = _graph()
    path = g.save(tmp_path / "g.safetensors")
    h = Graph.load(path)
    assert h == g
    assert h.probe_ids == g.probe_ids and h.meta == g.meta
    np.testing.assert_array_equal(h.edges, g.edges)
    assert os.listdir(tmp_path) == ["g.safetensors"]
    # the file is safetensors with our tag in the header
    from safetensors import safe_open
    with safe_open(str(path), framework="np") as fh:
        md = fh.metadata()
    assert md["format"] == "depara-graph" and json.loads(md["probe_ids"])[0] == "img/0.png"


def test_interrupted_save_leaves_no_file(tmp_path, monkeypatch):
    import depara.core.graph

    def explode(tensors, filename, metadata=None):
        with open(filename, "wb") as fh:
            fh.write(b"half written")
        raise KeyboardInterrupt

    monkeypatch.setattr(depara.core.graph, "_write_safetensors", explode)
    with pytest.raises(KeyboardInterrupt):
        _graph().save(tmp_path / "g.safetensors")
    assert os.listdir(tmp_path) == []


def test_save_into_missing_folder(tmp_path):
    with pytest.raises(DeparaError, match=r"folder .*nope does not exist"):
        _graph().save(tmp_path / "nope" / "g.safetensors")


def _write_bad_files(tmp_path):
    from safetensors.numpy import save_file

    g = _graph()
    good = g.save(tmp_path / "good.safetensors").read_bytes()
    files = {}
    files["truncated"] = tmp_path / "trunc.safetensors"
    files["truncated"].write_bytes(good[:-7])
    files["truncated_header"] = tmp_path / "trunc2.safetensors"
    files["truncated_header"].write_bytes(good[:40])
    files["random"] = tmp_path / "random.bin"
    files["random"].write_bytes(np.random.default_rng(0).bytes(500))
    files["empty"] = tmp_path / "empty.safetensors"
    files["empty"].write_bytes(b"")
    files["npz"] = tmp_path / "g.npz"
    np.savez(files["npz"], nodes=g.nodes, edges=g.edges)
    files["plain"] = tmp_path / "plain.safetensors"
    save_file({"nodes": g.nodes, "edges": g.edges}, str(files["plain"]))
    files["shapes"] = tmp_path / "shapes.safetensors"
    save_file({"nodes": g.nodes, "edges": g.edges[:-1]}, str(files["shapes"]),
              metadata={"format": "depara-graph", "version": "1", "probe_ids": json.dumps(list(g.probe_ids)),
                        "meta": "{}"})
    files["ids"] = tmp_path / "ids.safetensors"
    save_file({"nodes": g.nodes, "edges": g.edges}, str(files["ids"]),
              metadata={"format": "depara-graph", "version": "1", "probe_ids": '["a"]', "meta": "{}"})
    files["version"] = tmp_path / "v9.safetensors"
    save_file({"nodes": g.nodes, "edges": g.edges}, str(files["version"]),
              metadata={"format": "depara-graph", "version": "9", "probe_ids": "[]", "meta": "{}"})
    files["json"] = tmp_path / "json.safetensors"
    save_file({"nodes": g.nodes, "edges": g.edges}, str(files["json"]),
              metadata={"format": "depara-graph", "version": "1", "probe_ids": "[oops", "meta": "{}"})
    files["missing"] = tmp_path / "missing.safetensors"
    return files


@pytest.mark.parametrize("case, pattern", [
    ("truncated", r"corrupt or truncated"),
    ("truncated_header", r"truncated, or not safetensors"),
    ("random", r"not a (readable )?depara graph file"),
    ("empty", r"truncated or empty \(0 bytes\)"),
    ("npz", r"zip/npz archive, not a depara graph"),
    ("plain", r"without the 'depara-graph' format tag"),
    ("shapes", r"inconsistent depara graph \(edges: 14 values"),
    ("ids", r"inconsistent depara graph \(probe_ids: 1 ids for 6 probes"),
    ("version", r"version '9' is not supported"),
    ("json", r"corrupt depara graph metadata"),
    ("missing", r"graph file not found"),
])
def test_load_rejects_bad_files(tmp_path, case, pattern):
    path = _write_bad_files(tmp_path)[case]
    with pytest.raises(DeparaError, match=pattern) as info:
        Graph.load(path)
    message = str(info.value)
    assert "\n" not in message and str(path) in message


@pytest.mark.parametrize("case", ["truncated", "truncated_header", "random", "empty", "npz", "plain", "shapes",
                                  "ids", "version", "json"])
def test_from_bytes_checks_as_load_does(tmp_path, case):
    """Graph.from_bytes (the verified store's reader of bytes it hashed) refuses each bad file with load's own
    one line, naming the file; a good file's bytes give the graph load gives."""
    path = _write_bad_files(tmp_path)[case]
    with pytest.raises(DeparaError) as want:
        Graph.load(path)
    with pytest.raises(DeparaError) as got:
        Graph.from_bytes(path.read_bytes(), path)
    assert str(got.value) == str(want.value)
    g = _graph()
    good = g.save(tmp_path / "g.safetensors")
    h = Graph.from_bytes(np.frombuffer(good.read_bytes(), dtype=np.uint8), good)
    assert h == g and h.probe_ids == g.probe_ids and h.meta == g.meta


def test_import_depara_does_not_import_torch():
    import subprocess

    code = "import sys, depara; depara.Graph; depara.similarity_matrix; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
    assert set(depara.__all__) >= {"Graph", "build_graph", "build_graphs", "load_model", "rank_sources"}
    with pytest.raises(AttributeError):
        depara.no_such_thing  # noqa: B018
