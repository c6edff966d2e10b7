"""The DEPARA graph of one model (at one layer) on a probe set: nodes, edges, probe ids, metadata.

A graph over N probe images holds

* ``nodes``: N×P float32, the attribution map of each probe flattened to P values (docs/method.md §1);
* ``edges``: N(N−1)/2 float32, the condensed upper triangle (``scipy.spatial.distance.squareform`` order,
  i.e. pairs (0,1), (0,2), …, (0,N−1), (1,2), …) of the probe-by-probe similarity of the model's features:
  cosine similarity (``edge="cosine"``, the DEPARA edge) or Pearson correlation (``edge="correlation"``, the RSA
  variant; the stored value is the Pearson correlation r = 1 − ``pdist(..., "correlation")``, a similarity like
  the cosine, so Spearman between any two edge vectors is the RSA score);
* ``probe_ids``: N strings; two graphs are comparable only on identical ids in identical order;
* ``meta``: a JSON-serialisable dict (model, layer, method, edge, center, channel_reduction, ...).

Graphs are stored as safetensors files (tensors ``nodes``, ``edges``) with JSON metadata in the safetensors
header, written atomically and validated on load (:meth:`Graph.load`, the one reader: dtypes, shapes, byte ranges,
JSON size/depth). depara writes the header itself with sorted keys, so a graph's file is byte-reproducible.
Nothing is ever pickled. Graphs built from a probe set record ``meta["probe_hash"]`` (the content hash of the
probe images), and :mod:`depara.core.similarity` refuses to compare graphs over different images.

This module is numpy only; the torch layer (:mod:`depara.extraction.extract`) builds graphs through
:meth:`Graph.from_arrays`.
"""

from __future__ import annotations

import functools
import json
import os
from pathlib import Path
from typing import Any, Mapping, NamedTuple, Sequence

import numpy as np

from ..io.files import atomic_path
from ..errors import DeparaError
from .edges import CHUNK_BYTES, edges_from_features
from .ids import check_probe_ids
from .labels import class_count, label_edges

FORMAT_TAG = "depara-graph"
FORMAT_VERSION = "1"
EDGE_METRICS = ("cosine", "correlation")
CHANNEL_REDUCTIONS = (None, "none", "mean", "abs_mean")



def condensed_size(n_probes: int) -> int:
    """Number of edges N(N−1)/2 of a graph over ``n_probes`` probes."""
    return n_probes * (n_probes - 1) // 2


def _as_array(x: Any, what: str) -> np.ndarray:
    """Numeric numpy view of ``x`` (torch tensors are accepted through ``__array__``), validated."""
    if hasattr(x, "detach"):  # a torch tensor: avoid importing torch here
        x = x.detach().cpu().numpy()
    try:
        arr = np.asarray(x)
    except Exception as exc:  # noqa: BLE001 - any conversion failure is bad input
        raise DeparaError(f"{what}: cannot convert to a numeric array ({exc})") from None
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
        raise DeparaError(f"{what}: expected a numeric array, got dtype {arr.dtype}")
    if np.iscomplexobj(arr):
        raise DeparaError(f"{what}: expected a real array, got dtype {arr.dtype}")
    if arr.ndim < 1:
        raise DeparaError(f"{what}: expected an array with a leading probe axis (N, ...), got a scalar")
    return arr


def _chunk_len(arr: np.ndarray) -> int:
    per_probe = max(1, arr[:1].nbytes)
    return max(1, CHUNK_BYTES // per_probe)


def _count_nonfinite(arr: np.ndarray) -> int:
    """Number of NaN/Inf values, counted in probe chunks (memory-mapped arrays stay on disk)."""
    if not np.issubdtype(arr.dtype, np.floating):
        return 0
    step = _chunk_len(arr)
    return int(sum(np.count_nonzero(~np.isfinite(arr[i:i + step])) for i in range(0, arr.shape[0], step)))


def _check_finite(arr: np.ndarray, what: str) -> None:
    bad = _count_nonfinite(arr)
    if bad:
        raise DeparaError(f"{what} contain {bad} non-finite value(s) (NaN/Inf) out of {arr.size}")


def _reduce_channels(attributions: np.ndarray, reduction: str | None, channel_axis: int) -> np.ndarray:
    """N×... attributions → N×P float32, after an optional mean / mean-of-absolute-value over ``channel_axis``.

    ``channel_axis`` indexes the full array (probe axis 0 included); negative values count from the end.
    """
    if reduction in (None, "none"):
        return np.asarray(attributions, dtype=np.float32).reshape(attributions.shape[0], -1)
    if reduction not in ("mean", "abs_mean"):
        raise DeparaError(f"channel_reduction: expected one of None, 'mean', 'abs_mean', got {reduction!r}")
    ndim = attributions.ndim
    axis = channel_axis + ndim if channel_axis < 0 else channel_axis
    if not 1 <= axis < ndim:
        raise DeparaError(f"channel_axis={channel_axis}: attributions of shape {attributions.shape} have no such "
                          "non-probe axis")
    n = attributions.shape[0]
    out_shape = attributions.shape[:axis] + attributions.shape[axis + 1:]
    out = np.empty((n, int(np.prod(out_shape[1:], dtype=np.int64))), dtype=np.float32)
    step = _chunk_len(attributions)
    for start in range(0, n, step):
        block = np.asarray(attributions[start:start + step], dtype=np.float64)
        if reduction == "abs_mean":
            block = np.abs(block)
        out[start:start + step] = block.mean(axis=axis).reshape(block.shape[0], -1)
    return out


def _check_meta(meta: Mapping[str, Any] | None) -> dict[str, Any]:
    if meta is None:
        return {}
    if not isinstance(meta, Mapping):
        raise DeparaError(f"meta: expected a dict, got {type(meta).__name__}")
    meta = dict(meta)
    try:
        json.dumps(meta, allow_nan=False, sort_keys=True)  # sorted when saved: keys must be comparable
    except (TypeError, ValueError) as exc:
        raise DeparaError(f"meta: must be JSON-serialisable ({exc})") from None
    return meta


#: Largest safetensors header accepted by :meth:`Graph.load` (the safetensors library's own limit is 100 MB).
MAX_HEADER_BYTES = 100 * 2**20
#: safetensors dtypes a graph file may hold (converted to float32 on load); anything else is refused.
_FILE_DTYPES = {"F32": np.dtype("<f4"), "F16": np.dtype("<f2"), "F64": np.dtype("<f8")}
#: dtype of each tensor depara writes; the optional ``edge_ranks`` tensor must be I32 (see depara.core.edges).
_TENSOR_DTYPES = {"F32": np.dtype("<f4"), "I32": np.dtype("<i4")}


def _safetensors_bytes(tensors: Mapping[str, np.ndarray], metadata: Mapping[str, str]) -> bytes:
    """A safetensors file in bytes with a deterministic header (sorted keys, compact JSON, space padding)."""
    header: dict[str, Any] = {"__metadata__": dict(sorted(metadata.items()))}
    blobs = []
    offset = 0
    for name in sorted(tensors):
        # Stored ranks are exact integers (depara.core.edges); anything else is written as float32.
        code = "I32" if np.issubdtype(np.asarray(tensors[name]).dtype, np.integer) else "F32"
        blob = np.ascontiguousarray(tensors[name], dtype=_TENSOR_DTYPES[code]).tobytes()
        header[name] = {"dtype": code, "shape": list(tensors[name].shape),
                        "data_offsets": [offset, offset + len(blob)]}
        offset += len(blob)
        blobs.append(blob)
    text = json.dumps(header, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    text += b" " * (-(8 + len(text)) % 8)  # the data starts 8-byte aligned, as the safetensors writer does
    return len(text).to_bytes(8, "little") + text + b"".join(blobs)


def _write_safetensors(tensors: Mapping[str, np.ndarray], filename: str, metadata: Mapping[str, str]) -> None:
    with open(filename, "wb") as fh:
        fh.write(_safetensors_bytes(tensors, metadata))


def _check_header(header: Any, p: Path, data_len: int) -> dict[str, tuple[np.dtype, tuple[int, ...], int, int]]:
    """Validate a parsed safetensors header of a graph file: {name: (dtype, shape, begin, end)} of nodes/edges."""
    if not isinstance(header, dict):
        raise DeparaError(f"{p}: not a readable depara graph file (corrupt safetensors: the header is not an object)")
    metadata = header.get("__metadata__")
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        if metadata is None:
            raise DeparaError(f"{p}: a safetensors file without the '{FORMAT_TAG}' format tag (not a depara graph)")
        raise DeparaError(f"{p}: corrupt depara graph metadata (the safetensors metadata is not a string map)")
    if metadata.get("format") != FORMAT_TAG:
        raise DeparaError(f"{p}: a safetensors file without the '{FORMAT_TAG}' format tag (not a depara graph)")
    if "version" not in metadata:
        raise DeparaError(f"{p}: a depara graph tag without a format version in its metadata (expected version "
                          f"{FORMAT_VERSION!r}; not written by depara)")
    if metadata.get("version") != FORMAT_VERSION:
        raise DeparaError(f"{p}: depara graph format version {metadata.get('version')!r} is not "
                          f"supported (expected {FORMAT_VERSION!r})")
    keys = set(header) - {"__metadata__"}
    if keys - {"edge_ranks"} != {"nodes", "edges"}:
        raise DeparaError(f"{p}: expected tensors 'nodes' and 'edges' (and optionally 'edge_ranks'), found "
                          f"{sorted(keys)[:5]}")
    out = {}
    spans = []
    for name in [k for k in ("nodes", "edges", "edge_ranks") if k in keys]:
        info = header[name]
        if not isinstance(info, dict):
            raise DeparaError(f"{p}: corrupt safetensors header (tensor {name!r} is not described by an object)")
        code = info.get("dtype")
        allowed = {"I32": _TENSOR_DTYPES["I32"]} if name == "edge_ranks" else _FILE_DTYPES
        if code not in allowed:
            if name == "edge_ranks":
                raise DeparaError(f"{p}: stored edge ranks must be int32 (dtype I32), found dtype {str(code)[:20]}")
            raise DeparaError(f"{p}: tensor {name!r} has dtype {str(code)[:20]}; expected F32 (F16/F64 are "
                              "converted), a depara graph holds float32 nodes/edges")
        shape = info.get("shape")
        offsets = info.get("data_offsets")
        if (not isinstance(shape, list) or not all(type(d) is int and 0 <= d < 2**40 for d in shape)
                or not isinstance(offsets, list) or len(offsets) != 2
                or not all(type(o) is int and o >= 0 for o in offsets) or offsets[0] > offsets[1]):
            raise DeparaError(f"{p}: corrupt safetensors header (bad shape or data_offsets of tensor {name!r})")
        expected = int(np.prod(shape, dtype=object)) * allowed[code].itemsize
        if offsets[1] - offsets[0] != expected:
            raise DeparaError(f"{p}: not a readable depara graph file (corrupt or truncated safetensors: tensor "
                              f"{name!r} of shape {shape} needs {expected} bytes, the header gives "
                              f"{offsets[1] - offsets[0]})")
        if offsets[1] > data_len:
            raise DeparaError(f"{p}: not a readable depara graph file (corrupt or truncated safetensors: tensor "
                              f"{name!r} ends at byte {offsets[1]} of a {data_len}-byte data section)")
        spans.append(tuple(offsets))
        out[name] = (allowed[code], tuple(shape), offsets[0], offsets[1])
    spans.sort()
    if any(prev[1] > nxt[0] for prev, nxt in zip(spans, spans[1:])):
        raise DeparaError(f"{p}: corrupt safetensors header (the byte ranges of the tensors overlap)")
    return out


class GraphHeader(NamedTuple):
    """A validated graph file header (:func:`read_graph_header`): what :meth:`Graph.load` reads before the tensors.

    ``tensors``: {name: (dtype, shape, begin, end)} with ``begin``/``end`` **absolute** byte offsets in the file,
    so a reader can fetch one tensor (or a byte range of it, e.g. some probes' node maps) straight into its own
    buffer (:mod:`depara.core.graph_rows`).
    """

    path: Path
    probe_ids: tuple
    meta: dict
    tensors: dict

    def read(self, fh: Any, name: str) -> np.ndarray:
        """Tensor ``name`` read from the open file ``fh`` into a fresh array (the file's dtype)."""
        dtype, shape, begin, end = self.tensors[name]
        fh.seek(begin)
        buf = fh.read(end - begin)
        if len(buf) != end - begin:
            raise DeparaError(f"{self.path}: not a readable depara graph file (corrupt or truncated safetensors: "
                              f"tensor {name!r} is cut short)")
        return np.frombuffer(bytearray(buf), dtype=dtype).reshape(shape)


@functools.lru_cache(maxsize=8)
def _probe_ids_json(text: str) -> tuple[str, ...] | None:
    """The probe ids of a graph file header (a tuple), or None if they are not a list of strings.

    Cached by the JSON text: every graph over one probe set carries the same text, so reading a thousand such
    headers (:mod:`depara.core.graph_rows`) parses and checks its N ids once.
    """
    from ..io.readers import loads_json

    ids = loads_json(text, "probe_ids")
    if not isinstance(ids, list) or not all(isinstance(x, str) for x in ids):
        return None
    return tuple(ids)


def read_graph_header(path: str | os.PathLike) -> GraphHeader:
    """Read and validate the safetensors header of a graph file (see :meth:`Graph.load`), not its tensors."""
    from ..io.readers import exists, regular_file

    p = Path(path)
    if not exists(p):
        raise DeparaError(f"{p}: graph file not found")
    if not p.is_file():
        if p.is_dir():
            raise DeparaError(f"{p}: not a file (expected a depara graph .safetensors file)")
        raise DeparaError(f"{p}: not a regular file (expected a depara graph .safetensors file)")
    size = regular_file(p, "graph file").st_size
    try:
        with open(p, "rb") as fh:
            return parse_graph_header(fh, p, size)
    except OSError as exc:
        raise DeparaError(f"{p}: cannot read the graph file ({exc.strerror or type(exc).__name__})") from None


def parse_graph_header(fh: Any, p: Path, size: int) -> GraphHeader:
    """The validated header of the graph file open in ``fh`` (read from its start; ``size``: its byte count,
    ``p``: the name its errors give). :func:`read_graph_header` for a path; a bytes buffer in ``io.BytesIO``
    works the same (:meth:`Graph.from_bytes`)."""
    from ..io.readers import loads_json

    fh.seek(0)
    head = fh.read(8)
    if head[:4] == b"PK\x03\x04":
        raise DeparaError(f"{p}: a zip/npz archive, not a depara graph (expected a safetensors file)")
    if head[:6] == b"\x93NUMPY":
        raise DeparaError(f"{p}: a .npy array, not a depara graph (expected a safetensors file)")
    if len(head) < 8:
        raise DeparaError(f"{p}: truncated or empty ({size} bytes), not a depara graph file")
    header_len = int.from_bytes(head, "little")
    if header_len > size - 8 or header_len > MAX_HEADER_BYTES or header_len < 2:
        raise DeparaError(f"{p}: not a depara graph file (truncated, or not safetensors: header length "
                          f"{header_len} exceeds the file size or the limit of {MAX_HEADER_BYTES})")
    raw_header = fh.read(header_len)
    data_start = 8 + header_len
    if raw_header[:1] != b"{":
        raise DeparaError(f"{p}: not a readable depara graph file (corrupt or truncated safetensors: "
                          "the header is not a JSON object)")
    header = loads_json(raw_header, f"{p}: safetensors header", max_depth=4)
    tensors = {name: (dtype, shape, data_start + begin, data_start + end)
               for name, (dtype, shape, begin, end) in _check_header(header, p, size - data_start).items()}
    metadata = header.get("__metadata__")
    try:
        probe_ids = _probe_ids_json(metadata.get("probe_ids", ""))
        meta = loads_json(metadata.get("meta", ""), "meta")
    except DeparaError as exc:
        raise DeparaError(f"{p}: corrupt depara graph metadata ({exc})") from None
    if probe_ids is None:
        raise DeparaError(f"{p}: corrupt depara graph metadata (probe_ids is not a list of strings)")
    if not isinstance(meta, dict):
        raise DeparaError(f"{p}: corrupt depara graph metadata (meta is not an object)")
    return GraphHeader(p, probe_ids, meta, tensors)


class Graph:
    """DEPARA graph: ``nodes`` (N×P float32), ``edges`` (N(N−1)/2 float32, squareform order), ``probe_ids``, ``meta``.

    Build one with :meth:`from_arrays` (from attribution maps and features) or :func:`depara.build_graph` (from a
    model); the constructor takes already computed arrays and validates them.
    """

    __slots__ = ("nodes", "edges", "probe_ids", "meta", "edge_ranks")

    def __init__(self, nodes: Any, edges: Any, probe_ids: Sequence[Any] | None = None,
                 meta: Mapping[str, Any] | None = None):
        nodes_arr = _as_array(nodes, "nodes")
        edges_arr = _as_array(edges, "edges")
        if nodes_arr.ndim != 2:
            raise DeparaError(f"nodes: expected a 2-D array N×P, got shape {nodes_arr.shape}")
        if edges_arr.ndim != 1:
            raise DeparaError(f"edges: expected a 1-D condensed vector N(N-1)/2, got shape {edges_arr.shape}")
        n = nodes_arr.shape[0]
        if n < 3:
            raise DeparaError(f"nodes: a graph needs at least 3 probes, got {n}")
        if edges_arr.shape[0] != condensed_size(n):
            raise DeparaError(f"edges: {edges_arr.shape[0]} values, expected N(N-1)/2 = {condensed_size(n)} "
                              f"for N = {n} probes")
        _check_finite(nodes_arr, "nodes")
        _check_finite(edges_arr, "edges")
        self.nodes: np.ndarray = np.ascontiguousarray(nodes_arr, dtype=np.float32)
        self.edges: np.ndarray = np.ascontiguousarray(edges_arr, dtype=np.float32)
        self.probe_ids: tuple[str, ...] = check_probe_ids(probe_ids, n)
        self.meta: dict[str, Any] = _check_meta(meta)
        # Optional doubled average ranks of the edges (int32), set once by depara.core.edges.attach_edge_ranks.
        self.edge_ranks: np.ndarray | None = None

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_arrays(cls, attributions: Any, features: Any, *, center: bool = True, edge: str = "cosine",
                    probe_ids: Sequence[Any] | None = None, channel_reduction: str | None = None,
                    channel_axis: int = -1, meta: Mapping[str, Any] | None = None) -> "Graph":
        """Graph from per-probe attribution maps and features.

        attributions: N×... (any trailing shape), flattened per probe into the nodes, after an optional
            ``channel_reduction`` ("mean" = signed mean, "abs_mean" = mean of absolute values) over ``channel_axis``
            (an axis of the full array; -1 = last, e.g. N×H×W×C; use 1 for N×C×H×W).
        features: N×... (any trailing shape), flattened per probe; edge (i, j) = cosine similarity of the
            feature rows after subtracting their mean over probes (``center=True``) or as given, or with
            ``edge="correlation"`` their Pearson correlation (RSA variant; centring over probes is applied first
            when ``center=True``, pass ``center=False`` for the classical RSA).
        probe_ids: N unique ids (default "0".."N−1").
        meta: extra JSON-serialisable metadata; ``edge``, ``center`` and ``channel_reduction`` are recorded.

        Raises DeparaError on NaN/Inf, N mismatch, N < 3, rows whose cosine/correlation is undefined, bad ids.
        """
        if edge not in EDGE_METRICS:
            raise DeparaError(f"edge: expected one of {', '.join(EDGE_METRICS)}, got {edge!r}")
        if channel_reduction not in CHANNEL_REDUCTIONS:
            raise DeparaError(f"channel_reduction: expected one of None, 'mean', 'abs_mean', got {channel_reduction!r}")
        attr = _as_array(attributions, "attributions")
        feat = _as_array(features, "features")
        if attr.shape[0] != feat.shape[0]:
            raise DeparaError(f"attributions have {attr.shape[0]} probes but features have {feat.shape[0]}")
        n = attr.shape[0]
        if n < 3:
            raise DeparaError(f"attributions/features: a graph needs at least 3 probes, got {n}")
        if attr.size == 0 or feat.size == 0:
            raise DeparaError(f"{'attributions' if attr.size == 0 else 'features'}: empty per-probe arrays "
                              f"(shape {attr.shape if attr.size == 0 else feat.shape})")
        ids = check_probe_ids(probe_ids, n)
        _check_finite(attr, "attributions")
        _check_finite(feat, "features")
        nodes = _reduce_channels(attr, channel_reduction, channel_axis)
        edges = edges_from_features(feat, center=bool(center), edge=edge)
        full_meta = _check_meta(meta)
        full_meta.update(edge=edge, center=bool(center),
                         channel_reduction=None if channel_reduction in (None, "none") else channel_reduction)
        return cls(nodes, edges, ids, full_meta)

    # ------------------------------------------------------------------ accessors
    def __len__(self) -> int:
        return self.nodes.shape[0]

    @property
    def n_probes(self) -> int:
        """N, the number of probes (= nodes)."""
        return self.nodes.shape[0]

    @property
    def node_size(self) -> int:
        """P, the number of values per node (flattened attribution map)."""
        return self.nodes.shape[1]

    @property
    def name(self) -> str:
        """A readable name from the metadata: ``model:layer``, ``model``, ``layer`` or ``""``."""
        parts = [str(self.meta[k]) for k in ("model", "layer") if self.meta.get(k) not in (None, "")]
        return ":".join(parts)

    def edge_matrix(self) -> np.ndarray:
        """The N×N symmetric edge matrix (float32), diagonal 1 (self-similarity)."""
        n = self.n_probes
        mat = np.ones((n, n), dtype=np.float32)
        iu = np.triu_indices(n, k=1)
        mat[iu] = self.edges
        mat[(iu[1], iu[0])] = self.edges
        return mat

    def __repr__(self) -> str:
        label = f" {self.name!r}" if self.name else ""
        return (f"Graph{label}(n_probes={self.n_probes}, node_size={self.node_size}, "
                f"edge={self.meta.get('edge', '?')!r})")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Graph):
            return NotImplemented
        return (self.probe_ids == other.probe_ids and self.meta == other.meta
                and np.array_equal(self.nodes, other.nodes) and np.array_equal(self.edges, other.edges))

    __hash__ = None  # type: ignore[assignment]  # mutable arrays

    # ------------------------------------------------------------------ storage
    def save(self, path: str | os.PathLike) -> Path:
        """Write the graph to ``path`` as safetensors (+ JSON metadata in the header), atomically.

        The file is byte-reproducible: the header is written by depara itself with sorted keys (the safetensors
        library keeps metadata in a hash map whose order changes between processes), so the same graph always
        gives the same bytes. It stays a standard safetensors file (``safetensors.safe_open`` reads it).
        """
        header = {
            "format": FORMAT_TAG,
            "version": FORMAT_VERSION,
            "probe_ids": json.dumps(list(self.probe_ids), ensure_ascii=False),
            "meta": json.dumps(self.meta, allow_nan=False, sort_keys=True, ensure_ascii=False),
        }
        tensors = {"nodes": self.nodes, "edges": self.edges}
        if self.edge_ranks is not None:  # optional, see depara.core.edges
            tensors["edge_ranks"] = self.edge_ranks
        with atomic_path(path, "graph") as tmp:
            _write_safetensors(tensors, str(tmp), header)
        return Path(path)

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Graph":
        """Read a graph written by :meth:`save`; any other content raises a one-line DeparaError naming the file.

        The one validated reader of graph files: the safetensors header is parsed by depara (at most
        :data:`MAX_HEADER_BYTES`, UTF-8 JSON nested at most a few levels), tensors must be exactly ``nodes`` and
        ``edges`` with dtype F32 (F16 and F64 are accepted and converted to float32; anything else, e.g. BF16 or
        integers, is refused), their shapes and byte ranges must match the file, and the ``probe_ids``/``meta``
        JSON strings go through :func:`depara.io.readers.loads_json` (size and depth limits). FIFOs and other
        special files are refused without being opened. Nothing is ever unpickled.
        """
        head = read_graph_header(path)
        p = head.path
        try:
            with open(p, "rb") as fh:
                arrays = {name: head.read(fh, name) for name in head.tensors}
        except OSError as exc:
            raise DeparaError(f"{p}: cannot read the graph file ({exc.strerror or type(exc).__name__})") from None
        return cls._from_parts(head, arrays)

    @classmethod
    def from_bytes(cls, data: bytes | bytearray | memoryview, name: str | os.PathLike) -> "Graph":
        """:meth:`Graph.load` of a graph file's bytes already in memory (``name``: the file they came from, for
        errors); the same checks. The verified store reads an entry once, hashes those bytes and loads them."""
        import io

        p = Path(name)
        fh = io.BytesIO(data)
        head = parse_graph_header(fh, p, len(data))
        return cls._from_parts(head, {n: head.read(fh, n) for n in head.tensors})

    @classmethod
    def _from_parts(cls, head: GraphHeader, arrays: Mapping[str, np.ndarray]) -> "Graph":
        """The graph of a validated header and its tensors (the end of :meth:`load` and :meth:`from_bytes`)."""
        p = head.path
        probe_ids, meta = head.probe_ids, head.meta
        try:
            graph = cls(arrays["nodes"], arrays["edges"], probe_ids, meta)
        except DeparaError as exc:
            raise DeparaError(f"{p}: inconsistent depara graph ({exc})") from None
        if "edge_ranks" in arrays:  # optional, see depara.core.edges
            from .edges import check_edge_ranks

            graph.edge_ranks = check_edge_ranks(arrays["edge_ranks"], graph.edges, str(p))
        return graph

    # ------------------------------------------------------------------ label graphs
    @classmethod
    def from_labels(cls, labels: Any, probe_ids: Sequence[Any] | None = None,
                    meta: Mapping[str, Any] | None = None) -> "Graph":
        """A target graph from the probes' class labels: edges from class identity, no nodes (N×0).

        Edge (i, j) = cosine of the centred one-hot labels of probes i and j (1 within a class, negative across);
        the math is in :mod:`depara.core.labels`. ``meta`` gains ``{"kind": "labels", "n_classes": K,
        "edge": "cosine", "center": True}``. Comparisons with it use the edge term only
        (:func:`depara.similarity`).
        """
        edges = label_edges(labels)
        n = np.asarray(labels).shape[0]
        info = dict(meta or {})
        info.update(kind="labels", n_classes=class_count(labels), edge="cosine", center=True)
        return cls(np.zeros((n, 0), np.float32), edges, probe_ids, info)
