"""The results-folder convention every experiment follows, so `depara report` can render any of them.

Each experiment command writes into its ``--out`` folder its CSV/JSON tables, its PNG figures, and a
``manifest.json``::

    {
      "kind": "rank" | "layers-select" | "taskonomy" | "taskbank" | "score" | "demo" | ...,
      "title": "human readable title",
      "summary": "one line: what to pick (e.g. 'pick source resnet18 (S = 0.81)')",
      "settings": {... every option used, seed included ...},
      "tables": {"ranking": "ranking.csv", ...},      # name -> file relative to the folder
      "figures": {"pr_curve": "pr_curve.png", ...},   # name -> file relative to the folder
      "extra": {...}                                   # anything kind-specific (e.g. chosen layer, truth best)
    }
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping

from ..io.files import write_json
from ..errors import DeparaError
from ..io.readers import exists as _exists, loads_json, read_bytes_limited, real_path as _real

MANIFEST = "manifest.json"
#: Limits of the one manifest reader (:func:`read_manifest`): size in bytes and nesting depth of the JSON.
MAX_MANIFEST_BYTES = 16 * 2**20
MAX_MANIFEST_DEPTH = 32


def write_manifest(out_dir: str | os.PathLike, kind: str, *, title: str = "", summary: str = "",
                   settings: Mapping[str, Any] | None = None, tables: Mapping[str, str] | None = None,
                   figures: Mapping[str, str] | None = None, extra: Mapping[str, Any] | None = None) -> Path:
    """Write ``out_dir/manifest.json`` (atomically). File names are relative to ``out_dir``."""
    out = Path(out_dir)
    data = {
        "kind": kind,
        "title": title or kind,
        "summary": summary,
        "settings": dict(settings or {}),
        "tables": {k: str(v) for k, v in (tables or {}).items()},
        "figures": {k: str(v) for k, v in (figures or {}).items()},
        "extra": dict(extra or {}),
    }
    return write_json(out / MANIFEST, data)


def read_manifest_bytes(data: bytes, path: str | os.PathLike) -> dict[str, Any]:
    """Parse and validate manifest bytes read from ``path``: strict UTF-8 JSON, size/depth limits, an object
    with a ``kind``. The one manifest reader; :func:`read_manifest` and ``depara report`` use it."""
    data_ = loads_json(data, str(path), max_bytes=MAX_MANIFEST_BYTES, max_depth=MAX_MANIFEST_DEPTH)
    if not isinstance(data_, dict) or "kind" not in data_:
        raise DeparaError(f"{path}: not a depara manifest (no 'kind')")
    return data_


def read_manifest(out_dir: str | os.PathLike) -> dict[str, Any]:
    """Read ``out_dir/manifest.json`` through the validated reader; it must resolve inside ``out_dir``."""
    folder = Path(out_dir)
    path = folder / MANIFEST
    if not _exists(path):
        raise DeparaError(f"{out_dir}: no {MANIFEST} (not a depara results folder)")
    if not _real(path).is_relative_to(_real(folder)):
        raise DeparaError(f"{path}: links outside the results folder; refusing to read it")
    return read_manifest_bytes(read_bytes_limited(path, "manifest", MAX_MANIFEST_BYTES), path)
