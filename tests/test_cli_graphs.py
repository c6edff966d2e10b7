"""`depara compare` and `depara rank` on tiny graph files: outputs equal the library's numbers; bad input."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from depara.cli.main import main
from depara.core.graph import Graph
from depara.report.manifest import read_manifest
from depara.core.similarity import rank_sources, similarity_matrix

N = 12
IDS = [f"probe_{i:02d}.png" for i in range(N)]


@pytest.fixture(scope="module")
def graph_dir(tmp_path_factory):
    """target.safetensors + sources/{a,b,c}.safetensors with sources increasingly far from the target."""
    root = tmp_path_factory.mktemp("graphs")
    rng = np.random.default_rng(0)
    attr, feat = rng.normal(size=(N, 3, 4)), rng.normal(size=(N, 6))
    target = Graph.from_arrays(attr, feat, probe_ids=IDS, meta={"model": "target"})
    target.save(root / "target.safetensors")
    (root / "sources").mkdir()
    sources = {}
    for name, noise in (("c", 3.0), ("a", 0.1), ("b", 1.0)):
        g = Graph.from_arrays(attr + noise * rng.normal(size=attr.shape), feat + noise * rng.normal(size=feat.shape),
                              probe_ids=IDS)
        g.save(root / "sources" / f"{name}.safetensors")
        sources[name] = g
    (root / "sources" / "notes.txt").write_text("not a graph; ignored")
    return root, target, sources


def _read_csv(path):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def test_rank_table_files_and_results_folder(graph_dir, tmp_path, capsys):
    root, target, sources = graph_dir
    code = main(["rank", "--target", str(root / "target.safetensors"), "--sources", str(root / "sources"),
                 "--lam", "0.5", "--csv", str(tmp_path / "r.csv"), "--json", str(tmp_path / "r.json"),
                 "--out", str(tmp_path / "res")])
    assert code == 0
    screen = capsys.readouterr().out
    expected = rank_sources(sources, target, lam=0.5)
    assert [r.name for r in expected] == ["a", "b", "c"]
    assert "pick source 'a' for target 'target'" in screen
    assert screen.index(" a ") < screen.index(" b ") < screen.index(" c ")
    rows = _read_csv(tmp_path / "r.csv")
    assert [r["source"] for r in rows] == ["a", "b", "c"]
    for row, exp in zip(rows, expected):
        assert float(row["S"]) == pytest.approx(exp.S, abs=1e-12)
        assert float(row["E"]) == pytest.approx(exp.E, abs=1e-12)
    doc = json.loads((tmp_path / "r.json").read_text())
    assert doc["pick"] == "a" and doc["lam"] == 0.5 and doc["n_probes"] == N
    assert doc["ranking"][1]["V"] == pytest.approx(expected[1].V, abs=1e-12)
    manifest = read_manifest(tmp_path / "res")
    assert manifest["kind"] == "rank" and manifest["summary"].startswith("pick source 'a'")
    assert (tmp_path / "res" / manifest["tables"]["ranking"]).is_file()
    png = (tmp_path / "res" / manifest["figures"]["ranking"]).read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"


def test_rank_skips_the_target_inside_the_sources_folder(graph_dir, tmp_path):
    root, target, sources = graph_dir
    code = main(["rank", "--target", str(root / "sources" / "b.safetensors"), "--sources", str(root / "sources"),
                 "--csv", str(tmp_path / "r.csv")])
    assert code == 0
    assert sorted(r["source"] for r in _read_csv(tmp_path / "r.csv")) == ["a", "c"]


def test_compare_writes_the_three_matrices(graph_dir, tmp_path, capsys):
    root, target, sources = graph_dir
    paths = [root / "target.safetensors"] + [root / "sources" / f"{k}.safetensors" for k in "abc"]
    code = main(["compare", *map(str, paths), "--lam", "2", "--out", str(tmp_path / "m.csv")])
    assert code == 0
    assert "most similar pair: target ~ a" in capsys.readouterr().out
    mats = similarity_matrix({"target": target, **{k: sources[k] for k in "abc"}}, lam=2.0)
    rows = _read_csv(tmp_path / "m.csv")
    assert [r["matrix"] for r in rows] == ["S"] * 4 + ["V"] * 4 + ["E"] * 4
    for key in ("S", "V", "E"):
        block = np.array([[float(r[n]) for n in mats.names] for r in rows if r["matrix"] == key])
        np.testing.assert_allclose(block, getattr(mats, key), atol=1e-12)


def _err(capsys):
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err
    return err


def test_rank_bad_inputs(graph_dir, tmp_path, capsys):
    root, _, _ = graph_dir
    target = str(root / "target.safetensors")
    assert main(["rank", "--target", target, "--sources", str(tmp_path / "nope")]) == 2
    err = _err(capsys)
    assert "--sources" in err and "folder not found" in err
    (tmp_path / "empty").mkdir()
    assert main(["rank", "--target", target, "--sources", str(tmp_path / "empty")]) == 2
    assert "no .safetensors graph files" in _err(capsys)
    assert main(["rank", "--target", target, "--sources", str(root / "sources"),
                 "--out", str(tmp_path / "missing" / "res")]) == 2
    assert "--out path" in _err(capsys)
    assert not (tmp_path / "missing").exists()
    assert main(["rank", "--target", target, "--sources", str(root / "sources"),
                 "--csv", str(tmp_path / "missing" / "r.csv")]) == 2
    assert "--csv path" in _err(capsys)
    assert main(["rank", "--target", str(tmp_path / "none.safetensors"), "--sources", str(root / "sources")]) == 2
    assert "none.safetensors: graph file not found" in _err(capsys)
    assert main(["rank", "--target", target, "--sources", str(root / "sources"), "--lam", "-1"]) == 2
    assert "lam: expected a number >= 0" in _err(capsys)


def test_different_probes_and_corrupt_files(graph_dir, tmp_path, capsys):
    root, _, _ = graph_dir
    rng = np.random.default_rng(1)
    other = tmp_path / "other"
    other.mkdir()
    Graph.from_arrays(rng.normal(size=(N, 3)), rng.normal(size=(N, 4)),
                      probe_ids=[f"x{i}" for i in range(N)]).save(other / "x.safetensors")
    assert main(["rank", "--target", str(root / "target.safetensors"), "--sources", str(other)]) == 2
    assert "over different probes (probe 0 is 'probe_00.png' vs 'x0')" in _err(capsys)
    assert main(["compare", str(root / "target.safetensors"), str(other / "x.safetensors")]) == 2
    assert "over different probes" in _err(capsys)
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"garbage!" * 10)
    assert main(["compare", str(root / "target.safetensors"), str(bad)]) == 2
    assert "bad.safetensors" in _err(capsys)
    assert main(["compare", str(root / "target.safetensors"), str(root / "target.safetensors"),
                 "--out", str(tmp_path / "missing" / "m.csv")]) == 2
    assert "--out path" in _err(capsys)
    assert main(["compare", str(root / "target.safetensors")]) == 2
    assert "at least two graph files" in _err(capsys)


def test_compare_same_file_twice_keeps_both(graph_dir, tmp_path):
    root, _, _ = graph_dir
    path = str(root / "target.safetensors")
    assert main(["compare", path, path, "--out", str(tmp_path / "m.csv")]) == 0
    rows = _read_csv(tmp_path / "m.csv")
    assert len(rows) == 6 and rows[0]["name"] == f"{path}#0"
    assert float(rows[0][f"{path}#1"]) == pytest.approx(1.0)  # S = E (default λ = ∞): the same graph twice


def test_compare_prints_names_as_given_and_an_undefined_node_term_in_words(tmp_path, capsys):
    """File stems with markup are printed as given (never swallowed); with a label graph (no nodes) V is undefined
    and the line says so instead of printing "nan"."""
    rng = np.random.default_rng(0)
    Graph.from_labels(np.arange(12) % 3).save(tmp_path / "labels.safetensors")
    graph = Graph.from_arrays(rng.standard_normal((12, 4, 4)), rng.standard_normal((12, 6)))
    graph.save(tmp_path / "a[red].safetensors")
    code = main(["compare", str(tmp_path / "labels.safetensors"), str(tmp_path / "a[red].safetensors")])
    out = " ".join(capsys.readouterr().out.split())  # the console wraps long lines
    e = similarity_matrix({"l": Graph.load(tmp_path / "labels.safetensors"),
                           "a": Graph.load(tmp_path / "a[red].safetensors")}).E[0, 1]
    assert code == 0 and "│ a[red] │" in out and "nan" not in out
    assert f"most similar pair: labels ~ a[red] (S = {e:.4f}, V undefined (a graph without nodes), E = {e:.4f})" in out


def test_rank_table_shows_an_undefined_node_term_in_the_word_of_every_table(tmp_path, capsys):
    """A label graph among the sources has no nodes: its V is NaN, and the table says "undefined", the word of
    select's report (evaluation.uncertainty.rounded) and of every other table (report.html.format_cell)."""
    from depara.evaluation.uncertainty import UNDEFINED, rounded

    rng = np.random.default_rng(0)
    (tmp_path / "sources").mkdir()
    Graph.from_labels(np.arange(12) % 3).save(tmp_path / "sources" / "labels.safetensors")
    for path in (tmp_path / "sources" / "full.safetensors", tmp_path / "target.safetensors"):
        Graph.from_arrays(rng.standard_normal((12, 4, 4)), rng.standard_normal((12, 6))).save(path)
    code = main(["rank", "--target", str(tmp_path / "target.safetensors"), "--sources", str(tmp_path / "sources"),
                 "--lam", "1"])
    out = capsys.readouterr().out
    rows = {cells[2].strip(): [c.strip() for c in cells[3:6]]
            for cells in (line.split("│") for line in out.splitlines() if line.startswith("│"))}
    assert code == 0 and set(rows) == {"labels", "full"}
    assert rows["labels"][1] == UNDEFINED == rounded(float("nan"))[0] == "undefined"
    assert all(np.isfinite(float(x)) for x in (*rows["full"], rows["labels"][0], rows["labels"][2]))
    assert "nan" not in out.lower()
