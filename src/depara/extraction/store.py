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
filesystem) write the same key at once — the last rename wins and both wrote identical content. An entry that
cannot be read back (a truncated or corrupt file) is deleted and reported as missing, so the caller rebuilds it.

``ROOT`` is ``$DEPARA_CACHE/store`` (default ``~/.cache/depara/store``, see :func:`depara.io.files.default_cache_dir`).

    >>> store = GraphStore()                                     # $DEPARA_CACHE/store
    >>> k = store.key(weights_hash(model), "layer3", probes.content_hash(), {"method": "input_x_gradient"})
    >>> graph = store.get(k) if store.has(k) else store.put(k, build_graph(model, probes, "layer3"))
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

import numpy as np

from ..io.files import atomic_path, default_cache_dir
from ..errors import DeparaError

if TYPE_CHECKING:  # pragma: no cover
    from torch import nn

    from ..core.graph import Graph

__all__ = ["GraphStore", "weights_hash", "graph_key", "graph_key_options", "STORE_VERSION"]

#: Bumped when the meaning of an entry changes, so older entries are never read as current ones.
STORE_VERSION = "1"
_GRAPH = "graph"
_SUFFIX = {_GRAPH: ".safetensors"}


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
    """Content-addressed store of graphs and feature arrays under one folder (see the module docstring).

    Parameters
    ----------
    root : path, optional
        The folder; default ``default_cache_dir() / "store"``. Created on the first write.

    The four calls other code needs are :meth:`key`, :meth:`has`, :meth:`get` and :meth:`put` (graphs);
    :meth:`get_array` / :meth:`put_array` do the same for numpy arrays, :meth:`info` / :meth:`clear` serve
    ``depara cache info|clear``.
    """

    def __init__(self, root: str | os.PathLike | None = None):
        self.root = Path(root) if root is not None else default_cache_dir() / "store"
        if self.root.exists() and not self.root.is_dir():
            raise DeparaError(f"cache folder {self.root}: exists and is not a folder")

    def __repr__(self) -> str:
        return f"GraphStore({str(self.root)!r})"

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

    # ---------------------------------------------------------------------------------------------- graphs
    def has(self, key: str) -> bool:
        """Whether an entry exists for ``key`` (not whether it is readable: :meth:`get` checks that)."""
        return self.path(key).is_file()

    def get(self, key: str) -> "Graph | None":
        """The graph stored under ``key``, or None when absent; a corrupt entry is deleted and None returned."""
        from ..core.graph import Graph

        p = self.path(key)
        if not p.is_file():
            return None
        try:
            return Graph.load(p)
        except (DeparaError, OSError, ValueError):
            _remove(p)
            return None

    def put(self, key: str, graph: "Graph") -> "Graph":
        """Store ``graph`` under ``key`` atomically (a concurrent reader never sees a partial file); returns it."""
        from ..core.graph import Graph

        if not isinstance(graph, Graph):
            raise DeparaError(f"graph: expected a depara Graph to store, got {type(graph).__name__}")
        p = self.path(key)
        p.parent.mkdir(parents=True, exist_ok=True)
        graph.save(p)
        return graph

    # ---------------------------------------------------------------------------------------------- arrays
    def get_array(self, key: str, mmap: bool = False) -> np.ndarray | None:
        """The array stored under ``key`` (read with ``allow_pickle=False``), or None; corrupt → deleted, None.

        mmap: a read-only memory map of the file instead of a copy in RAM (large feature arrays).
        """
        p = self.path(key)
        if not p.is_file():
            return None
        try:
            arr = np.load(p, allow_pickle=False, mmap_mode="r" if mmap else None)
        except (OSError, ValueError, EOFError):
            _remove(p)
            return None
        return arr

    def put_array(self, key: str, array: np.ndarray) -> np.ndarray:
        """Store a numeric array under ``key`` atomically; returns it."""
        arr = np.asarray(array)
        if arr.dtype == object:
            raise DeparaError("array: expected a numeric array to store, got dtype object")
        p = self.path(key)
        p.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(p, "store entry") as tmp:
            with open(tmp, "wb") as fh:
                np.save(fh, arr, allow_pickle=False)
        return arr

    def remove(self, key: str) -> bool:
        """Delete the entry ``key`` (e.g. probe-shard parts once their graph is stored); True if it existed."""
        p = self.path(key)
        existed = p.is_file()
        _remove(p)
        return existed

    # ------------------------------------------------------------------------------------------- upkeep
    def entries(self) -> list[Path]:
        """Every complete entry file (temporary ``.part`` files of writes in progress are not entries)."""
        if not self.root.is_dir():
            return []
        return sorted(p for p in self.root.glob("*/*/*") if p.is_file() and not p.name.startswith("."))

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
        n = len(self.entries())
        if self.root.is_dir():
            for child in self.root.iterdir():
                if child.is_dir() and not child.is_symlink():
                    shutil.rmtree(child)
                else:
                    child.unlink()
        return n


def _remove(path: Path) -> None:
    try:
        path.unlink()
    except FileNotFoundError:
        pass
