"""Memory-bounded feature handling: chunked edge Gram matrix (graph) and disk-spilled features (extract)."""

from __future__ import annotations

import os
import tempfile
import tracemalloc

import numpy as np
import pytest
import torch
from scipy.spatial.distance import pdist

from depara.extraction import extract as extract_mod
from depara.core import edges as edges_mod
from depara.errors import DeparaError
from depara.extraction.extract import build_graphs
from depara.core.graph import Graph

from _core_torch_helpers import random_images, tiny_vgg

torch.set_num_threads(1)


# ------------------------------------------------------------------------------------------ graph: chunks
@pytest.mark.parametrize("edge", ["cosine", "correlation"])
@pytest.mark.parametrize("center", [True, False])
def test_chunked_gram_of_a_memmap_matches_pdist(tmp_path, monkeypatch, edge, center):
    rng = np.random.default_rng(10)
    feats = (rng.normal(size=(9, 5, 7)) + 0.3).astype(np.float32)
    path = tmp_path / "f.npy"
    np.save(path, feats)
    mm = np.load(path, mmap_mode="r")
    monkeypatch.setattr(edges_mod, "CHUNK_BYTES", 8 * 9 * 4)  # 4 columns per chunk: 9 chunks, last one short
    assert len(edges_mod.column_chunks(9, 35)) == 9
    g = Graph.from_arrays(rng.normal(size=(9, 3)), mm, center=center, edge=edge)
    flat = feats.reshape(9, -1).astype(np.float64)
    flat = flat - flat.mean(axis=0) if center else flat
    np.testing.assert_allclose(g.edges, 1 - pdist(flat, edge), atol=1e-6)
    np.testing.assert_array_equal(np.load(path), feats)  # the input file is only read


def test_chunking_keeps_exact_ties(monkeypatch):
    rng = np.random.default_rng(11)
    base = rng.normal(size=(4, 50))
    # probes 4, 5 duplicate probe 1; probe 6 = 2 × probe 2 (same direction): equal cosines, exactly
    feats = np.vstack([base, base[1], base[1], 2 * base[2]])
    monkeypatch.setattr(edges_mod, "CHUNK_BYTES", 8 * 7 * 3)  # 3 columns per chunk
    g = Graph.from_arrays(rng.normal(size=(7, 2)), feats, center=False)
    m = g.edge_matrix()
    assert m[0, 1] == m[0, 4] == m[0, 5] and m[3, 1] == m[3, 4] == m[3, 5]
    assert m[0, 2] == m[0, 6] and m[1, 2] == m[1, 6]
    np.testing.assert_allclose(g.edges, 1 - pdist(feats, "cosine"), atol=1e-6)


def test_no_full_size_float64_copy(monkeypatch):
    n, d = 6, 200_000  # 4.8 MB float32, 9.6 MB as float64
    feats = np.random.default_rng(12).normal(size=(n, d)).astype(np.float32)
    monkeypatch.setattr(edges_mod, "CHUNK_BYTES", 2**20)
    tracemalloc.start()
    try:
        Graph.from_arrays(np.ones((n, 2)), feats)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 0.4 * n * d * 8, peak  # a float64 copy of the whole matrix alone would be n*d*8 bytes


def test_zero_row_after_centring_still_detected_in_chunks(monkeypatch):
    feats = np.random.default_rng(13).normal(size=(5, 30))
    feats[2] = (feats.sum(axis=0) - feats[2]) / 4  # the mean of the other probes: zero after centring (rounding)
    monkeypatch.setattr(edges_mod, "CHUNK_BYTES", 8 * 5 * 7)
    with pytest.raises(DeparaError, match=r"probe row\(s\) are all zero after centring.*probe index 2"):
        Graph.from_arrays(np.ones((5, 2)), feats)


# ------------------------------------------------------------------------------------- extract: spilling
LAYERS = ["0", "2", "3", "6", "12"]


def test_features_on_disk_give_identical_graphs(monkeypatch):
    net, x = tiny_vgg(), random_images(7)
    made = []
    real = tempfile.TemporaryDirectory

    def spy(*a, **k):
        made.append(real(*a, **k))
        return made[-1]

    monkeypatch.setattr(tempfile, "TemporaryDirectory", spy)
    in_ram = build_graphs(net, x, LAYERS, batch_size=3)
    assert not made  # the default budget holds these small layers in RAM
    on_disk = build_graphs(net, x, LAYERS, batch_size=3, feature_memory_mb=0)
    assert len(made) == 1 and not os.path.exists(made[0].name)  # spilled, then deleted
    for name in LAYERS:
        assert on_disk[name] == in_ram[name]  # bitwise equal nodes, edges, ids, meta


def test_budget_keeps_smallest_layers_in_ram(monkeypatch):
    seen = {}
    real_take = extract_mod._FeatureStore.take

    def take(self, name):
        arr = real_take(self, name)
        seen[name] = isinstance(arr, np.memmap)
        return arr

    monkeypatch.setattr(extract_mod._FeatureStore, "take", take)
    net, x = tiny_vgg(), random_images(5)
    # per probe: layer "0" 4×32×32 floats = 16 KiB, "6" 8×16×16 = 8 KiB, "12" 5 floats; 5 probes
    ref = build_graphs(net, x, ["0", "6", "12"])
    graphs = build_graphs(net, x, ["0", "6", "12"], feature_memory_mb=(5 * 8 * 1024 + 5 * 20) / 2**20)
    assert seen == {"0": True, "6": False, "12": False}
    assert graphs == ref


def test_temporary_files_removed_on_error(monkeypatch):
    made = []
    real = tempfile.TemporaryDirectory

    def spy(*a, **k):
        made.append(real(*a, **k))
        return made[-1]

    def interrupt(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(tempfile, "TemporaryDirectory", spy)
    monkeypatch.setattr(Graph, "from_arrays", interrupt)
    with pytest.raises(KeyboardInterrupt):
        build_graphs(tiny_vgg(), random_images(4), ["0", "6"], batch_size=2, feature_memory_mb=0)
    assert len(made) == 1 and not os.path.exists(made[0].name)


@pytest.mark.parametrize("bad", [-1, "2G", float("nan"), None, True])
def test_bad_feature_memory(bad):
    with pytest.raises(DeparaError, match="feature_memory_mb: expected a number of megabytes"):
        build_graphs(tiny_vgg(), random_images(3), ["2"], feature_memory_mb=bad)
