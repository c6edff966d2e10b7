"""depara.extraction.engine without Ray: jobs through the graph store, failures per job, the bad-input messages."""

from __future__ import annotations

import sys

import numpy as np
import pytest
from scipy.stats import rankdata

from depara.io.cluster import check_address
from depara.extraction.engine import (Job, ShardResult, assemble_job, extract_graphs, import_ray,
                                      run_shard, shard_ranges, summary)
from depara.errors import DeparaError
from depara.extraction.extract import build_graphs
from depara.extraction.models import load_model
from depara.extraction.probes import ProbeSet
from depara.options import GraphOptions
from depara.extraction.store import GraphStore, graph_key, weights_hash

from _core_torch_helpers import write_images

SPEC = "torchvision:squeezenet1_1"
LAYERS = ("features.3", "features.5")


@pytest.fixture(scope="module")
def probes(tmp_path_factory):
    folder = tmp_path_factory.mktemp("probes")
    write_images(folder, [f"p{i:02d}.png" for i in range(6)], size=(32, 32))
    return folder


def _job(probes, **kw):
    return Job(kw.pop("model", SPEC), kw.pop("layers", LAYERS), str(probes), preprocess="32x32", node_size=8, **kw)


def test_local_engine_matches_build_graphs_and_stores_ranks(probes, tmp_path):
    res = extract_graphs([_job(probes)], tmp_path / "store", progress=False)
    r = res[SPEC]
    assert r.ok and r.error is None and set(r.graphs) == set(LAYERS) and r.cached == ()
    # Independent computation: the same model (seed 0, random init) and probes through build_graphs directly.
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    net = load_model(SPEC)
    ps = ProbeSet.from_folder(probes, preprocess="32x32")
    direct = build_graphs(net, ps, list(LAYERS), node_size=8)
    store = GraphStore(tmp_path / "store")
    # The key as `depara select` has always written it: THE options record plus the probes' preprocessing.
    record = {**GraphOptions(node_size=8).to_meta(), "preprocess": ps.preprocess.describe()}
    for layer in LAYERS:
        key = store.key(weights_hash(net), layer, ps.content_hash(), record)
        assert r.graphs[layer] == key == graph_key(weights_hash(net), layer, ps.content_hash(),
                                                   {"node_size": 8}, "32x32")
        pooled = store.get_array(store.key(weights_hash(net), layer, ps.content_hash(), record, kind="pooled"))
        assert pooled is not None and pooled.shape[0] == len(ps)
        g = store.get(key)
        np.testing.assert_array_equal(g.nodes, direct[layer].nodes)
        np.testing.assert_array_equal(g.edges, direct[layer].edges)
        # Stored ranks: twice scipy's average ranks, exactly.
        np.testing.assert_array_equal(g.edge_ranks, (2 * rankdata(g.edges)).astype(np.int32))


def test_failed_job_reported_rest_complete_and_rerun_is_cached(probes, tmp_path):
    jobs = [_job(probes, name="good"), _job(probes, name="bad-layer", layers=("no_such_layer",)),
            _job(probes, name="bad-model", model="torchvision:not_a_model")]
    res = extract_graphs(jobs, tmp_path, progress=False)
    assert list(res) == ["good", "bad-layer", "bad-model"]
    assert res["good"].ok
    assert not res["bad-layer"].ok and "no_such_layer" in res["bad-layer"].error
    assert not res["bad-model"].ok and "not_a_model" in res["bad-model"].error
    assert "\n" not in res["bad-layer"].error
    files = {p: p.stat().st_mtime_ns for p in GraphStore(tmp_path).entries()}
    assert len(files) == 4  # per layer: the graph and its pooled features (what `depara select` reads)
    again = extract_graphs(jobs[:1], tmp_path, progress=False)["good"]
    assert again.ok and set(again.cached) == set(LAYERS) and again.graphs == res["good"].graphs
    assert {p: p.stat().st_mtime_ns for p in GraphStore(tmp_path).entries()} == files  # nothing rewritten
    rows = summary(res)
    assert [row["ok"] for row in rows] == [True, False, False]


def test_bad_jobs_and_engine(probes, tmp_path):
    with pytest.raises(DeparaError, match="two jobs are named 'x'"):
        extract_graphs([_job(probes, name="x"), _job(probes, name="x")], tmp_path, progress=False)
    with pytest.raises(DeparaError, match="engine: expected one of local, ray"):
        extract_graphs([_job(probes)], tmp_path, engine="spark", progress=False)
    with pytest.raises(DeparaError, match="no jobs"):
        extract_graphs([], tmp_path)
    with pytest.raises(DeparaError, match="address: only used with engine='ray'"):
        extract_graphs([_job(probes)], tmp_path, address="auto", progress=False)
    with pytest.raises(DeparaError, match="layers of job"):
        Job(SPEC, (), str(probes))
    # A job whose probe folder does not exist fails alone.
    res = extract_graphs([_job(probes, name="p"), Job(SPEC, LAYERS, str(tmp_path / "nowhere"), name="m")],
                         tmp_path, progress=False)
    assert res["p"].ok and not res["m"].ok and "no such folder" in res["m"].error


def test_ray_missing_says_how_to_install(monkeypatch, probes, tmp_path):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray → ImportError
    with pytest.raises(DeparaError, match=r'pip install -e "\.\[ray\]"'):
        import_ray()
    with pytest.raises(DeparaError, match="Ray is not installed"):
        extract_graphs([_job(probes)], tmp_path, engine="ray", progress=False)


def test_ray_init_failure_is_one_line_with_its_type(monkeypatch):
    """ray.init's own error, as errors.exception_reason words it: its type, its first line, cut at 200 characters
    (a stand-in for Ray, which is not needed to check the wording)."""
    from types import SimpleNamespace

    from depara.io import cluster

    def fake_ray(exc):
        def init(**kwargs):
            raise exc
        return SimpleNamespace(is_initialized=lambda: False, init=init)

    cases = [(ConnectionError("Could not find any running Ray instance.\nPlease specify the one to connect to."),
              "ConnectionError: Could not find any running Ray instance."),
             (RuntimeError(""), "RuntimeError"),
             (TimeoutError("x" * 500), "TimeoutError: " + "x" * 200)]
    for exc, reason in cases:
        monkeypatch.setattr(cluster, "import_ray", lambda exc=exc: fake_ray(exc))
        with pytest.raises(DeparaError) as info:
            cluster.connect("auto")
        assert str(info.value) == f"address 'auto': cannot connect to a Ray cluster ({reason})"


@pytest.mark.timeout(60)  # a hang fails here (no wall-clock assertion)
def test_unreachable_address_is_one_line_and_fast():
    import socket

    with socket.socket() as s:  # a port nobody listens on: bind, then close
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(DeparaError, match=rf"address '127.0.0.1:{port}': no Ray cluster reachable"):
        check_address(f"127.0.0.1:{port}")
    for bad in ("localhost", "host:port", "1.2.3.4:0", ""):
        with pytest.raises(DeparaError, match="expected 'auto' or HOST:PORT"):
            check_address(bad)


class _Listener:
    """A local TCP listener that accepts connections and then either never answers or answers ``reply``."""

    def __init__(self, reply: bytes | None = None):
        import socket
        import threading

        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.reply, self.conns = reply, []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            self.conns.append(conn)
            if self.reply is not None:
                conn.recv(1024)
                conn.sendall(self.reply)

    def close(self) -> None:
        for c in self.conns:
            c.close()
        self.server.close()


@pytest.mark.timeout(120)  # a hang fails here; the messages say the bounded wait fired (no wall-clock assertion)
def test_a_listener_that_is_not_ray_fails_in_seconds_in_one_line(monkeypatch):
    silent = _Listener()
    http = _Listener(b"HTTP/1.1 400 Bad Request\r\n\r\n")
    grpc_like = _Listener(b"\x00\x00\x00\x04\x00\x00\x00\x00\x00")  # an HTTP/2 server's first frame: SETTINGS
    try:
        with pytest.raises(DeparaError, match=rf"address '127.0.0.1:{silent.port}': 127.0.0.1:{silent.port} did not "
                                              r"answer as a Ray cluster within 1 s"):
            check_address(f"127.0.0.1:{silent.port}", timeout=1.0)
        with pytest.raises(DeparaError, match="is not a Ray cluster"):
            check_address(f"ray://127.0.0.1:{http.port}")
        check_address(f"127.0.0.1:{grpc_like.port}")  # answers as gRPC servers do: accepted
        monkeypatch.setenv("RAY_USE_TLS", "1")  # encrypted: only the TCP connection can be checked
        check_address(f"127.0.0.1:{silent.port}", timeout=1.0)
        monkeypatch.delenv("RAY_USE_TLS")
        # the engine and `depara select` check the address before importing Ray: the same line without Ray
        monkeypatch.setitem(sys.modules, "ray", None)
        with pytest.raises(DeparaError, match="did not answer as a Ray cluster within 5 s"):
            extract_graphs([Job(SPEC, LAYERS, ".")], None, engine="ray", address=f"127.0.0.1:{silent.port}",
                           progress=False)
    finally:
        for listener in (silent, http, grpc_like):
            listener.close()


@pytest.mark.timeout(180)  # a hang fails here; the message says the 5 s wait fired (no wall-clock assertion)
def test_cli_select_engine_ray_at_a_silent_listener_fails_in_seconds(probes, tmp_path, capsys):
    from depara.cli.main import main

    silent = _Listener()
    try:
        code = main(["select", str(probes), "--models", SPEC, "--target-model", SPEC, "--engine", "ray",
                     "--address", f"127.0.0.1:{silent.port}", "--cache", str(tmp_path), "--quiet"])
    finally:
        silent.close()
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert err.count("\n") == 0 and f"127.0.0.1:{silent.port} did not answer as a Ray cluster" in err


def test_cli_extract_engine_ray_without_ray_and_local_stores_ranks(monkeypatch, probes, tmp_path, capsys):
    from depara.cli.main import main
    from depara.core.graph import Graph

    args = ["extract", SPEC, "--probes", str(probes), "--layer", "features.3", "--preprocess", "32x32",
            "--node-size", "8"]
    monkeypatch.setitem(sys.modules, "ray", None)
    assert main([*args, "--out", str(tmp_path / "r.safetensors"), "--engine", "ray"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: engine='ray': Ray is not installed") and 'pip install -e ".[ray]"' in err
    assert "\n" not in err and not (tmp_path / "r.safetensors").exists()
    assert main([*args, "--out", str(tmp_path / "l.safetensors")]) == 0
    g = Graph.load(tmp_path / "l.safetensors")
    np.testing.assert_array_equal(g.edge_ranks, (2 * rankdata(g.edges)).astype(np.int32))


def test_shard_ranges_are_whole_batches():
    assert shard_ranges(6, None, 2) == [(0, 6)]
    assert shard_ranges(6, 2, 2) == [(0, 2), (2, 4), (4, 6)]
    assert shard_ranges(7, 3, 2) == [(0, 4), (4, 7)]  # 3 rounded up to whole batches of 2
    assert shard_ranges(5, 99, 4) == [(0, 5)]
    for bad in (0, -1, 2.5, True):
        with pytest.raises(DeparaError, match="probes_per_task"):
            shard_ranges(6, bad, 2)


def test_probe_shards_give_the_unsharded_graphs_and_leave_no_parts(probes, tmp_path):
    jobs = [_job(probes, batch_size=2, name="j"), _job(probes, name="bad", layers=("no_such_layer",), batch_size=2)]
    whole = extract_graphs(jobs[:1], tmp_path / "whole", progress=False)["j"]
    res = extract_graphs(jobs, tmp_path / "sharded", progress=False, probes_per_task=3)  # shards 0:4, 4:6
    assert res["j"].ok and res["j"].graphs == whole.graphs and res["j"].cached == ()
    assert not res["bad"].ok and "no_such_layer" in res["bad"].error and "probes 0:4" in res["bad"].error
    a, b = GraphStore(tmp_path / "whole"), GraphStore(tmp_path / "sharded")
    for layer, key in whole.graphs.items():
        ga, gb = a.get(key), b.get(key)
        assert ga == gb and np.array_equal(ga.edge_ranks, gb.edge_ranks)  # nodes, edges, ids, meta: identical
    assert sorted(p.relative_to(b.root) for p in b.entries()) == sorted(p.relative_to(a.root) for p in a.entries())
    for x, y in zip(sorted(a.entries()), sorted(b.entries())):
        assert x.read_bytes() == y.read_bytes()  # graphs and pooled features byte for byte; no shard parts left
    again = extract_graphs(jobs[:1], tmp_path / "sharded", progress=False, probes_per_task=3)["j"]
    assert again.ok and set(again.cached) == set(LAYERS)


def test_assembly_refuses_missing_parts_and_failed_shards(probes, tmp_path):
    job = _job(probes, batch_size=2)
    ok = run_shard(job, tmp_path, 0, 2)
    with pytest.raises(DeparaError, match="parts missing"):
        assemble_job(job, tmp_path, [ok, ShardResult(job.key, (2, 4), ok.model_hash),
                                     ShardResult(job.key, (4, 6), ok.model_hash)])
    with pytest.raises(DeparaError, match="probes 2:4: boom"):
        assemble_job(job, tmp_path, [ok, ShardResult(job.key, (2, 4), "", "boom")])
    with pytest.raises(DeparaError, match="different weights"):
        assemble_job(job, tmp_path, [ok, ShardResult(job.key, (2, 4), "0" * 64)])


def test_engine_and_select_share_store_entries(probes, tmp_path):
    """One key derivation (depara.extraction.store.graph_key): what one extracts, the other reuses — both directions."""
    from depara.io.files import seed_everything
    from depara.selection.candidates import model_graphs
    from depara.extraction.zoo import ModelEntry

    job = Job(SPEC, LAYERS, str(probes), preprocess="32x32")  # THE default graph options, as select uses
    entry = ModelEntry("m", SPEC, preprocessing="32x32", layers=LAYERS)

    def select_side(store):
        seed_everything(0)
        return model_graphs(entry, ProbeSet.from_folder(probes, preprocess="32x32"), list(LAYERS), GraphStore(store),
                            device="cpu", batch_size=32, feature_memory_mb=64, progress=False)

    first = extract_graphs([job], tmp_path / "a", progress=False)[SPEC]
    reused = select_side(tmp_path / "a")
    assert first.ok and reused.extracted == []  # select found every layer the engine extracted
    for layer, key in first.graphs.items():
        np.testing.assert_array_equal(reused.graphs[layer].edges, GraphStore(tmp_path / "a").get(key).edges)
    built = select_side(tmp_path / "b")
    assert built.extracted == list(LAYERS)
    again = extract_graphs([job], tmp_path / "b", progress=False)[SPEC]
    assert again.ok and set(again.cached) == set(LAYERS)  # the engine found what select extracted


def test_cli_probes_per_task_needs_ray(probes, tmp_path, capsys):
    from depara.cli.main import main

    code = main(["extract", SPEC, "--probes", str(probes), "--layer", "features.3", "--out",
                 str(tmp_path / "g.safetensors"), "--probes-per-task", "2"])
    assert code != 0 and "--probes-per-task: only with --engine ray" in capsys.readouterr().err
