"""The verified store (issue 23, item 1): every entry is checked against its check record on read.

A bit flip, a truncation, two entries swapped, an entry of another store version and an entry without a record
are each caught: reported in one warning line and rebuilt (``None`` from ``get``), or refused by a read-only
store, never used. ``depara cache verify`` lists each bad entry in one line and exits 1. A ``depara.select`` rerun
on a corrupted cache gives the numbers of a clean run.
"""

from __future__ import annotations

import hashlib
import json
import logging
import mmap as mmap_module
import shutil
import sys

import numpy as np
import pytest

from depara import Graph
from depara.cli.main import main
from depara.errors import DeparaError
from depara.extraction.store import CHECK_SUFFIX, STORE_VERSION, GraphStore


def _graph(seed: int = 0, n: int = 6) -> Graph:
    rng = np.random.default_rng(seed)
    return Graph.from_arrays(rng.normal(size=(n, 4, 4)), rng.normal(size=(n, 5)), meta={"model": "m"})


def _flip(path, offset: int = -3) -> None:
    """Flip one bit of the byte at ``offset`` (default: inside the last values, past any header)."""
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


def _filled(tmp_path):
    store = GraphStore(tmp_path / "store")
    kg, ka = store.key("w", "l", "p", {}), store.key("w", "l", "p", {}, kind="pooled")
    store.put(kg, _graph())
    store.put_array(ka, np.arange(24, dtype=np.float32).reshape(4, 6))
    return store, kg, ka


def test_check_record_holds_version_key_size_and_sha256(tmp_path):
    store, kg, _ = _filled(tmp_path)
    p = store.path(kg)
    record = json.loads(p.with_name(p.name + CHECK_SUFFIX).read_text())
    assert record == {"store": STORE_VERSION, "key": kg, "bytes": p.stat().st_size,
                      "sha256": hashlib.sha256(p.read_bytes()).hexdigest()}
    assert store.verify() == [] and store.info()["entries"] == 2  # records are not entries


@pytest.mark.parametrize("damage", ["bit_flip", "truncation", "appended", "swapped_files", "swapped_entries",
                                    "other_version", "no_record"])
def test_each_kind_of_damage_is_caught_reported_and_rebuilt(tmp_path, damage, caplog):
    store, kg, ka = _filled(tmp_path)
    k2 = store.key("w", "l2", "p", {}, kind="pooled")
    store.put_array(k2, np.full((4, 6), 7.0, dtype=np.float32))
    pa, p2 = store.path(ka), store.path(k2)
    rec_a, rec_2 = pa.with_name(pa.name + CHECK_SUFFIX), p2.with_name(p2.name + CHECK_SUFFIX)
    if damage == "bit_flip":
        _flip(pa)
    elif damage == "truncation":
        pa.write_bytes(pa.read_bytes()[:-8])
    elif damage == "appended":
        pa.write_bytes(pa.read_bytes() + b"\0" * 8)
    elif damage in ("swapped_files", "swapped_entries"):  # same shape and dtype: np.load alone cannot tell
        pairs = [(pa, p2)] + ([(rec_a, rec_2)] if damage == "swapped_entries" else [])
        for x, y in pairs:
            tmp = x.with_name("swap")
            x.rename(tmp)
            y.rename(x)
            tmp.rename(y)
    elif damage == "other_version":
        rec = json.loads(rec_a.read_text())
        rec_a.write_text(json.dumps({**rec, "store": "1"}))
    elif damage == "no_record":
        rec_a.unlink()
    expected = {"bit_flip": "SHA-256", "truncation": "bytes", "appended": "bytes", "swapped_files": "SHA-256",
                "swapped_entries": "another key", "other_version": "store version '1'",
                "no_record": "no check record"}[damage]
    bad = dict(store.verify())
    assert expected in bad[pa]
    # a read-only store refuses the entry (one line naming it), and changes nothing
    ro = GraphStore(store.root, readonly=True)
    with pytest.raises(DeparaError, match="read-only") as info:
        ro.get_array(ka)
    assert str(pa) in str(info.value) and "\n" not in str(info.value)
    assert pa.exists()
    # a writable store reports it in one warning line, deletes it and answers "missing", so it is rebuilt
    with caplog.at_level(logging.WARNING, logger="depara.extraction.store"):
        assert store.get_array(ka) is None
    lines = [r.getMessage() for r in caplog.records if r.name == "depara.extraction.store"]
    assert len(lines) == 1 and str(pa) in lines[0] and expected in lines[0] and "rebuilding" in lines[0]
    assert not pa.exists() and not store.has(ka)
    store.put_array(ka, np.arange(24, dtype=np.float32).reshape(4, 6))
    np.testing.assert_array_equal(store.get_array(ka), np.arange(24, dtype=np.float32).reshape(4, 6))


def test_graph_entry_bit_flip_is_caught(tmp_path, caplog):
    store, kg, _ = _filled(tmp_path)
    _flip(store.path(kg))
    with caplog.at_level(logging.WARNING, logger="depara.extraction.store"):
        assert store.get(kg) is None
    assert any("SHA-256" in r.getMessage() for r in caplog.records)
    assert store.get(kg) is None and not store.path(kg).exists()


_OPENED: list = []


def _audit(event, args):
    if event == "open" and _OPENED and isinstance(args[0], str):
        _OPENED.append(args[0])


sys.addaudithook(_audit)  # records only while _OPENED is non-empty (a hook cannot be removed)


def _opens(fn, path):
    """``fn()`` and how many times it opened ``path``."""
    _OPENED[:] = ["<recording>"]
    try:
        out = fn()
    finally:
        seen, _OPENED[:] = list(_OPENED[1:]), []
    return out, seen.count(str(path))


@pytest.mark.parametrize("mmap", [False, True])
def test_an_array_entry_is_read_once_and_is_the_bytes_hashed(tmp_path, mmap):
    store, _, ka = _filled(tmp_path)
    value, n = _opens(lambda: store.get_array(ka, mmap=mmap), store.path(ka))
    assert n == 1  # one open: hashed and loaded from the same read
    np.testing.assert_array_equal(value, np.arange(24, dtype=np.float32).reshape(4, 6))
    assert value.dtype == np.float32 and value.flags.writeable is (not mmap)
    base = value
    while isinstance(base, np.ndarray):
        base = base.base
    base = getattr(base, "obj", base)  # numpy holds a memoryview of the buffer
    assert isinstance(base, mmap_module.mmap) is mmap  # memory-mapped: a view of the map, not a copy in RAM


def test_a_graph_entry_is_read_once(tmp_path):
    store, kg, _ = _filled(tmp_path)
    g, n = _opens(lambda: store.get(kg), store.path(kg))
    assert n == 1
    want = _graph()
    np.testing.assert_array_equal(g.nodes, want.nodes)
    np.testing.assert_array_equal(g.edges, want.edges)
    assert g.probe_ids == want.probe_ids


@pytest.mark.parametrize("array", [np.arange(6, dtype=np.int16).reshape(2, 3).T, np.float64(2.5),
                                   np.zeros((0, 3), dtype=np.float32), np.ones((2, 2), dtype=">f4")])
def test_arrays_of_every_layout_come_back_equal(tmp_path, array):
    store = GraphStore(tmp_path / "store")
    k = store.key("w", "l", "p", {}, kind="x")
    store.put_array(k, array)
    for mmap in (False, True):
        got = store.get_array(k, mmap=mmap)
        assert got.dtype == np.asarray(array).dtype and got.shape == np.shape(array)
        np.testing.assert_array_equal(got, array)


def test_a_pickled_array_entry_is_refused_not_unpickled(tmp_path, caplog):
    store = GraphStore(tmp_path / "store")
    k = store.key("w", "l", "p", {}, kind="x")
    store.put_array(k, np.ones(3))
    p = store.path(k)
    with open(p, "wb") as fh:  # an object array written behind the store's back, with a matching record
        np.save(fh, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    rec = p.with_name(p.name + CHECK_SUFFIX)
    rec.write_text(json.dumps({"store": STORE_VERSION, "key": k, "bytes": p.stat().st_size,
                               "sha256": hashlib.sha256(p.read_bytes()).hexdigest()}))
    with caplog.at_level(logging.WARNING, logger="depara.extraction.store"):
        assert store.get_array(k) is None
    assert any("not a readable array" in r.getMessage() for r in caplog.records)


def test_read_only_store_writes_nothing(tmp_path):
    ro = GraphStore(tmp_path / "store", readonly=True)
    k = ro.key("w", "l", "p", {})
    g = _graph()
    assert ro.put(k, g) is g and ro.put_array(ro.key("w", "l", "p", {}, kind="x"), np.ones(3)).shape == (3,)
    assert not (tmp_path / "store").exists()
    with pytest.raises(DeparaError, match="read-only"):
        ro.clear()


def test_cli_cache_verify_lists_each_bad_entry_and_exits_1(tmp_path, capsys):
    store, kg, ka = _filled(tmp_path)
    assert main(["cache", "verify", "--cache", str(tmp_path)]) == 0
    assert "checked 2 entries" in capsys.readouterr().out
    _flip(store.path(kg))
    store.path(ka).write_bytes(store.path(ka).read_bytes()[:20])
    assert main(["cache", "verify", "--cache", str(tmp_path)]) == 1
    out = capsys.readouterr().out.splitlines()
    bad = [ln for ln in out if ln.startswith("bad: ")]
    assert len(bad) == 2 and {str(store.path(kg)), str(store.path(ka))} == {ln.split(": ")[1] for ln in bad}
    assert out[-1].endswith(": 2 bad")
    assert main(["cache", "verify", "--cache", str(tmp_path), "--remove"]) == 1
    assert not store.path(kg).exists() and not store.path(ka).exists()
    capsys.readouterr()
    assert main(["cache", "verify", "--cache", str(tmp_path)]) == 0


# ------------------------------------------------------------------------- a select rerun after corruption
torch = pytest.importorskip("torch")


class _Net(torch.nn.Module):
    def __init__(self, seed: int):
        super().__init__()
        torch.manual_seed(seed)
        self.conv = torch.nn.Conv2d(3, 4, 3)
        self.pool = torch.nn.AdaptiveAvgPool2d(2)
        self.fc = torch.nn.Linear(16, 3)

    def forward(self, x):
        return self.fc(self.pool(torch.relu(self.conv(x))).flatten(1))


@pytest.fixture(scope="module")
def classes(tmp_path_factory):
    from PIL import Image

    root = tmp_path_factory.mktemp("verify") / "data"
    rng = np.random.default_rng(0)
    for c, name in enumerate("abc"):
        (root / name).mkdir(parents=True)
        for i in range(4):
            a = (rng.random((16, 16, 3)) * 80 + 60 * c).astype(np.uint8)
            Image.fromarray(a).save(root / name / f"{i}.png")
    return root


def _run(data, cache, **kw):
    import depara
    from depara.extraction.zoo import ModelEntry

    models = {f"m{s}": ModelEntry(f"m{s}", f"module:m{s}", preprocessing="16x16", module=_Net(s)) for s in (0, 1)}
    return depara.select(data, models, n_boot=5, cache_dir=cache, **kw)


def test_rerun_after_corruption_gives_the_clean_numbers(classes, tmp_path, caplog):
    clean = _run(classes, tmp_path / "clean")
    cache = tmp_path / "c"
    _run(classes, cache)
    store = GraphStore(cache / "store")
    # flip a value in every entry of each kind, and swap two score blocks (same shape)
    for kind in ("graph", "pooled", "scores"):
        for p in sorted((cache / "store" / kind).rglob("*")):
            if p.is_file() and not p.name.endswith(CHECK_SUFFIX):
                _flip(p)
    scores = sorted(p for p in (cache / "store" / "scores").rglob("*.npy"))
    shutil.copyfile(scores[0], scores[1])
    assert len(store.verify()) == len(store.entries())
    ro = None
    with pytest.raises(DeparaError, match="read-only"):
        ro = _run(classes, cache, cache_readonly=True)
    assert ro is None
    with caplog.at_level(logging.WARNING, logger="depara.extraction.store"):
        again = _run(classes, cache)
    assert len([r for r in caplog.records if r.name == "depara.extraction.store"]) >= len(scores)
    assert again.candidates == clean.candidates and again.order == clean.order
    for s in clean.scorers:
        np.testing.assert_array_equal(again.values[s], clean.values[s])
        np.testing.assert_array_equal(again.intervals[s], clean.intervals[s])
    assert store.verify() == []
    # a read-only run on the repaired cache reads it and writes nothing
    before = sorted((p, p.stat().st_mtime_ns) for p in (cache / "store").rglob("*"))
    ro = _run(classes, cache, cache_readonly=True)
    np.testing.assert_array_equal(ro.values[clean.scorer], clean.values[clean.scorer])
    assert sorted((p, p.stat().st_mtime_ns) for p in (cache / "store").rglob("*")) == before
