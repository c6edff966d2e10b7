"""Small I/O helpers shared by every module: atomic writes, output-path checks, CSV/JSON, seeding.

Outputs are written to a temporary file in the destination folder and renamed into place, so an
interrupted run never leaves a half-written file under the final name.
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import random
import tempfile
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping, Sequence

import numpy as np

from .errors import DeparaError


def check_out_path(path: str | os.PathLike, what: str = "output") -> Path:
    """Return ``path`` as a Path after checking that its parent folder exists."""
    p = Path(path)
    parent = p.parent if str(p.parent) else Path(".")
    if not parent.is_dir():
        raise DeparaError(f"{what} path {p}: folder {parent} does not exist")
    return p


def ensure_dir(path: str | os.PathLike) -> Path:
    """Create an output folder (and parents) and return it."""
    p = Path(path)
    p.mkdir(parents=True, exist_ok=True)
    return p


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, what: str = "output") -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` only if the block succeeds."""
    final = check_out_path(path, what)
    fd, tmp = tempfile.mkstemp(prefix=f".{final.name}.", suffix=".part", dir=final.parent if str(final.parent) else ".")
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        # mkstemp makes the file private (0600); give the result the permissions a plain open() would.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp_path, 0o666 & ~umask)
        os.replace(tmp_path, final)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def write_text(path: str | os.PathLike, text: str) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, (np.floating,)):
        return float(obj)
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def write_json(path: str | os.PathLike, data: Any) -> Path:
    return write_text(path, json.dumps(data, indent=2, default=_jsonable, allow_nan=True) + "\n")


def read_json(path: str | os.PathLike) -> Any:
    p = Path(path)
    try:
        return json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DeparaError(f"{p}: file not found") from None
    except json.JSONDecodeError as exc:
        raise DeparaError(f"{p}: not valid JSON ({exc.msg} at line {exc.lineno})") from None


def write_csv(path: str | os.PathLike, rows: Iterable[Mapping[str, Any]] | Iterable[Sequence[Any]],
              header: Sequence[str] | None = None) -> Path:
    """Write dict rows (header from the first row unless given) or sequence rows (header required)."""
    rows = list(rows)
    with atomic_path(path) as tmp:
        with open(tmp, "w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh)
            if rows and isinstance(rows[0], Mapping):
                cols = list(header) if header is not None else list(rows[0].keys())
                writer.writerow(cols)
                for r in rows:
                    writer.writerow([_fmt(r.get(c, "")) for c in cols])
            else:
                if header is not None:
                    writer.writerow(list(header))
                for r in rows:
                    writer.writerow([_fmt(v) for v in r])
    return Path(path)


def read_csv(path: str | os.PathLike) -> list[dict[str, str]]:
    p = Path(path)
    if not p.is_file():
        raise DeparaError(f"{p}: file not found")
    with open(p, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def _fmt(v: Any) -> Any:
    if isinstance(v, (float, np.floating)):
        return repr(float(v))
    return v


def default_cache_dir() -> Path:
    """Where pipelines cache expensive steps: ``$DEPARA_CACHE`` or ``~/.cache/depara``."""
    env = os.environ.get("DEPARA_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "depara"


def seed_everything(seed: int) -> None:
    """Seed python, numpy and (when imported) torch, for deterministic runs under ``--seed``."""
    random.seed(seed)
    np.random.seed(seed % (2**32))
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a dependency
        return
    torch.manual_seed(seed)
