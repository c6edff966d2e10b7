"""depara.benches.data: split, shrink, synth-digits — on generated images and on the real VisDA photographs."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from depara.cli.main import main
from depara.benches.data import fraction_name, make_synth_digits, parse_ratios, shrink_domain, split_domain
from depara.errors import DeparaError

from _layers_helpers import write_class_folders


def _files(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file() and p.suffix == ".png"}


def _names_by_split(domain: Path) -> dict[str, set[str]]:
    return {s: {p.name for p in (domain / s).rglob("*") if p.suffix in (".png", ".jpg")} for s in ("train", "val", "test")}


# ------------------------------------------------------------------------------------------------ split
def test_split_counts_disjoint_complete_and_deterministic(tmp_path):
    src = write_class_folders(tmp_path / "syn", {"cat": 10, "dog": 7})
    r = split_domain(src, tmp_path / "a", ratios="7:2:1", seed=3)
    # hand-computed largest remainder: 10 -> 7/2/1; 7 -> 4.9,1.4,0.7 -> floor 4,1,0, two left to .9 and .7 -> 5/1/1
    assert r["counts"] == {"cat": [7, 2, 1], "dog": [5, 1, 1]}
    dom = tmp_path / "a" / "syn"
    for name, n in (("cat", 10), ("dog", 7)):
        parts = [{p.name for p in (dom / s / name).iterdir()} for s in ("train", "val", "test")]
        assert sum(len(p) for p in parts) == n
        assert set().union(*parts) == {p.name for p in (src / name).iterdir()}  # every image, once
        assert not (parts[0] & parts[1] or parts[0] & parts[2] or parts[1] & parts[2])
    split_domain(src, tmp_path / "b", ratios=(0.7, 0.2, 0.1), seed=3)
    assert _names_by_split(dom) == _names_by_split(tmp_path / "b" / "syn")  # same seed, same split
    split_domain(src, tmp_path / "c", ratios="70:20:10", seed=4)
    assert _names_by_split(dom) != _names_by_split(tmp_path / "c" / "syn")
    # a class's split does not depend on the other classes
    only_cat = write_class_folders(tmp_path / "only" / "syn", {"cat": 10})
    split_domain(only_cat, tmp_path / "d", seed=3)
    assert {p.name for p in (tmp_path / "d/syn/train/cat").iterdir()} == {p.name for p in (dom / "train/cat").iterdir()}


def test_split_link_modes(tmp_path):
    src = write_class_folders(tmp_path / "syn", {"a": 10, "b": 10})
    f = next((src / "a").iterdir())
    split_domain(src, tmp_path / "link", mode="link")
    linked = next(p for p in (tmp_path / "link/syn").rglob(f.name) if p.parent.name == "a")
    assert linked.stat().st_ino == f.stat().st_ino
    split_domain(src, tmp_path / "copy", mode="copy")
    copied = next(p for p in (tmp_path / "copy/syn").rglob(f.name) if p.parent.name == "a")
    assert copied.stat().st_ino != f.stat().st_ino and copied.read_bytes() == f.read_bytes()
    split_domain(src, tmp_path / "sym", mode="symlink")
    sym = next(p for p in (tmp_path / "sym/syn").rglob(f.name) if p.parent.name == "a")
    assert sym.is_symlink() and os.path.realpath(sym) == os.path.realpath(f)


def test_split_flat_test(tmp_path):
    src = write_class_folders(tmp_path / "syn", {"a": 10, "b": 10})
    split_domain(src, tmp_path / "o", flat_test=True)
    test = tmp_path / "o/syn/test"
    assert sorted(p.name for p in test.iterdir() if p.suffix == ".png") == sorted(
        [f"a_{n}" for n in {p.name for p in (src / "a").iterdir()} - {p.name for p in (tmp_path / "o/syn").rglob("a/*")}]
        + [f"b_{n}" for n in {p.name for p in (src / "b").iterdir()} - {p.name for p in (tmp_path / "o/syn").rglob("b/*")}])
    rows = (test / "test_labels.csv").read_text().splitlines()
    assert rows[0] == "file,class" and len(rows) == 3
    assert all((test / r.split(",")[0]).is_file() and r.split(",")[0].startswith(r.split(",")[1] + "_")
               for r in rows[1:])
    assert not any(p.is_dir() for p in test.iterdir())


def test_split_and_shrink_real_photographs(shared_data, tmp_path):
    probe = shared_data / "visda_real_probe200"
    images = sorted(probe.glob("*.jpg"))
    assert len(images) == 200
    dom = tmp_path / "real"
    for p in images:
        cls = p.stem.rsplit("_", 1)[0]
        (dom / cls).mkdir(parents=True, exist_ok=True)
        shutil.copy(p, dom / cls / p.name)
    r = split_domain(dom, tmp_path / "out", seed=0)
    assert len(r["counts"]) == 12
    # 17 images: 11.9/3.4/1.7 -> 11/3/1 + two remainders (.9 train, .7 test) -> 12/3/2; 13 trucks: 9.1/2.6/1.3 -> 9/3/1
    for cls, c in r["counts"].items():
        assert c == ([9, 3, 1] if cls == "truck" else [12, 3, 2]), cls
    split = tmp_path / "out" / "real"
    names = _names_by_split(split)
    assert not (names["train"] & names["val"] or names["train"] & names["test"] or names["val"] & names["test"])
    assert names["train"] | names["val"] | names["test"] == {p.name for p in images}
    s = shrink_domain(split, tmp_path / "out", ratio=10, seed=0)
    assert Path(s["path"]).name == "real_tenth"
    assert s["counts"] == {c: 1 for c in r["counts"]}  # 12/10 and 9/10 round to 1
    s2 = shrink_domain(split, tmp_path / "out", ratio=2, seed=0)
    assert s2["counts"]["truck"] == 5 and s2["counts"]["car"] == 6  # 9/2 = 4.5 rounds up; 12/2 = 6
    shrunk = Path(s2["path"])
    train_names = {p.name for p in (shrunk / "train").rglob("*.jpg")}
    assert train_names <= names["train"] and len(train_names) == 5 + 11 * 6
    assert {p.name for p in (shrunk / "val").rglob("*.jpg")} == names["val"]
    assert {p.name for p in (shrunk / "test").rglob("*.jpg")} == names["test"]


# ------------------------------------------------------------------------------------------------ shrink
def test_shrink_keeps_at_least_one_and_is_a_subset(tmp_path):
    src = write_class_folders(tmp_path / "real", {"a": 20, "b": 10})
    split_domain(src, tmp_path / "o", seed=1)  # train: a 14, b 7
    r = shrink_domain(tmp_path / "o" / "real", tmp_path / "o", ratio=100, seed=1)
    assert r["counts"] == {"a": 1, "b": 1} and Path(r["path"]).name == "real_hundredth"
    r10 = shrink_domain(tmp_path / "o" / "real", tmp_path / "o", ratio=10, seed=1)
    assert r10["counts"] == {"a": 1, "b": 1}
    r5 = shrink_domain(tmp_path / "o" / "real", tmp_path / "o", ratio=5, seed=1)
    assert r5["counts"] == {"a": 3, "b": 1} and fraction_name(5) == "1of5"  # 14/5 = 2.8 -> 3; 7/5 = 1.4 -> 1


# ------------------------------------------------------------------------------------------------ bad input
def test_bad_split_inputs(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DeparaError, match="no class subfolders"):
        split_domain(tmp_path / "empty", tmp_path / "o")
    src = write_class_folders(tmp_path / "syn", {"a": 10})
    (src / "b").mkdir()
    with pytest.raises(DeparaError, match="class 'b' has no images"):
        split_domain(src, tmp_path / "o")
    shutil.rmtree(src / "b")
    with pytest.raises(DeparaError, match="sum to 11"):
        split_domain(src, tmp_path / "o", ratios="7:2:2")
    with pytest.raises(DeparaError, match="three numbers"):
        parse_ratios("7:x:1")
    write_class_folders(src, {"tiny": 3})
    with pytest.raises(DeparaError, match="class 'tiny'.*3 images, too few") as exc:
        split_domain(src, tmp_path / "o")
    assert "\n" not in str(exc.value)
    shutil.rmtree(src / "tiny")
    (src / "a" / "broken.png").write_bytes(b"\x89PNG not really")
    with pytest.raises(DeparaError, match="broken.png: image failed to decode"):
        split_domain(src, tmp_path / "o")
    assert not (tmp_path / "o" / "syn").exists() and not list((tmp_path / "o").glob(".*partial"))
    (src / "a" / "broken.png").unlink()
    split_domain(src, tmp_path / "o")
    with pytest.raises(DeparaError, match="already exists"):
        split_domain(src, tmp_path / "o")


def test_split_failure_midway_leaves_nothing(tmp_path, monkeypatch):
    import depara.benches.data.split as split_mod

    src = write_class_folders(tmp_path / "syn", {"a": 10, "b": 10})
    calls = {"n": 0}
    real_place = split_mod.place_file

    def failing(s, d, mode):
        calls["n"] += 1
        if calls["n"] == 12:
            raise OSError("disk full")
        real_place(s, d, mode)

    monkeypatch.setattr(split_mod, "place_file", failing)
    with pytest.raises(OSError):
        split_domain(src, tmp_path / "o")
    assert not (tmp_path / "o" / "syn").exists() and list((tmp_path / "o").iterdir()) == []


def test_bad_shrink_inputs(tmp_path):
    src = write_class_folders(tmp_path / "real", {"a": 10})
    with pytest.raises(DeparaError, match="no train/ folder"):
        shrink_domain(src, tmp_path / "o")
    split_domain(src, tmp_path / "o")
    with pytest.raises(DeparaError, match="ratio 0"):
        shrink_domain(tmp_path / "o" / "real", tmp_path / "o", ratio=0)


# ------------------------------------------------------------------------------------------------ synth digits
def test_synth_digits(tmp_path):
    from PIL import Image
    from sklearn.datasets import load_digits

    r = make_synth_digits(tmp_path / "a", synthetic_per_class=3, real_per_class=4, size=24, seed=5)
    assert r["counts"] == {"synthetic": 30, "real": 40}
    for dom, n in (("synthetic", 3), ("real", 4)):
        classes = sorted(p.name for p in (tmp_path / "a" / dom).iterdir())
        assert classes == [str(d) for d in range(10)]
        assert all(len(list((tmp_path / "a" / dom / c).iterdir())) == n for c in classes)
    img = np.asarray(Image.open(next((tmp_path / "a/synthetic/7").iterdir())))
    assert img.shape == (24, 24, 3) and img.std() > 5  # not blank
    # synthetic digits are varied: two renders of the same digit differ
    a, b = sorted((tmp_path / "a/synthetic/3").iterdir())[:2]
    assert a.read_bytes() != b.read_bytes()
    # deterministic under the seed
    make_synth_digits(tmp_path / "b", synthetic_per_class=3, real_per_class=4, size=24, seed=5)
    assert _files(tmp_path / "a") == _files(tmp_path / "b")
    assert all((tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes() for f in _files(tmp_path / "a"))
    # each real image is a scikit-learn digit of its class: shrunk back to 8x8 its nearest sklearn digit has its label
    bunch = load_digits()
    ref = bunch.images.reshape(len(bunch.images), -1) * (255 / 16)
    for d in (0, 4, 9):
        for p in (tmp_path / "a/real" / str(d)).iterdir():
            small = np.asarray(Image.open(p).convert("L").resize((8, 8), Image.BILINEAR), dtype=float).ravel()
            assert bunch.target[np.argmin(((ref - small) ** 2).sum(1))] == d


def test_synth_digits_bad_sizes(tmp_path):
    with pytest.raises(DeparaError, match="real_per_class 500"):
        make_synth_digits(tmp_path / "x", synthetic_per_class=1, real_per_class=500, size=16)
    assert not (tmp_path / "x" / "real").exists()
    with pytest.raises(DeparaError, match="size 4"):
        make_synth_digits(tmp_path / "y", size=4)


# ------------------------------------------------------------------------------------------------ CLI
def test_data_cli(tmp_path, capsys):
    assert main(["data", "synth-digits", "--out", str(tmp_path / "d"), "--synthetic-per-class", "10",
                 "--real-per-class", "10", "--size", "16"]) == 0
    assert main(["data", "split", str(tmp_path / "d" / "real"), "--out", str(tmp_path / "s"), "--flat-test"]) == 0
    assert (tmp_path / "s/real/test/test_labels.csv").is_file()
    assert main(["data", "shrink", str(tmp_path / "s" / "real"), "--out", str(tmp_path / "s"), "--ratio", "10"]) == 0
    shrunk = tmp_path / "s/real_tenth"
    assert sum(1 for _ in (shrunk / "train").rglob("*.png")) == 10  # 7 per class / 10 -> 1 each
    assert (shrunk / "test/test_labels.csv").is_file()
    capsys.readouterr()
    assert main(["data", "split", str(tmp_path / "d" / "real"), "--out", str(tmp_path / "t"), "--ratios", "5:5:5"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --ratios 5:5:5") and err.count("\n") == 1


def test_shared_data_dir_is_the_variable_else_the_repositorys_sibling(tmp_path, monkeypatch):
    """One rule for the shared reference data: $DEPARA_SHARED_DATA, else ../shared/data beside the checkout the
    package runs from (this one: two folders above src/depara); the benches read their data through it."""
    import depara
    from depara.benches.taskbank import probesets
    from depara.io.files import repository_root, shared_data_dir

    monkeypatch.setenv("DEPARA_SHARED_DATA", str(tmp_path))
    assert shared_data_dir() == tmp_path
    with pytest.raises(FileNotFoundError, match=rf"^{tmp_path}/visda_real_probe200: no VisDA probe photos"):
        probesets.visda_probes(2, 8)  # the bench's reader follows the variable
    checkout = Path(depara.__file__).resolve().parents[2]
    assert (checkout / "pyproject.toml").is_file() and repository_root() == checkout
    for unset in ("", None):
        if unset is None:
            monkeypatch.delenv("DEPARA_SHARED_DATA")
        else:
            monkeypatch.setenv("DEPARA_SHARED_DATA", unset)
        assert shared_data_dir() == checkout.parent / "shared" / "data"


def test_shared_data_dir_of_an_installed_copy_is_beside_the_current_folder(tmp_path):
    """Installed from a wheel (no checkout around the package), the repository root is the current folder: the
    default is ./../shared/data, whatever folder the package was installed into."""
    import subprocess
    import sys

    import depara

    site = tmp_path / "env" / "lib" / "site-packages"
    shutil.copytree(Path(depara.__file__).parent, site / "depara", ignore=shutil.ignore_patterns("__pycache__"))
    work = tmp_path / "project" / "repo"
    work.mkdir(parents=True)
    env = {k: v for k, v in os.environ.items() if k != "DEPARA_SHARED_DATA"}
    env["PYTHONPATH"] = str(site)
    code = "from depara.benches.taskbank.probesets import shared_data_dir; print(shared_data_dir())"
    out = subprocess.run([sys.executable, "-c", code], cwd=work, env=env, capture_output=True, text=True, check=True)
    assert Path(out.stdout.strip()) == tmp_path / "project" / "shared" / "data"
