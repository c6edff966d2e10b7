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

A results folder is written as a whole (:func:`write_results_folder`, over :func:`depara.io.files.atomic_dir`): into a
temporary sibling that is renamed into place when complete, so an interrupted run leaves the previous folder
intact (or nothing), never a mix of two runs or tables without their manifest.
"""

from __future__ import annotations

import functools
import inspect
import os
from pathlib import Path
from typing import Any, Callable, Mapping, TypeVar

from ..errors import DeparaError
from ..io.files import atomic_dir, write_json
from ..io.readers import exists as _exists, loads_json, read_bytes_limited, real_path as _real

MANIFEST = "manifest.json"
#: Limits of the one manifest reader (:func:`read_manifest`): size in bytes and nesting depth of the JSON.
MAX_MANIFEST_BYTES = 16 * 2**20
MAX_MANIFEST_DEPTH = 32
T = TypeVar("T")


def write_results_folder(out_dir: str | os.PathLike, write: Callable[[Path], T], what: str = "out", *,
                  keep: tuple[str, ...] = ()) -> T:
    """Write the results folder ``out_dir`` as a whole: ``write(folder)`` fills a temporary sibling
    (:func:`depara.io.files.atomic_dir`), which replaces ``out_dir`` once ``write`` returns. What ``write`` returns is
    returned, with paths into the temporary folder (a Path, or a mapping / list of them) given under ``out_dir``.

    ``out_dir`` must be absent, empty or a previous results folder (it is replaced whole); checked first.
    ``keep``: entries of the previous folder carried into the new one (a run's own inputs, e.g. the demo's data).
    """
    final = Path(out_dir)
    with atomic_dir(final, what, keep=keep) as tmp:
        value = write(tmp)
    return _moved(value, tmp, final)


def writes_results_folder(arg: str, *, keep: tuple[str, ...] = ()) -> Callable[[Callable[..., T]], Callable[..., T]]:
    """Decorator of a function that writes a results folder into its argument ``arg``: the function is given a
    temporary sibling folder instead, which replaces the folder whole when the function returns
    (:func:`write_results_folder`; ``keep`` as there). Paths it returns are given under the final folder."""
    def decorate(fn: Callable[..., T]) -> Callable[..., T]:
        sig = inspect.signature(fn)

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> T:
            bound = sig.bind(*args, **kwargs)

            def write(folder: Path) -> T:
                bound.arguments[arg] = folder
                return fn(*bound.args, **bound.kwargs)

            return write_results_folder(bound.arguments[arg], write, keep=keep)

        return wrapper

    return decorate


def _moved(value: Any, tmp: Path, final: Path) -> Any:
    if isinstance(value, Path) and value.is_relative_to(tmp):
        return final / value.relative_to(tmp)
    if isinstance(value, str) and (value == str(tmp) or value.startswith(str(tmp) + os.sep)):
        return str(final) + value[len(str(tmp)):]
    if isinstance(value, Mapping):
        return type(value)({k: _moved(v, tmp, final) for k, v in value.items()})  # type: ignore[call-arg]
    if isinstance(value, list):
        return [_moved(v, tmp, final) for v in value]
    return value


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
