"""Rows of the similarity stacks, written straight from graphs or graph files into preallocated arrays.

:func:`depara.core.similarity.similarity_matrix` and :func:`depara.core.similarity_blocked.build_stack` compare G
graphs as two matrix products of stacks: ``R`` (G×M, one row ``2·rank − (M+1)`` of each graph's edges: the
standardised ranks times a per-row constant) and ``X`` (G×N·P, each graph's per-probe unit-norm node maps).
What the products cost is fixed; what building the stacks costs is not, and at 1,000 graphs × 1,000 probes it
was most of the time beyond them. So a row is written **once, in place**:

* from a graph **file** (a path, e.g. ``GraphStore.path(key)``): the header is read and validated
  (:func:`depara.core.graph.read_graph_header`), then only the needed byte ranges are read, with ``readinto``, into
  one scratch buffer reused for every graph: the stored ranks (int32, 4·M bytes; the edges themselves are not
  read, only 2·64 of their values for the order check of :func:`depara.core.edges.check_edge_ranks`) and the
  node maps of the requested probes. No per-graph arrays, no ``Graph`` objects, no ``np.stack``;
* from a :class:`~depara.core.graph.Graph` already in RAM: the same two writes from its arrays.

Both routes give bit-identical rows (``tests/test_similarity_scale.py``). Files without stored ranks are ranked
here (a sort: slow, as before stored ranks existed).

numpy/scipy only.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from .edges import centred_doubled_ranks, check_edge_ranks
from ..errors import DeparaError
from .graph import Graph, GraphHeader, condensed_size, read_graph_header
from .ids import check_probe_ids


@functools.lru_cache(maxsize=8)
def _checked_ids(ids: tuple[str, ...], n: int) -> tuple[str, ...]:
    """:func:`depara.core.ids.check_probe_ids`, once per distinct id tuple (G graphs over one probe set share it)."""
    return check_probe_ids(ids, n)


class Scratch:
    """Reusable read buffers (one per dtype, grown on demand), so reading G graphs allocates O(1) arrays."""

    def __init__(self) -> None:
        self._bufs: dict[str, np.ndarray] = {}

    def get(self, dtype: np.dtype, count: int) -> np.ndarray:
        dtype = np.dtype(dtype)
        buf = self._bufs.get(dtype.str)
        if buf is None or buf.shape[0] < count:
            buf = self._bufs[dtype.str] = np.empty(count, dtype=dtype)
        return buf[:count]


def normalize_rows_into(nodes: np.ndarray, out: np.ndarray, where: str) -> None:
    """``out[i] = nodes[i] / ‖nodes[i]‖`` (norms in float64), all-zero rows → 0 (cosine 0); (n, P) arrays.

    A non-finite value in ``nodes`` makes its row's norm non-finite and raises a DeparaError naming ``where``.
    """
    norms = np.sqrt(np.einsum("ij,ij->i", nodes, nodes, dtype=np.float64))[:, None]
    if not np.isfinite(norms).all():
        raise DeparaError(f"{where}: node maps hold non-finite values (corrupt graph; rebuild it)")
    # Norms in float64, the division in the output's precision (float32 stacks: no float64 round trip).
    np.divide(nodes, norms.astype(out.dtype), out=out, where=norms > 0, casting="unsafe")
    zero = (norms == 0)[:, 0]
    if zero.any():
        out[zero] = 0.0


class GraphRows:
    """One graph as a source of stack rows: a Graph in RAM, or a graph file read range by range.

    Attributes ``name``, ``probe_ids``, ``meta``, ``node_size``, ``n_edges`` are what the comparability checks of
    :mod:`depara.core.similarity` read (duck-typed like a Graph), known from the header alone for a file.
    """

    __slots__ = ("name", "probe_ids", "meta", "node_size", "n_edges", "_graph", "_head")

    def __init__(self, item: Any, label: str):
        self._graph: Graph | None = None
        self._head: GraphHeader | None = None
        if isinstance(item, Graph):
            self._graph = item
            self.probe_ids, self.meta = item.probe_ids, item.meta
            self.node_size, self.n_edges = item.node_size, item.edges.shape[0]
        elif isinstance(item, (str, os.PathLike)):
            head = self._head = read_graph_header(item)
            nodes, edges = head.tensors["nodes"][1], head.tensors["edges"][1]
            if len(nodes) != 2 or len(edges) != 1 or nodes[0] < 3 or edges[0] != condensed_size(nodes[0]):
                raise DeparaError(f"{head.path}: inconsistent depara graph (nodes of shape {tuple(nodes)}, edges of "
                                  f"shape {tuple(edges)}; expected N×P nodes, N ≥ 3, and N(N-1)/2 edges)")
            try:
                self.probe_ids = _checked_ids(head.probe_ids, nodes[0])
            except DeparaError as exc:
                raise DeparaError(f"{head.path}: inconsistent depara graph ({exc})") from None
            self.meta = head.meta
            self.node_size, self.n_edges = nodes[1], edges[0]
        else:
            raise DeparaError(f"graphs[{label}]: expected a depara Graph or a graph file path, got "
                              f"{type(item).__name__}")
        self.name = self._graph.name if self._graph is not None else Path(item).stem

    @property
    def n_probes(self) -> int:
        return len(self.probe_ids)

    def ranks_into(self, out: np.ndarray, scratch: Scratch, label: str) -> None:
        """``out[:] = 2·rank − (M+1)`` of this graph's edges (stored ranks if any, else ranked now)."""
        if self._graph is not None:
            g = self._graph
            centred_doubled_ranks(g.edges, g.edge_ranks, out, label)
            return
        head = self._head
        with open(head.path, "rb") as fh:
            if "edge_ranks" in head.tensors:
                # A 4-byte row (float32 stack) takes the int32 ranks in place: read straight into it, converted
                # where they lie (no scratch copy, one pass less); 8-byte rows go through the scratch buffer.
                direct = out.dtype.itemsize == 4 and out.flags.c_contiguous
                ranks = self._read(fh, "edge_ranks", scratch, into=out.view(np.int32) if direct else None)
                # Only the 2·64 edge values of the order check are read from the edges (through a mapping).
                edges = np.memmap(fh, dtype=head.tensors["edges"][0], mode="r", offset=head.tensors["edges"][2],
                                  shape=(self.n_edges,))
                try:
                    check_edge_ranks(ranks, edges, str(head.path))
                finally:
                    del edges
                centred_doubled_ranks(ranks, ranks, out, label)
            else:  # as Graph.load: edges converted to float32 first, then ranked
                edges = np.asarray(self._read(fh, "edges", scratch), dtype=np.float32)
                if not np.isfinite(edges).all():
                    raise DeparaError(f"{head.path}: inconsistent depara graph (edges hold non-finite values)")
                centred_doubled_ranks(edges, None, out, label)

    def nodes_into(self, out: np.ndarray, scratch: Scratch, start: int = 0, stop: int | None = None) -> None:
        """``out`` ((stop−start)·P,) = the unit-norm node maps of probes ``start:stop``, in the dtype of ``out``."""
        stop = self.n_probes if stop is None else stop
        dest = out.reshape(stop - start, self.node_size)
        if self._graph is not None:
            normalize_rows_into(self._graph.nodes[start:stop], dest, f"graph {self.name!r}")
            return
        head = self._head
        dtype, shape, begin, _ = head.tensors["nodes"]
        row = shape[1] * dtype.itemsize
        with open(head.path, "rb") as fh:  # float32 maps into a float32 row: read in place, normalised there
            buf = self._read(fh, "nodes", scratch, begin + start * row, (stop - start) * shape[1],
                             into=out if out.flags.c_contiguous else None)
        # F16/F64 files are read as float32 values, as Graph.load does.
        nodes = buf.reshape(stop - start, shape[1])
        if dtype != np.float32:
            nodes = nodes.astype(np.float32)
        normalize_rows_into(nodes, dest, str(head.path))

    def _read(self, fh: Any, name: str, scratch: Scratch, begin: int | None = None,
              count: int | None = None, into: np.ndarray | None = None) -> np.ndarray:
        """Tensor ``name`` (or ``count`` values from byte ``begin``) read with ``readinto`` into ``into`` (an
        array of the tensor's dtype and size) or else a scratch buffer."""
        dtype, shape, start, end = self._head.tensors[name]
        begin = start if begin is None else begin
        count = int(np.prod(shape)) if count is None else count
        buf = scratch.get(dtype, count) if into is None or into.dtype != dtype else into
        fh.seek(begin)
        got = fh.readinto(memoryview(buf).cast("B"))
        if got != count * dtype.itemsize:
            raise DeparaError(f"{self._head.path}: not a readable depara graph file (tensor {name!r} is cut short)")
        return buf


def graph_rows(graphs: Mapping[str, Any] | Sequence[Any], what: str = "graphs") -> tuple[list[str], list[GraphRows]]:
    """(names, row sources) of a dict name → Graph/path or a list of Graphs/paths (headers read, not tensors).

    Names: the dict keys; for a list, a Graph's ``model:layer`` (or its index) and a file's stem; duplicates get
    ``#i`` appended.
    """
    if isinstance(graphs, (Graph, str, bytes, os.PathLike)):
        raise DeparaError(f"{what}: expected several graphs (a dict or a list of Graphs or graph files), got a "
                          f"single {type(graphs).__name__}")
    if isinstance(graphs, Mapping):
        named = [(str(k), v) for k, v in graphs.items()]
    else:
        try:
            named = [(None, v) for v in graphs]
        except TypeError:
            raise DeparaError(f"{what}: expected a dict or a list of graphs, got {type(graphs).__name__}") from None
    if not named:
        raise DeparaError(f"{what}: no graphs given")
    rows = [GraphRows(item, f"{name if name is not None else i}") for i, (name, item) in enumerate(named)]
    if named[0][0] is not None:
        return [name for name, _ in named], rows
    names = [r.name or str(i) for i, r in enumerate(rows)]
    counts: dict[str, int] = {}
    for n in names:
        counts[n] = counts.get(n, 0) + 1
    return [f"{n}#{i}" if counts[n] > 1 else n for i, n in enumerate(names)], rows


__all__ = ["GraphRows", "Scratch", "graph_rows", "normalize_rows_into"]
