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

from ._io import read_json, write_json
from .errors import DeparaError

MANIFEST = "manifest.json"


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


def read_manifest(out_dir: str | os.PathLike) -> dict[str, Any]:
    path = Path(out_dir) / MANIFEST
    if not path.is_file():
        raise DeparaError(f"{out_dir}: no {MANIFEST} (not a depara results folder)")
    data = read_json(path)
    if not isinstance(data, dict) or "kind" not in data:
        raise DeparaError(f"{path}: not a depara manifest (no 'kind')")
    return data
