"""`depara demo`: both pipelines at their ``demo`` scale, a top manifest, one report over both.

The first tests replace the two pipelines by fakes that write results folders (fast: they check the wiring to the
``demo`` scale, the manifest and the report). The last one runs the real command end to end, fresh and then cached,
with both real pipelines at their ``tiny`` scale in the session cache that the tiny task bank
(tests/test_taskbank.py) and the tiny layer demo (tests/test_demo_layers.py) share, so the suite trains the tiny
networks once (the ``demo`` size took ~6 min of a ~9.5 min suite; its run time is measured by
``benchmarks/demo_time.py``). The second run must rewrite no cache entry and give the same picks. A broken import of
a pipeline fails it.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import depara.benches.demo as demo
from depara.cli.main import main
from depara.errors import DeparaError
from depara.report.manifest import read_manifest

from _report_helpers import (assert_every_figure_embedded, assert_self_contained, assert_table_matches_csv,
                             make_rank_folder, parse_page)


class FakePipelines:
    """Stand-ins for run_bench / run_layers_demo that record their calls and count 'expensive' work, which
    they skip when their cache entry exists (as the real pipelines do)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, Path, dict]] = []
        self.computed = 0

    def _run(self, name: str, pick: str, truth: str, scale: str, out: Path, **kw) -> dict:
        self.calls.append((name, scale, Path(out), kw))
        entry = Path(kw["cache_dir"]) / f"{name}-{kw['seed']}.done"
        if not entry.exists():
            self.computed += 1
            entry.write_text("cached")
        kind = "taskbank" if name == "bench" else "layers-select"
        make_rank_folder(Path(out), kind=kind, pick=pick, truth=truth)
        return {"pick": pick}

    def run_bench(self, scale, out, **kw):
        return self._run("bench", "normals", "normals", scale, out, **kw)

    def run_layers_demo(self, scale, out, **kw):
        return self._run("layers", "conv3", "conv4", scale, out, **kw)


@pytest.fixture()
def fakes(monkeypatch) -> FakePipelines:
    fake = FakePipelines()
    monkeypatch.setattr(demo, "_load_pipelines", lambda: (fake.run_bench, fake.run_layers_demo))
    return fake


def test_demo_runs_both_pipelines_and_reports_them(fakes: FakePipelines, tmp_path: Path, capsys) -> None:
    from depara.benches.taskbank.train import SCALES as BANK_SCALES
    from depara.benches.taskbank.train import make_config
    from depara.benches.layers.demo import SCALES as LAYER_SCALES

    # The demo size is a valid scale of both real pipelines (their own checks; the run itself is too slow here).
    assert demo.DEMO_SCALE == "demo" and demo.DEMO_SCALE in BANK_SCALES and demo.DEMO_SCALE in LAYER_SCALES
    assert make_config(demo.DEMO_SCALE).scale == "demo"
    out, cache = tmp_path / "demo", tmp_path / "cache"
    assert main(["demo", "benchmarks", "--out", str(out), "--cache", str(cache), "--seed", "3", "--quiet"]) == 0
    assert [(n, s, o) for n, s, o, _ in fakes.calls] == [("bench", "demo", out / "taskbank"),
                                                         ("layers", "demo", out / "layers")]
    assert all(kw == {"seed": 3, "cache_dir": cache, "progress": False} for *_, kw in fakes.calls)
    manifest = read_manifest(out)
    assert manifest["kind"] == "demo"
    assert manifest["summary"] == ("source: pick source normals (S = 0.812) | layer: pick source conv3 (S = 0.812)")
    assert manifest["settings"] == {"scale": "demo", "seed": 3, "cache_dir": str(cache)}
    assert manifest["extra"]["sections"] == ["taskbank", "layers"]
    assert manifest["extra"]["picks"] == {"taskbank": {"pick": "normals", "truth_best": "normals"},
                                          "layers": {"pick": "conv3", "truth_best": "conv4"}}
    printed = capsys.readouterr().out
    assert "taskbank: pick source normals" in printed and "report.html" in printed
    page = parse_page(out / "report.html")
    assert_self_contained(page)
    assert assert_every_figure_embedded(page, out) == 4
    for sub in ("taskbank", "layers"):
        assert_table_matches_csv(page, out / sub / "ranking.csv", out)
    assert (out / "report.md").read_text(encoding="utf-8").startswith("# depara demo")


def test_second_demo_run_reuses_the_cache(fakes: FakePipelines, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    first = demo.run_benchmark_demo(tmp_path / "a", cache_dir=cache, progress=False)
    second = demo.run_benchmark_demo(tmp_path / "a", cache_dir=cache, progress=False)
    assert fakes.computed == 2 and len(fakes.calls) == 4
    assert first["summary"] == second["summary"]


def test_demo_cache_defaults_to_env(fakes: FakePipelines, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("DEPARA_CACHE", str(tmp_path / "envcache"))
    demo.run_benchmark_demo(tmp_path / "d", progress=False)
    assert {kw["cache_dir"] for *_, kw in fakes.calls} == {tmp_path / "envcache"}


def test_demo_bad_input(fakes: FakePipelines, tmp_path: Path, capsys) -> None:
    (tmp_path / "file").write_text("x")
    assert main(["demo", "benchmarks", "--out", str(tmp_path / "file"), "--quiet"]) == 2
    assert "error: --out" in capsys.readouterr().err
    assert main(["demo", "benchmarks", "--out", str(tmp_path / "o"), "--cache", str(tmp_path / "file"), "--quiet"]) == 2
    assert "error: --cache" in capsys.readouterr().err
    with pytest.raises(DeparaError, match="--seed -1: expected a non-negative integer"):
        demo.run_benchmark_demo(tmp_path / "o", seed=-1, progress=False)
    assert fakes.calls == []


@pytest.mark.slow
def test_real_demo_end_to_end(depara_cache: Path, tmp_path: Path, monkeypatch) -> None:
    # Both real pipelines at their tiny size (the ``demo`` wiring is checked with fakes above), in the session cache
    # the other tiny runs of these pipelines share.
    monkeypatch.setattr(demo, "DEMO_SCALE", "tiny")
    out = tmp_path / "demo"
    assert main(["demo", "benchmarks", "--out", str(out), "--quiet"]) == 0
    manifest = read_manifest(out)
    assert manifest["kind"] == "demo" and manifest["settings"]["cache_dir"] == str(depara_cache)
    assert manifest["settings"]["scale"] == "tiny"
    assert read_manifest(out / "taskbank")["settings"]["scale"] == "tiny"
    assert read_manifest(out / "layers")["settings"]["scale"] == "tiny"
    page = parse_page(out / "report.html")
    assert_self_contained(page)
    assert assert_every_figure_embedded(page, out) >= 2
    tables = 0
    for folder in sorted(p.parent for p in out.rglob("manifest.json")):
        for rel in read_manifest(folder)["tables"].values():
            if rel.endswith(".csv"):
                assert_table_matches_csv(page, folder / rel, out)
                tables += 1
    assert tables >= 2
    # A second run reuses the cache: no cached entry (trained networks, transfers) is rewritten, and the picks are
    # the same (summaries may quote timings). How long it takes is measured by benchmarks/demo_time.py, not here.
    def cache_entries():
        return {p: p.stat().st_mtime_ns for p in depara_cache.rglob("*") if p.is_file()
                and p.relative_to(depara_cache).parts[0] in ("taskbank", "layers_demo")
                and p.relative_to(depara_cache).parts[1].startswith("tiny-")}

    entries = cache_entries()
    assert len(entries) >= 10, sorted(entries)
    assert main(["demo", "benchmarks", "--out", str(out), "--quiet"]) == 0
    assert cache_entries() == entries
    again = read_manifest(out)
    assert _without_timings(again["summary"]) == _without_timings(manifest["summary"])
    assert {k: v for k, v in again["extra"].items() if k != "seconds"} == {
        k: v for k, v in manifest["extra"].items() if k != "seconds"}


def _without_timings(text: str) -> str:
    return re.sub(r"\d+(\.\d+)? ?s\b|\(x[\d.]+\)", "<t>", text)
