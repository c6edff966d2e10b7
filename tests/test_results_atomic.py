"""Outputs apart from inputs, results folders written whole (issue 23, items 2 and 7).

One atomic-folder writer (:func:`depara.io.files.atomic_dir`, through
:func:`depara.report.manifest.write_results_folder`): an interrupted write (an exception, SIGINT) leaves the
previous folder byte for byte as it was and no temporary folder; a finished one replaces it whole. Outputs and
the cache inside the data folder are refused before any model runs.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from depara.io.files import atomic_dir, check_apart
from depara.errors import DeparaError
from depara.report.manifest import write_results_folder, writes_results_folder


def _snapshot(path: Path) -> dict[str, bytes]:
    return {str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}


def _previous(root: Path) -> Path:
    out = root / "results"
    (out / "figs").mkdir(parents=True)
    (out / "manifest.json").write_text('{"kind": "select", "summary": "old"}')
    (out / "ranking.csv").write_text("rank,model\n1,old\n")
    (out / "figs" / "f.txt").write_text("old figure")
    return out


def _leftovers(root: Path) -> list[Path]:
    return [p for p in root.iterdir() if p.name.endswith(".part")]


def test_interrupted_write_leaves_the_previous_folder_intact(tmp_path):
    out = _previous(tmp_path)
    before = _snapshot(out)
    with pytest.raises(KeyboardInterrupt):
        with atomic_dir(out) as tmp:
            (tmp / "ranking.csv").write_text("rank,model\n1,new\n")
            raise KeyboardInterrupt  # as SIGINT between two files
    assert _snapshot(out) == before and _leftovers(tmp_path) == []


def test_finished_write_replaces_the_folder_whole(tmp_path):
    out = _previous(tmp_path)
    got = write_results_folder(out, lambda d: {"ranking": _write(d / "ranking.csv", "new"),
                                        "manifest": _write(d / "manifest.json", '{"kind": "select"}')})
    assert got == {"ranking": out / "ranking.csv", "manifest": out / "manifest.json"}  # paths in the final folder
    assert _snapshot(out) == {"ranking.csv": b"new", "manifest.json": b'{"kind": "select"}'}  # old figs gone
    assert _leftovers(tmp_path) == []


def _write(p: Path, text: str) -> Path:
    p.write_text(text)
    return p


def test_only_empty_or_results_folders_are_replaced_and_keep_carries_inputs(tmp_path):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "thesis.tex").write_text("my own file")
    ran = []
    with pytest.raises(DeparaError, match="not a depara results folder"):
        with atomic_dir(mine, "out"):
            ran.append(1)
    assert ran == [] and (mine / "thesis.tex").read_text() == "my own file"
    # a run's own inputs (``keep``) do not count, and move into the new folder
    (mine / "manifest.json").write_text("{}")
    write_results_folder(mine, lambda d: _write(d / "manifest.json", '{"kind": "demo"}'), keep=("thesis.tex",))
    assert _snapshot(mine) == {"thesis.tex": b"my own file", "manifest.json": b'{"kind": "demo"}'}


def test_sigint_in_a_subprocess_leaves_the_previous_folder_intact(tmp_path):
    out = _previous(tmp_path)
    before = _snapshot(out)
    script = textwrap.dedent(f"""
        import sys, time
        from pathlib import Path
        from depara.io.files import atomic_dir
        with atomic_dir(Path({str(out)!r})) as tmp:
            (tmp / "ranking.csv").write_text("new")
            print("writing", flush=True)
            time.sleep(60)
            (tmp / "manifest.json").write_text("new")
    """)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src")}
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
                            text=True)
    try:
        assert proc.stdout.readline().strip() == "writing"
        assert len(_leftovers(tmp_path)) == 1  # the new folder is being written beside the old one
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode != 0
    assert _snapshot(out) == before and _leftovers(tmp_path) == []


def test_decorated_writer_gets_a_temporary_folder_and_returns_final_paths(tmp_path):
    seen = []

    @writes_results_folder("out", keep=("cache",))
    def bench(scale: str, out, *, fail: bool = False) -> dict:
        seen.append(Path(out))
        (Path(out) / "summary.csv").write_text(scale)
        if fail:
            raise KeyboardInterrupt
        (Path(out) / "manifest.json").write_text("{}")
        return {"out": str(out), "table": Path(out) / "summary.csv", "scale": scale}

    final = tmp_path / "bench"
    (final / "cache").mkdir(parents=True)  # a run's cache inside its folder (as taskonomy's default) is kept
    (final / "cache" / "entry").write_text("cached")
    got = bench("tiny", final)
    assert seen[0] != final and seen[0].parent == tmp_path  # written beside, renamed in
    assert got == {"out": str(final), "table": final / "summary.csv", "scale": "tiny"}
    assert _snapshot(final) == {"cache/entry": b"cached", "summary.csv": b"tiny", "manifest.json": b"{}"}
    before = _snapshot(final)
    with pytest.raises(KeyboardInterrupt):
        bench("demo", out=final, fail=True)
    assert _snapshot(final) == before and _leftovers(tmp_path) == []


def test_stale_temporary_folder_of_a_killed_run_is_removed(tmp_path):
    stale = tmp_path / ".results.999999999-abc.part"  # no such PID
    stale.mkdir()
    (stale / "ranking.csv").write_text("half")
    write_results_folder(tmp_path / "results", lambda d: _write(d / "manifest.json", "{}"))
    assert not stale.exists()


def test_check_apart_resolves_links(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (tmp_path / "link").symlink_to(data)
    for bad in (data, data / "out", tmp_path / "link" / "out", tmp_path / "link"):
        with pytest.raises(DeparaError, match="data folder"):
            check_apart(bad, "out", data)
    check_apart(tmp_path / "data-results", "out", data)  # a sibling whose name starts alike is apart


# ---------------------------------------------------------------------------------------- depara.select
torch = pytest.importorskip("torch")


class _Counting(torch.nn.Module):
    calls = 0

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 4, 3)
        self.pool = torch.nn.AdaptiveAvgPool2d(2)
        self.fc = torch.nn.Linear(16, 3)

    def forward(self, x):
        type(self).calls += 1
        return self.fc(self.pool(torch.relu(self.conv(x))).flatten(1))


@pytest.fixture()
def data(tmp_path):
    from PIL import Image

    root = tmp_path / "data"
    rng = np.random.default_rng(0)
    for c, name in enumerate("ab"):
        (root / name).mkdir(parents=True)
        for i in range(3):
            Image.fromarray((rng.random((16, 16, 3)) * 80 + 70 * c).astype(np.uint8)).save(root / name / f"{i}.png")
    return root


def _models():
    from depara.extraction.zoo import ModelEntry

    _Counting.calls = 0
    return {"m": ModelEntry("m", "module:m", preprocessing="16x16", module=_Counting())}


@pytest.mark.parametrize("where", ["inside", "equal", "file", "broken", "readonly_missing"])
def test_select_refuses_bad_cache_before_any_model_runs(data, tmp_path, where):
    import depara

    cache = {"inside": data / "cache", "equal": data, "file": tmp_path / "f", "broken": tmp_path / "b",
             "readonly_missing": tmp_path / "none"}[where]
    (tmp_path / "f").write_text("a file")
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "store").write_text("a file where the store folder belongs")
    before = _snapshot(data)
    with pytest.raises(DeparaError) as info:
        depara.select(data, _models(), n_boot=2, cache_dir=cache, cache_readonly=where == "readonly_missing")
    msg = str(info.value)
    assert msg.startswith(f"cache_dir {cache}: ") and "\n" not in msg
    assert _Counting.calls == 0 and _snapshot(data) == before and not (data / "cache").exists()


def test_select_refuses_an_unwritable_cache_before_any_model_runs(data, tmp_path, monkeypatch):
    """A read-only cache folder (simulated: root may write anywhere) is refused up front, naming cache_dir and the
    way to read it without writing; with cache_readonly=True it is read."""
    import tempfile

    import depara

    cache = tmp_path / "ro"
    (cache / "store").mkdir(parents=True)
    real = tempfile.mkstemp

    def mkstemp(*args, **kwargs):
        if Path(kwargs.get("dir", "")).resolve().is_relative_to(cache.resolve()):
            raise PermissionError(13, "Permission denied")
        return real(*args, **kwargs)

    monkeypatch.setattr(tempfile, "mkstemp", mkstemp)
    with pytest.raises(DeparaError) as info:
        depara.select(data, _models(), n_boot=2, cache_dir=cache)
    assert str(info.value).startswith(f"cache_dir path {cache / 'store'}: folder {cache / 'store'} is not writable")
    assert "--cache-readonly" in str(info.value) and _Counting.calls == 0
    sel = depara.select(data, _models(), n_boot=2, cache_dir=cache, cache_readonly=True)
    assert _Counting.calls > 0 and len(sel.candidates) >= 1
    assert [p for p in (cache / "store").rglob("*")] == []  # read-only: nothing written


def test_cli_select_out_inside_data_is_refused_before_any_work(data, tmp_path, capsys):
    from depara.cli.main import main

    zoo = tmp_path / "zoo.toml"
    torch.jit.script(torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.Flatten())).save(str(tmp_path / "net.pt"))
    zoo.write_text(f'[[model]]\nname = "n"\nspec = "file:{tmp_path / "net.pt"}"\npreprocessing = "16x16"\n')
    before = _snapshot(data)
    rc = main(["select", str(data), "--zoo", str(zoo), "--out", str(data / "results"), "--cache",
               str(tmp_path / "cache"), "--quiet", "--n-boot", "2"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and err[-1].startswith(f"error: --out {data / 'results'}: is inside the data folder")
    assert _snapshot(data) == before and not (tmp_path / "cache").exists()  # nothing written, no extraction


def test_selection_write_interrupted_keeps_the_previous_results(data, tmp_path, monkeypatch):
    import depara
    import depara.report.manifest

    sel = depara.select(data, _models(), n_boot=2, cache_dir=tmp_path / "cache")
    for bad, what in ((data / "results", "is inside the data folder"), (data, "is the data folder"),
                      (tmp_path, "holds the data")):
        with pytest.raises(DeparaError, match=f"^out {bad}: {what}"):
            sel.write(bad)
    assert not (data / "results").exists()
    out = tmp_path / "out"
    files = sel.write(out)
    assert files["ranking"] == out / "ranking.csv" and (out / "manifest.json").is_file()
    before = _snapshot(out)

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt  # SIGINT after the tables, before the manifest

    monkeypatch.setattr(depara.report.manifest, "write_manifest", interrupted)
    with pytest.raises(KeyboardInterrupt):
        sel.write(out, summary="a second run")
    assert _snapshot(out) == before and _leftovers(tmp_path) == []
