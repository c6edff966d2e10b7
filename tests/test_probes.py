"""depara.extraction.probes: probe sets from folders and image lists, preprocessing presets, bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from depara.errors import DeparaError
from depara.extraction.probes import IMAGENET_MEAN, IMAGENET_STD, Preprocess, ProbeSet

from _core_torch_helpers import write_images


def _solid(path, color, size=(300, 260)):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, color).save(path)
    return path


def test_folder_is_recursive_sorted_and_skips_non_images(tmp_path):
    write_images(tmp_path, ["b/2.png", "a.jpg", "b/10.png", "c/d/e.bmp"])
    (tmp_path / "imlist.txt").write_text("a.jpg\n")
    (tmp_path / ".hidden.png").write_bytes(b"junk")
    probes = ProbeSet.from_folder(tmp_path, preprocess="16x16")
    assert probes.ids == ("a.jpg", "b/10.png", "b/2.png", "c/d/e.bmp")
    x = probes.tensor()
    assert x.shape == (4, 3, 16, 16) and x.dtype == torch.float32
    # "16x16" without normalisation = pixels scaled to [0, 1]
    assert 0.0 <= float(x.min()) and float(x.max()) <= 1.0
    assert torch.equal(probes.tensor(indices=slice(1, 3)), x[1:3])


def test_imagenet_preset_values_and_geometry(tmp_path):
    color = (200, 100, 50)
    _solid(tmp_path / "solid.png", color, size=(400, 300))
    x = ProbeSet.from_folder(tmp_path).tensor()
    assert x.shape == (1, 3, 224, 224)
    expected = [(c / 255 - m) / s for c, m, s in zip(color, IMAGENET_MEAN, IMAGENET_STD)]
    np.testing.assert_allclose(x[0].mean(dim=(1, 2)).numpy(), expected, atol=1e-5)


def test_imagenet_preset_is_short_side_resize_then_centre_crop():
    # a 512×256 (W×H) image with a left half black, right half white: after resizing the short side to 256
    # (512×256) and centre-cropping 224, columns 0..111 are black and 112..223 white
    arr = np.zeros((256, 512, 3), dtype=np.uint8)
    arr[:, 256:] = 255
    x = ProbeSet.from_images([arr], preprocess="imagenet").tensor()[0]
    raw = x * torch.tensor(IMAGENET_STD)[:, None, None] + torch.tensor(IMAGENET_MEAN)[:, None, None]
    assert torch.allclose(raw[:, :, :110], torch.zeros(1), atol=1e-5)
    assert torch.allclose(raw[:, :, 114:], torch.ones(1), atol=1e-5)


def test_taskonomy_preset_scales_to_minus_one_one(tmp_path):
    _solid(tmp_path / "black.png", (0, 0, 0), size=(300, 200))
    _solid(tmp_path / "white.png", (255, 255, 255), size=(100, 120))
    x = ProbeSet.from_folder(tmp_path, preprocess="taskonomy").tensor()
    assert x.shape == (2, 3, 256, 256)
    assert torch.allclose(x[0], torch.full_like(x[0], -1.0)) and torch.allclose(x[1], torch.ones_like(x[1]))


def test_custom_preprocess_string_and_object():
    p = Preprocess.parse("48x32:0.5:0.25")
    assert p.size == (32, 48) and p.mean == (0.5,) * 3 and p.std == (0.25,) * 3
    x = ProbeSet.from_images([np.full((10, 10, 3), 255, np.uint8)], preprocess=p).tensor()
    assert x.shape == (1, 3, 32, 48) and torch.allclose(x, torch.full_like(x, 2.0))
    assert Preprocess.parse(p) is p
    # a probe set keeps raw images: each model can ask for its own preprocessing
    probes = ProbeSet.from_images([np.zeros((20, 30, 3))])
    assert probes.tensor("taskonomy").shape == (1, 3, 256, 256)
    assert probes.tensor(Preprocess(size=(24, 20))).shape == (1, 3, 24, 20)


@pytest.mark.parametrize("spec", ["64", "axb", "64x64:1,2:1", "64x64:0.5:-1", "resnet"])
def test_bad_preprocess_spec(spec):
    with pytest.raises(DeparaError, match="preprocess"):
        Preprocess.parse(spec)


def test_image_list_order_extra_columns_spaces_comments_and_absolute_entries(tmp_path):
    root = tmp_path / "imgs"
    write_images(root, ["x/b.png", "a.png", "Waiting Room.JPG", "collierville_rgb/p1.png"])
    lst = tmp_path / "list.txt"
    lst.write_text("# probes\n"
                   "x/b.png 3\n"
                   "\n"
                   "a.png\t7 extra\n"
                   "Waiting Room.JPG\n"
                   "/disk2/sj/taskonomy_data/collierville_rgb/p1.png\n")
    probes = ProbeSet.from_list(lst, root, preprocess="8x8")
    assert probes.ids == ("x/b.png", "a.png", "Waiting Room.JPG",
                          "/disk2/sj/taskonomy_data/collierville_rgb/p1.png")
    assert probes.tensor().shape == (4, 3, 8, 8)
    # root defaults to the list file's folder
    (root / "l2.txt").write_text("a.png\nx/b.png\n")
    assert ProbeSet.from_list(root / "l2.txt", preprocess="8x8").ids == ("a.png", "x/b.png")


def test_visda_probe_list(shared_data):
    folder = shared_data / "visda_real_probe200"
    if not (folder / "imlist_200.txt").is_file():
        pytest.skip("visda_real_probe200 not in shared data")
    probes = ProbeSet.from_list(folder / "imlist_200.txt", folder)
    assert len(probes) == 200 and probes.ids[0] == "aeroplane_157582.jpg"
    x = probes.tensor(indices=[0, 199])
    assert x.shape == (2, 3, 224, 224) and torch.isfinite(x).all()
    assert sorted(ProbeSet.from_folder(folder).ids) == sorted(probes.ids)


# ------------------------------------------------------------------------------------------- bad input
def test_empty_folder_and_empty_list(tmp_path):
    (tmp_path / "notes.txt").write_text("nothing")
    with pytest.raises(DeparaError, match="empty probe set"):
        ProbeSet.from_folder(tmp_path)
    (tmp_path / "list.txt").write_text("# only a comment\n\n")
    with pytest.raises(DeparaError, match="empty probe set"):
        ProbeSet.from_list(tmp_path / "list.txt")
    with pytest.raises(DeparaError, match="empty probe set"):
        ProbeSet.from_images([])


def test_missing_folder_list_and_entry(tmp_path):
    with pytest.raises(DeparaError, match="not found"):
        ProbeSet.from_folder(tmp_path / "nope")
    with pytest.raises(DeparaError, match="probe list .*nope.txt: file not found"):
        ProbeSet.from_list(tmp_path / "nope.txt")
    write_images(tmp_path, ["a.png"])
    (tmp_path / "list.txt").write_text("a.png\nmissing.png\n")
    with pytest.raises(DeparaError, match=r"line 2: image missing.png not found"):
        ProbeSet.from_list(tmp_path / "list.txt")


def test_non_image_and_corrupt_files_are_named(tmp_path):
    write_images(tmp_path, ["a.png"])
    (tmp_path / "fake.jpg").write_text("this is not a jpeg")
    with pytest.raises(DeparaError, match=r"probe fake.jpg: .*not a readable image"):
        ProbeSet.from_folder(tmp_path)
    (tmp_path / "fake.jpg").unlink()
    (tmp_path / "doc.txt").write_text("hello")
    (tmp_path / "list.txt").write_text("a.png\ndoc.txt\n")
    with pytest.raises(DeparaError, match=r"probe doc.txt: .*not a readable image"):
        ProbeSet.from_list(tmp_path / "list.txt")
    # a valid header with truncated pixel data is caught when decoding, naming the file
    good = write_images(tmp_path, ["t.jpg"], size=(64, 64))[0]
    data = good.read_bytes()
    good.write_bytes(data[: len(data) // 2])
    probes = ProbeSet.from_folder(tmp_path, preprocess="8x8")
    with pytest.raises(DeparaError, match=r"probe t.jpg: file .*t.jpg is corrupt"):
        probes.tensor()


def test_duplicate_ids_and_binary_list(tmp_path):
    write_images(tmp_path, ["a.png"])
    (tmp_path / "list.txt").write_text("a.png\na.png\n")
    with pytest.raises(DeparaError, match="duplicate probe id 'a.png'"):
        ProbeSet.from_list(tmp_path / "list.txt")
    with pytest.raises(DeparaError, match="not a text file"):
        ProbeSet.from_list(tmp_path / "a.png")


def test_bad_in_memory_image():
    with pytest.raises(DeparaError, match="probe 0: expected an H×W or H×W×C image"):
        ProbeSet.from_images([np.zeros((2, 3, 4, 5))]).tensor()


@pytest.mark.parametrize("spec, what", [("8x8:nan:0.5", "mean"), ("8x8:0.5:inf", "std"), ("8x8:0.5,-inf,0.5:1", "mean"),
                                        ("8x8:0:nan,1,1", "std")])
def test_non_finite_mean_or_std_is_refused_in_one_line(spec, what):
    with pytest.raises(DeparaError, match=rf"^preprocess {what}: expected finite numbers, got \([^\n]*\)$"):
        Preprocess.parse(spec)


@pytest.mark.parametrize("kwargs, what", [({"size": (float("inf"), 8)}, "preprocess size"),
                                          ({"size": 8, "resize": (8, float("inf"))}, "preprocess resize"),
                                          ({"size": float("nan")}, "preprocess size")])
def test_non_finite_sizes_are_refused_in_one_line(kwargs, what):
    with pytest.raises(DeparaError, match=rf"^{what}: expected an int or \(H, W\)"):
        Preprocess(**kwargs)
