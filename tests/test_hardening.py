"""Hardening (issue 14): no file leaks, no silent wrong answers, no tracebacks, no leftovers.

Each test builds the hostile or faulty input the issue lists and checks the documented outcome (docs/bad-input.md)
against an independent computation where there is a value to check.
"""

from __future__ import annotations

import json
import os
import signal
import struct
import subprocess
import sys
import time
import zlib
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from depara.io.files import (atomic_path, check_out_path, clean_stale_parts, clean_stale_temp_dirs, temp_dir,
    write_json)
from depara.cli.main import main
from depara.errors import DeparaError
from depara.extraction.extract import build_graph
from depara.core.graph import Graph
from depara.extraction.probes import ProbeSet
from depara.io.readers import loads_json, read_json_file
from depara.report.html import render_report
from depara.report.manifest import read_manifest, write_manifest
from depara.core.similarity import edge_similarity, node_similarity, rank_sources, similarity

from _core_torch_helpers import tiny_vgg, write_images

torch.set_num_threads(1)
PY = sys.executable
SRC = str(Path(__file__).resolve().parents[1] / "src")


@contextmanager
def time_limit(seconds: float):
    """Fail (instead of hanging the suite) when the block runs longer than ``seconds``."""
    def boom(signum, frame):
        raise TimeoutError(f"hung for more than {seconds} s")

    old = signal.signal(signal.SIGALRM, boom)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def one_line(exc_info) -> str:
    message = str(exc_info.value)
    assert "\n" not in message
    return message


def dead_pid() -> int:
    """The PID of a process that has exited (reaped), so it is not running."""
    proc = subprocess.Popen([PY, "-c", "pass"])
    proc.wait()
    return proc.pid


def png_declaring(width: int, height: int) -> bytes:
    """A PNG whose header declares width×height RGB pixels (the pixel data is a few bytes only)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b""))


def pixels(probes: ProbeSet, index: int = 0) -> np.ndarray:
    """The probe as an H×W×3 uint8 array (what the model's preprocessing starts from)."""
    return np.asarray(probes.image(index))


# ============================================================================================ probe reading
def test_symlink_loop_in_probe_folder_is_refused_not_multiplied(tmp_path):
    root = tmp_path / "probes"
    write_images(root, ["a.png", "sub/b.png", "sub/c.png"])
    os.symlink("..", root / "sub" / "loop")
    with pytest.raises(DeparaError, match=r"folder sub/loop is reached a second time through a link") as info:
        ProbeSet.from_folder(root)
    one_line(info)
    (root / "sub" / "loop").unlink()
    assert len(ProbeSet.from_folder(root)) == 3
    os.symlink(root / "sub", root / "alias")  # a second path to the same images would count them twice
    with pytest.raises(DeparaError, match=r"reached a second time"):
        ProbeSet.from_folder(root)
    (root / "alias").unlink()
    os.symlink("self.png", root / "self.png")  # a file link loop
    with pytest.raises(DeparaError, match=r"probe self.png: file .*self.png cannot be read \(Too many levels"):
        ProbeSet.from_folder(root)


def test_links_out_of_the_probe_root_are_refused(tmp_path):
    root = tmp_path / "probes"
    write_images(root, ["a.png", "b.png", "c.png"])
    outside = write_images(tmp_path / "private", ["secret.png"])[0]
    os.symlink(outside, root / "leak.png")
    with pytest.raises(DeparaError, match=r"probe leak.png: links to .*secret.png, outside the probe folder"):
        ProbeSet.from_folder(root)
    (root / "leak.png").unlink()
    os.symlink(tmp_path / "private", root / "more")
    with pytest.raises(DeparaError, match=r"more links to .*private, outside the probe folder"):
        ProbeSet.from_folder(root)
    (root / "more").unlink()
    # links inside the root are fine
    os.symlink(root / "a.png", root / "d.png")
    assert ProbeSet.from_folder(root).ids == ("a.png", "b.png", "c.png", "d.png")
    # a list may not leave its root either: ../x and absolute paths elsewhere
    (root / "list.txt").write_text("a.png\n../private/secret.png\n")
    with pytest.raises(DeparaError, match=r"line 2: image ../private/secret.png resolves to .*outside the probe root"):
        ProbeSet.from_list(root / "list.txt")
    (root / "list.txt").write_text(f"a.png\n{outside}\n")
    with pytest.raises(DeparaError, match=r"outside the probe root"):
        ProbeSet.from_list(root / "list.txt")
    (root / "list.txt").write_text(f"probes/a.png\n{outside}\n")
    assert len(ProbeSet.from_list(root / "list.txt", root=tmp_path)) == 2  # a root that holds both


def test_fifo_with_an_image_suffix_is_skipped_with_a_note_never_opened(tmp_path, caplog):
    root = tmp_path / "probes"
    write_images(root, ["a.png", "b.png", "c.png"])
    os.mkfifo(root / "pipe.png")
    with time_limit(20):
        probes = ProbeSet.from_folder(root, preprocess="8x8")
        assert probes.ids == ("a.png", "b.png", "c.png")
        assert probes.tensor().shape == (3, 3, 8, 8)
        assert len(probes.content_hash()) == 64
    assert probes.notes == (f"probe folder {root}: skipped pipe.png (not a regular file: a FIFO, device or socket)",)
    assert "skipped pipe.png" in caplog.text
    (root / "list.txt").write_text("a.png\npipe.png\n")
    with time_limit(20), pytest.raises(DeparaError, match=r"probe pipe.png: .*pipe.png is not a regular file"):
        ProbeSet.from_list(root / "list.txt")
    # the probe list itself as a FIFO: refused, not read
    os.mkfifo(tmp_path / "list_fifo.txt")
    with time_limit(20), pytest.raises(DeparaError, match=r"not a regular file"):
        ProbeSet.from_list(tmp_path / "list_fifo.txt", root=root)


def test_decompression_bomb_is_a_one_line_error(tmp_path, monkeypatch):
    root = tmp_path / "probes"
    write_images(root, ["a.png", "b.png"])
    (root / "bomb.png").write_bytes(png_declaring(30000, 30000))
    with time_limit(20), pytest.raises(DeparaError, match=r"probe bomb.png: file .*bomb.png is too large to decode "
                                                           r"safely \(DecompressionBombError: Image size "
                                                           r"\(900000000 pixels\)") as info:
        ProbeSet.from_folder(root)
    one_line(info)
    # between MAX_IMAGE_PIXELS and twice that Pillow only warns: refused as well
    small = tmp_path / "small"
    write_images(small, ["a.png", "b.png"], size=(10, 10))
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    assert len(ProbeSet.from_folder(small)) == 2
    write_images(small, ["big.png"], size=(40, 30))  # 1200 pixels: over the (patched) limit, under twice it
    with pytest.raises(DeparaError, match=r"probe big.png: .*too large to decode safely"):
        ProbeSet.from_folder(small)


def _save(path: Path, image: Image.Image) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)
    return path


def test_16_bit_png_is_scaled_by_65535_not_saturated(tmp_path):
    values = np.array([[0, 1000, 32768, 65535]], dtype=np.uint16)
    path = _save(tmp_path / "p" / "a16.png", Image.fromarray(values))
    assert Image.open(path).mode.startswith("I;16")
    probes = ProbeSet.from_folder(tmp_path / "p")
    got = pixels(probes)[0, :, 0]
    expected = np.rint(values[0] / 65535 * 255).astype(np.uint8)  # 0, 4, 128, 255
    np.testing.assert_array_equal(got, expected)
    assert list(expected) == [0, 4, 128, 255]


def test_float_tiff_in_unit_range_is_not_black_and_other_ranges_are_min_max(tmp_path):
    unit = np.array([[0.0, 0.25, 0.5, 1.0]], dtype=np.float32)
    _save(tmp_path / "u" / "f.tif", Image.fromarray(unit))
    got = pixels(ProbeSet.from_folder(tmp_path / "u"))[0, :, 1]
    np.testing.assert_array_equal(got, [0, 64, 128, 255])  # rint(x·255)
    wide = np.array([[-2.0, 0.0, 2.0, 6.0]], dtype=np.float32)
    _save(tmp_path / "w" / "f.tif", Image.fromarray(wide))
    got = pixels(ProbeSet.from_folder(tmp_path / "w"))[0, :, 2]
    np.testing.assert_array_equal(got, np.rint((wide[0] + 2) / 8 * 255).astype(np.uint8))  # min-max
    nan = np.array([[0.0, np.nan]], dtype=np.float32)
    _save(tmp_path / "n" / "f.tif", Image.fromarray(nan))
    with pytest.raises(DeparaError, match=r"probe f.tif: .*NaN/Inf"):
        ProbeSet.from_folder(tmp_path / "n").image(0)


def test_32_bit_integer_images(tmp_path):
    cases = {"byte": ([0, 100, 255], [0, 100, 255]),
             "word": ([0, 300, 65535], [0, round(300 / 65535 * 255), 255]),
             "wide": ([-10, 0, 10], [0, 128, 255])}  # min-max: (v + 10) / 20 · 255
    for name, (values, expected) in cases.items():
        im = Image.fromarray(np.array([values], dtype=np.int32), "I")
        _save(tmp_path / name / "i.tif", im)
        assert Image.open(tmp_path / name / "i.tif").mode == "I"
        np.testing.assert_array_equal(pixels(ProbeSet.from_folder(tmp_path / name))[0, :, 0], expected)


def test_alpha_palette_cmyk_and_la_conversions(tmp_path):
    rgba = np.array([[[200, 100, 50, 128], [10, 20, 30, 255], [255, 255, 255, 0]]], dtype=np.uint8)
    _save(tmp_path / "a" / "x.png", Image.fromarray(rgba, "RGBA"))
    expected = np.rint(rgba[..., :3] * (rgba[..., 3:] / 255.0)).astype(np.uint8)  # over black
    np.testing.assert_array_equal(pixels(ProbeSet.from_folder(tmp_path / "a")), expected)
    la = np.array([[[100, 51], [40, 255]]], dtype=np.uint8)
    _save(tmp_path / "la" / "x.png", Image.fromarray(la, "LA"))
    got = pixels(ProbeSet.from_folder(tmp_path / "la"))
    np.testing.assert_array_equal(got[..., 0], np.rint(la[..., 0] * (la[..., 1] / 255.0)))
    # a palette image with a transparent index
    pal = Image.fromarray(np.array([[0, 1, 2]], dtype=np.uint8), "P")
    pal.putpalette([255, 0, 0, 0, 255, 0, 0, 0, 255] + [0] * 759)
    pal.info["transparency"] = 1
    _save(tmp_path / "p" / "x.png", pal)
    np.testing.assert_array_equal(pixels(ProbeSet.from_folder(tmp_path / "p")), [[[255, 0, 0], [0, 0, 0], [0, 0, 255]]])
    cmyk = Image.fromarray(np.array([[[0, 255, 255, 0], [0, 0, 0, 128]]], dtype=np.uint8), "CMYK")
    _save(tmp_path / "c" / "x.tif", cmyk)
    np.testing.assert_array_equal(pixels(ProbeSet.from_folder(tmp_path / "c")),
                                  np.asarray(Image.open(tmp_path / "c" / "x.tif").convert("RGB")))


def test_in_memory_arrays_follow_the_same_rules():
    u16 = np.array([[0, 32768, 65535]], dtype=np.uint16)
    np.testing.assert_array_equal(pixels(ProbeSet.from_images([u16]))[0, :, 0], [0, 128, 255])
    ints = np.array([[0, 7, 255]], dtype=np.int64)  # plain integers 0..255 are 8-bit values
    np.testing.assert_array_equal(pixels(ProbeSet.from_images([ints]))[0, :, 0], [0, 7, 255])
    floats = np.array([[0.0, 0.5, 1.0]])
    np.testing.assert_array_equal(pixels(ProbeSet.from_images([floats]))[0, :, 0], [0, 128, 255])
    with pytest.raises(DeparaError, match="probe 0: image has NaN/Inf"):
        ProbeSet.from_images([np.array([[0.0, np.inf]])]).image(0)


def test_extremely_elongated_image_is_refused_before_resizing(tmp_path):
    _save(tmp_path / "e" / "long.png", Image.fromarray(np.zeros((1, 100_000, 3), np.uint8)))
    probes = ProbeSet.from_folder(tmp_path / "e")  # imagenet: short side to 256 → 256 × 25,600,000
    with time_limit(20), pytest.raises(DeparaError, match=r"probe long.png: image 100000×1 is too elongated for "
                                                          r"preprocess 'imagenet' \(resizing its short side to 256 "
                                                          r"gives 256×25600000 pixels"):
        probes.tensor()
    assert probes.tensor("8x8").shape == (1, 3, 8, 8)  # a fixed-size resize is fine
    with pytest.raises(DeparaError, match=r"preprocess size 100000×100000: 10000000000 pixels per image, more than"):
        probes.tensor("100000x100000")


def test_names_the_os_refuses_are_one_line(tmp_path):
    write_images(tmp_path, ["a.png"])
    (tmp_path / "list.txt").write_text("a.png\n" + "x" * 300 + ".png\n")
    with pytest.raises(DeparaError, match=r"line 2: image x+\.png not found"):
        ProbeSet.from_list(tmp_path / "list.txt")
    with pytest.raises(DeparaError, match=r"not a usable path \(File name too long\)"):
        check_out_path(tmp_path / ("y" * 300) / "g.csv", "--out")
    with pytest.raises(DeparaError, match="graph file not found"):
        Graph.load(tmp_path / ("z" * 300))


# ============================================================================================ graph files
def _graph(meta=None, seed=0, n=5) -> Graph:
    rng = np.random.default_rng(seed)
    return Graph.from_arrays(rng.normal(size=(n, 6)), rng.normal(size=(n, 7)),
                             probe_ids=[f"p{i}" for i in range(n)], meta=meta)


def test_graph_files_are_byte_reproducible_across_processes(tmp_path):
    code = ("import numpy as np, sys; from depara.core.graph import Graph; rng = np.random.default_rng(0); "
            "g = Graph.from_arrays(rng.normal(size=(5, 6)), rng.normal(size=(5, 7)), "
            "meta={'zeta': 1, 'alpha': {'b': 2, 'a': [1, 'x']}, 'model': 'm'}); g.save(sys.argv[1])")
    blobs = []
    for seed in ("1", "2"):
        path = tmp_path / f"g{seed}.safetensors"
        subprocess.run([PY, "-c", code, str(path)], check=True,
                       env={**os.environ, "PYTHONPATH": SRC, "PYTHONHASHSEED": seed})
        blobs.append(path.read_bytes())
    assert blobs[0] == blobs[1]
    from safetensors import safe_open  # still a standard safetensors file

    with safe_open(str(tmp_path / "g1.safetensors"), framework="np") as fh:
        assert json.loads(fh.metadata()["meta"])["alpha"] == {"a": [1, "x"], "b": 2}
        np.testing.assert_array_equal(fh.get_tensor("nodes"), Graph.load(tmp_path / "g1.safetensors").nodes)


def _header(g: Graph) -> dict:
    return {"format": "depara-graph", "version": "1", "probe_ids": json.dumps(list(g.probe_ids)),
            "meta": json.dumps(g.meta)}


def test_bfloat16_graph_file_is_a_one_line_error_and_f16_f64_are_converted(tmp_path):
    from safetensors.torch import save_file

    g = _graph()
    bf = tmp_path / "bf16.safetensors"
    save_file({"nodes": torch.from_numpy(g.nodes).bfloat16(), "edges": torch.from_numpy(g.edges).bfloat16()},
              str(bf), metadata=_header(g))
    with pytest.raises(DeparaError, match=r"bf16.safetensors: tensor 'nodes' has dtype BF16; expected F32") as info:
        Graph.load(bf)
    one_line(info)
    for dtype in (torch.float16, torch.float64):
        path = tmp_path / f"{dtype}.safetensors"
        save_file({"nodes": torch.from_numpy(g.nodes).to(dtype), "edges": torch.from_numpy(g.edges).to(dtype)},
                  str(path), metadata=_header(g))
        loaded = Graph.load(path)
        assert loaded.nodes.dtype == np.float32
        np.testing.assert_array_equal(loaded.nodes, torch.from_numpy(g.nodes).to(dtype).float().numpy())
    ints = tmp_path / "int.safetensors"
    save_file({"nodes": torch.zeros(5, 6, dtype=torch.int32), "edges": torch.zeros(10, dtype=torch.int32)},
              str(ints), metadata=_header(g))
    with pytest.raises(DeparaError, match=r"dtype I32"):
        Graph.load(ints)


@pytest.mark.parametrize("depth", [65, 100_000])
def test_deeply_nested_graph_metadata_is_a_one_line_error(tmp_path, depth):
    from safetensors.numpy import save_file

    g = _graph()
    header = _header(g)
    header["meta"] = '{"a": ' + "[" * depth + "]" * depth + "}"
    path = tmp_path / "deep.safetensors"
    save_file({"nodes": g.nodes, "edges": g.edges}, str(path), metadata=header)
    with pytest.raises(DeparaError, match=r"deep.safetensors: corrupt depara graph metadata \(meta: JSON nested too "
                                          r"deeply") as info:
        Graph.load(path)
    one_line(info)


def test_graph_reader_refuses_special_files_and_absurd_headers(tmp_path):
    os.mkfifo(tmp_path / "pipe.safetensors")
    with time_limit(20), pytest.raises(DeparaError, match=r"not a regular file"):
        Graph.load(tmp_path / "pipe.safetensors")
    path = tmp_path / "huge.safetensors"
    path.write_bytes((2**40).to_bytes(8, "little") + b"{}" * 10)
    with pytest.raises(DeparaError, match=r"header length 1099511627776 exceeds"):
        Graph.load(path)
    good = _graph().save(tmp_path / "g.safetensors").read_bytes()
    n = int.from_bytes(good[:8], "little")
    bad = good[:8] + good[8:8 + n].replace(b'"shape":[5,6]', b'"shape":[5,7]') + good[8 + n:]
    (tmp_path / "shape.safetensors").write_bytes(bad)
    with pytest.raises(DeparaError, match=r"tensor 'nodes' of shape \[5, 7\] needs 140 bytes, the header gives 120"):
        Graph.load(tmp_path / "shape.safetensors")


def test_json_reader_limits():
    assert loads_json(b'{"a": [1, {"b": null}]}', "x") == {"a": [1, {"b": None}]}
    with pytest.raises(DeparaError, match=r"x: not UTF-8 text \(invalid byte at offset 7\)"):
        loads_json(b'{"a": "\xff"}', "x")
    with pytest.raises(DeparaError, match=r"more than the limit of 10"):
        loads_json(b"[" + b" " * 20 + b"]", "x", max_bytes=10)
    assert loads_json("[" * 64 + "]" * 64, "x") is not None
    with pytest.raises(DeparaError, match="nested too deeply"):
        loads_json("[" * 65 + "]" * 65, "x")
    with pytest.raises(DeparaError, match="not valid JSON"):
        loads_json("{'a': 1}", "x")


# ============================================================================================ comparisons
@pytest.fixture(scope="module")
def twin_probe_folders(tmp_path_factory):
    """Two probe folders with the same file names; the images differ in 'c1/img3.png' only."""
    base = tmp_path_factory.mktemp("twins")
    names = [f"c{i % 2}/img{i}.png" for i in range(6)]
    write_images(base / "one", names, size=(32, 32), seed=0)
    write_images(base / "two", names, size=(32, 32), seed=0)
    write_images(base / "two", ["c1/img3.png"], size=(32, 32), seed=9)
    return base / "one", base / "two"


def test_same_file_names_different_images_are_refused_naming_the_probe(twin_probe_folders):
    one, two = twin_probe_folders
    model = tiny_vgg()
    g1 = build_graph(model, ProbeSet.from_folder(one, preprocess="32x32"), "4", node_size=8, meta={"model": "a"})
    g2 = build_graph(model, ProbeSet.from_folder(two, preprocess="32x32"), "4", node_size=8, meta={"model": "b"})
    assert g1.probe_ids == g2.probe_ids
    assert g1.meta["probe_hash"] == ProbeSet.from_folder(one).content_hash() != g2.meta["probe_hash"]
    assert g1.meta["preprocess"]["size"] == [32, 32]
    for fn in (similarity, node_similarity, edge_similarity):
        with pytest.raises(DeparaError, match=r"different probe images with the same ids .*first differing probe: "
                                              r"'c1/img3.png'") as info:
            fn(g1, g2)
        one_line(info)
    with pytest.raises(DeparaError, match="different probe images"):
        rank_sources({"a": g1}, g2)
    # the hash survives a save/load round trip, and the same images on another path compare fine
    g3 = build_graph(model, ProbeSet.from_folder(one, preprocess="32x32"), "8", node_size=8)
    assert np.isfinite(similarity(g1, g3))


def test_edge_metric_and_node_options_are_checked(tmp_path):
    cos = _graph({"method": "saliency"}, seed=0)
    rng = np.random.default_rng(1)
    corr = Graph.from_arrays(rng.normal(size=(5, 6)), rng.normal(size=(5, 7)), edge="correlation",
                             probe_ids=cos.probe_ids, meta={"method": "saliency"})
    with pytest.raises(DeparaError, match=r"different edge \('cosine' vs 'correlation'\), so their edges are not "
                                          r"comparable"):
        similarity(cos, corr)
    with pytest.raises(DeparaError, match=r"different edge"):
        edge_similarity(cos, corr)
    assert np.isfinite(node_similarity(cos, corr))  # nodes do not depend on the edge metric
    ixg = _graph({"method": "input_x_gradient"}, seed=2)
    with pytest.raises(DeparaError, match=r"different method \('saliency' vs 'input_x_gradient'\), so their nodes"):
        node_similarity(cos, ixg)
    assert np.isfinite(edge_similarity(cos, ixg))
    # a label graph (fixed construction) is not held to the sources' options
    label_like = Graph(corr.nodes, corr.edges, corr.probe_ids, {"kind": "labels", "edge": "cosine"})
    assert np.isfinite(edge_similarity(corr, label_like))
    # graphs that record no hash / no option (older files, from_arrays) still compare
    old = Graph(cos.nodes, cos.edges, cos.probe_ids, {})
    hashed = Graph(cos.nodes, cos.edges, cos.probe_ids, {"probe_hash": "ab" * 32})
    assert similarity(old, hashed) == pytest.approx(1.0)  # S = E (default λ = ∞)
    path = hashed.save(tmp_path / "h.safetensors")
    assert Graph.load(path).meta["probe_hash"] == "ab" * 32


# ============================================================================================ extraction
class FixedHead(nn.Module):
    """A classifier that only runs at 8×8 inputs (its Linear layer has a fixed input size)."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 2, 3, padding=1)
        self.fc = nn.Linear(2 * 8 * 8, 3)

    def forward(self, x):
        return self.fc(torch.flatten(self.conv(x), 1))


def test_model_that_cannot_run_at_the_preprocess_size_is_one_line(tmp_path):
    root = tmp_path / "probes"
    write_images(root, ["a.png", "b.png", "c.png"])
    torch.manual_seed(0)
    with pytest.raises(DeparaError, match=r"model fixed: cannot run on float32 probes of preprocess size 16x16 "
                                          r"\(RuntimeError: ") as info:
        build_graph(FixedHead(), ProbeSet.from_folder(root, preprocess="16x16"), "fc", meta={"model": "fixed"})
    one_line(info)
    assert build_graph(FixedHead(), ProbeSet.from_folder(root, preprocess="8x8"), "fc").n_probes == 3


def test_cli_extract_skips_a_fifo_with_a_note(tmp_path, capsys):
    root = tmp_path / "probes"
    write_images(root, ["a.png", "b.png", "c.png"])
    os.mkfifo(root / "pipe.png")
    model = tmp_path / "fixed.ts"
    torch.jit.save(torch.jit.trace(FixedHead(), torch.zeros(1, 3, 8, 8)), str(model))
    with time_limit(60):
        code = main(["extract", f"file:{model}", "--probes", str(root), "--layer", "output", "--preprocess", "8x8",
                     "--node-size", "4", "--out", str(tmp_path / "g.safetensors")])
    err = capsys.readouterr().err
    assert code == 0 and "skipped pipe.png (not a regular file: a FIFO, device or socket)" in err
    assert Graph.load(tmp_path / "g.safetensors").probe_ids == ("a.png", "b.png", "c.png")


def test_cli_half_precision_torchscript_and_wrong_size_are_one_line(tmp_path, capsys):
    root = tmp_path / "probes"
    write_images(root, ["a.png", "b.png", "c.png"])
    half = tmp_path / "half.ts"
    torch.jit.save(torch.jit.trace(FixedHead().half(), torch.zeros(1, 3, 8, 8, dtype=torch.float16)), str(half))
    code = main(["extract", f"file:{half}", "--probes", str(root), "--layer", "output", "--preprocess", "8x8",
                 "--out", str(tmp_path / "g.safetensors")])
    err = capsys.readouterr().err.splitlines()[-1]  # after the progress bar
    assert code == 2 and err.startswith(f"error: model file:{half}: cannot run on float32 probes"), err
    assert "Half" in err  # the reason, not only TorchScript's generic first line
    fixed = tmp_path / "fixed.ts"
    torch.jit.save(torch.jit.trace(FixedHead(), torch.zeros(1, 3, 8, 8)), str(fixed))
    code = main(["extract", f"file:{fixed}", "--probes", str(root), "--layer", "output", "--preprocess", "16x16",
                 "--out", str(tmp_path / "g.safetensors")])
    err = capsys.readouterr().err.splitlines()[-1]
    assert code == 2 and err.startswith("error: model file:") and "preprocess size 16x16" in err
    assert not (tmp_path / "g.safetensors").exists()


# ============================================================================================ output paths
def unwritable_folder(tmp_path: Path) -> Path:
    """A folder this process cannot create files in (root ignores permissions: use a read-only mount)."""
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        (folder / "probe").touch()
    except OSError:
        return folder
    (folder / "probe").unlink()
    for candidate in (Path("/proc/self"), Path("/sys")):
        try:
            check_out_path(candidate / "x", "t")
        except DeparaError:
            return candidate
    pytest.skip("no unwritable folder available")


def test_out_paths_are_checked_before_any_work(tmp_path, capsys, monkeypatch):
    g = _graph().save(tmp_path / "a.safetensors")
    _graph(seed=1).save(tmp_path / "b.safetensors")
    (tmp_path / "folder").mkdir()
    assert main(["compare", str(g), str(tmp_path / "b.safetensors"), "--out", str(tmp_path / "folder")]) == 2
    assert capsys.readouterr().err == f"error: --out {tmp_path / 'folder'}: is a folder (expected a file name)\n"
    ro = unwritable_folder(tmp_path)
    assert main(["compare", str(g), str(tmp_path / "b.safetensors"), "--out", str(ro / "m.csv")]) == 2
    assert "is not writable" in capsys.readouterr().err
    # extract: the destination is refused before the model is even loaded
    import depara.extraction.models

    monkeypatch.setattr(depara.extraction.models, "load_model", lambda *a, **k: pytest.fail("work started"))
    write_images(tmp_path / "probes", ["a.png", "b.png", "c.png"])
    assert main(["extract", "torchvision:resnet18", "--probes", str(tmp_path / "probes"), "--layer", "fc",
                 "--out", str(ro / "g.safetensors")]) == 2
    assert "is not writable" in capsys.readouterr().err
    # report / bench taskbank --out an existing file
    results = tmp_path / "results"
    results.mkdir()
    write_manifest(results, "rank", title="t")
    (tmp_path / "file").write_text("x")
    assert main(["report", str(results), "--out", str(tmp_path / "file")]) == 2
    assert capsys.readouterr().err == f"error: --out {tmp_path / 'file'}: exists and is not a folder\n"
    import depara.benches.taskbank.bench

    monkeypatch.setattr(depara.benches.taskbank.bench, "run_bench", lambda *a, **k: pytest.fail("work started"))
    assert main(["bench", "taskbank", "--out", str(tmp_path / "file")]) == 2
    assert capsys.readouterr().err == f"error: --out {tmp_path / 'file'}: exists and is not a folder\n"
    with pytest.raises(DeparaError, match=r"out_dir .*file: exists and is not a folder"):
        render_report(results, tmp_path / "file")


def test_os_errors_become_one_line_at_the_cli_boundary(tmp_path, capsys, monkeypatch):
    import depara.report.html

    def denied(*a, **k):
        raise PermissionError(13, "Permission denied", str(tmp_path / "x" / "report.html"))

    monkeypatch.setattr(depara.report.html, "render_report", denied)
    write_manifest(tmp_path, "rank")
    assert main(["report", str(tmp_path)]) == 2
    assert capsys.readouterr().err == f"error: Permission denied: {tmp_path / 'x' / 'report.html'}\n"

    def bug(*a, **k):
        raise KeyError("oops")

    monkeypatch.setattr(depara.report.html, "render_report", bug)
    assert main(["report", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: internal error (KeyError: 'oops')") and err.count("\n") == 1


# ============================================================================================ leftovers
def test_stale_part_files_of_dead_runs_are_removed(tmp_path):
    dead, alive = dead_pid(), os.getpid()
    stale = tmp_path / f".g.safetensors.{dead}-abc123.part"
    live = tmp_path / f".other.csv.{alive}-xyz_9.part"
    foreign = tmp_path / ".notes.part"  # not our pattern: left alone
    for p in (stale, live, foreign):
        p.write_text("half")
    with atomic_path(tmp_path / "g.safetensors") as tmp:
        assert str(os.getpid()) in tmp.name and tmp.name.endswith(".part")
        tmp.write_text("done")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([live.name, foreign.name, "g.safetensors"])
    assert clean_stale_parts(tmp_path) == []


def test_stale_feature_folders_of_dead_runs_are_removed(tmp_path, monkeypatch):
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    dead = dead_pid()
    stale = tmp_path / f"depara-features-{dead}-abcd"
    mine = tmp_path / f"depara-features-{os.getpid()}-efgh"
    old = tmp_path / "depara-features-k2j3"  # an older naming without a PID: removed once a day old
    young = tmp_path / "depara-features-zz99"
    for p in (stale, mine, old, young):
        p.mkdir()
        (p / "layer0.f32").write_bytes(b"\0" * 16)
    os.utime(old, (time.time() - 2 * 86400,) * 2)
    with temp_dir() as made:
        assert Path(made).name.startswith(f"depara-features-{os.getpid()}-")
        assert not stale.exists() and not old.exists() and mine.exists() and young.exists()
    assert clean_stale_temp_dirs(tmp_path) == []
    # every CLI start cleans too (a later run that never spills features still removes the leftovers)
    stale.mkdir()
    assert main(["--help"]) == 0
    assert not stale.exists() and mine.exists()


SLEEPY = """
import sys, time
from depara.cli.app import app
from depara.cli.main import main

@app.command("sleepy")
def sleepy():
    print("ready", flush=True)
    time.sleep(60)

sys.exit(main(["sleepy"]))
"""


def test_sigint_prints_interrupted_and_exits_130(tmp_path):
    script = tmp_path / "sleepy.py"
    script.write_text(SLEEPY)
    proc = subprocess.Popen([PY, str(script)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": SRC})
    assert proc.stdout.readline().strip() == "ready"
    time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and err == "interrupted\n"


# ============================================================================================ report
@pytest.fixture()
def results_dir(tmp_path) -> Path:
    folder = tmp_path / "results"
    folder.mkdir()
    (folder / "ranking.csv").write_text("source,S\na,1.0\nb,0.5\n")
    return folder


def test_report_refuses_symlinked_files_outside_the_results_folder(results_dir, tmp_path):
    secret_csv = tmp_path / "secret.csv"
    secret_csv.write_text("user,password\nroot,SECRET-CSV\n")
    secret_svg = tmp_path / "secret.svg"
    secret_svg.write_text("<svg xmlns='http://www.w3.org/2000/svg'><text>SECRET-SVG</text></svg>")
    os.symlink(secret_csv, results_dir / "leak.csv")
    os.symlink(secret_svg, results_dir / "leak.svg")
    os.symlink(results_dir / "ranking.csv", results_dir / "inside.csv")  # a link inside the folder is fine
    write_manifest(results_dir, "rank", tables={"ranking": "ranking.csv", "leak": "leak.csv", "inside": "inside.csv"},
                   figures={"leak": "leak.svg"})
    files = render_report(results_dir)
    page, md = files.html.read_text(), files.markdown.read_text()
    import base64

    for text in (page, md):
        assert "SECRET" not in text and base64.b64encode(secret_svg.read_bytes()).decode()[:40] not in text
        assert "links outside the results folder; not read" in text
    assert page.count("<table data-file") == 2  # ranking and inside, not leak
    # a manifest that links outside is refused as a whole
    other = tmp_path / "other"
    other.mkdir()
    write_manifest(other, "rank", title="foreign")
    (results_dir / "manifest.json").unlink()
    os.symlink(other / "manifest.json", results_dir / "manifest.json")
    with pytest.raises(DeparaError, match=r"manifest.json: the manifest links outside the results folder"):
        render_report(results_dir)


def test_report_fifo_table_is_not_opened(results_dir):
    os.mkfifo(results_dir / "pipe.csv")
    write_manifest(results_dir, "rank", tables={"ranking": "ranking.csv", "pipe": "pipe.csv"})
    with time_limit(20):
        page = render_report(results_dir).html.read_text()
    assert "pipe.csv is not a regular file" in page


def test_markdown_summary_escapes_html(results_dir):
    (results_dir / "ranking.csv").write_text("source,S\n<img src=x onerror=alert(1)>,1.0\n")
    write_manifest(results_dir, "rank", title="<script>alert('t')</script>",
                   summary="pick <b>a</b> & [x](javascript:y)",
                   tables={"ranking": "ranking.csv"}, settings={"note": "</td><script>"})
    files = render_report(results_dir)
    md = files.markdown.read_text()
    assert "<script>" not in md and "<img" not in md and "<b>" not in md
    assert "# &lt;script&gt;alert('t')&lt;/script&gt;" in md
    assert "**What to pick:** pick &lt;b&gt;a&lt;/b&gt; &amp; \\[x\\](javascript:y)" in md
    assert "&lt;img src=x onerror=alert(1)&gt;" in md
    assert "<script>" not in files.html.read_text()


def test_results_tree_nested_1000_deep_renders_with_a_note():
    # Outside pytest's tmp_path: its rotation deletes old folders with the recursive shutil.rmtree, which a
    # 1000-deep tree would overflow. Removed here level by level, deepest first.
    import tempfile

    root = Path(tempfile.mkdtemp(prefix="depara-deep-")) / "deep"
    chain = [root]
    try:
        root.mkdir()
        write_manifest(root, "top", title="top")
        for _ in range(1000):
            chain.append(chain[-1] / "a")
            chain[-1].mkdir()
            (chain[-1] / "manifest.json").write_text('{"kind": "level"}')
        files = render_report(root)
        assert "not rendered: results nested more than 8 levels deep" in files.html.read_text()
    finally:
        for folder in reversed(chain):
            if folder.is_dir():
                for entry in folder.iterdir():
                    if not entry.is_dir():
                        entry.unlink()
                folder.rmdir()
        root.parent.rmdir()


def test_bad_manifests_are_one_line_errors(tmp_path, capsys):
    folder = tmp_path / "r"
    folder.mkdir()
    (folder / "manifest.json").write_bytes(b'{"kind": "rank", "title": "caf\xe9"}')  # latin-1, not UTF-8
    assert main(["report", str(folder)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {folder / 'manifest.json'}: not UTF-8 text") and err.count("\n") == 1
    (folder / "manifest.json").write_text('{"kind": "rank", "extra": ' + "[" * 50_000 + "]" * 50_000 + "}")
    assert main(["report", str(folder)]) == 2
    assert "nested too deeply" in capsys.readouterr().err
    with pytest.raises(DeparaError, match="nested too deeply"):
        read_manifest(folder)
    write_json(folder / "t.json", {"a": [[[[[[1]]]]]]})
    assert read_json_file(folder / "t.json") == {"a": [[[[[[1]]]]]]}
