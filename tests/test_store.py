"""The content-addressed store: keys, atomic put/get, corrupt entries rebuilt, info/clear, weights hash."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from depara import Graph
from depara.errors import DeparaError
from depara.extraction.store import STORE_VERSION, GraphStore, weights_hash


def _graph(seed: int = 0, n: int = 6) -> Graph:
    rng = np.random.default_rng(seed)
    return Graph.from_arrays(rng.normal(size=(n, 4, 4)), rng.normal(size=(n, 5)), meta={"model": "m", "layer": "l"})


def test_key_is_sha256_of_its_parts_and_ignores_option_order():
    k1 = GraphStore.key("w", "layer1", "p", {"a": 1, "b": [2, 3]})
    k2 = GraphStore.key("w", "layer1", "p", {"b": [2, 3], "a": 1})
    assert k1 == k2
    text = "\n".join([STORE_VERSION, "graph", "w", "layer1", "p", '{"a":1,"b":[2,3]}'])
    assert k1 == "graph-" + hashlib.sha256(text.encode()).hexdigest()
    # every part matters
    assert len({k1, GraphStore.key("w2", "layer1", "p", {"a": 1, "b": [2, 3]}),
                GraphStore.key("w", "layer2", "p", {"a": 1, "b": [2, 3]}),
                GraphStore.key("w", "layer1", "p2", {"a": 1, "b": [2, 3]}),
                GraphStore.key("w", "layer1", "p", {"a": 2, "b": [2, 3]}),
                GraphStore.key("w", "layer1", "p", {"a": 1, "b": [2, 3]}, kind="pooled")}) == 6


def test_put_get_roundtrip_and_has(tmp_path):
    store = GraphStore(tmp_path)
    key = store.key("w", "l", "p", {})
    assert not store.has(key) and store.get(key) is None
    g = _graph()
    store.put(key, g)
    assert store.has(key)
    assert store.get(key) == g
    arr_key = store.key("w", "l", "p", {}, kind="pooled")
    store.put_array(arr_key, np.arange(12, dtype=np.float32).reshape(3, 4))
    np.testing.assert_array_equal(store.get_array(arr_key), np.arange(12, dtype=np.float32).reshape(3, 4))
    info = store.info()
    assert info["entries"] == 2 and set(info["kinds"]) == {"graph", "pooled"}
    assert info["bytes"] == sum(p.stat().st_size for p in store.entries())
    assert not list(tmp_path.rglob("*.part"))  # no temporary file left behind


def test_corrupt_entry_is_deleted_and_reported_missing(tmp_path):
    store = GraphStore(tmp_path)
    key = store.key("w", "l", "p", {})
    store.put(key, _graph())
    path = store.path(key)
    path.write_bytes(path.read_bytes()[:40])  # truncated, as after a crash of a non-atomic writer
    assert store.get(key) is None
    assert not path.exists()
    akey = store.key("w", "l", "p", {}, kind="pooled")
    store.put_array(akey, np.ones(3))
    store.path(akey).write_bytes(b"garbage")
    assert store.get_array(akey) is None and not store.has(akey)


def test_clear_removes_everything(tmp_path):
    store = GraphStore(tmp_path / "s")
    for i in range(3):
        store.put(store.key("w", f"l{i}", "p", {}), _graph(i))
    assert store.clear() == 3
    assert store.info()["entries"] == 0


def test_bad_keys_and_values(tmp_path):
    store = GraphStore(tmp_path)
    with pytest.raises(DeparaError, match="layer"):
        store.key("w", "", "p", {})
    with pytest.raises(DeparaError, match="options"):
        store.key("w", "l", "p", {"x": object()})
    with pytest.raises(DeparaError, match="store key"):
        store.path("../../etc/passwd")
    with pytest.raises(DeparaError, match="Graph"):
        store.put(store.key("w", "l", "p"), np.ones(3))  # type: ignore[arg-type]
    (tmp_path / "file").write_text("x")
    with pytest.raises(DeparaError, match="not a folder"):
        GraphStore(tmp_path / "file")


def test_weights_hash_follows_the_weights_only():
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    a = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4))
    b = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4))
    b.load_state_dict(a.state_dict())
    assert weights_hash(a) == weights_hash(b)
    with torch.no_grad():
        b[1].running_mean[0] += 1e-3  # a buffer counts too
    assert weights_hash(a) != weights_hash(b)


def test_graph_key_is_the_options_record_select_always_used():
    from depara.options import DEFAULT_GRAPH_OPTIONS, GraphOptions
    from depara.extraction.probes import Preprocess
    from depara.extraction.store import graph_key, graph_key_options

    prep = Preprocess.parse("32x32")
    record = {**DEFAULT_GRAPH_OPTIONS.to_meta(), "preprocess": prep.describe()}  # select's literal record
    assert graph_key_options(DEFAULT_GRAPH_OPTIONS, prep) == record
    # Normalised first: an int node size, a mapping of fields, a preset string all give the one record.
    assert graph_key_options({"node_size": 56}, "32x32") == graph_key_options(GraphOptions(node_size=(56, 56)), prep)
    text = "\n".join([STORE_VERSION, "graph", "w", "layer3", "p", __import__("json").dumps(
        record, sort_keys=True, separators=(",", ":"))])
    assert graph_key("w", "layer3", "p", None, prep) == "graph-" + hashlib.sha256(text.encode()).hexdigest()
    assert graph_key("w", "l", "p", None, prep, extra={}) == graph_key("w", "l", "p", None, prep)
    assert graph_key("w", "l", "p", None, prep, extra={"nodes": False}) != graph_key("w", "l", "p", None, prep)
    assert graph_key("w", "l", "p", None, prep, kind="pooled").startswith("pooled-")
    with pytest.raises(DeparaError, match="extra: 'edge' is already a graph option"):
        graph_key_options(None, prep, {"edge": "cosine"})
    with pytest.raises(DeparaError, match="scalar"):
        graph_key_options({"scalar": "nope"}, prep)


def test_arrays_memory_mapped_and_removed(tmp_path):
    store = GraphStore(tmp_path)
    k = store.key("w", "l", "p", kind="shard_features")
    store.put_array(k, np.arange(12, dtype=np.float32).reshape(3, 4))
    mm = store.get_array(k, mmap=True)
    assert not mm.flags.writeable and not mm.flags.owndata  # a read-only view of the map (test_store_verify.py)
    np.testing.assert_array_equal(mm, np.arange(12).reshape(3, 4))
    del mm
    assert store.remove(k) and not store.has(k) and not store.remove(k)
