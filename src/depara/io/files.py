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
import re
import stat
import tempfile
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping, Sequence

import numpy as np

from ..errors import DeparaError


def _probe_writable(folder: Path, what: str, p: Path) -> None:
    """Create and remove a file in ``folder``: the only test that also holds for root and read-only mounts."""
    try:
        fd, probe = tempfile.mkstemp(prefix=".depara-write-test-", dir=folder)
    except OSError as exc:
        raise DeparaError(f"{what} path {p}: folder {folder} is not writable ({exc.strerror or exc})") from None
    os.close(fd)
    with contextlib.suppress(OSError):
        os.unlink(probe)


def check_out_path(path: str | os.PathLike, what: str = "output", kind: str = "any") -> Path:
    """Return ``path`` as a Path after checking, before any work starts, that it can be written.

    The parent folder must exist, be a folder and be writable (checked by creating and removing a file, so the
    answer also holds for root and read-only mounts). ``kind="file"``: ``path`` must not be an existing folder
    (or anything else that is not a regular file); ``kind="dir"``: ``path``, if it exists, must be a writable
    folder; ``kind="any"``: either.
    """
    try:
        return _check_out_path(path, what, kind)
    except (OSError, ValueError) as exc:  # a name the OS refuses (too long, NUL byte)
        if isinstance(exc, DeparaError):
            raise
        reason = getattr(exc, "strerror", None) or str(exc)
        raise DeparaError(f"{what} {path}: not a usable path ({reason})") from None


def _check_out_path(path: str | os.PathLike, what: str = "output", kind: str = "any") -> Path:
    """See :func:`check_out_path`."""
    p = Path(path)
    parent = p.parent if str(p.parent) else Path(".")
    if kind not in ("any", "file", "dir"):  # pragma: no cover - programming error
        raise ValueError(kind)
    if p.exists() or p.is_symlink():
        if p.is_dir():
            if kind == "file":
                raise DeparaError(f"{what} {p}: is a folder (expected a file name)")
            _probe_writable(p, what, p)
            return p
        if kind == "dir":
            raise DeparaError(f"{what} {p}: exists and is not a folder")
        if p.exists() and not p.is_file():
            raise DeparaError(f"{what} {p}: exists and is not a regular file")
    if not parent.exists():
        raise DeparaError(f"{what} path {p}: folder {parent} does not exist")
    if not parent.is_dir():
        raise DeparaError(f"{what} path {p}: {parent} is not a folder")
    _probe_writable(parent, what, p)
    return p


def check_out_file(path: str | os.PathLike, what: str = "output") -> Path:
    """:func:`check_out_path` for an output FILE: an existing folder under that name is refused."""
    return check_out_path(path, what, kind="file")


def check_out_dir(path: str | os.PathLike, what: str = "output") -> Path:
    """:func:`check_out_path` for an output FOLDER: an existing file under that name is refused."""
    return check_out_path(path, what, kind="dir")


def check_out_tree(path: str | os.PathLike, what: str = "output folder") -> Path:
    """Check an output FOLDER that will be created with its parents: ``path`` (if it exists) or else the nearest
    existing ancestor must be a writable folder. Call it before any work starts."""
    try:
        return _check_out_tree(path, what)
    except (OSError, ValueError) as exc:
        if isinstance(exc, DeparaError):
            raise
        reason = getattr(exc, "strerror", None) or str(exc)
        raise DeparaError(f"{what} {path}: not a usable path ({reason})") from None


def _check_out_tree(path: str | os.PathLike, what: str) -> Path:
    p = Path(path)
    if p.exists() or p.is_symlink():
        if not p.is_dir():
            raise DeparaError(f"{what} {p}: exists and is not a folder")
        _probe_writable(p, what, p)
        return p
    ancestor = p.parent if str(p.parent) else Path(".")
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if ancestor.exists():
        if not ancestor.is_dir():
            raise DeparaError(f"{what} {p}: cannot be created, {ancestor} is a file")
        _probe_writable(ancestor, what, p)
    return p


def ensure_dir(path: str | os.PathLike, what: str = "output folder") -> Path:
    """Create an output folder (and parents) and return it, after :func:`check_out_tree`: a file in the way or a
    folder that cannot be written is a one-line DeparaError (before anything is written into it)."""
    p = check_out_tree(path, what)
    try:
        p.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise DeparaError(f"{what} {p}: a file is in the way of the folder") from None
    except OSError as exc:
        raise DeparaError(f"{what} {p}: cannot create the folder ({exc.strerror or exc})") from None
    return p


# ---------------------------------------------------------------------------------- temporary files
#: Temporary files of :func:`atomic_path` are named ``.<final name>.<PID>-<random>.part``, beside the final file.
#: The PID lets a later run tell that the writer is dead (SIGKILL, power loss) and remove the leftover.
_PART_RE = re.compile(r"^\..+\.(\d+)-[A-Za-z0-9_]+\.part$")
#: Temporary feature folders of :mod:`depara.extraction.extract` are ``$TMPDIR/depara-features-<PID>-<random>``.
TEMP_DIR_PREFIX = "depara-features-"
_TEMP_DIR_RE = re.compile(r"^depara-features-(\d+)-[A-Za-z0-9_]+$")
#: Leftovers whose name carries no PID (written by depara before it added one) are removed after this age.
STALE_AGE_S = 24 * 3600


def _pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # somebody else's live process
        return True
    except OSError:
        return True
    return True


def clean_stale_parts(folder: str | os.PathLike) -> list[Path]:
    """Remove ``.*.<PID>-*.part`` files in ``folder`` left by dead depara runs; returns what was removed.

    Only names matching the pattern are touched and only when that PID is no longer running, so a concurrent
    writer's temporary file is left alone.
    """
    removed: list[Path] = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for entry in entries:
        if not (entry.name.startswith(".") and entry.name.endswith(".part")):
            continue
        m = _PART_RE.match(entry.name)
        if m is None or _pid_alive(int(m.group(1))):
            continue
        try:
            if entry.is_file(follow_symlinks=False):
                os.unlink(entry.path)
                removed.append(Path(entry.path))
        except OSError:
            pass
    return removed


def clean_stale_temp_dirs(tmp_root: str | os.PathLike | None = None) -> list[Path]:
    """Remove ``depara-features-*`` folders in the temp dir left by dead runs (by PID, else by age).

    Only folders owned by this user are touched; returns what was removed.
    """
    import shutil
    import time

    root = Path(tmp_root) if tmp_root is not None else Path(tempfile.gettempdir())
    removed: list[Path] = []
    try:
        entries = list(os.scandir(root))
    except OSError:
        return removed
    now = time.time()
    for entry in entries:
        if not entry.name.startswith(TEMP_DIR_PREFIX):
            continue
        try:
            st = entry.stat(follow_symlinks=False)
        except OSError:
            continue
        if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid():
            continue
        m = _TEMP_DIR_RE.match(entry.name)
        stale = (not _pid_alive(int(m.group(1)))) if m else (now - st.st_mtime > STALE_AGE_S)
        if stale:
            shutil.rmtree(entry.path, ignore_errors=True)
            removed.append(Path(entry.path))
    return removed


def temp_dir(prefix: str = TEMP_DIR_PREFIX) -> "tempfile.TemporaryDirectory[str]":
    """A TemporaryDirectory named ``<prefix><PID>-<random>`` (stale ones of dead runs are removed first)."""
    clean_stale_temp_dirs()
    return tempfile.TemporaryDirectory(prefix=f"{prefix}{os.getpid()}-")


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, what: str = "output") -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` only if the block succeeds.

    The destination is checked first (:func:`check_out_file`); leftovers of dead runs in that folder
    (:func:`clean_stale_parts`) are removed.
    """
    final = check_out_file(path, what)
    folder = final.parent if str(final.parent) else Path(".")
    clean_stale_parts(folder)
    fd, tmp = tempfile.mkstemp(prefix=f".{final.name}.{os.getpid()}-", suffix=".part", dir=folder)
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
    """A JSON file through the one validated reader (:func:`depara.io.readers.read_json_file`: size, depth, UTF-8)."""
    from .readers import read_json_file

    p = Path(path)
    if not p.exists():
        raise DeparaError(f"{p}: file not found")
    return read_json_file(p, "JSON file")


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
    """Rows of a CSV table with a header, through the one validated reader (:func:`depara.io.readers.read_csv_records`:
    regular file, size limit, strict UTF-8)."""
    from .readers import read_csv_records

    p = Path(path)
    if not p.is_file():
        raise DeparaError(f"{p}: file not found")
    return read_csv_records(p, "CSV file")


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
