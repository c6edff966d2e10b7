"""depara.benches.taskonomy + `depara taskonomy matrices|plot`: published formats at test scale (20 tasks, N=12, D=16,
8×8×2 maps), matrices against independent formulas, caching, evaluation outputs, bad input."""

from __future__ import annotations

import csv
import json
import shutil

import numpy as np
import pytest
from scipy import stats
from scipy.spatial.distance import pdist

from _eval_helpers import TASKS, make_taskonomy_like, write_sort_gt
from depara.evaluation import rank_quality as ev
from depara.benches import taskonomy as tx
from depara.cli.main import main
from depara.errors import DeparaError
from depara.core.graph import Graph
from depara.evaluation.published import read_published_hits


@pytest.fixture(scope="module")
def tdata(tmp_path_factory):
    root = tmp_path_factory.mktemp("taskonomy")
    tasks, truth = make_taskonomy_like(root / "features")
    write_sort_gt(root / "truth", tasks, truth)
    return root, tasks, truth


@pytest.fixture(scope="module")
def matrices(tdata):
    root, _, _ = tdata
    return tx.compute_matrices(root / "features", cache_dir=root / "cache", lam=0.25, progress=False)


def _load(root, task, name):
    return np.load(root / "features" / task / name).astype(np.float64)


def _ref_v(a1, a2):
    m1, m2 = a1.mean(-1).reshape(len(a1), -1), a2.mean(-1).reshape(len(a2), -1)
    cos = (m1 * m2).sum(1) / (np.linalg.norm(m1, axis=1) * np.linalg.norm(m2, axis=1))
    return cos.mean()


def _ref_edges(f, center):
    f = f.reshape(len(f), -1)
    if center:
        f = f - f.mean(0)
    return 1 - pdist(f, "cosine")


def test_matrices_match_independent_formulas(tdata, matrices):
    root, tasks, _ = tdata
    assert matrices.names == tuple(TASKS) and matrices.n_probes == 12
    for key, m in matrices.methods().items():
        assert m.shape == (20, 20), key
        np.testing.assert_allclose(m, m.T, atol=1e-10, err_msg=key)
    for i, j in [(0, 1), (3, 17), (7, 19)]:
        a, b = tasks[i], tasks[j]
        v = _ref_v(_load(root, a, "gradXinput.npy"), _load(root, b, "gradXinput.npy"))
        e = stats.spearmanr(_ref_edges(_load(root, a, "task_feature.npy"), True),
                            _ref_edges(_load(root, b, "task_feature.npy"), True))[0]
        fa, fb = _load(root, a, "task_feature.npy"), _load(root, b, "task_feature.npy")
        rsa = stats.spearmanr(1 - pdist(fa, "correlation"), 1 - pdist(fb, "correlation"))[0]
        assert matrices.V[i, j] == pytest.approx(v, abs=1e-5)
        assert matrices.E[i, j] == pytest.approx(e, abs=1e-5)
        assert matrices.RSA[i, j] == pytest.approx(rsa, abs=1e-5)
        assert matrices.DEPARA[i, j] == pytest.approx(v + 0.25 * e, abs=1e-5)


def test_graphs_are_cached_and_a_corrupt_entry_is_rebuilt(tdata, matrices, monkeypatch):
    root, tasks, _ = tdata
    cached = sorted((root / "cache").glob("*.safetensors"))
    assert len(cached) == 40  # a DEPARA and an RSA graph per task
    g = Graph.load(next(p for p in cached if p.name.startswith("autoencoder.depara.")))
    assert g.meta["task"] == "autoencoder" and g.meta["channel_reduction"] == "mean" and len(g) == 12
    calls = []
    real = Graph.from_arrays.__func__

    def counting(cls, *a, **k):
        calls.append(k.get("edge"))
        return real(cls, *a, **k)

    monkeypatch.setattr(Graph, "from_arrays", classmethod(counting))
    again = tx.compute_matrices(root / "features", cache_dir=root / "cache", progress=False)
    assert calls == []  # everything from the cache
    np.testing.assert_array_equal(again.E, matrices.E)
    victim = next(p for p in cached if p.name.startswith("denoise.depara."))
    victim.write_bytes(b"garbage")
    rebuilt = tx.compute_matrices(root / "features", cache_dir=root / "cache", progress=False)
    assert calls == ["cosine"]
    np.testing.assert_allclose(rebuilt.V, matrices.V)
    assert Graph.load(victim).meta["task"] == "denoise"


def test_open_array_is_memory_mapped(tdata):
    root, _, _ = tdata
    arr = tx.open_array(root / "features" / "curvature" / "gradXinput.npy")
    assert isinstance(arr, np.memmap) and arr.shape == (12, 8, 8, 2)


def test_different_task_order_gives_the_same_evaluation(tdata, matrices, tmp_path):
    root, tasks, _ = tdata
    feats = tmp_path / "features"
    shutil.copytree(root / "features", feats)
    order = list(reversed(tasks))
    (feats / "tasks.txt").write_text("\n".join(order))
    m2 = tx.compute_matrices(feats, cache_dir=tmp_path / "cache", progress=False)
    assert m2.names == tuple(order)
    names, truth = tx.load_truth(root / "truth")
    for key, scores in matrices.methods().items():
        a = ev.precision_recall_at_k(scores, truth, names=matrices.names, truth_names=names)
        b = ev.precision_recall_at_k(m2.methods()[key], truth, names=m2.names, truth_names=names)
        np.testing.assert_array_equal(a.hits, b.hits, err_msg=key)


def test_without_attributions_only_edges(tdata, tmp_path):
    root, _, _ = tdata
    tasks, _ = make_taskonomy_like(tmp_path / "f", attributions=False, write_tasks_txt=False)
    m = tx.compute_matrices(tmp_path / "f", cache_dir=tmp_path / "c", progress=False)
    assert m.V is None and m.DEPARA is None and set(m.methods()) == {"E", "RSA"}
    assert m.names == tuple(sorted(tasks))  # no tasks.txt: sorted task folders
    files = tx.write_matrices(m, tmp_path / "out")
    assert set(files) == {"E", "RSA"}
    back = tx.read_matrices(tmp_path / "out")
    assert back.V is None and back.names == m.names
    np.testing.assert_allclose(back.E, m.E)


def test_cli_matrices_and_plot(tdata, matrices, tmp_path, shared_data):
    root, _, _ = tdata
    mat = tmp_path / "mat"
    assert main(["taskonomy", "matrices", "--features", str(root / "features"), "--lam", "0.25",
                 "--cache", str(root / "cache"), "--out", str(mat), "--no-progress"]) == 0
    for f in ("V.csv", "E.csv", "RSA.csv", "DEPARA.csv", "matrices.json", "manifest.json", "task_tree.png"):
        assert (mat / f).is_file(), f
    names, dep = ev.read_matrix_csv(mat / "DEPARA.csv")
    assert names == tuple(TASKS)
    np.testing.assert_allclose(dep, matrices.DEPARA, atol=1e-12)
    out = tmp_path / "plot"
    pub = shared_data / "paper_numbers" / "taskonomy_pr_hits.csv"
    assert main(["taskonomy", "plot", "--matrices", str(mat), "--truth", str(root / "truth"),
                 "--published", str(pub), "--label", "tiny test", "--out", str(out)]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["kind"] == "taskonomy" and manifest["settings"]["label"] == "tiny test"
    for f in list(manifest["tables"].values()) + list(manifest["figures"].values()):
        assert (out / f).is_file(), f
    assert {"pr_curve", "precision_at_k", "lambda_sweep", "task_tree"} <= set(manifest["figures"])
    # the per-method CSV holds exactly the evaluate module's curve
    names, truth = tx.load_truth(root / "truth")
    curve = ev.precision_recall_at_k(matrices.RSA, truth, names=matrices.names, truth_names=names)
    with open(out / "pk_RSA.csv") as fh:
        got = list(csv.DictReader(fh))
    assert [int(r["K"]) for r in got] == list(range(1, 20))
    assert [float(r["hits"]) for r in got] == curve.hits.tolist()
    assert [float(r["precision"]) for r in got] == pytest.approx(curve.precision.tolist())
    sweep = list(csv.DictReader(open(out / "lambda_sweep.csv")))
    lam0 = next(r for r in sweep if float(r["lambda"]) == 0.0)
    v_curve = ev.precision_recall_at_k(matrices.V, truth, names=matrices.names, truth_names=names)
    assert float(lam0["P@5"]) == pytest.approx(v_curve.at(5)[1])  # λ = 0 is DEPARA-V
    assert "DEPARA" in manifest["summary"]


def test_cli_tree(tdata, matrices, tmp_path):
    root, _, _ = tdata
    ev.write_matrix_csv(tmp_path / "m.csv", matrices.names, matrices.DEPARA)
    assert main(["tree", "--matrix", str(tmp_path / "m.csv"), "--out", str(tmp_path / "t.png"),
                 "--method", "complete", "--heatmap", str(tmp_path / "h.png")]) == 0
    assert (tmp_path / "t.png").read_bytes()[:4] == b"\x89PNG"
    assert (tmp_path / "h.png").read_bytes()[:4] == b"\x89PNG"


def test_load_truth_and_published(shared_data):
    names, truth = tx.load_truth(shared_data / "taskonomy")
    anames, aff = tx.load_truth(shared_data / "taskonomy" / "affinity_16k_target_by_source.csv")
    assert names == anames and len(names) == 20
    assert ev.relevant_sets(truth, names=names) == ev.relevant_sets(aff, names=anames)
    pub = read_published_hits(shared_data / "paper_numbers" / "taskonomy_pr_hits.csv")
    ks, hits = pub["DEPARA(V+0.25E)"]
    assert ks[0] == 1 and hits[0] == 16 and 6 not in ks.tolist()
    assert tx.published_method_key("DEPARA-V(grad*input nodes)") == "V"
    assert tx.published_method_key("DEPARA(V+0.25E)") == "DEPARA"
    assert tx.published_method_key("RSA") == "RSA"
    # published hits -> the paper's table: DEPARA P@1 = 16/18 = .889, P@5 = 68/90 = .756
    pts = tx.ev_points(ks, hits, 18, 5)
    assert pts["precision"][0] == pytest.approx(0.889, abs=1e-3)
    assert pts["precision"][list(ks).index(5)] == pytest.approx(0.756, abs=1e-3)
    assert pts["recall"][list(ks).index(5)] == pytest.approx(68 / 90)


# ------------------------------------------------------------------------------------------------ bad input
def _err(capsys, argv):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err
    return err


def test_missing_feature_file(tmp_path, capsys):
    make_taskonomy_like(tmp_path / "f")
    (tmp_path / "f" / "edge2d" / "task_feature.npy").unlink()
    err = _err(capsys, ["taskonomy", "matrices", "--features", str(tmp_path / "f"), "--out", str(tmp_path / "o")])
    assert "edge2d/task_feature.npy" in err


def test_missing_task_folder_and_attribution(tmp_path):
    make_taskonomy_like(tmp_path / "f")
    shutil.rmtree(tmp_path / "f" / "reshade")
    with pytest.raises(DeparaError, match="folder of task reshade not found"):
        tx.compute_matrices(tmp_path / "f", cache_dir=tmp_path / "c", progress=False)
    make_taskonomy_like(tmp_path / "g")
    (tmp_path / "g" / "segment2d" / "gradXinput.npy").unlink()
    with pytest.raises(DeparaError, match="segment2d/gradXinput.npy: task segment2d has no attribution file"):
        tx.compute_matrices(tmp_path / "g", cache_dir=tmp_path / "c", progress=False)
    with pytest.raises(DeparaError, match="attributions folder not found"):
        tx.compute_matrices(tmp_path / "g", attributions_root=tmp_path / "nope", cache_dir=tmp_path / "c",
                            progress=False)


def test_different_n_across_tasks(tmp_path, capsys):
    make_taskonomy_like(tmp_path / "f")
    np.save(tmp_path / "f" / "rgb2depth" / "task_feature.npy", np.ones((10, 16), np.float32))
    err = _err(capsys, ["taskonomy", "matrices", "--features", str(tmp_path / "f"), "--out", str(tmp_path / "o")])
    assert "rgb2depth/task_feature.npy: 10 probes" in err and "12" in err
    make_taskonomy_like(tmp_path / "g")
    np.save(tmp_path / "g" / "denoise" / "gradXinput.npy", np.ones((11, 8, 8, 2), np.float32))
    with pytest.raises(DeparaError, match="denoise/gradXinput.npy: 11 probes, but .* has 12"):
        tx.compute_matrices(tmp_path / "g", cache_dir=tmp_path / "c", progress=False)


def test_pickled_or_bad_arrays_are_refused(tmp_path):
    make_taskonomy_like(tmp_path / "f")
    np.save(tmp_path / "f" / "keypoint2d" / "task_feature.npy", np.array([{"a": 1}] * 12, dtype=object))
    with pytest.raises(DeparaError, match="keypoint2d/task_feature.npy: not a plain numeric .npy"):
        tx.compute_matrices(tmp_path / "f", cache_dir=tmp_path / "c", progress=False)
    (tmp_path / "f" / "keypoint2d" / "task_feature.npy").write_bytes(b"nonsense")
    with pytest.raises(DeparaError, match="keypoint2d/task_feature.npy"):
        tx.compute_matrices(tmp_path / "f", cache_dir=tmp_path / "c", progress=False)


def test_nan_in_features_names_the_task(tmp_path):
    make_taskonomy_like(tmp_path / "f")
    f = np.load(tmp_path / "f" / "edge3d" / "task_feature.npy")
    f[3, 2] = np.nan
    np.save(tmp_path / "f" / "edge3d" / "task_feature.npy", f)
    with pytest.raises(DeparaError, match="task edge3d .*non-finite"):
        tx.compute_matrices(tmp_path / "f", cache_dir=tmp_path / "c", progress=False)


def test_plot_bad_inputs(tdata, matrices, tmp_path, capsys):
    root, tasks, truth = tdata
    mat = tmp_path / "mat"
    tx.write_matrices(matrices, mat)
    # truth over another task set
    other = [t if t != "denoise" else "denoise_v2" for t in tasks]
    write_sort_gt(tmp_path / "truth", other, truth)
    err = _err(capsys, ["taskonomy", "plot", "--matrices", str(mat), "--truth", str(tmp_path / "truth"),
                        "--out", str(tmp_path / "o")])
    assert "task set differs" in err and "denoise_v2" in err
    err = _err(capsys, ["taskonomy", "plot", "--matrices", str(mat), "--truth", str(tmp_path / "nope"),
                        "--out", str(tmp_path / "o")])
    assert "nope" in err
    # NaN in a score matrix
    names, e = ev.read_matrix_csv(mat / "E.csv")
    e[2, 5] = np.nan
    ev.write_matrix_csv(mat / "E.csv", names, e)
    err = _err(capsys, ["taskonomy", "plot", "--matrices", str(mat), "--truth", str(root / "truth"),
                        "--out", str(tmp_path / "o")])
    assert "E.csv" in err and "non-finite" in err
    (mat / "RSA.csv").unlink()
    err = _err(capsys, ["taskonomy", "plot", "--matrices", str(mat), "--truth", str(root / "truth"),
                        "--out", str(tmp_path / "o")])
    assert "RSA.csv" in err
    err = _err(capsys, ["tree", "--matrix", str(mat / "V.csv"), "--out", str(tmp_path / "t.png"),
                        "--method", "fancy"])
    assert "linkage method 'fancy'" in err


def test_read_tasks_errors(tmp_path):
    (tmp_path / "t.txt").write_text("a\nb\na\n")
    with pytest.raises(DeparaError, match="duplicate task names"):
        tx.read_tasks(tmp_path / "t.txt")
    with pytest.raises(DeparaError, match="task list not found"):
        tx.read_tasks(tmp_path / "none.txt")
    (tmp_path / "p.csv").write_text("method,K1\nA,x\n")
    with pytest.raises(DeparaError, match="'x' is not a number"):
        read_published_hits(tmp_path / "p.csv")


def test_streaming_path_gives_the_same_matrices(tdata, matrices):
    root, _, _ = tdata
    streamed = tx.compute_matrices(root / "features", cache_dir=root / "cache", progress=False, max_node_bytes=0)
    for key, m in matrices.methods().items():
        np.testing.assert_allclose(streamed.methods()[key], m, atol=1e-12, err_msg=key)
    cached = next((root / "cache").glob("rgb2mist.depara.*.safetensors"))
    nodes = tx._memmap_nodes(cached)
    assert isinstance(nodes, np.memmap)
    np.testing.assert_array_equal(nodes, Graph.load(cached).nodes)


@pytest.mark.parametrize("exc", [ValueError(), OSError()])
def test_unreadable_array_with_an_empty_message_is_one_line(tmp_path, monkeypatch, exc):
    """numpy raising with no message: one line naming the file and the exception's type (the empty message once
    made an IndexError)."""
    path = tmp_path / "a.npy"
    np.save(path, np.zeros(3))

    def fail(*args, **kwargs):
        raise exc

    monkeypatch.setattr(tx.np, "load", fail)
    with pytest.raises(DeparaError, match=rf"^{path}: .*\({type(exc).__name__}\)$"):
        tx.open_array(path)
