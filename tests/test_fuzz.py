"""Fuzz tests (hypothesis) of the three doors hostile files come through: the graph loader, the manifest reader
(and the report built on it) and the probe reader.

Each test feeds thousands of random and mutated inputs in total and checks, for every example:

* no exception other than a one-line :class:`DeparaError` (no traceback);
* no hang: each example runs under a hard time limit (SIGALRM) besides hypothesis' own ``deadline``;
* nothing outside the example's folder is opened: a ``sys.addaudithook`` hook records every ``open`` while an
  example runs, and any path outside the folder (other than Python's own installation, for lazy imports) fails it.

Examples are derandomized (the same on every run). The whole file runs in well under a minute on one core.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import sys
import tempfile
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from depara.errors import DeparaError
from depara.core.graph import Graph
from depara.extraction.probes import ProbeSet
from depara.report.html import load_results, render_html, render_markdown
from depara.report.manifest import read_manifest

#: Hard per-example limit (seconds); hypothesis' deadline below is the soft one (it reports slow examples).
HANG_S = 10


def fuzz(n: int):
    return settings(max_examples=n, deadline=timedelta(seconds=5), derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                           HealthCheck.filter_too_much])


# ------------------------------------------------------------------------------------------ guards
_WATCH: dict = {"root": None, "opened": []}
_ALLOWED = tuple({os.path.realpath(p) for p in (sys.prefix, sys.base_prefix, sys.exec_prefix,
                                                *(p for p in sys.path if p))} | {"/dev/null", "/dev/urandom"})


def _audit(event: str, args: tuple) -> None:
    root = _WATCH["root"]
    if root is None or event != "open":
        return
    target = args[0]
    if isinstance(target, int) or target is None:
        return
    path = os.path.realpath(os.fsdecode(target))
    if path == root or path.startswith(root + os.sep) or path.startswith(_ALLOWED):
        return
    _WATCH["opened"].append(path)


sys.addaudithook(_audit)


@contextmanager
def guarded(root: Path):
    """Time limit + record of files opened outside ``root`` for one example."""
    def boom(signum, frame):
        raise TimeoutError(f"example hung for more than {HANG_S} s")

    old = signal.signal(signal.SIGALRM, boom)
    signal.setitimer(signal.ITIMER_REAL, HANG_S)
    _WATCH["root"], _WATCH["opened"] = os.path.realpath(root), []
    try:
        yield
    finally:
        _WATCH["root"] = None
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
    assert _WATCH["opened"] == [], f"opened outside the folder: {_WATCH['opened'][:3]}"


def only_depara_errors(fn, *args):
    """Run ``fn``; a DeparaError must be one line; any other exception fails the example (re-raised)."""
    try:
        return fn(*args)
    except DeparaError as exc:
        assert "\n" not in str(exc) and str(exc)
        return None


@pytest.fixture(scope="module")
def workdir():
    # Thousands of small folders are made and removed: on tmpfs that is ~100× faster than on an overlay disk.
    shm = "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None
    path = Path(tempfile.mkdtemp(prefix="depara-fuzz-", dir=shm))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def fresh(workdir: Path, name: str) -> Path:
    folder = workdir / name
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir()
    return folder


# ------------------------------------------------------------------------------------------ mutations
@st.composite
def mutated(draw, seeds: list[bytes]) -> bytes:
    """A seed file with 1-4 edits: byte flips, truncation, insertion, deletion, a random length prefix."""
    data = bytearray(draw(st.sampled_from(seeds)))
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["flip", "truncate", "insert", "delete", "prefix", "splice"]))
        n = len(data)
        if op == "flip" and n:
            for _ in range(draw(st.integers(1, 8))):
                data[draw(st.integers(0, n - 1))] = draw(st.integers(0, 255))
        elif op == "truncate":
            del data[draw(st.integers(0, n)):]
        elif op == "insert":
            at = draw(st.integers(0, n))
            data[at:at] = draw(st.binary(min_size=1, max_size=64))
        elif op == "delete" and n:
            at = draw(st.integers(0, n - 1))
            del data[at:at + draw(st.integers(1, 64))]
        elif op == "prefix":
            data[:8] = draw(st.integers(0, 2**64 - 1)).to_bytes(8, "little")
        elif op == "splice" and n:
            at = draw(st.integers(0, n - 1))
            token = draw(st.sampled_from([b"[", b"{", b'"', b"\\", b"\xff", b"\x00", b"1e999", b"-0", b"null",
                                          b'"BF16"', b'"F64"', b"[[[[[[[[", b"]]]]", b'"shape":[', b"99999999999"]))
            data[at:at] = token * draw(st.integers(1, 40))
    return bytes(data)


# ------------------------------------------------------------------------------------------ graph loader
def _graph_seeds() -> list[bytes]:
    rng = np.random.default_rng(0)
    out = []
    with tempfile.TemporaryDirectory() as tmp:
        for n, meta in ((4, {"model": "m", "layer": "x"}), (3, {"probe_hash": "ab" * 32, "nested": {"a": [1, 2]}})):
            g = Graph.from_arrays(rng.normal(size=(n, 3)), rng.normal(size=(n, 5)), meta=meta,
                                  probe_ids=[f"p{i}.png" for i in range(n)])
            out.append(g.save(Path(tmp) / "g.safetensors").read_bytes())
    return out


GRAPH_SEEDS = _graph_seeds()


def _load_graph(path: Path) -> None:
    g = only_depara_errors(Graph.load, path)
    if g is not None:  # whatever loads is a valid graph
        assert g.nodes.dtype == np.float32 and np.isfinite(g.nodes).all() and np.isfinite(g.edges).all()
        assert g.edges.shape == (g.n_probes * (g.n_probes - 1) // 2,) and len(g.probe_ids) == g.n_probes


@fuzz(1000)
@given(data=mutated(GRAPH_SEEDS))
def test_graph_loader_mutated_files(workdir, data):
    folder = fresh(workdir, "graph")
    path = folder / "g.safetensors"
    path.write_bytes(data)
    with guarded(folder):
        _load_graph(path)


@fuzz(300)
@given(data=st.one_of(st.binary(max_size=300),
                      st.builds(lambda n, body: n.to_bytes(8, "little") + body,
                                st.integers(0, 400), st.binary(max_size=400))))
def test_graph_loader_random_bytes(workdir, data):
    folder = fresh(workdir, "graph")
    path = folder / "g.safetensors"
    path.write_bytes(data)
    with guarded(folder):
        _load_graph(path)


# ------------------------------------------------------------------------------------------ manifest reader
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=25)

member_names = st.sampled_from(["t.csv", "t.json", "f.png", "f.svg", "link.csv", "out.csv", "loop.svg", "fifo.csv",
                                "../x.csv", "/etc/hostname", "sub/t.csv", "", "missing.csv", "sub", "."])


@st.composite
def manifests(draw) -> bytes:
    doc = {"kind": draw(st.text(max_size=10)), "title": draw(st.text(max_size=30)),
           "summary": draw(st.text(max_size=30)), "settings": draw(json_values), "extra": draw(json_values),
           "tables": draw(st.dictionaries(st.text(max_size=6), member_names, max_size=3)),
           "figures": draw(st.dictionaries(st.text(max_size=6), member_names, max_size=3))}
    for key in draw(st.lists(st.sampled_from(list(doc)), max_size=2)):
        doc.pop(key, None)  # kind missing, figures missing, ...
    if draw(st.booleans()):
        doc[draw(st.sampled_from(["tables", "figures", "extra"]))] = draw(json_values)
    return json.dumps(doc).encode()


MANIFEST_SEEDS = [json.dumps({"kind": "rank", "title": "t", "summary": "s", "settings": {"lam": 1.0},
                              "tables": {"ranking": "t.csv"}, "figures": {"f": "f.png"},
                              "extra": {"pick": "a", "sections": ["sub"]}}).encode(),
                  b'{"kind": "x", "extra": ' + b"[" * 60 + b"]" * 60 + b"}"]


def _results_folder(workdir: Path, manifest: bytes) -> Path:
    """A results folder with regular members, links out of it, a link loop, a FIFO and a sub-section."""
    folder = fresh(workdir, "results")
    (folder / "manifest.json").write_bytes(manifest)
    (folder / "t.csv").write_text("source,S\na,1\nb,<b>2</b>\n")
    (folder / "t.json").write_text('[{"a": 1}, {"a": [1, 2]}]')
    buf = io.BytesIO()
    Image.fromarray(np.zeros((2, 2, 3), np.uint8)).save(buf, "PNG")
    (folder / "f.png").write_bytes(buf.getvalue())
    (folder / "f.svg").write_text("<svg/>")
    os.symlink("t.csv", folder / "link.csv")
    os.symlink("/etc/hostname", folder / "out.csv")
    os.symlink("loop.svg", folder / "loop.svg")
    os.mkfifo(folder / "fifo.csv")
    (folder / "sub").mkdir()
    (folder / "sub" / "manifest.json").write_bytes(manifest)
    (folder / "sub" / "t.csv").write_text("x\n1\n")
    return folder


def _render(folder: Path) -> None:
    section = load_results(folder)
    assert render_html(section).startswith("<!DOCTYPE html>")
    render_markdown(section, folder)


@fuzz(700)
@given(data=mutated(MANIFEST_SEEDS))
def test_manifest_reader_mutated_bytes(workdir, data):
    folder = fresh(workdir, "manifest")
    (folder / "manifest.json").write_bytes(data)
    with guarded(folder):
        m = only_depara_errors(read_manifest, folder)
        assert m is None or (isinstance(m, dict) and "kind" in m)


@fuzz(250)
@given(manifest=st.one_of(manifests(), mutated(MANIFEST_SEEDS)))
def test_report_on_generated_manifests_reads_nothing_outside(workdir, manifest):
    folder = _results_folder(workdir, manifest)
    with guarded(folder):
        only_depara_errors(_render, folder)


# ------------------------------------------------------------------------------------------ probe reader
def _image_seeds() -> list[tuple[str, bytes]]:
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (6, 5, 3), dtype=np.uint8)
    images = [(".png", Image.fromarray(rgb)), (".png", Image.fromarray(rgb[..., 0]).convert("P")),
              (".png", Image.fromarray(np.arange(30, dtype=np.uint16).reshape(6, 5) * 2000)),
              (".png", Image.fromarray(np.dstack([rgb, rgb[..., :1]]), "RGBA")),
              (".tif", Image.fromarray(rng.random((6, 5)).astype(np.float32))),
              (".tif", Image.fromarray(rng.integers(-5, 70000, (6, 5)).astype(np.int32), "I")),
              (".gif", Image.fromarray(rgb).convert("P")), (".bmp", Image.fromarray(rgb)),
              (".jpg", Image.fromarray(rgb)), (".webp", Image.fromarray(rgb)), (".ppm", Image.fromarray(rgb))]
    out = []
    for suffix, im in images:
        buf = io.BytesIO()
        im.save(buf, format={".jpg": "JPEG", ".tif": "TIFF"}.get(suffix, suffix[1:].upper()))
        out.append((suffix, buf.getvalue()))
    return out


IMAGE_SEEDS = _image_seeds()
# Import torchvision's transforms once here (seconds), not inside the first timed example.
ProbeSet.from_images([np.zeros((4, 4, 3), np.uint8)] * 3).tensor("8x8")


def _read_probes(folder: Path) -> None:
    probes = ProbeSet.from_folder(folder, preprocess="8x8")
    x = probes.tensor()
    assert x.shape == (len(probes), 3, 8, 8) and bool(np.isfinite(x.numpy()).all())
    assert 0.0 <= float(x.min()) and float(x.max()) <= 1.0
    assert len(probes.content_hash()) == 64


@fuzz(450)
@given(index=st.integers(0, len(IMAGE_SEEDS) - 1), data=st.data())
def test_probe_reader_mutated_images(workdir, index, data):
    suffix, seed = IMAGE_SEEDS[index]
    blob = data.draw(mutated([seed]))
    folder = fresh(workdir, "probes")
    (folder / f"x{suffix}").write_bytes(blob)
    with guarded(folder):
        only_depara_errors(_read_probes, folder)


@st.composite
def probe_trees(draw) -> list[tuple[str, str, str]]:
    """Entries (kind, path, target) of a probe folder: images, folders, links (in, out, loops), FIFOs."""
    dirs = ["", "a", "a/b", "c"]
    entries = []
    for _ in range(draw(st.integers(1, 8))):
        kind = draw(st.sampled_from(["image", "image", "link", "dirlink", "fifo", "text"]))
        parent = draw(st.sampled_from(dirs))
        name = draw(st.sampled_from(["p.png", "q.jpg", "r.png", "s", "t.gif", ".h.png"]))
        target = draw(st.sampled_from(["..", ".", "../..", "/etc", "/etc/hostname", "a", "a/b", "../outside.png",
                                       "p.png", "../a/p.png", "missing.png", "/tmp"]))
        entries.append((kind, f"{parent}/{name}".lstrip("/"), target))
    return entries


@fuzz(100)
@given(tree=probe_trees())
def test_probe_reader_folder_trees_never_leave_the_root(workdir, tree):
    base = fresh(workdir, "tree")
    root = base / "root"
    for d in ("a/b", "c"):
        (root / d).mkdir(parents=True)
    suffix, png = IMAGE_SEEDS[0]
    (base / "outside.png").write_bytes(png)
    for kind, rel, target in tree:
        path = root / rel
        if path.exists() or path.is_symlink():
            continue
        if kind == "image":
            path.write_bytes(png)
        elif kind in ("link", "dirlink"):
            os.symlink(target, path)
        elif kind == "fifo":
            os.mkfifo(path)
        else:
            path.write_text("not an image")
    with guarded(root):
        probes = only_depara_errors(ProbeSet.from_folder, root, "8x8")
        if probes is not None:
            real_root = root.resolve()
            for pid in probes.ids:
                assert (root / pid).resolve().is_relative_to(real_root)
            only_depara_errors(_read_probes, root)


list_lines = st.one_of(
    st.sampled_from(["a.png", "b.png", "sub/c.png", "a.png 3", "../outside.png", "sub/../a.png", "/etc/hostname",
                     "/tmp/outside.png", "x" * 300 + ".png", "# comment", "", "  ", "sub", "link.png", "fifo.png",
                     "/nowhere/sub/c.png", "loop.png", "a.png\tlabel"]),
    st.text(max_size=30))


@fuzz(200)
@given(lines=st.lists(list_lines, min_size=1, max_size=8), raw=st.booleans(), junk=st.binary(max_size=20))
def test_probe_reader_lists_never_leave_the_root(workdir, lines, raw, junk):
    base = fresh(workdir, "list")
    root = base / "root"
    (root / "sub").mkdir(parents=True)
    suffix, png = IMAGE_SEEDS[0]
    for rel in ("a.png", "b.png", "sub/c.png"):
        (root / rel).write_bytes(png)
    (base / "outside.png").write_bytes(png)
    os.symlink(base / "outside.png", root / "link.png")
    os.symlink("loop.png", root / "loop.png")
    os.mkfifo(root / "fifo.png")
    text = "\n".join(lines).encode("utf-8", "surrogatepass") + (junk if raw else b"")
    (root / "list.txt").write_bytes(text)
    with guarded(root):
        probes = only_depara_errors(ProbeSet.from_list, root / "list.txt")
        if probes is not None:
            real_root = root.resolve()
            for src in probes._sources:
                assert Path(os.path.realpath(src)).is_relative_to(real_root)
            only_depara_errors(lambda: probes.tensor("8x8"))
