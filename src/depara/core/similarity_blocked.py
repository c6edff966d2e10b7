"""Similarity matrices of more graphs than fit in RAM: memory-mapped stacks, products block by block.

:func:`depara.core.similarity.similarity_matrix` holds every graph and the G×M stack of standardised edge ranks in
RAM (G graphs, M = N(N−1)/2 edges: 1,000 graphs × 1,000 probes is 2 GB of float32 ranks). Here instead:

1. **Stack** (one pass over the graphs, one graph in RAM at a time): each graph's standardised edge ranks
   (from its stored ranks, :mod:`depara.core.edges`, in O(M); ranked here only if it has none) and its
   per-probe-normalised node maps are written as one row of two memory-mapped files in ``workdir``:
   ``ranks`` (G×M) and ``nodes`` (G×N·P).
2. **Blocks**: rows are cut into blocks of ``b`` graphs, ``b`` chosen so that one block pair fits in
   ``memory_mb``; for every pair of blocks I ≤ J one task reads rows I and J and computes
   ``E[I, J] = R_I R_Jᵀ`` and ``V[I, J] = X_I X_Jᵀ / N`` — two matrix products, nothing else. With
   ``engine="ray"`` each block pair is one Ray task (``workdir`` must then be on a filesystem every node
   mounts; checked as for the graph store); with ``engine="local"`` they run one after another here.
3. The G×G float64 results are assembled (E and V are symmetric; only I ≤ J is computed).

Cost: the products are the same G²·(M + N·P) multiply-adds as the in-RAM version; the extra work is one read of
each graph and, per block pair, one read of 2·b rows (from the page cache or the shared filesystem).
``dtype=np.float32`` (the default here) halves the files, the reads and the product time; its error against
float64 is ~1e-6 (measured by ``benchmarks/bench_similarity_scale.py``).

numpy only (Ray optional, for ``engine="ray"``).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from .edges import constant_edges_error
from ..errors import DeparaError
from .score import combine
from .graph_rows import Scratch, graph_rows
from .similarity import SimilarityMatrices, check_comparable
from ..options import DEFAULT_LAMBDA, check_lam


@dataclass(frozen=True)
class Stack:
    """Two memory-mapped row stacks on disk: ``ranks`` (G×M) and ``nodes`` (G×N·P), rows in ``names`` order."""

    folder: str
    names: tuple[str, ...]
    n_probes: int
    n_edges: int
    node_width: int
    dtype: str

    @property
    def n_graphs(self) -> int:
        return len(self.names)

    def _path(self, what: str, suffix: str = "") -> str:
        return os.path.join(self.folder, f"{what}.{self.dtype}{suffix}")

    def open(self, what: str, mode: str = "r", suffix: str = "") -> np.memmap:
        width = self.n_edges if what == "ranks" else self.node_width
        return np.memmap(self._path(what, suffix), dtype=self.dtype, mode=mode, shape=(self.n_graphs, width))

    def rows(self, what: str, start: int, stop: int) -> np.ndarray:
        """Rows ``start:stop`` copied into RAM (the mapping is closed again, so resident memory stays bounded)."""
        mm = self.open(what)
        try:
            return np.array(mm[start:stop])
        finally:
            del mm


def build_stack(graphs: Mapping[str, Any] | Sequence[Any], workdir: str | os.PathLike,
                dtype: Any = np.float32) -> Stack:
    """Write the standardised edge ranks and normalised node maps of ``graphs`` into ``workdir`` (see module doc).

    graphs: a dict name → Graph or graph file path, or a list of them (names: the graph's ``model:layer`` for a
        list of Graphs with metadata, else the path's stem, else the index). Only one graph is in RAM at a time.
    """
    dt = np.dtype(dtype)
    if dt not in (np.dtype(np.float32), np.dtype(np.float64)):
        raise DeparaError(f"dtype: expected float32 or float64, got {dtype!r}")
    names, items = graph_rows(graphs, "graphs")
    folder = Path(workdir)
    folder.mkdir(parents=True, exist_ok=True)
    first = items[0]
    n, p, m = first.n_probes, first.node_size, first.n_edges
    stack = Stack(str(folder), tuple(names), n, m, n * p, dt.name)
    ranks_row, nodes_row, scratch = np.empty(m), np.empty(n * p, dtype=dt), Scratch()
    # Rows are appended with plain writes from two reused row buffers (never mapped while written, so resident
    # memory stays one row), under temporary names renamed when complete: an interrupted build leaves no
    # valid-looking stack. Files are read range by range (depara.core.graph_rows), never loaded as Graphs.
    with open(stack._path("ranks", ".part"), "wb") as ranks, open(stack._path("nodes", ".part"), "wb") as nodes:
        for name, src in zip(names, items):
            check_comparable(first, src, repr(names[0]), repr(name))
            label = f"graph {name!r}"
            src.ranks_into(ranks_row, scratch, label)
            # 2·rank − (M+1) → unit norm: exactly the standardised ranks (the scale is a power of two away).
            norm = float(np.linalg.norm(ranks_row))
            if norm == 0.0 or m < 2:
                raise constant_edges_error(label, m)
            ranks_row /= norm
            ranks.write(ranks_row.astype(dt, copy=False).tobytes())
            src.nodes_into(nodes_row, scratch)
            nodes.write(nodes_row.tobytes())
    for what in ("ranks", "nodes"):
        os.replace(stack._path(what, ".part"), stack._path(what))
    return stack


def block_size_for(stack: Stack, memory_mb: float) -> int:
    """Rows per block so that one block pair (2 blocks of ranks + nodes) fits in ``memory_mb`` MiB."""
    if not isinstance(memory_mb, (int, float)) or isinstance(memory_mb, bool) or not memory_mb > 0:
        raise DeparaError(f"memory_mb: expected a positive number of MiB, got {memory_mb!r}")
    per_row = (stack.n_edges + stack.node_width) * np.dtype(stack.dtype).itemsize
    return max(1, min(stack.n_graphs, int(memory_mb * 2**20 // (2 * per_row))))


def block_product(stack: Stack, rows_i: tuple[int, int], rows_j: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """(E, V) float64 blocks of the row ranges ``rows_i`` × ``rows_j``: two matrix products."""
    out = []
    for what in ("ranks", "nodes"):
        a = stack.rows(what, *rows_i)
        b = a if rows_j == rows_i else stack.rows(what, *rows_j)
        prod = (a @ a.T) if b is a else (a @ b.T)  # a @ a.T: numpy uses the symmetric rank-k product
        out.append(prod.astype(np.float64))
        del a, b
    e, v = out
    return e, v / stack.n_probes


def _pairs(g: int, b: int) -> list[tuple[tuple[int, int], tuple[int, int]]]:
    edges = [(s, min(g, s + b)) for s in range(0, g, b)]
    return [(edges[i], edges[j]) for i in range(len(edges)) for j in range(i, len(edges))]


def similarity_matrix_blocked(graphs: Mapping[str, Any] | Sequence[Any], lam: float = DEFAULT_LAMBDA, *,
                              workdir: str | os.PathLike, memory_mb: float = 1024, dtype: Any = np.float32,
                              engine: str = "local", address: str | None = None,
                              stack: Stack | None = None) -> SimilarityMatrices:
    """V, E and S = V + λE of many graphs, computed block by block from memory-mapped stacks in ``workdir``.

    Parameters
    ----------
    graphs : dict or list
        Graphs or graph file paths (see :func:`build_stack`); ignored when ``stack`` is given.
    lam : float
        λ ≥ 0 of S = V + λE.
    workdir : path
        Folder for the stacks (G·(M + N·P)·itemsize bytes); with ``engine="ray"`` on a filesystem every node sees.
    memory_mb : float
        RAM per block pair (per task); sets the block size (:func:`block_size_for`).
    dtype : float32 (default) or float64
        Precision of the stacks and products (float32: max error ~1e-6, half the time and space).
    engine : {"local", "ray"}
        ``ray``: one Ray task per block pair (``address`` as in :func:`depara.extraction.engine.extract_graphs`).
    stack : Stack, optional
        An existing stack (from :func:`build_stack`) to reuse.

    Returns
    -------
    SimilarityMatrices
        G×G float64 ``V``, ``E``, ``S`` with the stack's ``names``.
    """
    lam = check_lam(lam)
    if engine not in ("local", "ray"):
        raise DeparaError(f"engine: expected one of local, ray, got {engine!r}")
    if stack is None:
        stack = build_stack(graphs, workdir, dtype)
    g = stack.n_graphs
    b = block_size_for(stack, memory_mb)
    pairs = _pairs(g, b)
    e = np.empty((g, g))
    v = np.empty((g, g))
    if engine == "local":
        blocks = _blocks_local(stack, pairs)
    else:
        blocks = _blocks_on_ray(stack, pairs, address)
    for ((i0, i1), (j0, j1)), (eb, vb) in zip(pairs, blocks):
        e[i0:i1, j0:j1], v[i0:i1, j0:j1] = eb, vb
        e[j0:j1, i0:i1], v[j0:j1, i0:i1] = eb.T, vb.T
    np.clip(e, -1.0, 1.0, out=e)
    np.clip(v, -1.0, 1.0, out=v)
    return SimilarityMatrices(stack.names, S=combine(v, e, lam), V=v, E=e)


def _blocks_local(stack: Stack, pairs: list) -> list[tuple[np.ndarray, np.ndarray]]:
    """Block pairs in order, keeping row block I in RAM while it meets every J ≥ I (half the reads)."""
    out = []
    held: dict[str, tuple[tuple[int, int], np.ndarray]] = {}
    for ri, rj in pairs:
        res = []
        for what in ("ranks", "nodes"):
            if what not in held or held[what][0] != ri:
                held.pop(what, None)
                held[what] = (ri, stack.rows(what, *ri))
            a = held[what][1]
            prod = a @ a.T if rj == ri else a @ stack.rows(what, *rj).T
            res.append(prod.astype(np.float64))
        out.append((res[0], res[1] / stack.n_probes))
    return out


def _blocks_on_ray(stack: Stack, pairs: list, address: str | None) -> list[tuple[np.ndarray, np.ndarray]]:
    from ..io.cluster import check_shared_store, connect, import_ray

    ray = import_ray()
    started = connect(address)
    try:
        check_shared_store(Path(stack.folder))
        task = ray.remote(num_cpus=1, max_retries=3)(block_product)
        return ray.get([task.remote(stack, ri, rj) for ri, rj in pairs])
    finally:
        if started:
            ray.shutdown()


def blocks_count(n_graphs: int, block: int) -> int:
    """Number of block pairs I ≤ J for ``n_graphs`` rows in blocks of ``block``: B(B+1)/2, B = ⌈G/b⌉."""
    nb = math.ceil(n_graphs / block)
    return nb * (nb + 1) // 2


__all__ = ["Stack", "build_stack", "block_size_for", "block_product", "similarity_matrix_blocked",
           "blocks_count"]
