"""Small I/O helpers shared by every module: atomic writes, output-path checks, CSV/JSON, seeding.

Outputs are written to a temporary file in the destination folder and renamed into place, so an
interrupted run never leaves a half-written file under the final name.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import json
import os
import random
import re
import shutil
import stat
import tempfile
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping, Sequence

import numpy as np

from ..errors import DeparaError
from .readers import exists as path_exists, real_path, regular_file


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
    with _usable_path(path, what):
        return _check_out_path(path, what, kind)


@contextlib.contextmanager
def _usable_path(path: str | os.PathLike, what: str) -> Iterator[None]:
    """A name the OS refuses (too long, NUL byte) met inside the block becomes a one-line DeparaError."""
    try:
        yield
    except DeparaError:
        raise
    except (OSError, ValueError) as exc:
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
    with _usable_path(path, what):
        return _check_out_tree(path, what)


def _check_out_tree(path: str | os.PathLike, what: str) -> Path:
    p = Path(path)
    if p.exists() or p.is_symlink():  # as an existing --out folder of check_out_dir
        return _check_out_path(p, what, "dir")
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
    """Remove ``.*.<PID>-*.part`` files (and folders of :func:`atomic_dir`) in ``folder`` left by dead depara runs;
    returns what was removed.

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
            elif entry.is_dir(follow_symlinks=False):  # a results folder of :func:`atomic_dir`
                shutil.rmtree(entry.path)
                removed.append(Path(entry.path))
        except OSError:
            pass
    return removed


def clean_stale_temp_dirs(tmp_root: str | os.PathLike | None = None) -> list[Path]:
    """Remove ``depara-features-*`` folders in the temp dir left by dead runs (by PID, else by age).

    Only folders owned by this user are touched; returns what was removed.
    """
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


def _chmod_as_created(path: Path, mode: int) -> None:
    """Give ``path`` the permissions ``mode`` less the process umask (what a plain open() or mkdir gives)."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, mode & ~umask)


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
        _chmod_as_created(tmp_path, 0o666)  # mkstemp makes it private (0600); give it what open() would
        os.replace(tmp_path, final)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def check_results_dir(path: str | os.PathLike, what: str = "output folder", *, replace: bool = True,
                      keep: Sequence[str] = ()) -> Path:
    """Check, before any work, a results folder that :func:`atomic_dir` will write as a whole.

    Beside :func:`check_out_tree` (a file in the way, an unwritable folder): an existing folder must be empty or a
    depara results folder (it holds a ``manifest.json``; entries named in ``keep`` are not counted), since the
    new folder replaces it whole; any other folder (your files, a data folder) is refused rather than replaced.
    ``replace=False``: any existing folder is refused.
    """
    return _replaceable(check_out_tree(path, what), what, replace, keep)


def _replaceable(p: Path, what: str, replace: bool = True, keep: Sequence[str] = ()) -> Path:
    """``p`` (already checked as an output folder) unless it is a folder that must not be replaced whole."""
    if p.is_dir():
        if not replace:
            raise DeparaError(f"{what} {p}: already exists (remove it or choose another out folder)")
        try:
            names = [e.name for e in os.scandir(p) if e.name not in keep]
        except OSError as exc:
            raise DeparaError(f"{what} {p}: cannot be listed ({exc.strerror or exc})") from None
        if names and "manifest.json" not in names:
            raise DeparaError(f"{what} {p}: exists and is not a depara results folder (no manifest.json); it would "
                              "be replaced whole, so give a new or empty folder")
    return p


def check_results_out(path: str | os.PathLike, what: str = "--out",
                      inputs: Iterable[tuple[str, Any]] = (), keep: Sequence[str] = ()) -> Path:
    """THE check of a run's results folder before any work: its parent folder exists (:func:`check_out_dir`), it
    is apart from every input ``(name, path)`` in ``inputs`` (:func:`check_apart` with ``whole``: none inside it,
    it inside none), and it is new, empty or a results folder, since it is replaced whole
    (:func:`check_results_dir`, ``keep`` as there)."""
    p = check_out_dir(path, what)  # which also passes check_results_dir's check_out_tree: not run twice
    for data_what, data in inputs:
        check_apart(path, what, data, data_what, whole=True)
    return _replaceable(p, what, keep=keep)


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike, what: str = "output folder", *, replace: bool = True,
               keep: Sequence[str] = ()) -> Iterator[Path]:
    """Yield a temporary folder beside ``path``; when the block succeeds, rename it onto ``path`` as a whole.

    The one atomic-folder writer (results folders, data folders). An interrupted block (an error, SIGINT) leaves
    ``path`` as it was (the previous folder intact, or nothing) and its temporary folder removed (after SIGKILL:
    removed by the next run, :func:`clean_stale_parts`). A previous folder at ``path`` is set aside, the new one
    renamed in, then the old one deleted; only an empty folder or a depara results folder is ever replaced
    (:func:`check_results_dir`, which also runs first; ``replace=False`` refuses any existing folder).
    ``keep``: names of entries of the previous folder (e.g. a run's input data) moved into the new one.
    """
    final = check_results_dir(path, what, replace=replace, keep=keep)
    if final.is_symlink():
        final = real_path(final)
    parent = final.parent if str(final.parent) else Path(".")
    ensure_dir(parent, what)
    clean_stale_parts(parent)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.{os.getpid()}-", suffix=".part", dir=parent))
    try:
        yield tmp
        _chmod_as_created(tmp, 0o777)  # mkdtemp makes it private (0700); give it what mkdir would
        _swap_in(tmp, final, keep)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def _swap_in(new: Path, final: Path, keep: Sequence[str] = ()) -> None:
    """Rename folder ``new`` onto ``final`` (directly when ``final`` is absent or empty, else via a set-aside),
    moving the entries ``keep`` of the previous ``final`` into it; on any failure the previous folder is put back."""
    try:
        os.replace(new, final)  # POSIX: also onto an empty folder
        return
    except OSError:
        if not final.is_dir():
            raise
    old = Path(tempfile.mkdtemp(prefix=f".{final.name}.{os.getpid()}-", suffix=".part", dir=final.parent))
    os.replace(final, old)
    moved: list[str] = []
    try:
        for name in keep:
            if (old / name).exists() and not (new / name).exists():
                os.replace(old / name, new / name)
                moved.append(name)
        os.replace(new, final)
    except BaseException:
        for name in moved:
            os.replace(new / name, old / name)
        os.replace(old, final)
        raise
    shutil.rmtree(old, ignore_errors=True)


def check_apart(path: str | os.PathLike, what: str, data: Any, data_what: str = "data", *,
                whole: bool = False) -> None:
    """Refuse an output or cache path equal to or inside the input ``data`` (every link resolved first): results
    written there would be read as input by the next run. ``data`` that is not a folder path (an image-list file,
    a ProbeSet) only refuses ``path`` equal to it; None is skipped. ``whole``: ``path`` is a results folder that
    is replaced whole (:func:`atomic_dir`), so one that holds ``data`` is refused too."""
    if not isinstance(data, (str, os.PathLike)):
        return
    d, p = real_path(data), real_path(path)
    if p == d or (d.is_dir() and p.is_relative_to(d)):
        where = "is" if p == d else "is inside"
        raise DeparaError(f"{what} {path}: {where} the {data_what} folder {data} (its files would be read as input "
                          "by the next run); choose a folder outside it")
    if whole and d.is_relative_to(p):
        raise DeparaError(f"{what} {path}: holds the {data_what} {data} (the results replace the folder whole); "
                          "choose a folder outside it")


def check_cache_dir(path: str | os.PathLike | None, what: str = "cache_dir", readonly: bool = False) -> Path:
    """Check a cache folder before any work; returns it (``default_cache_dir()`` for None).

    Refused: a file in its place or in its store's (``<path>/store``, ``<path>/store/<kind>``: a broken cache), a
    folder that cannot be written (unless ``readonly``), and with ``readonly`` a folder that does not exist.
    """
    if not isinstance(path, (str, os.PathLike)) and path is not None:
        raise DeparaError(f"{what}: expected a folder path, got {type(path).__name__}")
    p = Path(path) if path is not None else default_cache_dir()
    try:
        p_is_dir = p.is_dir()
        if (p.exists() or p.is_symlink()) and not p_is_dir:
            raise DeparaError(f"{what} {p}: exists and is not a folder")
        store = p / "store"
        broken = [q for q in [store, *(store.iterdir() if store.is_dir() else [])] if q.exists() and not q.is_dir()]
    except OSError as exc:
        raise DeparaError(f"{what} {p}: cannot be read ({exc.strerror or exc})") from None
    if broken:
        raise DeparaError(f"{what} {p}: a broken cache ({broken[0]} is a file, expected a folder); remove it")
    if readonly:
        if not p_is_dir:
            raise DeparaError(f"{what} {p}: not found (a read-only cache must exist)")
        return p
    try:
        check_out_tree(store if store.is_dir() else p, what)
    except DeparaError as exc:
        raise DeparaError(f"{exc} (a cache to read without writing: cache_readonly=True, --cache-readonly)") from None
    return p


def check_run_paths(data: Any, *, out: str | os.PathLike | None = None, cache_dir: str | os.PathLike | None = None,
                    cache_readonly: bool = False, engine: str = "local") -> None:
    """Every output and cache path of a run, checked before the first model runs (API and CLI alike): ``data`` if
    it is a file (a regular one), the results folder (:func:`check_results_dir`), the cache
    (:func:`check_cache_dir`), and both apart from the data (:func:`check_apart`). Errors name the argument
    (``out``, ``cache_dir``); the CLI maps them to its flags."""
    if isinstance(data, (str, os.PathLike)) and path_exists(data) and not Path(data).is_dir():
        regular_file(data, "data")  # a FIFO, device or socket is named as such (not "not found")
    if out is not None:
        check_results_out(out, "out", [("data", data)])
    if cache_readonly and engine == "ray":
        raise DeparaError("cache_readonly: the ray engine passes graphs through the cache, so it needs a writable "
                          "one")
    cache = check_cache_dir(cache_dir, "cache_dir", readonly=cache_readonly)
    check_apart(cache, "cache_dir", data)


def sha256_file(path: str | os.PathLike) -> str:
    """SHA-256 (hex) of a file's bytes, read in 1 MiB chunks (the one file digest of the caches)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


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


def repository_root() -> Path:
    """The source checkout this package runs from: the first folder above it holding ``pyproject.toml`` and
    ``src/depara``; the current folder when depara is installed from a wheel (no checkout around it)."""
    here = Path(__file__).resolve()
    return next((p for p in here.parents if (p / "pyproject.toml").is_file() and (p / "src" / "depara").is_dir()),
                Path.cwd())


def shared_data_dir() -> Path:
    """The shared reference data (published numbers, Taskonomy truth, VisDA photos): ``$DEPARA_SHARED_DATA`` when
    set and not empty, else ``../shared/data`` relative to :func:`repository_root` (README: Tests)."""
    env = os.environ.get("DEPARA_SHARED_DATA")
    return Path(env) if env else repository_root().parent / "shared" / "data"


def seed_everything(seed: int) -> None:
    """Seed python, numpy and (when imported) torch, for deterministic runs under ``--seed``."""
    random.seed(seed)
    np.random.seed(seed % (2**32))
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a dependency
        return
    torch.manual_seed(seed)
