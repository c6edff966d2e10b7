"""The one validated door for JSON and text tables that come from a user's file (manifests, JSON tables, graph
metadata; CSV tables, TOML zoo files, task lists: :func:`read_text_file` / :func:`read_csv_rows` /
:func:`read_csv_records`, regular file, size limit, strict UTF-8).

Every JSON document depara reads from disk goes through :func:`loads_json` (text) or :func:`read_json_file`
(a file), which enforce, in this order:

* **size**: at most ``max_bytes`` (default :data:`MAX_JSON_BYTES`, 32 MiB) — checked with ``stat`` before reading;
* **regular file**: FIFOs, devices and sockets are refused without being opened (a FIFO would block forever);
* **encoding**: strict UTF-8 (a UTF-8 byte-order mark is tolerated);
* **syntax**: the standard library's parser; its recursion limit on absurdly deep input becomes an error too;
* **depth**: at most ``max_depth`` nested arrays/objects (default :data:`MAX_JSON_DEPTH`, 64), measured without
  recursion, so later code that walks the value recursively (rendering, ``json.dumps``) cannot overflow.

Each failure is one :class:`~depara.errors.DeparaError` line naming the file (or ``what``) and what was expected.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

from ..errors import DeparaError

#: Largest JSON file read (bytes); manifests and result tables are far smaller.
MAX_JSON_BYTES = 32 * 2**20
#: Deepest nesting of arrays/objects accepted; depara writes at most ~5 levels.
MAX_JSON_DEPTH = 64


def json_depth(value: Any) -> int:
    """Nesting depth of a parsed JSON value (scalars 0, ``[]`` 1, ``[[1]]`` 2), computed without recursion."""
    depth = 0
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict):
            children = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        level += 1
        depth = max(depth, level)
        stack.extend((child, level) for child in children)
    return depth


def loads_json(text: str | bytes, what: str, *, max_bytes: int = MAX_JSON_BYTES,
               max_depth: int = MAX_JSON_DEPTH) -> Any:
    """Parse JSON ``text`` (str, or bytes decoded as strict UTF-8) within the size and depth limits.

    ``what`` names the source in the error message (a file path, or e.g. ``"graph.safetensors: meta"``).
    """
    if isinstance(text, (bytes, bytearray, memoryview)):
        raw = bytes(text)
        if len(raw) > max_bytes:
            raise DeparaError(f"{what}: {len(raw)} bytes of JSON, more than the limit of {max_bytes}")
        try:
            text = raw.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise DeparaError(f"{what}: not UTF-8 text (invalid byte at offset {exc.start}); expected UTF-8 JSON") \
                from None
    elif not isinstance(text, str):
        raise DeparaError(f"{what}: expected JSON text, got {type(text).__name__}")
    elif len(text) > max_bytes:
        raise DeparaError(f"{what}: {len(text)} characters of JSON, more than the limit of {max_bytes}")
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DeparaError(f"{what}: not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})") from None
    except RecursionError:
        raise DeparaError(f"{what}: JSON nested too deeply (more than {max_depth} levels)") from None
    except (ValueError, TypeError, OverflowError) as exc:  # e.g. huge integers beyond int_max_str_digits
        raise DeparaError(f"{what}: not valid JSON ({type(exc).__name__}: {str(exc)[:120]})") from None
    if json_depth(value) > max_depth:
        raise DeparaError(f"{what}: JSON nested too deeply (more than {max_depth} levels)")
    return value


def real_path(path: str | os.PathLike) -> Path:
    """``path`` with every link resolved (``os.path.realpath``: never raises, also on a symlink loop, where it
    stops; the following ``stat`` then fails with ELOOP and becomes a one-line error)."""
    return Path(os.path.realpath(path))


def exists(path: str | os.PathLike) -> bool:
    """``Path.exists`` that answers False instead of raising for names the OS refuses (too long, NUL byte)."""
    try:
        return Path(path).exists()
    except (OSError, ValueError):
        return False


def file_entry(path: str | os.PathLike) -> bool:
    """True when ``path`` exists and is not a folder (links followed); False for names the OS refuses."""
    try:
        p = Path(path)
        return p.exists() and not p.is_dir()
    except (OSError, ValueError):
        return False


def regular_file(path: str | os.PathLike, what: str) -> os.stat_result:
    """``os.stat`` of ``path`` (links followed) after checking that it is a regular file; never opens it."""
    p = Path(path)
    try:
        st = os.stat(p)
    except FileNotFoundError:
        raise DeparaError(f"{what} {p}: file not found") from None
    except OSError as exc:
        raise DeparaError(f"{what} {p}: cannot be read ({exc.strerror or type(exc).__name__})") from None
    if stat.S_ISDIR(st.st_mode):
        raise DeparaError(f"{what} {p}: is a folder, expected a file")
    if not stat.S_ISREG(st.st_mode):
        raise DeparaError(f"{what} {p}: not a regular file (a FIFO, device or socket); expected a file")
    return st


def read_bytes_limited(path: str | os.PathLike, what: str, max_bytes: int) -> bytes:
    """All bytes of a regular file of at most ``max_bytes`` (checked before reading; FIFOs never opened)."""
    p = Path(path)
    st = regular_file(p, what)
    if st.st_size > max_bytes:
        raise DeparaError(f"{what} {p}: {st.st_size} bytes, more than the limit of {max_bytes}")
    try:
        with open(p, "rb") as fh:
            data = fh.read(max_bytes + 1)
    except OSError as exc:
        raise DeparaError(f"{what} {p}: cannot be read ({exc.strerror or type(exc).__name__})") from None
    if len(data) > max_bytes:  # grew while we read it
        raise DeparaError(f"{what} {p}: more than the limit of {max_bytes} bytes")
    return data


#: Largest text table read (CSV, TOML, plain lists; bytes): far above any table depara or a user writes.
MAX_TEXT_BYTES = 256 * 2**20


def decode_text(data: bytes, what: str) -> str:
    """``data`` as strict UTF-8 (a byte-order mark tolerated), else a one-line error naming ``what`` and the
    offset of the first bad byte (a Latin-1 or UTF-16 file, a binary file given by mistake)."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DeparaError(f"{what}: not UTF-8 text (invalid byte 0x{data[exc.start]:02x} at offset {exc.start}); "
                          "save it as UTF-8") from None


def read_text_file(path: str | os.PathLike, what: str = "file", *, max_bytes: int = MAX_TEXT_BYTES) -> str:
    """The text of a regular file of at most ``max_bytes``, strict UTF-8 (every text table depara reads: CSV,
    TOML, lists). Errors name ``what`` and the path."""
    p = Path(path)
    return decode_text(read_bytes_limited(p, what, max_bytes), f"{what} {p}")


def read_csv_rows(path: str | os.PathLike, what: str = "CSV file") -> list[list[str]]:
    """All rows of a CSV file (Python's ``csv`` dialect, quoted fields allowed) through :func:`read_text_file`."""
    p = Path(path)
    return parse_csv_rows(read_text_file(p, what), f"{what} {p}")


def parse_csv_rows(text: str, what: str) -> list[list[str]]:
    """All rows of CSV ``text`` (Python's ``csv`` dialect): the one CSV parser of :func:`read_csv_rows` and of
    tables read from a results folder (:mod:`depara.report.html`); a malformed table fails in one line naming
    ``what``."""
    import csv
    import io

    try:
        return list(csv.reader(io.StringIO(text, newline="")))
    except csv.Error as exc:
        raise DeparaError(f"{what}: not a readable CSV ({exc})") from None


def read_csv_records(path: str | os.PathLike, what: str = "CSV file") -> list[dict[str, str]]:
    """The rows of a CSV file with a header as dicts (like ``csv.DictReader``; blank lines skipped, short rows
    padded with ""); a column named twice and rows longer than the header are refused (they would silently lose
    values)."""
    p = Path(path)
    rows = read_csv_rows(p, what)
    if not rows:
        return []
    header = [h.strip() for h in rows[0]]
    dup = next((h for h in header if header.count(h) > 1), None)
    if dup is not None:
        raise DeparaError(f"{what} {p}: the header names column {dup!r} twice")
    out = []
    for i, row in enumerate(rows[1:], start=2):
        if not row:
            continue
        if len(row) > len(header):
            raise DeparaError(f"{what} {p} line {i}: {len(row)} fields, but the header names {len(header)}")
        out.append({h: (row[j] if j < len(row) else "") for j, h in enumerate(header)})
    return out


def read_json_file(path: str | os.PathLike, what: str = "JSON file", *, max_bytes: int = MAX_JSON_BYTES,
                   max_depth: int = MAX_JSON_DEPTH) -> Any:
    """Read and parse a JSON file through every check of this module (see the module docstring)."""
    p = Path(path)
    data = read_bytes_limited(p, what, max_bytes)
    return loads_json(data, f"{p}", max_bytes=max_bytes, max_depth=max_depth)


__all__ = ["MAX_JSON_BYTES", "MAX_JSON_DEPTH", "MAX_TEXT_BYTES", "json_depth", "loads_json", "read_json_file",
           "read_bytes_limited", "decode_text", "read_text_file", "read_csv_rows", "parse_csv_rows", "read_csv_records", "real_path",
           "regular_file", "exists", "file_entry"]
