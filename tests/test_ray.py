"""depara.extraction.engine on Ray: a local runtime (2 CPUs), a killed worker, and a head + worker started by `ray start`.

Skipped when Ray is not installed; deselect with ``-m "not ray"``. About a minute in all (Ray start-up dominates).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

ray = pytest.importorskip("ray")

from depara.extraction.engine import Job, extract_graphs  # noqa: E402
from depara.io.cluster import check_marker  # noqa: E402
from depara.errors import DeparaError  # noqa: E402
from depara.extraction.store import GraphStore  # noqa: E402

from _core_torch_helpers import write_images  # noqa: E402

pytestmark = [pytest.mark.ray, pytest.mark.timeout(240)]

SPEC = "torchvision:squeezenet1_1"
SRC = str(Path(__file__).resolve().parents[1] / "src")


@pytest.fixture(scope="module")
def probes(tmp_path_factory):
    folder = tmp_path_factory.mktemp("probes")
    write_images(folder, [f"p{i:02d}.png" for i in range(6)], size=(32, 32))
    return folder


@pytest.fixture(scope="module")
def local_ray():
    """One private Ray runtime for the module (workers import depara from this checkout)."""
    os.environ["PYTHONPATH"] = os.pathsep.join([SRC, os.environ.get("PYTHONPATH", "")])
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield
    ray.shutdown()


def _jobs(probes, n_probes_job=None):
    return [Job(SPEC, ("features.3", "features.5"), str(probes), name="a", preprocess="32x32", node_size=8),
            Job("torchvision:mobilenet_v3_small", ("features.2",), str(probes), name="b", preprocess="32x32",
                node_size=8),
            Job(SPEC, ("missing_layer",), str(probes), name="bad", preprocess="32x32", node_size=8)]


def _same_graphs(res_a, store_a, res_b, store_b):
    for name, r in res_a.items():
        if not r.ok:
            continue
        assert res_b[name].graphs == r.graphs  # same content-addressed keys
        for key in r.graphs.values():
            ga, gb = GraphStore(store_a).get(key), GraphStore(store_b).get(key)
            assert ga == gb and np.array_equal(ga.edge_ranks, gb.edge_ranks)


def test_ray_matches_local_and_reports_the_failed_job(local_ray, probes, tmp_path):
    on_ray = extract_graphs(_jobs(probes), tmp_path / "ray", engine="ray", progress=False)
    local = extract_graphs(_jobs(probes), tmp_path / "local", engine="local", progress=False)
    assert [r.ok for r in on_ray.values()] == [True, True, False]
    assert "missing_layer" in on_ray["bad"].error and on_ray["bad"].error == local["bad"].error
    _same_graphs(local, tmp_path / "local", on_ray, tmp_path / "ray")
    assert on_ray["a"].node == ray.get_runtime_context().get_node_id()  # ran as a Ray task


def test_probe_shards_on_ray_match_the_unsharded_local_path(local_ray, probes, tmp_path):
    import dataclasses

    jobs = [dataclasses.replace(j, batch_size=2) for j in _jobs(probes)]
    local = extract_graphs(jobs, tmp_path / "local", engine="local", progress=False)
    sharded = extract_graphs(jobs, tmp_path / "ray", engine="ray", progress=False, probes_per_task=2)
    assert [r.ok for r in sharded.values()] == [True, True, False]
    assert "missing_layer" in sharded["bad"].error
    _same_graphs(local, tmp_path / "local", sharded, tmp_path / "ray")
    kinds = {p.parent.parent.name for p in GraphStore(tmp_path / "ray").entries()}
    assert kinds == {"graph", "pooled"}  # the shard parts were removed after assembly


def _task_pids(title: str) -> list[int]:
    """Pids of this user's processes whose title (set by Ray while a task runs) starts with ``title``."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "cmdline").read_bytes().startswith(title.encode()):
                    pids.append(int(entry.name))
            except OSError:
                pass
    return pids


def test_worker_killed_mid_task_is_retried_without_partial_graphs(local_ray, probes, tmp_path):
    big = tmp_path / "probes"
    write_images(big, [f"q{i:03d}.png" for i in range(96)], size=(64, 64))
    job = Job("torchvision:resnet18", ("layer2", "layer3"), str(big), name="slow", preprocess="64x64",
              node_size=8, batch_size=8)
    killed: list[int] = []

    def killer():
        deadline = time.time() + 60
        while time.time() < deadline and not killed:
            pids = _task_pids("ray::_ray_job")
            if pids:
                # Mid-task (importing torch / extracting; a warm worker runs the whole job in under a second at
                # low load), and only if it still runs the task: a worker killed once idle would fail the next
                # test's task instead.
                time.sleep(0.3)
                if pids[0] in _task_pids("ray::_ray_job"):
                    os.kill(pids[0], signal.SIGKILL)  # a process Ray started for this test's task
                    killed.append(pids[0])
            time.sleep(0.05)

    thread = threading.Thread(target=killer)
    thread.start()
    res = extract_graphs([job], tmp_path / "store", engine="ray", max_retries=2, progress=False)["slow"]
    thread.join()
    assert killed, "the task's worker was never seen running"
    assert res.ok, res.error
    store = GraphStore(tmp_path / "store")
    entries = store.entries()
    # Per layer: the graph and its pooled features; never a temporary file.
    assert len(entries) == 4 and all(not p.name.endswith(".part") for p in entries)
    for key in res.graphs.values():
        assert store.get(key) is not None  # every entry is a complete, loadable graph
    # And a retry budget of 0 reports the job as failed instead.
    killed.clear()
    thread = threading.Thread(target=killer)
    thread.start()
    res0 = extract_graphs([job], tmp_path / "store0", engine="ray", max_retries=0, progress=False)["slow"]
    thread.join()
    assert killed and not res0.ok and "worker died" in res0.error
    assert GraphStore(tmp_path / "store0").entries() == []


def test_store_not_visible_on_a_node_is_one_line(local_ray, tmp_path):
    probe = ray.remote(num_cpus=0, max_retries=0)(check_marker)
    with pytest.raises(ray.exceptions.RayTaskError) as info:
        ray.get(probe.remote(tmp_path, "no-such-token"))
    cause = info.value.cause
    assert isinstance(cause, DeparaError) and "not visible from Ray node" in str(cause)
    assert "\n" not in str(cause)


def test_cli_extract_engine_ray_equals_local(local_ray, probes, tmp_path):
    from depara.cli.main import main
    from depara.core.graph import Graph

    args = ["extract", SPEC, "--probes", str(probes), "--layer", "features.3", "--preprocess", "32x32",
            "--node-size", "8"]
    assert main([*args, "--out", str(tmp_path / "l.safetensors")]) == 0
    assert main([*args, "--out", str(tmp_path / "r.safetensors"), "--engine", "ray", "--store",
                 str(tmp_path / "store")]) == 0
    local, remote = Graph.load(tmp_path / "l.safetensors"), Graph.load(tmp_path / "r.safetensors")
    np.testing.assert_array_equal(local.nodes, remote.nodes)
    np.testing.assert_array_equal(local.edges, remote.edges)
    np.testing.assert_array_equal(local.edge_ranks, remote.edge_ranks)


def test_blocked_similarity_blocks_as_ray_tasks(local_ray, tmp_path):
    from depara.core.edges import attach_edge_ranks
    from depara.core.graph import Graph
    from depara.core.similarity import similarity_matrix
    from depara.core.similarity_blocked import similarity_matrix_blocked

    rng = np.random.default_rng(0)
    ids = [f"p{i}" for i in range(10)]
    graphs = [attach_edge_ranks(Graph(rng.standard_normal((10, 4)), np.tanh(rng.standard_normal(45)), ids))
              for _ in range(5)]
    got = similarity_matrix_blocked(graphs, workdir=tmp_path, memory_mb=0.001, dtype=np.float64, engine="ray")
    ref = similarity_matrix(graphs)
    np.testing.assert_allclose(got.S, ref.S, atol=1e-12, rtol=0)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _pids_under(temp_dir: str) -> list[int]:
    """Processes started by `ray start` for this test: those whose command line names its own temp folder,
    and their descendants (Ray's agents rename their command line)."""
    parent, mine = {}, set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            try:
                parent[int(entry.name)] = int((entry / "stat").read_text().rpartition(")")[2].split()[1])
                if temp_dir.encode() in (entry / "cmdline").read_bytes():
                    mine.add(int(entry.name))
            except (OSError, ValueError, IndexError):
                pass
    grown = True
    while grown:
        kids = {pid for pid, ppid in parent.items() if ppid in mine} - mine
        grown = bool(kids)
        mine |= kids
    return sorted(mine)


def test_head_and_worker_started_by_ray_start(probes, tmp_path):
    ray.shutdown()  # this test needs its own cluster (the module runtime is shut down)
    closed = _free_port()
    with pytest.raises(DeparaError, match="no Ray cluster reachable"):
        extract_graphs(_jobs(probes)[:1], tmp_path / "x", engine="ray", address=f"127.0.0.1:{closed}",
                       progress=False)
    port = _free_port()
    temp_dir = f"/tmp/drt{os.getpid()}"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([SRC, os.environ.get("PYTHONPATH", "")]),
           "OMP_NUM_THREADS": "1",
           # A throwaway cluster on this machine: no token authentication (the head and the worker must agree,
           # and a driver connects to such a cluster whatever its own mode).
           "RAY_AUTH_MODE": "disabled"}
    bin_dir = Path(sys.executable).parent
    ray_cli = str(bin_dir / "ray") if (bin_dir / "ray").exists() else "ray"
    common = ["--node-ip-address=127.0.0.1", "--disable-usage-stats"]
    try:
        # The head has no CPUs, so every extraction task must run on the worker node.
        for args in (["--head", f"--port={port}", "--num-cpus=0", "--include-dashboard=false",
                      f"--temp-dir={temp_dir}"], [f"--address=127.0.0.1:{port}", "--num-cpus=1"]):
            done = subprocess.run([ray_cli, "start", *args, *common], env=env, capture_output=True, text=True,
                                  timeout=120)
            assert done.returncode == 0, f"ray start {' '.join(args)} failed:\n{done.stdout[-2000:]}{done.stderr[-2000:]}"
        res = extract_graphs(_jobs(probes), tmp_path / "store", engine="ray", address=f"127.0.0.1:{port}",
                             progress=False)
        assert not ray.is_initialized()  # the engine disconnected from the cluster it joined
        assert [r.ok for r in res.values()] == [True, True, False]
        local = extract_graphs(_jobs(probes), tmp_path / "local", progress=False)
        _same_graphs(local, tmp_path / "local", res, tmp_path / "store")
        ray.init(address=f"127.0.0.1:{port}", log_to_driver=False, configure_logging=False)
        head = [n["NodeID"] for n in ray.nodes() if n["Alive"] and n["Resources"].get("CPU", 0) == 0]
        ray.shutdown()
        assert len(head) == 1 and res["a"].node != head[0] and res["b"].node != head[0]
    finally:
        if ray.is_initialized():
            ray.shutdown()
        for pid in _pids_under(temp_dir):  # collected before killing, so the tree is still linked
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        subprocess.run(["rm", "-rf", temp_dir], check=False)
