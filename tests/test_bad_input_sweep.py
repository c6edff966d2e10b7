"""A systematic bad-input sweep of every user entry point: each CLI command and the public API behind it.

Every case feeds one realistic bad input and asserts what the house rules promise:

* CLI: exit code 2, stderr ONE line ``error: ...`` naming the file / layer / argument (``needle``), no traceback,
  no "internal error", and no output left behind (``--out`` absent, or byte-for-byte what was there before);
* library: one :class:`depara.errors.DeparaError` whose one-line message names the argument.

Each case runs under a hard 20 s alarm so that an input which is wrongly *accepted* (and starts real work) fails
fast instead of hanging the suite. The fixtures are tiny (16 px images, TorchScript nets of a few hundred
parameters); the whole file runs in well under a minute on 2 cores.
"""

from __future__ import annotations

import os
import signal
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from PIL import Image  # noqa: E402
from torch import nn  # noqa: E402

from depara.cli.main import main  # noqa: E402
from depara.errors import DeparaError  # noqa: E402

from _core_torch_helpers import FixedSize  # noqa: E402

SIZE = 16


# ============================================================================================ tiny models
class _Net(nn.Module):
    """Any input size: conv → adaptive pool → linear."""

    def __init__(self, seed: int = 0):
        super().__init__()
        torch.manual_seed(seed)
        self.conv = nn.Conv2d(3, 4, 3)
        self.pool = nn.AdaptiveAvgPool2d(2)
        self.flat = nn.Flatten()
        self.fc = nn.Linear(16, 3)

    def forward(self, x):
        return self.fc(self.flat(self.pool(torch.relu(self.conv(x)))))


class _Boom(nn.Module):
    """Fails in every forward pass (after its first layer ran)."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 2, 3)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(2, 3)

    def forward(self, x):
        y = self.conv(x)
        if y.shape[0] > 0:
            raise RuntimeError("boom: this model always fails")
        return self.fc(self.pool(y).flatten(1))


class _KeyErr(nn.Module):
    """Its forward raises a KeyError (not a RuntimeError): user code can raise anything."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 2, 3)
        self.fc = nn.Linear(2, 3)

    def forward(self, x):
        features: dict = {"conv": self.conv(x)}
        return self.fc(features["missing"])


class _Pair(nn.Module):
    def forward(self, x):
        return x, x * 2


class _DictOut(nn.Module):
    def forward(self, x):
        return {"a": x, "b": x * 2}


class _TupleNet(nn.Module):
    """Its sub-module ``pair`` returns a tuple, ``both`` a dict."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.pair = _Pair()
        self.both = _DictOut()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(4, 3)

    def forward(self, x):
        a, b = self.pair(self.conv(x))
        d = self.both(a + b)
        return self.fc(self.pool(d["a"] + d["b"]).flatten(1))


# ============================================================================================= workspace
def _png(path: Path, rng, size=(SIZE, SIZE), mode="RGB", shift=0) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    a = (rng.random((size[1], size[0], 3)) * 80 + shift).astype(np.uint8)
    Image.fromarray(a).convert(mode).save(path)


def _classes(root: Path, n: int = 4, classes=("a", "b"), seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    for c, name in enumerate(classes):
        for i in range(n):
            _png(root / name / f"{i}.png", rng, shift=70 * c)
    return root


@pytest.fixture(scope="module")
def W(tmp_path_factory) -> dict[str, Path]:
    """Every input of the sweep, built once."""
    d = tmp_path_factory.mktemp("bad")
    rng = np.random.default_rng(0)
    w: dict[str, Path] = {"root": d}
    w["good"] = _classes(d / "good")
    w["flat"] = d / "flat"
    for i in range(6):
        _png(w["flat"] / f"{i}.png", rng)
    w["empty"] = d / "empty"
    w["empty"].mkdir()
    w["missing"] = d / "no_such_folder"
    w["text"] = d / "text"
    for c in ("a", "b"):
        (w["text"] / c).mkdir(parents=True)
        for i in range(3):
            (w["text"] / c / f"{i}.txt").write_text("not an image\n")
    w["fake"] = _classes(d / "fake")
    (w["fake"] / "a" / "fake.png").write_text("this is text, not a PNG")
    w["trunc_png"] = _classes(d / "trunc_png")
    raw = (w["good"] / "a" / "0.png").read_bytes()
    (w["trunc_png"] / "b" / "cut.png").write_bytes(raw[: len(raw) // 2])
    w["trunc_jpg"] = _classes(d / "trunc_jpg")
    big = (rng.random((64, 64, 3)) * 255).astype(np.uint8)
    Image.fromarray(big).save(d / "full.jpg", quality=90)
    jraw = (d / "full.jpg").read_bytes()
    (w["trunc_jpg"] / "a" / "cut.jpg").write_bytes(jraw[: len(jraw) // 3])
    # modes and sizes that must be ACCEPTED (converted / resized)
    w["modes"] = d / "modes"
    (w["modes"] / "deep").mkdir(parents=True)
    for i in range(3):
        _png(w["modes"] / "grey" / f"{i}.png", rng, mode="L")
        _png(w["modes"] / "rgba" / f"{i}.png", rng, mode="RGBA", shift=60)
        _png(w["modes"] / "pal" / f"{i}.png", rng, mode="P", shift=120)
        Image.fromarray((rng.random((SIZE, SIZE)) * 65535).astype(np.uint16)).save(w["modes"] / "deep" / f"{i}.png")
    w["sizes"] = d / "sizes"
    for i, s in enumerate([(16, 16), (40, 24), (20, 64), (33, 33)]):
        _png(w["sizes"] / ("a" if i % 2 else "b") / f"{i}.png", rng, size=s, shift=50 * (i % 2))
    _png(w["sizes"] / "a" / "9.png", rng, size=(25, 17))
    _png(w["sizes"] / "b" / "9.png", rng, size=(17, 25))
    # a symlink that leads outside the named folder
    w["secret"] = d / "secret"
    _png(w["secret"] / "private.png", rng)
    w["leak"] = _classes(d / "leak")
    (w["leak"] / "a" / "leak.png").symlink_to(w["secret"] / "private.png")
    # one class only, and a class folder without images
    w["one"] = _classes(d / "one", classes=("only",))
    w["hollow"] = _classes(d / "hollow")
    (w["hollow"] / "c").mkdir()
    # models (TorchScript files)
    nets = d / "nets"
    nets.mkdir()
    for name, net in {"net": _Net(0), "net1": _Net(1), "fixed32": FixedSize(32), "fixed16": FixedSize(16),
                      "boom": _Boom()}.items():
        torch.jit.script(net).save(str(nets / f"{name}.pt"))
        w[name] = nets / f"{name}.pt"
    w["junk_model"] = nets / "junk.pt"
    w["junk_model"].write_bytes(b"\x00\x01 not a model")
    w["state"] = nets / "state.pt"
    torch.save(_Net(0).state_dict(), w["state"])
    # graphs
    from depara.core.graph import Graph

    g = d / "graphs"
    g.mkdir()
    feats = rng.standard_normal((6, 5)).astype(np.float32)
    ids = [f"p{i}" for i in range(6)]
    for i in range(3):
        Graph.from_arrays(rng.standard_normal((6, 4)), feats + rng.standard_normal((6, 5)), probe_ids=ids
                          ).save(g / f"g{i}.safetensors")
    Graph.from_arrays(rng.standard_normal((6, 4)), feats, probe_ids=[f"q{i}" for i in range(6)]
                      ).save(g / "other_ids.safetensors")
    Graph.from_arrays(rng.standard_normal((7, 4)), rng.standard_normal((7, 5)), probe_ids=[f"p{i}" for i in range(7)]
                      ).save(g / "seven.safetensors")
    graw = (g / "g0.safetensors").read_bytes()
    (g / "trunc.safetensors").write_bytes(graw[: len(graw) // 2])
    from safetensors import safe_open
    from safetensors.numpy import save_file

    with safe_open(str(g / "g0.safetensors"), "np") as fh:
        meta, tensors = dict(fh.metadata()), {k: fh.get_tensor(k) for k in fh.keys()}
    save_file(tensors, str(g / "version.safetensors"), metadata={**meta, "version": "99"})
    save_file({"weights": tensors["nodes"], "edges": tensors["edges"]}, str(g / "wrongkeys_v1.safetensors"),
              metadata=meta)

    save_file({"weights": np.zeros((6, 4), np.float32), "bias": np.zeros(15, np.float32)},
              str(g / "wrongkeys.safetensors"), metadata={"format": "depara-graph"})
    w["graphs"] = g
    w["clean_graphs"] = d / "clean_graphs"
    w["clean_graphs"].mkdir()
    for i in (1, 2):
        (w["clean_graphs"] / f"g{i}.safetensors").write_bytes((g / f"g{i}.safetensors").read_bytes())
    # arrays
    a = d / "arrays"
    a.mkdir()
    np.save(a / "object.npy", np.array([{"x": 1}, None], dtype=object), allow_pickle=True)
    labels = np.array([0, 1, 0, 1, 0, 1, 0, 1])
    np.savez(a / "t_ok.npz", labels=labels)
    np.savez(a / "t_2d.npz", labels=labels.reshape(2, 4))
    np.savez(a / "t_nan.npz", labels=np.array([0, 1, np.nan, 1, 0, 1, 0, 1]))
    np.savez(a / "t_one.npz", labels=np.zeros(8, int))
    np.savez(a / "t_empty.npz", labels=np.zeros(0, int))
    np.savez(a / "t_frac.npz", labels=labels + 0.5)
    np.savez(a / "t_obj.npz", labels=np.array(["a", None] * 4, dtype=object))
    np.savez(a / "s_ok.npz", features=rng.standard_normal((8, 4)))
    np.savez(a / "s_nan.npz", features=np.where(np.eye(8, 4) > 0, np.nan, rng.standard_normal((8, 4))))
    np.savez(a / "s_inf.npz", features=np.where(np.eye(8, 4) > 0, np.inf, rng.standard_normal((8, 4))))
    np.savez(a / "s_1d.npz", features=rng.standard_normal(8))
    np.savez(a / "s_3d.npz", features=rng.standard_normal((8, 2, 2)))
    np.savez(a / "s_rows.npz", features=rng.standard_normal((5, 4)))
    np.savez(a / "s_str.npz", features=np.array([["a", "b"]] * 8))
    zraw = (a / "s_ok.npz").read_bytes()
    (a / "s_trunc.npz").write_bytes(zraw[: len(zraw) // 2])
    (a / "s_junk.npz").write_bytes(b"PK\x03\x04 junk that is not a zip")
    w["arrays"] = a
    # truth / label tables
    t = d / "tables"
    t.mkdir()
    (t / "truth_ok.csv").write_text("source,accuracy\nx,0.5\ny,0.7\n")
    (t / "truth_nan.csv").write_text("source,accuracy\nx,nan\ny,0.7\n")
    (t / "truth_dup.csv").write_text("source,accuracy\nx,0.5\nx,0.6\ny,0.7\n")
    (t / "truth_empty.csv").write_text("")
    (t / "truth_header.csv").write_text("source,accuracy\n")
    (t / "truth_latin1.csv").write_bytes("source,accuracy\nx\xe9,0.5\ny,0.7\n".encode("latin-1"))
    (t / "truth_missing.csv").write_text("source,accuracy\nx,0.5\n")
    (t / "truth_nocol.csv").write_text("name,accuracy\nx,0.5\n")
    (t / "truth_list.json").write_text("[1, 2]")
    (t / "truth_nan.json").write_text('{"x": NaN, "y": 0.7}')
    (t / "matrix_latin1.csv").write_bytes(",a\xe9,b\na\xe9,1,0.5\nb,0.5,1\n".encode("latin-1"))
    (t / "matrix_nan.csv").write_text(",a,b,c\na,1,nan,0.2\nb,0.5,1,0.3\nc,0.2,0.3,1\n")
    (t / "matrix_ok.csv").write_text(",a,b,c\na,1,0.5,0.2\nb,0.5,1,0.3\nc,0.2,0.3,1\n")
    (t / "matrix_rect.csv").write_text(",a,b\na,1,0.5\n")
    (t / "dup_header.csv").write_text("a,b,a\n1,2,3\n")
    (t / "long_row.csv").write_text("a,b\n1,2,3\n")
    w["tables"] = t
    # flat test splits with a labels file (the layer experiment's layout)
    for name, text in {"ok": "file,class\n0.png,a\n1.png,b\n",
                       "missing_file": "file,class\n0.png,a\n1.png,b\n7.png,b\n",
                       "extra_file": "file,class\n0.png,a\n",
                       "duplicate": "file,class\n0.png,a\n1.png,b\n0.png,b\n",
                       "no_class_column": "file,label\n0.png,a\n1.png,b\n",
                       "empty": "",
                       "empty_class": "file,class\n0.png,a\n1.png,\n",
                       "outside": "file,class\n0.png,a\n1.png,b\n../../secret/private.png,b\n"}.items():
        test = d / "flat_test" / name / "test"
        for i in range(2):
            _png(test / f"{i}.png", rng)
        (test / "test_labels.csv").write_text(text)
    latin = d / "flat_test" / "latin1" / "test"
    _png(latin / "0.png", rng)
    (latin / "test_labels.csv").write_bytes("file,class\n0.png,caf\xe9\n".encode("latin-1"))
    w["flat_test"] = d / "flat_test"
    # image-list files
    (d / "list_missing.txt").write_text(f"{w['flat'] / '0.png'}\n{w['flat'] / '1.png'}\n{w['flat'] / '9.png'}\n")
    (d / "list_empty.txt").write_text("\n")
    (d / "list_latin1.txt").write_bytes("caf\xe9.png\n".encode("latin-1"))
    # Taskonomy-format feature roots: one good task beside a bad one
    for name, arr in {"object": np.array([{"x": 1}] * 6, dtype=object), "vector": np.ones(6),
                      "nan": np.where(np.eye(6, 4) > 0, np.nan, 1.0), "rows": np.ones((5, 4))}.items():
        root = d / "tasks" / name
        for task, rows in (("good1", rng.standard_normal((6, 4))), ("good2", rng.standard_normal((6, 4))),
                           ("bad", arr)):
            (root / task).mkdir(parents=True)
            np.save(root / task / "task_feature.npy", rows, allow_pickle=True)
    w["tasks"] = d / "tasks"
    # outputs that exist already (a previous run's results): a failing run must leave them as they were
    prev = d / "previous"
    prev.mkdir()
    (prev / "g.safetensors").write_bytes((g / "g0.safetensors").read_bytes())
    (prev / "results").mkdir()
    (prev / "results" / "ranking.csv").write_text("rank,model\n1,old\n")
    (prev / "results" / "manifest.json").write_text('{"kind": "select"}')
    w["previous"] = prev
    return w


# =========================================================================================== assertions
@contextmanager
def _alarm(seconds: int = 20):
    def fire(signum, frame):  # noqa: ARG001
        raise TimeoutError(f"no error within {seconds} s: the bad input was accepted and real work started")

    old = signal.signal(signal.SIGALRM, fire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def _snapshot(path: Path) -> dict[str, bytes] | None:
    if not path.exists():
        return None
    if path.is_file():
        return {"": path.read_bytes()}
    return {str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}


def cli_fails(args: list[str], needle: str, capsys, out: Path | None = None) -> str:
    """Run ``depara ARGS``; assert a one-line ``error: ...`` containing ``needle``, exit 2, ``out`` unchanged."""
    before = _snapshot(out) if out is not None else None
    capsys.readouterr()
    with _alarm():
        rc = main([str(a) for a in args])
    cap = capsys.readouterr()
    err = cap.err.strip()
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert rc == 2, (args, rc, err)
    assert lines and lines[-1].startswith("error: "), (args, err)
    last = lines[-1]
    assert "Traceback" not in cap.err and "internal error" not in last, (args, err)
    assert len([ln for ln in lines if ln.startswith("error: ")]) == 1, (args, err)
    assert needle in last, (args, needle, last)
    if out is not None:
        assert _snapshot(out) == before, f"{out} changed: {args}"
        parent = out.parent if out.parent.exists() else None
        if parent is not None:
            assert not [p for p in parent.rglob("*.part")], list(parent.rglob("*.part"))
    return last


def lib_fails(fn, needle: str) -> str:
    with _alarm():
        with pytest.raises(DeparaError) as info:
            fn()
    msg = str(info.value)
    assert "\n" not in msg and needle in msg, (needle, msg)
    return msg


# ============================================================================================ CLI cases
def _zoo(w, name: str, text: str) -> Path:
    p = w["root"] / f"{name}.toml"
    p.write_text(text)
    return p


def _sel(w, *extra, data=None, models=None):
    """``depara select`` on the good class folder with one tiny model (16 px) and a private cache."""
    zoo = _zoo(w, "zoo16", f'[[model]]\nname = "net"\nspec = "file:{w["net"]}"\npreprocessing = "16x16"\n')
    head = [data if data is not None else w["good"]]
    head += ["--models", models] if models is not None else ["--zoo", zoo]
    return ["select", *head, "--cache", w["root"] / "cache", "--quiet", "--n-boot", "2", *extra]


def _ext(w, *extra, probes=None, model=None, layer="output"):
    return ["extract", model or f"file:{w['net']}", "--probes", probes or w["flat"], "--layer", layer,
            "--preprocess", "16x16", *extra]


def _score(w, *extra, target=None, sources=None):
    return ["score", "--sources", sources or f"x={w['arrays'] / 's_ok.npz'}", "--target-data",
            target or w["arrays"] / "t_ok.npz", *([] if "--method" in extra else ["--method", "logme"]), *extra]


def _score_out(w, *extra, target=None, sources=None):
    """``_score`` writing its results folder to ``<root>/so`` (which the case must leave absent)."""
    return _score(w, "--out", w["root"] / "so", *extra, target=target, sources=sources)


def _score_source(w, name: str):
    """``_score_out`` with the one source ``x`` read from the bad arrays file ``name``."""
    return _score_out(w, sources=f"x={w['arrays'] / name}")


def _score_target(w, name: str):
    """``_score_out`` with the target read from the bad arrays file ``name``."""
    return _score_out(w, target=w["arrays"] / name)


def _score_truth(w, name: str):
    """``_score_out`` with ``--truth`` the bad table ``name``."""
    return _score_out(w, "--truth", w["tables"] / name)


def _fifo(w, name: str) -> Path:
    p = w["root"] / name
    if not p.exists():
        os.mkfifo(p)
    return p


def _link(w, name: str, target: Path) -> Path:
    p = w["root"] / name
    if not p.is_symlink():
        p.symlink_to(target)
    return p


def _results_holding_data(w) -> Path:
    """A previous results folder (it has a manifest) with the data folder inside it."""
    holder = w["root"] / "holder"
    if not holder.exists():
        _classes(holder / "data")
        (holder / "manifest.json").write_text('{"kind": "select"}')
    return holder


def _broken_cache(w) -> Path:
    """A cache folder whose ``store`` is a file."""
    c = w["root"] / "broken_cache"
    c.mkdir(exist_ok=True)
    (c / "store").write_text("not a folder")
    return c


CLI = {
    # ---- select: data
    "select-missing-folder": lambda w: (_sel(w, data=w["missing"]), "no_such_folder"),
    "select-empty-folder": lambda w: (_sel(w, data=w["empty"]), "empty"),
    "select-text-files": lambda w: (_sel(w, data=w["text"]), "text"),
    "select-fake-png": lambda w: (_sel(w, data=w["fake"]), "fake.png"),
    "select-truncated-png": lambda w: (_sel(w, data=w["trunc_png"]), "cut.png"),
    "select-truncated-jpeg": lambda w: (_sel(w, data=w["trunc_jpg"]), "cut.jpg"),
    "select-symlink-out": lambda w: (_sel(w, data=w["leak"]), "leak.png"),
    "select-one-class": lambda w: (_sel(w, data=w["one"]), "single class"),
    "select-empty-class": lambda w: (_sel(w, data=w["hollow"]), "'c'"),
    # ---- select: models and layers
    "select-unknown-torchvision": lambda w: (_sel(w, models="torchvision:resnet19"), "resnet19"),
    "select-unknown-source": lambda w: (_sel(w, models="resnet:18"), "resnet"),
    "select-missing-model-file": lambda w: (_sel(w, models=f"file:{w['root'] / 'nope.pt'}"), "nope.pt"),
    "select-junk-model-file": lambda w: (_sel(w, models=f"file:{w['junk_model']}"), "junk.pt"),
    "select-state-dict-no-arch": lambda w: (_sel(w, models=f"file:{w['state']}"), "state.pt"),
    "select-unknown-layer": lambda w: (_sel(w, "--layers", "cnv"), "did you mean conv"),
    "select-fixed-size-model": lambda w: (_sel(w, models=f"file:{w['fixed32']}"), "fixed32"),
    "select-fixed-size-in-zoo": lambda w: (["select", w["good"], "--zoo", _zoo(
        w, "mixed", f'[[model]]\nname = "small"\nspec = "file:{w["fixed16"]}"\npreprocessing = "16x16"\n'
                    f'[[model]]\nname = "big"\nspec = "file:{w["fixed32"]}"\npreprocessing = "64x64"\n'),
        "--cache", w["root"] / "cache", "--quiet"], "model big: cannot take the images at its input size 3×64×64"),
    "select-forward-error": lambda w: (_sel(w, models=f"file:{w['boom']}"), "RuntimeError: boom"),
    "select-missing-target-file": lambda w: (_sel(w, "--target-model", f"file:{w['root'] / 'nope_target.pt'}"),
                                             "nope_target.pt: not found"),
    "select-zoo-folder": lambda w: (["select", w["good"], "--zoo", w["root"]],
                                    f"zoo file {w['root']}: is a folder, expected a file"),
    "select-nboot-huge": lambda w: (_sel(w, "--n-boot", "1000000000"), "--n-boot: expected an integer in 0..100000"),
    "select-zoo-missing": lambda w: (["select", w["good"], "--zoo", w["root"] / "nope.toml"], "nope.toml"),
    "select-zoo-junk": lambda w: (["select", w["good"], "--zoo", _zoo(w, "junk", "[[model\nname=")], "junk.toml"),
    # ---- select: numbers
    "select-seed-negative": lambda w: (_sel(w, "--seed", "-1"), "seed"),
    "select-seed-text": lambda w: (_sel(w, "--seed", "abc"), "--seed"),
    "select-seed-nan": lambda w: (_sel(w, "--seed", "nan"), "--seed"),
    "select-probes-zero": lambda w: (_sel(w, "--probes", "0"), "--probes: expected an integer >= 3"),
    "select-probes-negative": lambda w: (_sel(w, "--probes", "-5"), "probes"),
    "select-batch-zero": lambda w: (_sel(w, "--batch-size", "0"), "--batch-size"),
    "select-batch-negative": lambda w: (_sel(w, "--batch-size", "-2"), "batch"),
    "select-nboot-negative": lambda w: (_sel(w, "--n-boot", "-1"), "--n-boot"),
    "select-memory-negative": lambda w: (_sel(w, "--feature-memory-mb", "-1"), "feature"),
    "select-memory-nan": lambda w: (_sel(w, "--feature-memory-mb", "nan"), "--feature-memory-mb"),
    "select-device-bogus": lambda w: (_sel(w, "--device", "gpu9"), "--device"),
    "select-scorer-unknown": lambda w: (_sel(w, "--scorers", "logmee"), "logmee"),
    # ---- select: outputs
    "select-out-missing-parent": lambda w: (_sel(w, "--out", w["root"] / "nowhere" / "deeper" / "o"), "nowhere"),
    "select-out-is-file": lambda w: (_sel(w, "--out", w["tables"] / "truth_ok.csv"), "truth_ok.csv"),
    "select-cache-is-file": lambda w: (["select", w["good"], "--models", f"file:{w['net']}", "--cache",
                                        w["tables"] / "truth_ok.csv"], "truth_ok.csv"),
    # ---- select: outputs and cache apart from the data, checked before any work (issue 23)
    "select-out-inside-data": lambda w: (_sel(w, "--out", w["good"] / "results"),
                                         "--out " + str(w["good"] / "results") + ": is inside the data folder"),
    "select-out-is-data": lambda w: (_sel(w, "--out", w["good"]), "is the data folder"),
    "select-out-link-into-data": lambda w: (_sel(w, "--out", _link(w, "out_link", w["good"]) / "r"),
                                            "is inside the data folder"),
    "select-out-foreign-folder": lambda w: (_sel(w, "--out", w["secret"]), "not a depara results folder"),
    "select-out-holds-data": lambda w: (_sel(w, "--out", _results_holding_data(w), data=w["root"] / "holder" / "data"),
                                        "holds the data"),
    "select-cache-inside-data": lambda w: (["select", w["good"], "--models", f"file:{w['net']}", "--cache",
                                            w["good"] / "cache"], "--cache " + str(w["good"] / "cache")),
    "select-cache-broken": lambda w: (["select", w["good"], "--models", f"file:{w['net']}", "--cache",
                                       _broken_cache(w)], "a broken cache"),
    "select-cache-readonly-missing": lambda w: (_sel(w, "--cache-readonly", "--cache", w["root"] / "no_cache"),
                                                "a read-only cache must exist"),
    "select-data-fifo": lambda w: (_sel(w, data=_fifo(w, "data.fifo")), "not a regular file (a FIFO"),
    "select-zoo-fifo": lambda w: (["select", w["good"], "--zoo", _fifo(w, "zoo_fifo.toml")], "FIFO"),
    "select-zoo-deep": lambda w: (["select", w["good"], "--zoo", _zoo(
        w, "deep", '[[model]]\nname = "n"\nspec = "torchvision:resnet18"\nlayers = ' + "[" * 3000 + "]" * 3000)],
        "zoo file " + str(w["root"] / "deep.toml") + ": nested too deeply"),
    "select-zoo-nan": lambda w: (["select", w["good"], "--zoo", _zoo(
        w, "nan", f'[[model]]\nname = "n"\nspec = "file:{w["net"]}"\npreprocessing = "16x16:nan:0.5"\n')],
        "entry 1 ('n'): field 'preprocessing'"),
    "select-zoo-path-escapes": lambda w: (["select", w["good"], "--zoo", _zoo(
        w, "escape", '[[model]]\nname = "n"\nspec = "file:../secret.pt"\n')], "outside the zoo file's folder"),
    # ---- extract
    "extract-missing-probes": lambda w: (_ext(w, "--out", w["root"] / "g.safetensors", probes=w["missing"]),
                                         "no_such_folder"),
    "extract-empty-probes": lambda w: (_ext(w, "--out", w["root"] / "g.safetensors", probes=w["empty"]), "empty"),
    "extract-text-probes": lambda w: (_ext(w, "--out", w["root"] / "g.safetensors", probes=w["text"]), "text"),
    "extract-truncated": lambda w: (_ext(w, "--out", w["root"] / "g.safetensors", probes=w["trunc_png"]), "cut.png"),
    "extract-unknown-layer": lambda w: (_ext(w, "--out", w["root"] / "g.safetensors", layer="feature.3",
                                             model="torchvision:squeezenet1_1"), "did you mean features.3"),
    "extract-torchscript-inner-layer": lambda w: (_ext(w, "--out", w["root"] / "g.safetensors", layer="conv"),
                                                  "only the output"),
    "extract-fixed-size": lambda w: (_ext(w, "--out", w["root"] / "g.safetensors", model=f"file:{w['fixed32']}"),
                                     "fixed32"),
    "extract-forward-error": lambda w: (_ext(w, "--out", w["root"] / "g.safetensors", model=f"file:{w['boom']}"),
                                        "RuntimeError: boom"),
    "extract-batch-zero": lambda w: (_ext(w, "--out", w["root"] / "g.safetensors", "--batch-size", "0"),
                                     "--batch-size"),
    "extract-batch-negative": lambda w: (_ext(w, "--out", w["root"] / "g.safetensors", "--batch-size", "-3"),
                                         "batch"),
    "extract-node-size-negative": lambda w: (_ext(w, "--out", w["root"] / "g.safetensors", "--node-size", "-1"),
                                             "node-size"),
    "extract-memory-negative": lambda w: (_ext(w, "--out", w["root"] / "g.safetensors", "--feature-memory-mb",
                                               "-1"), "feature"),
    "extract-seed-negative": lambda w: (_ext(w, "--out", w["root"] / "g.safetensors", "--seed", "-1"), "seed"),
    "extract-seed-text": lambda w: (_ext(w, "--out", w["root"] / "g.safetensors", "--seed", "x1"), "--seed"),
    "extract-probes-per-task-zero": lambda w: (_ext(w, "--out", w["root"] / "g.safetensors", "--probes-per-task",
                                                    "0"), "probes-per-task"),
    "extract-probes-per-task-ray-zero": lambda w: (_ext(w, "--out", w["root"] / "g.safetensors", "--engine", "ray",
                                                        "--probes-per-task", "0"), "--probes-per-task"),
    "extract-probes-per-task-ray-text": lambda w: (_ext(w, "--out", w["root"] / "g.safetensors", "--engine", "ray",
                                                        "--probes-per-task", "all"), "--probes-per-task"),
    "extract-preprocess-bad": lambda w: (["extract", f"file:{w['net']}", "--probes", w["flat"], "--layer", "output",
                                          "--preprocess", "0x16", "--out", w["root"] / "g.safetensors"],
                                         "preprocess size: expected positive sizes"),
    "extract-out-missing-parent": lambda w: (_ext(w, "--out", w["root"] / "nowhere" / "g.safetensors"), "nowhere"),
    "extract-out-existing-folder-file": lambda w: (_ext(w, "--layer", "fc", "--out", w["tables"] / "truth_ok.csv"),
                                                   "truth_ok.csv"),
    # ---- layers
    "layers-unknown-model": lambda w: (["layers", "torchvision:resnet19"], "resnet19"),
    "layers-input-size-zero": lambda w: (["layers", f"file:{w['net']}", "--input-size", "3", "0", "0"],
                                         "input"),
    "layers-input-size-negative": lambda w: (["layers", f"file:{w['net']}", "--input-size", "3", "-4", "16"],
                                             "input"),
    "layers-fixed-size": lambda w: (["layers", f"file:{w['fixed32']}", "--input-size", "3", "16", "16"], "fixed32"),
    # ---- compare / rank
    "compare-truncated": lambda w: (["compare", w["graphs"] / "g0.safetensors", w["graphs"] / "trunc.safetensors"],
                                    "trunc.safetensors"),
    "compare-version": lambda w: (["compare", w["graphs"] / "g0.safetensors", w["graphs"] / "version.safetensors"],
                                  "version"),
    "compare-wrong-keys": lambda w: (["compare", w["graphs"] / "g0.safetensors",
                                      w["graphs"] / "wrongkeys.safetensors"], "wrongkeys.safetensors"),
    "compare-probe-ids": lambda w: (["compare", w["graphs"] / "g0.safetensors",
                                     w["graphs"] / "other_ids.safetensors"], "different probes"),
    "compare-probe-count": lambda w: (["compare", w["graphs"] / "g0.safetensors", w["graphs"] / "seven.safetensors"],
                                      "probes"),
    "compare-npy-as-graph": lambda w: (["compare", w["graphs"] / "g0.safetensors", w["arrays"] / "object.npy"],
                                       "object.npy"),
    "compare-lam-negative": lambda w: (["compare", w["graphs"] / "g0.safetensors", w["graphs"] / "g1.safetensors",
                                        "--lam", "-1"], "lam"),
    "compare-lam-nan": lambda w: (["compare", w["graphs"] / "g0.safetensors", w["graphs"] / "g1.safetensors",
                                   "--lam", "nan"], "lam"),
    "compare-lam-text": lambda w: (["compare", w["graphs"] / "g0.safetensors", w["graphs"] / "g1.safetensors",
                                    "--lam", "big"], "--lam"),
    "compare-out-missing-parent": lambda w: (["compare", w["graphs"] / "g0.safetensors",
                                              w["graphs"] / "g1.safetensors", "--out",
                                              w["root"] / "nowhere" / "m.csv"], "nowhere"),
    "rank-target-missing": lambda w: (["rank", "--target", w["graphs"] / "nope.safetensors", "--sources",
                                       w["graphs"]], "nope.safetensors"),
    "rank-sources-file": lambda w: (["rank", "--target", w["graphs"] / "g0.safetensors", "--sources",
                                     w["graphs"] / "g1.safetensors"], "g1.safetensors"),
    "rank-lam-negative": lambda w: (["rank", "--target", w["graphs"] / "g0.safetensors", "--sources",
                                     w["clean_graphs"], "--lam", "-2"], "lam"),
    "rank-bad-source-file": lambda w: (["rank", "--target", w["graphs"] / "g0.safetensors", "--sources",
                                        w["graphs"]], ".safetensors"),
    # ---- score (npz mode)
    "score-target-object": lambda w: (_score_target(w, "t_obj.npz"), "t_obj.npz"),
    "score-target-2d": lambda w: (_score_target(w, "t_2d.npz"), "'labels' has shape (2, 4), expected a vector"),
    "score-target-nan": lambda w: (_score_target(w, "t_nan.npz"), "labels"),
    "score-target-one-class": lambda w: (_score_target(w, "t_one.npz"), "class"),
    "score-target-empty": lambda w: (_score_target(w, "t_empty.npz"), "'labels' has shape (0,)"),
    "score-target-fraction": lambda w: (_score_target(w, "t_frac.npz"), "labels"),
    "score-target-npy": lambda w: (_score_target(w, "object.npy"), "object.npy"),
    "score-source-nan": lambda w: (_score_source(w, "s_nan.npz"), "NaN"),
    "score-source-inf": lambda w: (_score_source(w, "s_inf.npz"), "inf"),
    "score-source-1d": lambda w: (_score_source(w, "s_1d.npz"), "features"),
    "score-source-rows": lambda w: (_score_source(w, "s_rows.npz"), "rows"),
    "score-source-strings": lambda w: (_score_source(w, "s_str.npz"), "features"),
    "score-source-truncated": lambda w: (_score_source(w, "s_trunc.npz"), "s_trunc.npz"),
    "score-source-junk": lambda w: (_score_source(w, "s_junk.npz"), "s_junk.npz"),
    "score-truth-nan": lambda w: (_score_truth(w, "truth_nan.csv"), "truth_nan.csv"),
    "score-truth-nan-json": lambda w: (_score_truth(w, "truth_nan.json"), "truth_nan.json"),
    "score-truth-duplicate": lambda w: (_score_truth(w, "truth_dup.csv"), "truth_dup.csv"),
    "score-truth-empty": lambda w: (_score_truth(w, "truth_empty.csv"), "truth_empty.csv"),
    "score-truth-header-only": lambda w: (_score_truth(w, "truth_header.csv"), "truth_header.csv"),
    "score-truth-latin1": lambda w: (_score_truth(w, "truth_latin1.csv"), "truth_latin1.csv"),
    "score-truth-no-source-col": lambda w: (_score_truth(w, "truth_nocol.csv"), "truth_nocol.csv"),
    "score-truth-list-json": lambda w: (_score_truth(w, "truth_list.json"), "truth_list.json"),
    "score-truth-missing-source": lambda w: (_score_out(w, "--truth",
                                                    w["tables"] / "truth_missing.csv",
                                                    sources=f"x={w['arrays'] / 's_ok.npz'},"
                                                            f"y={w['arrays'] / 's_ok.npz'},"
                                                            f"z={w['arrays'] / 's_ok.npz'}"), "truth"),
    "score-truth-missing-file": lambda w: (_score_truth(w, "no.csv"), "no.csv"),
    "score-ks-zero": lambda w: (_score_out(w, "--truth", w["tables"] / "truth_ok.csv",
                                       "--ks", "0",
                                       sources=f"x={w['arrays'] / 's_ok.npz'},y={w['arrays'] / 's_ok.npz'}"), "K"),
    "score-ks-text": lambda w: (_score_out(w, "--ks", "one"), "--ks"),
    "score-lam-negative": lambda w: (_score_out(w, "--lam", "-1", "--method", "depara"),
                                     "lam"),
    "score-method-unknown": lambda w: (_score_out(w, "--method", "logmee"), "logmee"),
    "score-out-missing-parent": lambda w: (_score(w, "--out", w["root"] / "nowhere" / "x" / "so"), "nowhere"),
    "score-out-is-file": lambda w: (_score(w, "--out", w["tables"] / "truth_ok.csv"), "truth_ok.csv"),
    # ---- score (image mode)
    "score-images-one-class": lambda w: (_score_out(w, target=w["one"],
                                                sources="torchvision:net"), "class"),
    "score-images-fixed-size": lambda w: (_score_out(w, "--preprocess", "16x16",
                                                 target=w["good"],
                                                 sources="a=torchvision:fixed16,b=torchvision:fixed32"),
                                      "source b: the model cannot run on 16×16 inputs"),
    "score-images-forward-error": lambda w: (_score_out(w, "--preprocess", "16x16",
                                                    target=w["good"], sources="torchvision:boom"),
                                             "source boom: the model cannot run"),
    "score-images-truncated": lambda w: (_score_out(w, "--preprocess", "16x16",
                                                target=w["trunc_png"], sources="torchvision:net"), "cut.png"),
    "score-images-batch-zero": lambda w: (_score_out(w, "--batch-size", "0",
                                                 target=w["good"], sources="torchvision:net"), "--batch-size"),
    "score-images-max-probes": lambda w: (_score_out(w, "--max-probes", "1",
                                                 target=w["good"], sources="torchvision:net"), "--max-probes"),
    # ---- outputs: a file where a folder is expected, a folder where a file is, a missing parent
    "rank-out-is-file": lambda w: (["rank", "--target", w["graphs"] / "g0.safetensors", "--sources",
                                    w["clean_graphs"], "--out", w["tables"] / "truth_ok.csv"], "truth_ok.csv"),
    "rank-out-foreign-folder": lambda w: (["rank", "--target", w["graphs"] / "g0.safetensors", "--sources",
                                           w["clean_graphs"], "--out", w["secret"]], "not a depara results folder"),
    "score-out-inside-target-data": lambda w: (_score(w, "--out", w["good"] / "so", target=w["good"],
                                                      sources="torchvision:net"), "is inside the --target-data"),
    "rank-csv-is-folder": lambda w: (["rank", "--target", w["graphs"] / "g0.safetensors", "--sources",
                                      w["clean_graphs"], "--csv", w["empty"]], "--csv"),
    "compare-out-is-folder": lambda w: (["compare", w["graphs"] / "g0.safetensors", w["graphs"] / "g1.safetensors",
                                         "--out", w["empty"]], "--out"),
    "data-split-out-is-file": lambda w: (["data", "split", w["good"], "--out", w["tables"] / "truth_ok.csv"],
                                         "truth_ok.csv"),
    "data-synth-out-is-file": lambda w: (["data", "synth-digits", "--out", w["tables"] / "truth_ok.csv"],
                                         "truth_ok.csv"),
    "train-out-is-file": lambda w: (["train", w["good"], "--domain", "a", "--out", w["tables"] / "truth_ok.csv"],
                                    "truth_ok.csv"),
    "layers-select-out-is-file": lambda w: (["layers-select", "--source", "imagenet", "--target", w["missing"],
                                             "--probes", w["flat"], "--out", w["tables"] / "truth_ok.csv"],
                                            "truth_ok.csv"),
    "bench-taskbank-out-is-file": lambda w: (["bench", "taskbank", "--out", w["tables"] / "truth_ok.csv"],
                                             "truth_ok.csv"),
    "demo-layers-out-is-file": lambda w: (["demo", "layers", "--out", w["tables"] / "truth_ok.csv"], "truth_ok.csv"),
    "taskonomy-out-is-file": lambda w: (["taskonomy", "matrices", "--features", w["tasks"] / "nan", "--out",
                                         w["tables"] / "truth_ok.csv"], "truth_ok.csv"),
    "tree-out-is-folder": lambda w: (["tree", "--matrix", w["tables"] / "matrix_ok.csv", "--out", w["empty"]],
                                     "--out"),
    "tree-heatmap-missing-parent": lambda w: (["tree", "--matrix", w["tables"] / "matrix_ok.csv", "--out",
                                               w["root"] / "tree.png", "--heatmap", w["root"] / "nohm" / "h.png"],
                                              "--heatmap"),
    # ---- image lists
    "select-list-missing-entry": lambda w: (_sel(w, data=w["root"] / "list_missing.txt"), "9.png"),
    "select-list-empty": lambda w: (_sel(w, data=w["root"] / "list_empty.txt"), "list_empty.txt"),
    "select-list-latin1": lambda w: (_sel(w, data=w["root"] / "list_latin1.txt"), "list_latin1.txt"),
    "extract-list-missing-entry": lambda w: (_ext(w, "--out", w["root"] / "g.safetensors",
                                                  probes=w["root"] / "list_missing.txt"), "9.png"),
    # ---- a previous run's outputs are left as they were when a run fails
    "extract-existing-graph-kept": lambda w: (_ext(w, "--out", w["previous"] / "g.safetensors",
                                                   model=f"file:{w['boom']}"), "RuntimeError: boom"),
    "select-existing-results-kept": lambda w: (_sel(w, "--out", w["previous"] / "results",
                                                    models=f"file:{w['boom']}"), "model boom"),
    "score-existing-results-kept": lambda w: (_score(w, "--out", w["previous"] / "results", "--truth",
                                                     w["tables"] / "truth_nan.csv"), "truth_nan.csv"),
    "taskonomy-existing-results-kept": lambda w: (["taskonomy", "matrices", "--features", w["tasks"] / "nan",
                                                   "--out", w["previous"] / "results"], "bad"),
    # ---- taskonomy features (.npy)
    "taskonomy-object-npy": lambda w: (["taskonomy", "matrices", "--features", w["tasks"] / "object", "--out",
                                        w["root"] / "tm"], "bad/task_feature.npy"),
    "taskonomy-vector-npy": lambda w: (["taskonomy", "matrices", "--features", w["tasks"] / "vector", "--out",
                                        w["root"] / "tm"], "bad"),
    "taskonomy-nan-npy": lambda w: (["taskonomy", "matrices", "--features", w["tasks"] / "nan", "--out",
                                     w["root"] / "tm"], "non-finite"),
    "taskonomy-rows-npy": lambda w: (["taskonomy", "matrices", "--features", w["tasks"] / "rows", "--out",
                                      w["root"] / "tm"], "bad/task_feature.npy has 5"),
    "taskonomy-lam-negative": lambda w: (["taskonomy", "matrices", "--features", w["tasks"] / "nan", "--out",
                                          w["root"] / "tm", "--lam", "-1"], "--lam"),
    # ---- tree / taskonomy
    "tree-latin1": lambda w: (["tree", "--matrix", w["tables"] / "matrix_latin1.csv", "--out", w["root"] / "t.png"],
                              "matrix_latin1.csv"),
    "tree-nan": lambda w: (["tree", "--matrix", w["tables"] / "matrix_nan.csv", "--out", w["root"] / "t.png"],
                           "non-finite"),
    "tree-rect": lambda w: (["tree", "--matrix", w["tables"] / "matrix_rect.csv", "--out", w["root"] / "t.png"],
                            "matrix_rect.csv"),
    "tree-missing": lambda w: (["tree", "--matrix", w["tables"] / "nope.csv", "--out", w["root"] / "t.png"],
                               "nope.csv"),
    "taskonomy-missing": lambda w: (["taskonomy", "matrices", "--features", w["missing"], "--out",
                                     w["root"] / "tm"], "no_such_folder"),
    "taskonomy-empty": lambda w: (["taskonomy", "matrices", "--features", w["empty"], "--out", w["root"] / "tm"],
                                  "empty"),
    "taskonomy-plot-relevant-zero": lambda w: (["taskonomy", "plot", "--matrices", w["empty"], "--truth", w["empty"],
                                                "--out",
                                                w["root"] / "tp", "--relevant", "0"], "relevant"),
    # ---- report / cache / demo / bench / data / train (option checks before any work)
    "report-missing": lambda w: (["report", w["missing"]], "no_such_folder"),
    "report-no-manifest": lambda w: (["report", w["empty"]], "manifest"),
    "report-out-is-file": lambda w: (["report", w["empty"], "--out", w["tables"] / "truth_ok.csv"], "truth_ok"),
    "cache-is-file": lambda w: (["cache", "info", "--cache", w["tables"] / "truth_ok.csv"], "truth_ok.csv"),
    "demo-seed-negative": lambda w: (["demo", "--seed", "-1", "--out", w["root"] / "demo"], "--seed"),
    "demo-out-is-file": lambda w: (["demo", "--out", w["tables"] / "truth_ok.csv"], "truth_ok.csv"),
    "demo-layers-seed-negative": lambda w: (["demo", "layers", "--seed", "-1", "--out", w["root"] / "dl"], "seed"),
    "bench-taskbank-seed-negative": lambda w: (["bench", "taskbank", "--seed", "-1", "--out", w["root"] / "bt"],
                                               "seed"),
    "bench-taskbank-threads-negative": lambda w: (["bench", "taskbank", "--threads", "-1", "--out",
                                                   w["root"] / "bt"], "threads"),
    "bench-taskbank-scale": lambda w: (["bench", "taskbank", "--scale", "huge", "--out", w["root"] / "bt"],
                                       "huge"),
    "bench-realbank-seed-negative": lambda w: (["bench", "realbank", "--seed", "-1", "--out", w["root"] / "br"],
                                               "seed"),
    "bench-realbank-threads-negative": lambda w: (["bench", "realbank", "--threads", "-1", "--out",
                                                   w["root"] / "br"], "threads"),
    "data-split-missing": lambda w: (["data", "split", w["missing"], "--out", w["root"] / "ds"], "no_such_folder"),
    "data-split-text": lambda w: (["data", "split", w["text"], "--out", w["root"] / "ds"], "text"),
    "data-split-symlink-out": lambda w: (["data", "split", w["leak"], "--out", w["root"] / "ds", "--mode", "copy"],
                                         "a/leak.png links to"),
    "data-split-seed-negative": lambda w: (["data", "split", w["good"], "--out", w["root"] / "ds", "--seed", "-1"],
                                           "seed"),
    "data-split-ratios": lambda w: (["data", "split", w["good"], "--out", w["root"] / "ds", "--ratios", "-1:2:9"],
                                    "ratios"),
    "data-shrink-ratio-zero": lambda w: (["data", "shrink", w["good"], "--out", w["root"] / "dsh", "--ratio", "0"],
                                         "ratio"),
    "data-shrink-ratio-negative": lambda w: (["data", "shrink", w["good"], "--out", w["root"] / "dsh", "--ratio",
                                              "-3"], "ratio"),
    "data-synth-size-zero": lambda w: (["data", "synth-digits", "--out", w["root"] / "sd", "--size", "0"], "size"),
    "data-synth-count-negative": lambda w: (["data", "synth-digits", "--out", w["root"] / "sd",
                                             "--synthetic-per-class", "-1"], "synthetic-per-class"),
    "data-synth-seed-negative": lambda w: (["data", "synth-digits", "--out", w["root"] / "sd", "--seed", "-1"],
                                           "seed"),
    "train-epochs-negative": lambda w: (["train", w["good"], "--domain", "x", "--out", w["root"] / "tr",
                                         "--epochs", "-1"], "epochs"),
    "train-batch-zero": lambda w: (["train", w["good"], "--domain", "x", "--out", w["root"] / "tr",
                                    "--batch-size", "0"], "batch"),
    "train-lr-nan": lambda w: (["train", w["good"], "--domain", "x", "--out", w["root"] / "tr", "--lr", "nan"],
                               "lr"),
    "train-width-zero": lambda w: (["train", w["good"], "--domain", "x", "--out", w["root"] / "tr", "--width", "0"],
                                   "width"),
    "train-image-size-too-small": lambda w: (["train", w["good"], "--domain", "x", "--out", w["root"] / "tr",
                                              "--image-size", "16"], "--image-size"),
    "train-lr-negative": lambda w: (["train", w["good"], "--domain", "x", "--out", w["root"] / "tr", "--lr", "-1"],
                                    "--lr"),
    "train-momentum-above-one": lambda w: (["train", w["good"], "--domain", "x", "--out", w["root"] / "tr",
                                            "--momentum", "5"], "--momentum"),
    "train-weight-decay-negative": lambda w: (["train", w["good"], "--domain", "x", "--out", w["root"] / "tr",
                                               "--weight-decay", "-1"], "--weight-decay"),
    "transfer-lr-inf": lambda w: (["transfer", w["good"], "--source", "imagenet", "--out", w["root"] / "tf",
                                   "--lr", "inf"], "--lr"),
    "transfer-eval-every-zero": lambda w: (["transfer", w["good"], "--source", "imagenet", "--out",
                                            w["root"] / "tf", "--eval-every", "0"], "--eval-every"),
    "train-seed-negative": lambda w: (["train", w["good"], "--domain", "x", "--out", w["root"] / "tr", "--seed",
                                       "-1"], "seed"),
    "transfer-depth-negative": lambda w: (["transfer", w["good"], "--source", "imagenet", "--out", w["root"] / "tf",
                                           "--depth", "-1"], "depth"),
    "transfer-epochs-negative": lambda w: (["transfer", w["good"], "--source", "imagenet", "--out", w["root"] / "tf",
                                            "--epochs", "-1"], "epochs"),
    "layers-select-out-is-target": lambda w: (["layers-select", "--source", "imagenet", "--target", w["good"],
                                               "--probes", w["flat"], "--out", w["good"]], "is the --target folder"),
    "layers-select-lam-negative": lambda w: (["layers-select", "--source", "imagenet", "--target", w["missing"],
                                              "--probes", w["flat"], "--out", w["root"] / "ls", "--lam", "-1"],
                                             "lam"),
    "layers-select-lam-text": lambda w: (["layers-select", "--source", "imagenet", "--target", w["missing"],
                                          "--probes", w["flat"], "--out", w["root"] / "ls", "--lam", "x"], "lam"),
}


@pytest.fixture(scope="module")
def tuple_model(W) -> Path:
    p = W["root"] / "nets" / "tuple.pt"
    torch.jit.script(_TupleNet()).save(str(p))
    return p


@pytest.mark.parametrize("case", sorted(CLI))
def test_cli_bad_input(case, W, tuple_model, capsys, monkeypatch):
    import depara.cli.score as score_cli

    # `depara score` on images hooks eager modules (TorchScript has no hooks): its loader gives these
    eager = {"torchvision:net": _Net, "torchvision:fixed16": lambda: FixedSize(16), "torchvision:fixed32":
             lambda: FixedSize(32), "torchvision:boom": _Boom}
    real_loader = score_cli._load_model
    monkeypatch.setattr(score_cli, "_load_model", lambda spec: eager[spec]() if spec in eager else real_loader(spec))
    args = CLI[case](W)
    args, needle = args[0], args[1]
    out = None
    for flag in ("--out",):
        if flag in args:
            out = Path(args[args.index(flag) + 1])
    msg = cli_fails(args, needle, capsys, out=out)
    if os.environ.get("DEPARA_SHOW_ERRORS"):  # print every message, to review their wording
        with capsys.disabled():
            print(f"\n{case}: {msg}")


# ============================================================================================ API cases
def _entry(name, module, size=SIZE, layers="auto"):
    from depara.extraction.zoo import ModelEntry

    return ModelEntry(name, f"module:{name}", preprocessing=f"{size}x{size}", module=module, layers=layers)


def _probes(w, folder="flat", prep="16x16"):
    from depara.extraction.probes import ProbeSet

    return ProbeSet.from_folder(w[folder], prep)


def _graph(w, name="g0"):
    from depara.core.graph import Graph

    return Graph.load(w["graphs"] / f"{name}.safetensors")


def _select(w, tmp, **kw):
    import depara

    args = dict(data=w["good"], models={"net": _entry("net", _Net(0))}, n_boot=2, cache_dir=tmp)
    args.update(kw)
    return depara.select(**args)


def _read_zoo(path):
    from depara.extraction.zoo import read_zoo

    return read_zoo(path)


def _harness(models, images, labels, **kw):
    from depara.selection import harness

    return harness.run_harness(models, images, labels, methods="logme", **kw)


API = {
    # ---- depara.select: arguments
    "select-seed-negative": lambda w, t: (lambda: _select(w, t, seed=-1), "seed: expected an integer >= 0"),
    "select-seed-nan": lambda w, t: (lambda: _select(w, t, seed=float("nan")), "seed: expected an integer"),
    "select-seed-string": lambda w, t: (lambda: _select(w, t, seed="1"), "seed: expected an integer"),
    "select-seed-bool": lambda w, t: (lambda: _select(w, t, seed=True), "seed: expected an integer"),
    "select-probes-float": lambda w, t: (lambda: _select(w, t, probes=2.5), "probes: expected an integer >= 3"),
    "select-probes-two": lambda w, t: (lambda: _select(w, t, probes=2), "probes: expected an integer >= 3"),
    "select-nboot-negative": lambda w, t: (lambda: _select(w, t, n_boot=-1), "n_boot"),
    "select-peer-boot-nan": lambda w, t: (lambda: _select(w, t, peer_boot=float("nan")), "peer_boot"),
    "select-batch-zero": lambda w, t: (lambda: _select(w, t, batch_size=0), "batch_size"),
    "select-memory-inf": lambda w, t: (lambda: _select(w, t, feature_memory_mb=float("inf")), "feature_memory_mb"),
    "select-memory-string": lambda w, t: (lambda: _select(w, t, feature_memory_mb="2G"), "feature_memory_mb"),
    "select-device": lambda w, t: (lambda: _select(w, t, device="tpu:0"), "device"),
    "select-protocol": lambda w, t: (lambda: _select(w, t, protocol="zero-shot"), "protocol"),
    "select-layers-empty": lambda w, t: (lambda: _select(w, t, layers=[]), "layers"),
    "select-layers-int": lambda w, t: (lambda: _select(w, t, layers=3), "layers"),
    "select-layers-unknown": lambda w, t: (lambda: _select(w, t, layers=["fcc"]), "did you mean fc"),
    "select-models-empty": lambda w, t: (lambda: _select(w, t, models=[]), "models"),
    "select-models-int": lambda w, t: (lambda: _select(w, t, models=5), "models"),
    "select-data-int": lambda w, t: (lambda: _select(w, t, data=5), "data"),
    "select-scorers-unknown": lambda w, t: (lambda: _select(w, t, scorers=["nope"]), "scorers"),
    "select-engine": lambda w, t: (lambda: _select(w, t, engine="spark"), "engine"),
    # ---- depara.select: the cache, checked before any work (issue 23)
    "select-cache-file": lambda w, t: (lambda: _select(w, t, cache_dir=w["tables"] / "truth_ok.csv"),
                                       "cache_dir " + str(w["tables"] / "truth_ok.csv") + ": exists and is not"),
    "select-cache-inside-data": lambda w, t: (lambda: _select(w, t, cache_dir=w["good"] / "c"),
                                              "cache_dir " + str(w["good"] / "c") + ": is inside the data folder"),
    "select-cache-broken": lambda w, t: (lambda: _select(w, t, cache_dir=_broken_cache(w)), "a broken cache"),
    "select-cache-readonly-ray": lambda w, t: (lambda: _select(w, t, cache_readonly=True, engine="ray"),
                                               "cache_readonly"),
    "select-data-fifo": lambda w, t: (lambda: _select(w, t, data=_fifo(w, "api_data.fifo")), "FIFO"),
    "zoo-fifo": lambda w, t: (lambda: _read_zoo(_fifo(w, "api_zoo.toml")), "not a regular file"),
    "zoo-deep": lambda w, t: (lambda: _read_zoo(_zoo(w, "api_deep", "a = " + "[" * 3000 + "]" * 3000)),
                              "nested too deeply"),
    "zoo-nan-preprocessing": lambda w, t: (lambda: _read_zoo(_zoo(
        w, "api_nan", '[[model]]\nname = "n"\nspec = "torchvision:resnet18"\npreprocessing = "16x16:0.5:nan"\n')),
        "api_nan.toml: entry 1 ('n'): field 'preprocessing'"),
    "zoo-file-escapes": lambda w, t: (lambda: _read_zoo(_zoo(
        w, "api_escape", '[[model]]\nname = "n"\nspec = "file:nets/../../x.pt"\n')), "field 'spec' path"),
    "zoo-weights-escape": lambda w, t: (lambda: _read_zoo(_zoo(
        w, "api_wescape", '[[model]]\nname = "n"\nspec = "torchvision:resnet18"\nweights = "../w.pt"\n')),
        "field 'weights' path '../w.pt'"),
    "zoo-link-escapes": lambda w, t: (lambda: _read_zoo(_zoo(
        w, "api_link", '[[model]]\nname = "n"\nspec = "file:up_link/x.pt"\n') if _link(
            w, "up_link", w["root"].parent) else None), "outside the zoo file's folder"),
    "zoo-fifo-model": lambda w, t: (lambda: _read_zoo(_zoo(
        w, "api_fifo_model", '[[model]]\nname = "n"\nspec = "file:model_fifo.pt"\n') if _fifo(
            w, "model_fifo.pt") else None), "not a regular file (a FIFO"),
    # ---- depara.select: labels given with a ProbeSet
    "select-labels-length": lambda w, t: (lambda: _select(w, t, data=_probes(w), labels=[0, 1]), "labels"),
    "select-labels-nan": lambda w, t: (lambda: _select(w, t, data=_probes(w), labels=[0, 1, np.nan, 0, 1, 0]),
                                       "labels"),
    "select-labels-2d": lambda w, t: (lambda: _select(w, t, data=_probes(w), labels=np.zeros((6, 2))), "labels"),
    "select-labels-one-class": lambda w, t: (lambda: _select(w, t, data=_probes(w), labels=[1] * 6), "single class"),
    "select-labels-none-flat": lambda w, t: (lambda: _select(w, t, data=w["flat"]), "no labels"),
    # ---- depara.select: models
    "select-fixed-size": lambda w, t: (lambda: _select(w, t, models={"big": _entry("big", FixedSize(32))}),
                                       "model big: cannot take the images at its input size 3×16×16"),
    "select-fixed-vs-other-size": lambda w, t: (lambda: _select(w, t, models={
        "small": _entry("small", FixedSize(16)), "big": _entry("big", FixedSize(32), size=64)}),
        "model big: cannot take the images at its input size 3×64×64"),
    "select-forward-error": lambda w, t: (lambda: _select(w, t, models={"boom": _entry("boom", _Boom())}),
                                          "model boom"),
    "select-tuple-layer": lambda w, t: (lambda: _select(w, t, models={"tup": _entry("tup", _TupleNet())},
                                                        layers=["pair"]), "pair"),
    "select-dict-layer": lambda w, t: (lambda: _select(w, t, models={"tup": _entry("tup", _TupleNet())},
                                                       layers=["both"]), "both"),
    "select-target-fixed-size": lambda w, t: (lambda: _select(w, t, data=w["flat"], target_model=_entry(
        "target", FixedSize(32))), "cannot take the images"),
    # ---- build_graphs
    "build-unknown-layer": lambda w, t: (lambda: _build(w, _Net(0), ["fcc"]), "did you mean fc"),
    "build-tuple-layer": lambda w, t: (lambda: _build(w, _TupleNet(), ["pair"]), "pair"),
    "build-dict-layer": lambda w, t: (lambda: _build(w, _TupleNet(), ["both"]), "both"),
    "build-fixed-size": lambda w, t: (lambda: _build(w, FixedSize(32), ["fc"]), "cannot run on float32 probes"),
    "build-forward-error": lambda w, t: (lambda: _build(w, _Boom(), ["fc"]), "RuntimeError: boom"),
    "build-keyerror-in-forward": lambda w, t: (lambda: _build(w, _KeyErr(), ["fc"]), "KeyError: 'missing'"),
    "list-layers-keyerror": lambda w, t: (lambda: __import__("depara.extraction.models", fromlist=["list_layers"]).list_layers(
        _KeyErr(), (3, SIZE, SIZE)), "KeyError: 'missing'"),
    "build-batch-zero": lambda w, t: (lambda: _build(w, _Net(0), ["fc"], batch_size=0), "batch_size"),
    "build-batch-nan": lambda w, t: (lambda: _build(w, _Net(0), ["fc"], batch_size=float("nan")), "batch_size"),
    "build-memory-negative": lambda w, t: (lambda: _build(w, _Net(0), ["fc"], feature_memory_mb=-1),
                                           "feature_memory_mb"),
    "build-layers-empty": lambda w, t: (lambda: _build(w, _Net(0), []), "layer"),
    "build-probes-string": lambda w, t: (lambda: _build(w, _Net(0), ["fc"], probes=str(w["flat"])), "probes"),
    "build-probes-corrupt": lambda w, t: (lambda: _build(w, _Net(0), ["fc"], probes=_probes(w, "trunc_png")),
                                          "cut.png"),
    "build-probe-ids-dup": lambda w, t: (lambda: _build(w, _Net(0), ["fc"], probe_ids=["a"] * 6), "probe_ids"),
    # ---- harness: sources of different input sizes, failing models
    "harness-different-sizes": lambda w, t: (lambda: _harness({"small": FixedSize(16), "big": FixedSize(32)},
                                                              _probes(w), np.arange(6) % 2),
                                             "source big: the model cannot run on 16×16 inputs"),
    "harness-forward-error": lambda w, t: (lambda: _harness({"boom": _Boom()}, _probes(w), np.arange(6) % 2),
                                           "source boom"),
    "harness-lam-nan": lambda w, t: (lambda: _harness({"n": _Net(0)}, _probes(w), np.arange(6) % 2,
                                                      lam=float("nan")), "lam"),
    "harness-labels-length": lambda w, t: (lambda: _harness({"n": _Net(0)}, _probes(w), [0, 1]), "labels"),
    "harness-preprocess-unknown": lambda w, t: (lambda: _harness({"n": _Net(0)}, _probes(w), np.arange(6) % 2,
                                                                 preprocess={"m": "8x8"}), "preprocess"),
    "harness-batch-zero": lambda w, t: (lambda: _harness({"n": _Net(0)}, _probes(w), np.arange(6) % 2,
                                                         batch_size=0), "batch_size"),
    # ---- similarity / ranking
    "similarity-matrix-empty": lambda w, t: (lambda: _sim().similarity_matrix({}), "graphs"),
    "similarity-matrix-lam-nan": lambda w, t: (lambda: _sim().similarity_matrix(
        {"a": _graph(w, "g0"), "b": _graph(w, "g1")}, lam=float("nan")), "lam"),
    "similarity-matrix-lam-string": lambda w, t: (lambda: _sim().similarity_matrix(
        {"a": _graph(w, "g0"), "b": _graph(w, "g1")}, lam="big"), "lam: expected a number"),
    "similarity-matrix-not-graph": lambda w, t: (lambda: _sim().similarity_matrix(
        {"a": _graph(w, "g0"), "b": np.zeros(3)}), "b"),
    "similarity-matrix-probe-ids": lambda w, t: (lambda: _sim().similarity_matrix(
        {"a": _graph(w, "g0"), "b": _graph(w, "other_ids")}), "different probes"),
    "rank-sources-empty": lambda w, t: (lambda: _sim().rank_sources({}, _graph(w)), "sources"),
    "rank-sources-lam-negative": lambda w, t: (lambda: _sim().rank_sources({"a": _graph(w, "g1")}, _graph(w),
                                                                           lam=-1), "lam"),
    "rank-sources-probe-count": lambda w, t: (lambda: _sim().rank_sources({"a": _graph(w, "seven")}, _graph(w)),
                                              "different probes"),
    "similarity-lam-negative": lambda w, t: (lambda: _sim().similarity(_graph(w, "g1"), _graph(w), lam=-0.5),
                                             "lam"),
    # ---- graph files
    "graph-load-missing": lambda w, t: (lambda: _graph(w, "nope"), "nope.safetensors"),
    "graph-load-truncated": lambda w, t: (lambda: _graph(w, "trunc"), "trunc.safetensors"),
    "graph-load-version": lambda w, t: (lambda: _graph(w, "version"), "version"),
    "graph-load-wrong-keys": lambda w, t: (lambda: _graph(w, "wrongkeys"), "without a format version"),
    "graph-load-wrong-keys-v1": lambda w, t: (lambda: _graph(w, "wrongkeys_v1"), "wrongkeys_v1.safetensors"),
    "graph-load-folder": lambda w, t: (lambda: __import__("depara").Graph.load(w["graphs"]), "graphs"),
    "graph-load-npy": lambda w, t: (lambda: __import__("depara").Graph.load(w["arrays"] / "object.npy"),
                                    "object.npy"),
    "graph-save-missing-folder": lambda w, t: (lambda: _graph(w).save(t / "nowhere" / "g.safetensors"), "nowhere"),
    "graph-from-labels-nan": lambda w, t: (lambda: __import__("depara").Graph.from_labels([0, 1, np.nan, 1]),
                                           "labels"),
    "graph-from-labels-one-class": lambda w, t: (lambda: __import__("depara").Graph.from_labels([2, 2, 2, 2]),
                                                 "labels"),
    "graph-from-labels-2d": lambda w, t: (lambda: __import__("depara").Graph.from_labels(np.zeros((4, 2))),
                                          "labels"),
    "graph-from-labels-empty": lambda w, t: (lambda: __import__("depara").Graph.from_labels([]), "labels"),
    "graph-from-arrays-nan": lambda w, t: (lambda: __import__("depara").Graph.from_arrays(
        np.ones((4, 3)), np.where(np.eye(4, 3) > 0, np.nan, 1.0)), "features"),
    "graph-from-arrays-object": lambda w, t: (lambda: __import__("depara").Graph.from_arrays(
        np.ones((4, 3)), np.array([[{}] * 3] * 4, dtype=object)), "features"),
    # ---- probes and readers
    "probes-missing": lambda w, t: (lambda: _probes(w, "missing"), "no_such_folder"),
    "probes-empty": lambda w, t: (lambda: _probes(w, "empty"), "empty"),
    "probes-text": lambda w, t: (lambda: _probes(w, "text"), "no image files"),
    "probes-symlink-out": lambda w, t: (lambda: _probes(w, "leak"), "outside the probe folder"),
    "probes-fake": lambda w, t: (lambda: _probes(w, "fake").tensor(), "fake.png"),
    "probes-preprocess-bad": lambda w, t: (lambda: _probes(w, prep="sixteen"), "preprocess"),
    "read-json-latin1": lambda w, t: (lambda: _readers().read_json_file(w["tables"] / "truth_latin1.csv"),
                                      "not UTF-8"),
    "read-csv-latin1": lambda w, t: (lambda: _readers().read_csv_records(w["tables"] / "truth_latin1.csv"),
                                     "truth_latin1.csv: not UTF-8"),
    "read-csv-duplicate-header": lambda w, t: (lambda: _readers().read_csv_records(w["tables"] / "dup_header.csv"),
                                               "column 'a' twice"),
    "read-csv-long-row": lambda w, t: (lambda: _readers().read_csv_records(w["tables"] / "long_row.csv"),
                                       "line 2: 3 fields"),
    "read-csv-folder": lambda w, t: (lambda: _readers().read_csv_records(w["tables"]), "is a folder"),
    # ---- a flat test split's labels file
    "flat-test-missing-file": lambda w, t: (lambda: _flat(w, "missing_file"), "'7.png' is not an image file"),
    "flat-test-extra-file": lambda w, t: (lambda: _flat(w, "extra_file"), "image '1.png'"),
    "flat-test-duplicate": lambda w, t: (lambda: _flat(w, "duplicate"), "listed twice"),
    "flat-test-no-class-column": lambda w, t: (lambda: _flat(w, "no_class_column"), "file,class"),
    "flat-test-empty": lambda w, t: (lambda: _flat(w, "empty"), "file,class"),
    "flat-test-empty-class": lambda w, t: (lambda: _flat(w, "empty_class"), "line 3: empty file or class"),
    "flat-test-outside": lambda w, t: (lambda: _flat(w, "outside"), "private.png"),
    "flat-test-latin1": lambda w, t: (lambda: _flat(w, "latin1"), "not UTF-8"),
    "load-model-missing": lambda w, t: (lambda: __import__("depara").load_model("file:/no/such/model.pt"),
                                        "model.pt"),
    "load-model-unknown": lambda w, t: (lambda: __import__("depara").load_model("torchvision:resnet19"),
                                        "did you mean resnet18"),
    "get-estimator-unknown": lambda w, t: (lambda: __import__("depara").get_estimator("logmee"), "logmee"),
}


def _flat(w, name):
    from depara.benches.data import list_split

    return list_split(w["flat_test"] / name, "test")


def test_flat_test_labels_file_is_read(W):
    """The accepted case beside the refused ones: every listed image, by class."""
    got = _flat(W, "ok")
    assert {c: [p.name for p in v] for c, v in got.items()} == {"a": ["0.png"], "b": ["1.png"]}


def _sim():
    import depara

    return depara


def _readers():
    from depara.io import readers

    return readers


def _build(w, model, layers, probes=None, **kw):
    import depara

    return depara.build_graphs(model, probes if probes is not None else _probes(w), layers, **kw)


@pytest.mark.parametrize("case", sorted(API))
def test_api_bad_input(case, W, tmp_path):
    fn, needle = API[case](W, tmp_path)
    msg = lib_fails(fn, needle)
    if os.environ.get("DEPARA_SHOW_ERRORS"):
        print(f"\n{case}: {msg}")


# ===================================================================== inputs that must be ACCEPTED
def test_image_modes_and_sizes_are_accepted_by_select(W, tmp_path, capsys):
    """Grey, RGBA, palette and 16-bit PNGs, and images of different sizes, are converted / resized, not refused:
    the run succeeds and ranks every candidate (CLI, with the results folder written)."""
    import depara

    sel = depara.select(W["modes"], {"net": _entry("net", _Net(0))}, n_boot=2, cache_dir=tmp_path)
    assert sel.settings["n_classes"] == 4 and sel.settings["n_probes"] == 12
    out = tmp_path / "out"
    with _alarm(60):
        rc = main([str(a) for a in _sel(W, "--out", out, data=W["sizes"])])
    assert rc == 0, capsys.readouterr().err
    assert (out / "ranking.csv").is_file() and (out / "manifest.json").is_file()


def test_models_of_different_input_sizes_each_at_its_own_size(W, tmp_path):
    """The positive twin of the fixed-size cases: two models that only run at 16 and 32 px, each given its
    own preprocessing, are ranked side by side (select and the harness)."""
    import depara
    from depara.extraction.probes import Preprocess

    sel = depara.select(W["good"], {"small": _entry("small", FixedSize(16)), "big": _entry("big", FixedSize(32), size=32)},
                        layers=["fc"], n_boot=0, cache_dir=tmp_path)
    assert {m for m, _ in sel.candidates} == {"small", "big"}
    res = _harness({"small": FixedSize(16), "big": FixedSize(32)}, _probes(W, "good"), np.arange(8) // 4,
                   preprocess={"big": Preprocess(size=32)})
    assert set(res.table.sources) == {"small", "big"}
