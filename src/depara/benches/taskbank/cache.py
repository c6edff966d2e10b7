"""Checksummed cache entries for the task bank, so runs resume and corrupted entries are rebuilt.

An entry is either a safetensors file with a JSON sidecar (``name.safetensors`` + ``name.json``, the
sidecar holding the file's SHA-256 and the settings fingerprint it was built with), or a JSON document
that carries its own fingerprint and a SHA-256 of its payload. Anything that fails to parse, whose
checksum does not match, or whose fingerprint differs is reported as missing and rebuilt by the caller.
Every write is atomic (temporary file + rename), so an interrupted run leaves either the old entry or
none, never a half-written one.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Any, Mapping

from ...io.files import atomic_path, ensure_dir, write_json

log = logging.getLogger(__name__)


def fingerprint(settings: Mapping[str, Any]) -> str:
    """A short stable hash of JSON-able settings (keys sorted)."""
    text = json.dumps(settings, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _payload_digest(payload: Any) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def save_json_entry(path: Path, key: str, payload: Mapping[str, Any]) -> None:
    """Write ``payload`` (JSON-able) with its fingerprint ``key`` and checksum, atomically."""
    ensure_dir(path.parent)
    payload = json.loads(json.dumps(payload))  # normalise (tuples -> lists) so the digest round-trips
    write_json(path, {"key": key, "sha256": _payload_digest(payload), "payload": payload})


def load_json_entry(path: Path, key: str) -> dict[str, Any] | None:
    """The payload at ``path`` if it is intact and was built with fingerprint ``key``; else None."""
    if not path.is_file():
        return None
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        ok = doc["key"] == key and doc["sha256"] == _payload_digest(doc["payload"])
    except (ValueError, KeyError, TypeError):
        ok = False
    if not ok:
        log.warning("cache entry %s is corrupt or stale: rebuilding it", path)
        return None
    return doc["payload"]


def save_tensors_entry(path: Path, key: str, tensors: Mapping[str, Any], info: Mapping[str, Any]) -> None:
    """Write a safetensors file plus its sidecar ``path.with_suffix('.json')`` (checksum, key, info)."""
    from safetensors.torch import save_file

    ensure_dir(path.parent)
    with atomic_path(path) as tmp:
        save_file({k: v.detach().contiguous().cpu() for k, v in tensors.items()}, str(tmp))
        digest = sha256_file(tmp)
    save_json_entry(path.with_suffix(".json"), key, {"file_sha256": digest, **dict(info)})


def load_tensors_entry(path: Path, key: str):
    """``(tensors, info)`` if the file and its sidecar are intact and match ``key``; else None."""
    from safetensors.torch import load_file

    info = load_json_entry(path.with_suffix(".json"), key)
    if info is None or not path.is_file():
        return None
    if sha256_file(path) != info.get("file_sha256"):
        log.warning("cache entry %s does not match its checksum: rebuilding it", path)
        return None
    try:
        return load_file(str(path)), info
    except Exception:  # noqa: BLE001 - any unreadable file is rebuilt
        log.warning("cache entry %s is unreadable: rebuilding it", path)
        return None
