"""A content-addressed cache of DEPARA graphs and feature arrays (the only state shared between runs and workers).

Every entry is keyed by *what it was computed from*, never by a name or a time:

* the model's weights hash (:func:`weights_hash`: SHA-256 over the state dict's names, dtypes, shapes and bytes),
* the layer name,
* the probe content hash (:meth:`depara.extraction.probes.ProbeSet.content_hash`: ids + image bytes),
* the options (method, scalar, node grid, preprocessing, ...: any JSON-serialisable mapping),
* the kind of entry (``"graph"`` or a feature-array kind such as ``"pooled"``).

:meth:`GraphStore.key` turns these into one hex digest; the entry lives at ``ROOT/<kind>/<k[:2]>/<k>.<ext>``
(graphs as safetensors files, :meth:`depara.core.graph.Graph.save`; arrays as ``.npy`` read with
``allow_pickle=False``). Adding a model therefore reuses every other entry untouched, and an interrupted run
resumes from the entries already written.

Writes are atomic: the file is written beside its final name and renamed into place (:func:`depara.io.files.atomic_path`),
so a reader sees either no entry or a complete one, also when two processes (e.g. Ray workers sharing a
filesystem) write the same key at once — the last rename wins and both wrote identical content.

Every entry is **verified on read**. Beside it lies its check record ``<entry file>.check`` (JSON: the store
version, the key the entry was written for, its size and the SHA-256 of its bytes), written before the entry
itself. :meth:`GraphStore.get` / :meth:`GraphStore.get_array` read the entry once and compare all four with the
bytes read before using those same bytes (a memory-mapped array is a view of the map it hashed): a
changed byte, a truncated file, two entries swapped (the record names another key), an entry written by another
store version or one without a record is never used. It is reported in one warning line (logger
``depara.extraction.store``: ``cache entry P: <what is wrong>; rebuilding it``), deleted, and reported as
missing, so the caller rebuilds it; a read-only store (``GraphStore(root, readonly=True)``, ``--cache-readonly``) writes nothing
and refuses such an entry with a one-line DeparaError instead. :meth:`GraphStore.verify` checks the whole store
(``depara cache verify``).

``ROOT`` is ``$DEPARA_CACHE/store`` (default ``~/.cache/depara/store``, see :func:`depara.io.files.default_cache_dir`).

    >>> store = GraphStore()                                     # $DEPARA_CACHE/store
    >>> k = store.key(weights_hash(model), "layer3", probes.content_hash(), {"method": "input_x_gradient"})
    >>> graph = store.get(k) if store.has(k) else store.put(k, build_graph(model, probes, "layer3"))
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import mmap as mmap_module
import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping

import numpy as np

from ..errors import DeparaError
from ..io.files import atomic_path, default_cache_dir, sha256_file, write_text
from ..io.readers import loads_json, read_bytes_limited

if TYPE_CHECKING:  # pragma: no cover
    from torch import nn

    from ..core.graph import Graph

__all__ = ["GraphStore", "weights_hash", "graph_key", "graph_key_options", "STORE_VERSION", "CHECK_SUFFIX"]

#: Bumped when the meaning of an entry changes, so older entries are never read as current ones.
#: 2: every entry carries a check record (key, size, SHA-256), verified on read.
STORE_VERSION = "2"
_GRAPH = "graph"
_SUFFIX = {_GRAPH: ".safetensors"}
#: The check record of an entry is ``<entry file name><CHECK_SUFFIX>`` beside it.
CHECK_SUFFIX = ".check"
_MAX_CHECK_BYTES = 4096
_CHANGED_BYTE = "its bytes do not match their SHA-256 (a changed byte)"
#: Largest .npy header read (numpy's own default limit for np.load).
_MAX_NPY_HEADER = 10000
_CHUNK = 1 << 20
log = logging.getLogger(__name__)


def weights_hash(model: "nn.Module") -> str:
    """SHA-256 (hex) of a model's weights: every state-dict entry's name, dtype, shape and bytes, in order.

    Two models with equal weights (and buffers, e.g. BatchNorm statistics) hash equal whatever their origin;
    changing one value changes the hash. The architecture enters through the names and shapes. TorchScript
    models hash the same way (their state dict).
    """
    import torch

    h = hashlib.sha256()
    h.update(type(model).__name__.encode())
    for name, tensor in model.state_dict().items():
        t = tensor.detach().cpu().contiguous()
        h.update(f"\0{name}:{t.dtype}:{tuple(t.shape)}\0".encode())
        if t.dtype == torch.bfloat16:  # numpy has no bfloat16: hash its raw 16-bit patterns
            t = t.view(torch.int16)
        h.update(t.numpy().tobytes())
    return h.hexdigest()


def _canonical(options: Mapping[str, Any] | None) -> str:
    try:
        return json.dumps(dict(options or {}), sort_keys=True, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise DeparaError(f"options: must be a JSON-serialisable mapping for the store key ({exc})") from None


def graph_key_options(options: Any = None, preprocess: Any = None,
                      extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """THE options record of a graph's store key, shared by ``depara select`` and the extraction engine.

    ``{**options.to_meta(), "preprocess": preprocess.describe(), **extra}``:

    options : GraphOptions, mapping or None
        How the graph is built (:class:`depara.options.GraphOptions`; a mapping of its fields, or None for THE
        defaults). Normalised first, so ``node_size=56`` and ``(56, 56)`` give one key.
    preprocess : Preprocess, str or None
        The preprocessing the model's probes went through (:class:`depara.extraction.probes.Preprocess`, or a preset name
        / ``WxH[:mean:std]`` string parsed by ``Preprocess.parse``); its full description enters the key, so
        two names for one preprocessing share entries and one name for two preprocessings does not.
        None: no preprocessing recorded.
    extra : mapping, optional
        Further JSON-serialisable entries that change the graph (e.g. ``{"nodes": False}`` for node-less graphs,
        ``{"shard": [start, stop]}`` for a shard's entries); None and {} add nothing, so keys without extras
        stay as they were.
    """
    from ..options import GraphOptions

    if not isinstance(options, GraphOptions):
        options = GraphOptions.from_mapping(options)
    record = options.to_meta()
    if preprocess is not None:
        if not hasattr(preprocess, "describe"):
            from .probes import Preprocess  # torch-side module: imported only for a string spec

            preprocess = Preprocess.parse(preprocess)
        record["preprocess"] = preprocess.describe()
    for name, value in dict(extra or {}).items():
        if name in record:
            raise DeparaError(f"extra: {name!r} is already a graph option of the store key")
        record[name] = value
    return record


def graph_key(model_hash: str, layer: str, probe_hash: str, options: Any = None, preprocess: Any = None, *,
              extra: Mapping[str, Any] | None = None, kind: str = _GRAPH) -> str:
    """The store key of a graph (or of an entry of ``kind`` derived with it, e.g. ``"pooled"`` features).

    :meth:`GraphStore.key` over :func:`graph_key_options`: the one derivation every extractor uses, so a graph
    extracted by ``depara extract --engine ray`` is found by ``depara select`` and the other way round.
    """
    return GraphStore.key(model_hash, layer, probe_hash, graph_key_options(options, preprocess, extra), kind=kind)


class GraphStore:
    """Content-addressed, verified store of graphs and feature arrays under one folder (see the module docstring).

    Parameters
    ----------
    root : path, optional
        The folder; default ``default_cache_dir() / "store"``. Created on the first write.
    readonly : bool
        Read only: nothing is written or deleted (:meth:`put` / :meth:`put_array` return their value unstored)
        and an entry that fails its check raises a one-line DeparaError instead of being rebuilt.

    The four calls other code needs are :meth:`key`, :meth:`has`, :meth:`get` and :meth:`put` (graphs);
    :meth:`get_array` / :meth:`put_array` do the same for numpy arrays, :meth:`info` / :meth:`verify` /
    :meth:`clear` serve ``depara cache info|verify|clear``.
    """

    def __init__(self, root: str | os.PathLike | None = None, *, readonly: bool = False):
        self.root = Path(root) if root is not None else default_cache_dir() / "store"
        self.readonly = bool(readonly)
        if self.root.exists() and not self.root.is_dir():
            raise DeparaError(f"cache folder {self.root}: exists and is not a folder")

    def __repr__(self) -> str:
        return f"GraphStore({str(self.root)!r}{', readonly=True' if self.readonly else ''})"

    # ------------------------------------------------------------------------------------------------ keys
    @staticmethod
    def key(model_hash: str, layer: str, probe_hash: str, options: Mapping[str, Any] | None = None, *,
            kind: str = _GRAPH) -> str:
        """The entry key: SHA-256 (hex) of (store version, kind, model hash, layer, probe hash, options as JSON).

        ``options`` must be JSON-serialisable; its key order does not matter.
        """
        for what, value in (("model_hash", model_hash), ("layer", layer), ("probe_hash", probe_hash),
                            ("kind", kind)):
            if not isinstance(value, str) or not value:
                raise DeparaError(f"{what}: expected a non-empty string for the store key, got {value!r}")
        text = "\n".join([STORE_VERSION, kind, model_hash, layer, probe_hash, _canonical(options)])
        return f"{kind}-{hashlib.sha256(text.encode('utf-8')).hexdigest()}"

    def path(self, key: str) -> Path:
        """Where the entry ``key`` lives (whether or not it exists)."""
        kind, sep, digest = str(key).rpartition("-")
        if not sep or not kind or len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest) \
                or not kind.replace("_", "").isalnum():
            raise DeparaError(f"store key {key!r}: not a key made by GraphStore.key")
        return self.root / kind / digest[:2] / f"{digest}{_SUFFIX.get(kind, '.npy')}"

    # ------------------------------------------------------------------------------------------ checking
    def problem(self, key: str) -> str | None:
        """What is wrong with the entry ``key`` (one phrase), or None when it is intact or absent.

        Intact: its check record exists, is of this :data:`STORE_VERSION`, names ``key``, and the file's size and
        SHA-256 equal the record's.
        """
        p = self.path(key)
        if not p.is_file():
            return None
        problem, record = self._record_problem(key, p)
        if problem is None and sha256_file(p) != record.get("sha256"):
            return _CHANGED_BYTE
        return problem

    def _record_problem(self, key: str, p: Path) -> tuple[str | None, dict]:
        """What is wrong with the check record of the entry at ``p`` or with the file's size, and the record."""
        check = _check_path(p)
        try:
            if not check.is_file():
                return "no check record (written by an older depara, or its write was interrupted)", {}
            record = loads_json(read_bytes_limited(check, "check record", _MAX_CHECK_BYTES), str(check),
                                max_depth=2)
        except (DeparaError, OSError):
            return "its check record is unreadable", {}
        if not isinstance(record, dict):
            return "its check record is unreadable", {}
        if record.get("store") != STORE_VERSION:
            return f"written by store version {record.get('store')!r}, this is version {STORE_VERSION!r}", record
        if record.get("key") != key:
            return (f"its check record is for another key ({str(record.get('key'))[:24]}…): entries swapped or "
                    "copied"), record
        size = p.stat().st_size
        if size != record.get("bytes"):
            return f"{size} bytes, its check record says {record.get('bytes')} (truncated or changed)", record
        return None, record

    def _reject(self, key: str, problem: str) -> None:
        """A bad entry: refused (read-only) or reported in one line and deleted, so the caller rebuilds it."""
        p = self.path(key)
        if self.readonly:
            raise DeparaError(f"cache entry {p}: {problem}; the cache is read-only, so it is not rebuilt (remove "
                              "the entry, e.g. with 'depara cache verify --remove', or use a writable cache)")
        log.warning("cache entry %s: %s; rebuilding it", p, problem)
        _remove_entry(p)

    def _verified_bytes(self, key: str, mmap: bool = False) -> "np.ndarray | mmap_module.mmap | None":
        """The entry's bytes, read once and checked against its record (the bytes hashed are the bytes used);
        None when absent or rejected. mmap: a read-only memory map of the file instead of a copy in RAM."""
        p = self.path(key)
        if not p.is_file():
            return None
        problem, record = self._record_problem(key, p)
        data: Any = None
        if problem is None:
            try:
                data, digest = _read_once(p, mmap)
            except OSError as exc:
                problem = f"unreadable ({exc.strerror or type(exc).__name__})"
        if problem is None and digest is None:
            problem = "its size changed while it was read"
        if problem is None and digest != record.get("sha256"):
            problem = _CHANGED_BYTE
        if problem is not None:
            if isinstance(data, mmap_module.mmap):
                data.close()
            self._reject(key, problem)
            return None
        return data

    def _write(self, key: str, write: Callable[[Path], None]) -> None:
        """Write an entry atomically through ``write(tmp)``, its check record first (none when read-only)."""
        if self.readonly:
            return
        p = self.path(key)
        p.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(p, "store entry") as tmp:
            write(tmp)
            record = {"store": STORE_VERSION, "key": key, "bytes": tmp.stat().st_size, "sha256": sha256_file(tmp)}
            # The record before the entry: a reader never meets an entry without one, except a leftover of an
            # interrupted write, which the check rejects.
            write_text(_check_path(p), json.dumps(record, sort_keys=True) + "\n")

    # ---------------------------------------------------------------------------------------------- graphs
    def has(self, key: str) -> bool:
        """Whether an entry exists for ``key`` (not whether it is intact: :meth:`get` checks that)."""
        p = self.path(key)
        return p.is_file() and _check_path(p).is_file()

    def get(self, key: str) -> "Graph | None":
        """The graph stored under ``key`` after its check, or None when absent; a bad entry is reported in one
        line and deleted (None returned), or refused with a DeparaError when the store is read-only."""
        from ..core.graph import Graph

        data = self._verified_bytes(key)
        if data is None:
            return None
        try:
            return Graph.from_bytes(data, self.path(key))
        except (DeparaError, OSError, ValueError) as exc:
            self._reject(key, f"not a readable graph ({exc})")
            return None

    def put(self, key: str, graph: "Graph") -> "Graph":
        """Store ``graph`` under ``key`` atomically with its check record; returns it (unstored if read-only)."""
        from ..core.graph import Graph

        if not isinstance(graph, Graph):
            raise DeparaError(f"graph: expected a depara Graph to store, got {type(graph).__name__}")
        self._write(key, graph.save)
        return graph

    # ---------------------------------------------------------------------------------------------- arrays
    def get_array(self, key: str, mmap: bool = False) -> np.ndarray | None:
        """The array stored under ``key`` after its check (read with ``allow_pickle=False``), or None; a bad entry
        as in :meth:`get`.

        mmap: a read-only memory map of the file instead of a copy in RAM (large feature arrays).
        """
        data = self._verified_bytes(key, mmap)
        if data is None:
            return None
        try:
            return _npy_from_buffer(data)
        except (OSError, ValueError, EOFError) as exc:
            self._reject(key, f"not a readable array ({exc})")
            return None

    def put_array(self, key: str, array: np.ndarray) -> np.ndarray:
        """Store a numeric array under ``key`` atomically with its check record; returns it."""
        arr = np.asarray(array)
        if arr.dtype == object:
            raise DeparaError("array: expected a numeric array to store, got dtype object")

        def write(tmp: Path) -> None:
            with open(tmp, "wb") as fh:
                np.save(fh, arr, allow_pickle=False)

        self._write(key, write)
        return arr

    def remove(self, key: str) -> bool:
        """Delete the entry ``key`` (e.g. probe-shard parts once their graph is stored); True if it existed."""
        p = self.path(key)
        existed = p.is_file()
        if not self.readonly:
            _remove_entry(p)
        return existed

    # ------------------------------------------------------------------------------------------- upkeep
    def entries(self) -> list[Path]:
        """Every entry file (not check records, not temporary ``.part`` files of writes in progress)."""
        if not self.root.is_dir():
            return []
        return sorted(p for p in self.root.glob("*/*/*") if p.is_file() and not p.name.startswith(".")
                      and not p.name.endswith(CHECK_SUFFIX))

    def verify(self, remove: bool = False) -> list[tuple[Path, str]]:
        """Check every entry (:meth:`problem`); returns ``(path, problem)`` for each bad one.

        remove: delete the bad entries (and their check records) too; else nothing is changed.
        """
        if remove and self.readonly:
            raise DeparaError(f"cache {self.root}: read-only, nothing is deleted")
        bad = []
        for p in self.entries():
            key = f"{p.parent.parent.name}-{p.name.split('.')[0]}"
            try:
                ok_name = self.path(key) == p
            except DeparaError:
                ok_name = False
            problem = self.problem(key) if ok_name else "not a store entry (unexpected file name)"
            if problem is not None:
                bad.append((p, problem))
                if remove:
                    _remove_entry(p)
        return bad

    def info(self) -> dict[str, Any]:
        """``{"root", "entries", "bytes", "kinds": {kind: {"entries", "bytes"}}}``."""
        kinds: dict[str, dict[str, int]] = {}
        total = 0
        files = self.entries()
        for p in files:
            size = p.stat().st_size
            k = kinds.setdefault(p.parent.parent.name, {"entries": 0, "bytes": 0})
            k["entries"] += 1
            k["bytes"] += size
            total += size
        return {"root": str(self.root), "entries": len(files), "bytes": total, "kinds": kinds}

    def clear(self) -> int:
        """Delete every entry (and leftover temporary files); returns the number of entries removed."""
        if self.readonly:
            raise DeparaError(f"cache {self.root}: read-only, nothing is deleted")
        n = len(self.entries())
        if self.root.is_dir():
            for child in self.root.iterdir():
                if child.is_dir() and not child.is_symlink():
                    shutil.rmtree(child)
                else:
                    child.unlink()
        return n


def _read_once(p: Path, mmap: bool) -> "tuple[np.ndarray | mmap_module.mmap, str | None]":
    """All bytes of the file ``p`` in one read, and their SHA-256 (hex; None when the file's size changed while it
    was read): into RAM (a uint8 array), hashed chunk by chunk as it arrives (while in the CPU cache), or as a
    read-only memory map hashed in place (mmap=True)."""
    h = hashlib.sha256()
    with open(p, "rb") as fh:
        size = os.fstat(fh.fileno()).st_size
        if mmap and size > 0:
            mapped = mmap_module.mmap(fh.fileno(), 0, access=mmap_module.ACCESS_READ)
            h.update(mapped)
            return mapped, h.hexdigest()
        data = np.empty(size, dtype=np.uint8)  # not zero-filled first, unlike a bytearray
        done = 0
        while done < size:
            n = fh.readinto(data[done:done + _CHUNK])
            if not n:  # shrank while read
                return data[:done], None
            h.update(data[done:done + n])
            done += n
        return data, (None if fh.read(1) else h.hexdigest())


def _npy_from_buffer(data: "np.ndarray | mmap_module.mmap") -> np.ndarray:
    """The array of the .npy file whose bytes are ``data``, as a view of them (no copy; never unpickled).

    A memory map gives a read-only array over the map. Raises ValueError for anything but a .npy file of a
    numeric array whose data fills the rest of ``data``.
    """
    fmt = np.lib.format
    head = io.BytesIO(bytes(data[:_MAX_NPY_HEADER + 16]))
    version = fmt.read_magic(head)
    if version == (1, 0):
        shape, fortran, dtype = fmt.read_array_header_1_0(head, max_header_size=_MAX_NPY_HEADER)
    elif version == (2, 0):
        shape, fortran, dtype = fmt.read_array_header_2_0(head, max_header_size=_MAX_NPY_HEADER)
    else:
        raise ValueError(f".npy format version {version} is not read by the store")
    if dtype.hasobject:
        raise ValueError("an object array (the store holds numeric arrays only)")
    count = int(np.prod(shape, dtype=np.int64))
    if head.tell() + count * dtype.itemsize != len(data):
        raise ValueError(f"{len(data) - head.tell()} data bytes for {count} values of {dtype}")
    arr = np.frombuffer(data, dtype=dtype, count=count, offset=head.tell())
    return arr.reshape(shape, order="F" if fortran else "C")


def _check_path(entry: Path) -> Path:
    return entry.with_name(entry.name + CHECK_SUFFIX)


def _remove_entry(entry: Path) -> None:
    """Delete an entry file and its check record (either may be missing)."""
    for path in (entry, _check_path(entry)):
        try:
            path.unlink()
        except FileNotFoundError:
            pass
