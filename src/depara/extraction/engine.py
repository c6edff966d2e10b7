"""Extraction engines: build the graphs of many (model, layer set) jobs locally or as Ray tasks.

One **job** (:class:`Job`) = one model, a set of its layers, one probe set and the graph options. It is the unit
of work of both engines, and of retries under Ray: ``extract_graphs(jobs, store, engine="ray")`` submits one
Ray task per job; the task loads the model and the probes on its node, builds the graphs of all the job's
layers in one pass (:func:`depara.extraction.extract.build_graphs`), computes each graph's edge ranks once
(:func:`depara.core.edges.attach_edge_ranks`) and writes every graph to the content-addressed store
(:class:`depara.extraction.store.GraphStore`). The store is the only state the tasks share: a task returns the store
keys of its graphs, never the graphs, so results travel through the (shared) filesystem, and the driver or any later
run reads them with ``store.get(key)``. ``engine="local"`` runs the very same function in this process, one job
after another, so both engines write identical graphs under identical keys — the keys of ``depara select``
(:func:`depara.extraction.store.graph_key`, with each layer's pooled features beside the graph), so either reuses what
the other extracted.

**Probe shards** (``probes_per_task``): a job is split into one task per (model, layer set, probe shard), each
storing its probes' node maps and uncentred features as content-keyed parts (:func:`run_shard`), and one task
joining them into the graphs (:func:`assemble_job`): bit-identical to the unsharded graphs, because shards are
whole batches of the unsharded run.

What happens when something goes wrong:

* a job whose model, probes or layers are bad (any exception inside the job) is reported as failed with its
  error (:class:`Result` ``ok=False``); the other jobs complete. Such errors are deterministic, so they are not
  retried;
* a Ray worker that dies mid-task (killed, out of memory, node lost) is retried by Ray up to ``max_retries``
  times. Graphs reach the store by an atomic rename, so a killed task never leaves a partial graph under a key;
  graphs already written by the dead attempt are reused by the retry (it only builds missing layers);
* an ``address`` that is not a reachable Ray cluster (closed port, silent listener, another protocol) fails in one
  line within ``CONNECT_TIMEOUT_S`` seconds, before Ray is imported (:func:`depara.io.cluster.check_address`);
* a store folder that some Ray node cannot see (not on a shared filesystem) is detected before any job runs:
  the driver writes a marker file and one probe task per node looks for it; a one-line error names the node.

numpy/torch through :mod:`depara.extraction.extract`; Ray is optional (``pip install -e ".[ray]"``) and imported only
for ``engine="ray"``.
"""

from __future__ import annotations

import os
import socket
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Mapping, Sequence

import numpy as np

from ..core.similarity_edges import pool_features
from ..errors import DeparaError, exception_reason
from ..estimators.checks import count
from ..io.cluster import check_shared_store, connect, import_ray  # noqa: F401 - also this module's API

ENGINES = ("local", "ray")

if TYPE_CHECKING:  # pragma: no cover
    from ..options import GraphOptions


@dataclass(frozen=True)
class Job:
    """One unit of extraction work: the graphs of ``model`` at ``layers`` on one probe set.

    model: a model spec (:func:`depara.extraction.models.load_model`: ``torchvision:<name>``, ``timm:<name>``,
        ``file:<path>``); weights: its weights (None = the architecture's random init under ``seed``).
    probes: a probe image folder or image-list file (``probe_root``: the list entries' root), on a path every
        node sees; preprocess: ``imagenet`` | ``taskonomy`` | ``WxH[:mean:std]``.
    name: how the job is named in the results (default ``model``); unique among the jobs.
    The other fields are :func:`depara.extraction.extract.build_graphs`'s options.
    """

    model: str
    layers: tuple[str, ...]
    probes: str
    name: str | None = None
    weights: str | None = None
    probe_root: str | None = None
    preprocess: str = "imagenet"
    method: str = "input_x_gradient"
    scalar: str = "l2"
    channel_reduction: str = "mean"
    edge: str = "cosine"
    center: bool = True
    node_size: int | None = 56
    batch_size: int = 32
    feature_memory_mb: float = 2048
    device: str = "cpu"
    seed: int = 0

    def __post_init__(self) -> None:
        layers = (self.layers,) if isinstance(self.layers, str) else tuple(self.layers)
        if not layers or not all(isinstance(x, str) for x in layers):
            raise DeparaError(f"layers of job {self.key!r}: expected one or more layer names, got {self.layers!r}")
        object.__setattr__(self, "layers", tuple(dict.fromkeys(layers)))
        # Absolute paths, resolved where the job is made: a task may run in another working directory or node.
        object.__setattr__(self, "probes", str(Path(self.probes).expanduser().resolve()))
        if self.probe_root is not None:
            object.__setattr__(self, "probe_root", str(Path(self.probe_root).expanduser().resolve()))

    @property
    def key(self) -> str:
        """The job's name in the results: ``name``, else the model spec."""
        return self.name or self.model

    def graph_options(self) -> "GraphOptions":
        """How its graphs are built (:class:`depara.options.GraphOptions`; with the probes' preprocessing, what
        enters their store key, :func:`depara.extraction.store.graph_key`; batch size, device and sharding do not)."""
        from ..options import GraphOptions

        return GraphOptions(method=self.method, scalar=self.scalar, channel_reduction=self.channel_reduction,
                            node_size=self.node_size, center=self.center, edge=self.edge)

    def meta(self, model_hash: str, probe_hash: str) -> dict[str, Any]:
        """What every graph of the job records besides :func:`depara.extraction.extract.graph_meta`'s fields."""
        return {"model": self.model, "weights": self.weights, "probes": self.probes, "seed": self.seed,
                "probe_hash": probe_hash, "weights_hash": model_hash}


@dataclass(frozen=True)
class Result:
    """The outcome of one job: ``graphs`` {layer: store key} when ``ok``, else ``error`` (one line).

    ``cached``: layers found in the store (not rebuilt); ``node``: where it ran (the Ray node id under Ray, else
    the host name); ``seconds``: its time.
    """

    job: str
    ok: bool
    graphs: Mapping[str, str] = field(default_factory=dict)
    error: str | None = None
    cached: tuple[str, ...] = ()
    node: str = ""
    seconds: float = 0.0


# ------------------------------------------------------------------------------------------------ one job
def _open_store(store: Any):
    from .store import GraphStore

    if isinstance(store, GraphStore):
        return store if store.root.is_absolute() else GraphStore(store.root.resolve())
    if store is None or isinstance(store, (str, os.PathLike)):
        return GraphStore(Path(store).expanduser().resolve() if store is not None else None)
    raise DeparaError(f"store: expected a GraphStore or a folder path, got {type(store).__name__}")


def _probe_set(job: Job):
    from .probes import ProbeSet

    path = Path(job.probes)
    if path.is_dir():
        return ProbeSet.from_folder(path, preprocess=job.preprocess)
    if path.is_file():
        return ProbeSet.from_list(path, job.probe_root, preprocess=job.preprocess)
    raise DeparaError(f"probes {job.probes}: no such folder or image-list file on node {socket.gethostname()}")


def _entry_keys(job: Job, model_hash: str, probe_set: Any) -> dict[str, tuple[str, str]]:
    """{layer: (graph key, pooled-features key)}: :func:`depara.extraction.store.graph_key`, exactly as ``depara
    select``."""
    from .store import graph_key

    opts, prep, phash = job.graph_options(), probe_set.preprocess, probe_set.content_hash()
    return {name: (graph_key(model_hash, name, phash, opts, prep),
                   graph_key(model_hash, name, phash, opts, prep, kind="pooled")) for name in job.layers}


def _cached(store: Any, keys: Mapping[str, tuple[str, str]]) -> tuple[str, ...]:
    """Layers whose graph and pooled features are both in the store (what ``depara select`` reuses)."""
    return tuple(name for name, (kg, kp) in keys.items() if store.has(kp) and store.get(kg) is not None)


def _put(store: Any, keys: tuple[str, str], graph: Any, pooled: Any) -> None:
    """Store one layer's pooled features and graph (with its edge ranks), the two entries ``select`` reads."""
    from ..core.edges import attach_edge_ranks

    store.put_array(keys[1], pooled)
    store.put(keys[0], attach_edge_ranks(graph))


def _load_job(job: Job, store: Any):
    """(store, probe set, model, model hash, entry keys): what every task of a job starts with."""
    from ..io.files import seed_everything
    from .extract import resolve_layer
    from .models import load_model
    from .store import weights_hash

    store = _open_store(store)
    seed_everything(job.seed)
    probe_set = _probe_set(job)
    net = load_model(job.model, weights=job.weights, seed=job.seed)  # random init: as depara select's
    for name in job.layers:  # bad names fail before any work
        resolve_layer(net, name)
    model_hash = weights_hash(net)
    return store, probe_set, net, model_hash, _entry_keys(job, model_hash, probe_set)


def run_job(job: Job, store: Any) -> Result:
    """Build (or find in ``store``) the graphs of one job over its whole probe set and store them; errors propagate.

    Each layer's graph (with its edge ranks) and its pooled features go under the keys ``depara select`` uses
    (:func:`depara.extraction.store.graph_key`). Layers already in the store are not rebuilt (a retried or repeated job
    costs only the model load).
    """
    from .extract import build_graphs

    start = time.perf_counter()
    store, probe_set, net, model_hash, keys = _load_job(job, store)
    cached = _cached(store, keys)
    todo = [name for name in job.layers if name not in cached]
    if todo:
        pooled: dict[str, Any] = {}
        graphs = build_graphs(
            net, probe_set, todo, job.graph_options(), batch_size=job.batch_size, device=job.device,
            feature_memory_mb=job.feature_memory_mb, meta=job.meta(model_hash, probe_set.content_hash()),
            on_features=lambda name, f: pooled.__setitem__(name, pool_features(f)))
        for name, g in graphs.items():
            _put(store, keys[name], g, pooled.pop(name))
    return Result(job.key, True, {name: k[0] for name, k in keys.items()}, None, cached, _where(),
                  time.perf_counter() - start)


# ------------------------------------------------------------------------------------------------ probe shards
def shard_ranges(n_probes: int, probes_per_task: int | None, batch_size: int) -> list[tuple[int, int]]:
    """Probe ranges [start, stop) of a job's shards: ``probes_per_task`` rounded **up to a multiple of
    ``batch_size``**, so every shard runs exactly the batches the unsharded job runs (same inputs per batch,
    hence the same bits from the same kernels). None, or a size ≥ ``n_probes``: one range, the whole set."""
    if probes_per_task is None:
        return [(0, n_probes)]
    if isinstance(probes_per_task, bool) or not isinstance(probes_per_task, int) or probes_per_task < 1:
        raise DeparaError(f"probes_per_task: expected a positive integer or None (whole probe set), got "
                          f"{probes_per_task!r}")
    size = -(-probes_per_task // batch_size) * batch_size
    return [(a, min(n_probes, a + size)) for a in range(0, n_probes, size)]


def _shard_keys(job: Job, model_hash: str, probe_set: Any, layer: str, rng: tuple[int, int]) -> tuple[str, str]:
    """Store keys of one shard's parts of one layer: node maps and (uncentred) features of probes ``rng``."""
    from .store import graph_key

    extra = {"shard": list(rng)}
    args = (model_hash, layer, probe_set.content_hash(), job.graph_options(), probe_set.preprocess)
    return (graph_key(*args, extra=extra, kind="shard_maps"), graph_key(*args, extra=extra, kind="shard_features"))


@dataclass(frozen=True)
class ShardResult:
    """One probe shard's outcome: the model's weights hash (every shard must agree), or the one-line error."""

    job: str
    probes: tuple[int, int]
    model_hash: str = ""
    error: str | None = None


def run_shard(job: Job, store: Any, start: int, stop: int) -> ShardResult:
    """Compute node maps and features of probes ``start:stop`` for every layer of ``job`` not yet in the store,
    and store them as shard parts (content-keyed: model hash, layer, probe hash, the range, options); errors
    propagate. Parts already stored (a retried task) are not recomputed."""
    from .extract import extract_parts

    store, probe_set, net, model_hash, keys = _load_job(job, store)
    cached = set(_cached(store, keys))
    todo = {name: _shard_keys(job, model_hash, probe_set, name, (start, stop)) for name in job.layers
            if name not in cached}
    todo = {name: k for name, k in todo.items() if not (store.has(k[0]) and store.has(k[1]))}
    if todo:
        def keep(name: str, maps: Any, features: Any, ids: Any) -> None:
            store.put_array(todo[name][1], features)  # features first: maps present ⇒ both are
            store.put_array(todo[name][0], maps)

        extract_parts(net, probe_set.subset(range(start, stop)), list(todo), job.graph_options(),
                      batch_size=job.batch_size, device=job.device, feature_memory_mb=job.feature_memory_mb,
                      meta={"model": job.model}, on_parts=keep)
    return ShardResult(job.key, (start, stop), model_hash)


def assemble_job(job: Job, store: Any, shards: Sequence[ShardResult]) -> Result:
    """Join a job's probe shards into its graphs (edges from the joined features, in column blocks) and store
    them with their pooled features, then delete the shard parts; errors propagate. A failed shard fails the job.

    The graphs are identical to :func:`run_job`'s (``tests/test_ray.py``).
    """
    from ..io.files import temp_dir
    from .extract import graph_from_parts, graph_meta, layer_meta

    start = time.perf_counter()
    bad = [s for s in shards if s.error is not None]
    if bad:
        raise DeparaError(f"probes {bad[0].probes[0]}:{bad[0].probes[1]}: {bad[0].error}")
    hashes = {s.model_hash for s in shards}
    if len(hashes) != 1:
        raise DeparaError(f"model {job.model}: its probe shards loaded different weights (is the model "
                          "deterministic under the job's seed?)")
    model_hash = hashes.pop()
    store = _open_store(store)
    probe_set = _probe_set(job)
    keys = _entry_keys(job, model_hash, probe_set)
    cached = _cached(store, keys)
    ranges = sorted(s.probes for s in shards)
    if ranges != shard_ranges(len(probe_set), ranges[0][1] - ranges[0][0], job.batch_size) \
            and ranges != [(0, len(probe_set))]:
        raise DeparaError(f"shards of job {job.key!r}: ranges {ranges} do not cover probes 0:{len(probe_set)}")
    opts = job.graph_options()
    base = graph_meta(probe_set, opts, meta=job.meta(model_hash, probe_set.content_hash()))
    for name in job.layers:
        if name in cached:
            continue
        parts = [_shard_keys(job, model_hash, probe_set, name, r) for r in ranges]
        got = [(store.get_array(km), store.get_array(kf, mmap=True)) for km, kf in parts]
        if any(m is None or f is None for m, f in got):
            raise DeparaError(f"layer {name} of job {job.key!r}: probe-shard parts missing from the store "
                              f"{store.root}; run the job again")
        maps = np.concatenate([m for m, _ in got])
        shape = (len(probe_set), *got[0][1].shape[1:])
        nbytes = 4 * int(np.prod(shape, dtype=np.int64))
        with temp_dir() as tmp:
            # The joined features: in RAM within the job's feature budget, else a temporary file read in blocks.
            if nbytes <= job.feature_memory_mb * 2**20:
                features = np.empty(shape, dtype=np.float32)
            else:
                features = np.lib.format.open_memmap(os.path.join(tmp, "features.npy"), mode="w+",
                                                     dtype=np.float32, shape=shape)
            for (a, b), (_, f) in zip(ranges, got):
                features[a:b] = f
            del got
            g = graph_from_parts(maps, features, opts, probe_set.ids, layer_meta(base, name, maps, probe_set))
            _put(store, keys[name], g, pool_features(features))
            del features
        for km, kf in parts:
            store.remove(km)
            store.remove(kf)
    return Result(job.key, True, {name: k[0] for name, k in keys.items()}, None, cached, _where(),
                  time.perf_counter() - start)


def _where() -> str:
    """The Ray node id when running inside a Ray worker, else the host name."""
    import sys

    ray = sys.modules.get("ray")
    if ray is not None and ray.is_initialized():
        try:
            return ray.get_runtime_context().get_node_id()
        except Exception:  # noqa: BLE001 - only a label
            pass
    return socket.gethostname()


def _reported(job: Job, fn: Any, *args: Any) -> Result:
    """``fn(*args)`` (a Result), with any exception turned into a failed Result (not retried: it would fail again)."""
    start = time.perf_counter()
    try:
        return fn(*args)
    except Exception as exc:  # noqa: BLE001 - one job's failure must not stop the others
        return Result(job.key, False, {}, exception_reason(exc, None), (), _where(), time.perf_counter() - start)


def _run_reported(job: Job, store: Any) -> Result:
    """:func:`run_job`, a failure reported as a failed Result."""
    return _reported(job, run_job, job, store)


def _shard_reported(job: Job, store: Any, start: int, stop: int) -> ShardResult:
    """:func:`run_shard`, a failure reported in the ShardResult (the job then fails at assembly, with it)."""
    try:
        return run_shard(job, store, start, stop)
    except Exception as exc:  # noqa: BLE001 - reported by the job
        return ShardResult(job.key, (start, stop), "", exception_reason(exc, None))


def _ranges(job: Job, probes_per_task: int | None) -> list[tuple[int, int]]:
    """The job's probe shards (one range = the unsharded path); the probe set is listed, not read."""
    if probes_per_task is None:
        return [(0, 0)]
    return shard_ranges(len(_probe_set(job)), probes_per_task, job.batch_size)


def _threads() -> None:
    """Inside a Ray task: torch gets as many threads as the task has CPUs (one by default)."""
    import ray
    import torch

    cpus = ray.get_runtime_context().get_assigned_resources().get("CPU", 1)
    torch.set_num_threads(max(1, int(cpus)))


def _ray_job(job: Job, store: Any) -> Result:
    """The Ray task of an unsharded job."""
    _threads()
    return _run_reported(job, store)


def _ray_shard(job: Job, store: Any, start: int, stop: int) -> ShardResult:
    """The Ray task of one probe shard."""
    _threads()
    return _shard_reported(job, store, start, stop)


def _ray_assemble(job: Job, store: Any, *shards: ShardResult) -> Result:
    """The Ray task joining a job's shards (Ray passes it their results once every shard task has finished)."""
    _threads()
    return _reported(job, assemble_job, job, store, shards)


# ------------------------------------------------------------------------------------------------ engines
def _check_jobs(jobs: Iterable[Job]) -> list[Job]:
    if isinstance(jobs, Job):
        jobs = [jobs]
    jobs = list(jobs)
    if not jobs:
        raise DeparaError("jobs: no jobs given")
    seen: set[str] = set()
    for j in jobs:
        if not isinstance(j, Job):
            raise DeparaError(f"jobs: expected depara.extraction.engine.Job items, got {type(j).__name__}")
        if j.key in seen:
            raise DeparaError(f"jobs: two jobs are named {j.key!r}; give each a unique name")
        seen.add(j.key)
    return jobs


def extract_graphs(jobs: Sequence[Job], store: Any = None, *, engine: str = "local", address: str | None = None,
                   num_workers: int | None = None, max_retries: int = 3, progress: bool = True,
                   probes_per_task: int | None = None) -> dict[str, Result]:
    """Run extraction ``jobs`` on ``engine`` and write their graphs to ``store``: {job key: Result}.

    Parameters
    ----------
    jobs : sequence of Job
        One per (model, layer set); names unique.
    store : GraphStore or path, optional
        The content-addressed graph store (default ``$DEPARA_CACHE/store``). Under Ray it must be on a
        filesystem that every node mounts at the same path (checked).
    engine : {"local", "ray"}
        ``local``: one job after another in this process. ``ray``: one Ray task per job.
    address : str, optional
        Ray only: ``None`` starts a private local Ray runtime with ``num_workers`` CPUs (default: all);
        ``"auto"`` joins the cluster started on this machine by ``ray start``; ``"HOST:PORT"`` (or
        ``ray://HOST:PORT``) joins that cluster. If Ray is already initialised in this process it is used as is.
    num_workers : int, optional
        Ray only, private runtime only: CPUs (= concurrent single-CPU tasks) of the runtime it starts.
    max_retries : int
        Ray only: times a task is re-run after its worker process or node dies.
    progress : bool
        A tqdm bar over finished jobs.
    probes_per_task : int, optional
        Split each job into probe shards of this many probes (rounded up to a multiple of the job's batch size):
        one task per (model, layer set, probe shard) computes the shard's node maps and features and stores
        them (content-keyed parts), then one task per job joins them into the graphs — identical to the
        unsharded graphs. None (default): one task per job over its whole probe set. See docs/ray.md for when
        sharding pays (the parts hold the layers' full features on the store for a while).

    Returns
    -------
    dict
        {job key: :class:`Result`} in the order of ``jobs``; a failed job has ``ok=False`` and its error.
        Graphs: ``store.get(result.graphs[layer])``.
    """
    jobs = _check_jobs(jobs)
    if engine not in ENGINES:
        raise DeparaError(f"engine: expected one of {', '.join(ENGINES)}, got {engine!r}")
    max_retries = count(max_retries, "max_retries", minimum=0)
    shard_ranges(1, probes_per_task, 1)  # checks the value
    store = _open_store(store)
    if engine == "local":
        if address is not None:
            raise DeparaError("address: only used with engine='ray'")
        return _run_local(jobs, store, progress, probes_per_task)
    return _run_ray(jobs, store, address, num_workers, max_retries, progress, probes_per_task)


def _bar(total: int, enabled: bool, desc: str):
    from tqdm.auto import tqdm

    return tqdm(total=total, disable=not enabled, desc=desc, unit="job")


def _run_local(jobs: list[Job], store: Any, progress: bool, probes_per_task: int | None = None
               ) -> dict[str, Result]:
    results = {}
    with _bar(len(jobs), progress, "depara extract (local)") as bar:
        for job in jobs:
            results[job.key] = _reported(job, _local_job, job, store, probes_per_task)
            bar.update(1)
    return results


def _local_job(job: Job, store: Any, probes_per_task: int | None) -> Result:
    ranges = _ranges(job, probes_per_task)
    if len(ranges) == 1:
        return run_job(job, store)
    return assemble_job(job, store, [_shard_reported(job, store, a, b) for a, b in ranges])


# ------------------------------------------------------------------------------------------------ Ray
def _run_ray(jobs: list[Job], store: Any, address: str | None, num_workers: int | None, max_retries: int,
             progress: bool, probes_per_task: int | None = None) -> dict[str, Result]:
    started = connect(address, num_workers)  # checks the address first (a wrong one fails in seconds)
    ray = import_ray()
    try:
        check_shared_store(store.root)
        opts = {"num_cpus": 1, "max_retries": max_retries, "retry_exceptions": False}
        task, shard, assemble = (ray.remote(**opts)(f) for f in (_ray_job, _ray_shard, _ray_assemble))
        results: dict[str, Result] = {}
        refs = {}
        for job in jobs:
            try:
                ranges = _ranges(job, probes_per_task)
            except Exception as exc:  # noqa: BLE001 - e.g. its probes are missing: that job fails
                results[job.key] = Result(job.key, False, {}, exception_reason(exc, None))
                continue
            if len(ranges) == 1:
                refs[task.remote(job, store)] = job
            else:  # the assembly task starts once every shard task has returned (Ray resolves the refs)
                refs[assemble.remote(job, store, *(shard.remote(job, store, a, b) for a, b in ranges))] = job
        pending = list(refs)
        with _bar(len(refs), progress, "depara extract (ray)") as bar:
            while pending:
                done, pending = ray.wait(pending, num_returns=1)
                for ref in done:
                    job = refs[ref]
                    try:
                        results[job.key] = ray.get(ref)
                    except Exception as exc:  # noqa: BLE001 - e.g. the worker died more than max_retries times
                        why = exception_reason(exc, None)
                        if isinstance(exc, ray.exceptions.WorkerCrashedError):
                            why = f"the Ray worker died {max_retries + 1} times (retries exhausted): {why}"
                        results[job.key] = Result(job.key, False, {}, why)
                    bar.update(1)
        return {job.key: results[job.key] for job in jobs}
    finally:
        if started:
            ray.shutdown()


def summary(results: Mapping[str, Result]) -> list[dict[str, Any]]:
    """Rows (job, ok, layers, cached, error, node, seconds) of a results dict, for tables and CSV."""
    return [{**{k: v for k, v in asdict(r).items() if k != "graphs"}, "layers": ",".join(r.graphs),
             "cached": ",".join(r.cached)} for r in results.values()]


__all__ = ["ENGINES", "Job", "Result", "ShardResult", "extract_graphs", "run_job", "run_shard", "assemble_job",
           "shard_ranges", "connect", "check_shared_store", "import_ray", "summary"]
