"""Task bank: scenes, tasks, networks, cached training / ground truth (resume, corruption), the tiny benchmark."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from depara.errors import DeparaError
from depara.benches.taskbank import TASK_NAMES, generate_scenes, get_task, task_inputs
from depara.benches.taskbank.cache import load_json_entry, load_tensors_entry, save_json_entry, save_tensors_entry
from depara.benches.taskbank.networks import ENCODER_LAYERS, REP_CHANNELS, TaskNet
from depara.benches.taskbank.scenes import AMBIENT
from depara.benches.taskbank.train import SceneData, load_or_train_encoders, make_config


# ---------------------------------------------------------------------------------------------- scenes
def test_scenes_are_deterministic_and_independent_of_batching():
    a = generate_scenes(6, seed=3)
    b = generate_scenes(6, seed=3)
    c = generate_scenes(2, seed=3, start=4)
    d = generate_scenes(6, seed=4)
    for k, v in a.arrays().items():
        np.testing.assert_array_equal(v, b.arrays()[k])
        np.testing.assert_array_equal(v[4:], c.arrays()[k])
    assert not np.array_equal(a.image, d.image)


@settings(max_examples=8, deadline=None)
@given(seed=st.integers(0, 10_000), size=st.sampled_from([16, 24, 32]))
def test_scene_buffers_are_physically_consistent(seed, size):
    s = generate_scenes(3, seed=seed, size=size)
    fg = s.instance > 0
    # Background everywhere an object is absent, and only there.
    np.testing.assert_array_equal(s.semantic > 0, fg)
    assert np.all(s.depth[~fg] == 1.0) and np.all(s.depth[fg] < 1.0)
    # Unit normals, and Lambertian shading recomputed from normals and light.
    np.testing.assert_allclose(np.linalg.norm(s.normals, axis=-1), 1.0, atol=1e-5)
    lambert = np.clip(np.einsum("nhwc,nc->nhw", s.normals, s.light), 0, 1)
    np.testing.assert_allclose(s.shading, AMBIENT + (1 - AMBIENT) * lambert, atol=1e-5)
    np.testing.assert_allclose(s.image, np.clip(s.albedo * s.shading[..., None], 0, 1), atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(s.light, axis=1), 1.0, atol=1e-5)
    for i in range(3):
        ids, areas = np.unique(s.instance[i][fg[i]], return_counts=True)
        assert s.count[i] == max(1, int(np.sum(areas >= 3)))
        # Occlusion edges, recomputed independently: a pixel whose 4-neighbourhood (clipped) has >1 label.
        lab = np.pad(s.instance[i], 1, mode="edge")
        centre = lab[1:-1, 1:-1]
        diff = ((lab[:-2, 1:-1] != centre) | (lab[2:, 1:-1] != centre) | (lab[1:-1, :-2] != centre)
                | (lab[1:-1, 2:] != centre))
        np.testing.assert_array_equal(s.occlusion_edges[i] > 0, diff)


def test_scene_bad_arguments():
    with pytest.raises(DeparaError, match="n=0"):
        generate_scenes(0)
    with pytest.raises(DeparaError, match="size=8"):
        generate_scenes(2, size=8)


# ---------------------------------------------------------------------------------------------- tasks
def test_registry_has_at_least_12_tasks_dense_and_global():
    kinds = {get_task(n).kind for n in TASK_NAMES}
    assert len(TASK_NAMES) >= 12 and kinds == {"dense", "global"}
    assert sum(get_task(n).is_target for n in TASK_NAMES) >= 12


def test_unknown_task_names_close_matches():
    with pytest.raises(DeparaError, match=r"unknown task 'dpeth'.*depth"):
        get_task("dpeth")
    with pytest.raises(DeparaError, match="known tasks"):
        get_task("zzzzzz")


@pytest.mark.parametrize("name", TASK_NAMES)
def test_task_inputs_and_targets(name):
    task = get_task(name)
    s = generate_scenes(4, seed=1)
    x = task_inputs(task, s, seed=1)
    y = task.targets(s)
    assert x.shape == (4, 3, 32, 32) and x.dtype == np.float32 and x.min() >= -1 and x.max() <= 1
    if task.loss == "ce":
        assert y.dtype == np.int64 and y.min() >= 0 and y.max() < task.out_channels
    else:
        assert y.dtype == np.float32 and y.shape[1] == task.out_channels
    if task.input == "grey":
        np.testing.assert_array_equal(x[:, 0], x[:, 2])
    if task.input == "masked":
        assert np.all(x[:, :, 14:18, 14:18] == 0.0)  # 0.5 grey -> 0 in [-1, 1]
    if task.input == "clean":
        np.testing.assert_allclose(x, np.moveaxis(s.image, -1, 1) * 2 - 1, atol=1e-6)
    net = TaskNet(task, 32, width=4)
    out = net(torch.from_numpy(x))
    assert out.shape[1] == task.out_channels and (task.kind == "global") == (out.ndim == 2)


def test_encoders_share_layer_names_and_rep_shape():
    keys = {tuple(TaskNet(get_task(n), 32, 4).encoder.state_dict()) for n in TASK_NAMES}
    assert len(keys) == 1
    enc = TaskNet(get_task("depth"), 32, 4).encoder
    assert set(ENCODER_LAYERS) <= {n for n, _ in enc.named_modules()}
    assert enc(torch.zeros(2, 3, 32, 32)).shape == (2, REP_CHANNELS, 8, 8)


def test_config_bad_input():
    with pytest.raises(DeparaError, match="scale 'huge'"):
        make_config("huge")
    with pytest.raises(DeparaError, match="relevant-set size 7"):
        make_config("tiny", relevant=7)
    with pytest.raises(DeparaError, match="unknown task"):
        make_config("tiny", tasks=("depth", "normals"))
    with pytest.raises(DeparaError, match="n_limited=8"):
        make_config("tiny", n_limited=8)


# ---------------------------------------------------------------------------------------------- cache
def test_json_entry_checksum_and_key(tmp_path):
    p = tmp_path / "e.json"
    save_json_entry(p, "k1", {"loss": [1.0, 2.0]})
    assert load_json_entry(p, "k1") == {"loss": [1.0, 2.0]}
    assert load_json_entry(p, "k2") is None  # other settings
    p.write_text(p.read_text().replace("2.0", "3.0"))  # payload changed behind the checksum
    assert load_json_entry(p, "k1") is None
    p.write_text("{not json")
    assert load_json_entry(p, "k1") is None


def test_tensor_entry_detects_bit_flip(tmp_path):
    p = tmp_path / "w.safetensors"
    save_tensors_entry(p, "k", {"w": torch.arange(6.0)}, {"seconds": 1.0})
    tensors, info = load_tensors_entry(p, "k")
    assert torch.equal(tensors["w"], torch.arange(6.0)) and info["seconds"] == 1.0
    raw = bytearray(p.read_bytes())
    raw[-1] ^= 0xFF
    p.write_bytes(bytes(raw))
    assert load_tensors_entry(p, "k") is None


def _micro_config():
    return make_config("tiny", tasks=("autoencoding", "depth", "segment2d", "count", "light"), relevant=2,
                       width=4, n_train=32, n_test=32, n_limited=32, n_probe=12, epochs=1, readout_epochs=1)


@pytest.fixture
def one_thread():
    """Train with one torch thread (shared CI cores), restoring the setting afterwards."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_training_resumes_and_rebuilds_corrupt_entries(tmp_path, one_thread):
    from depara.benches.taskbank.affinity import measure_affinities

    cfg = _micro_config()
    data = SceneData(cfg)
    msgs: list[str] = []
    enc1, info1 = load_or_train_encoders(cfg, tmp_path, data, progress=msgs.append)
    assert len(msgs) == 5 and not any(i["cached"] for i in info1.values())
    gt1 = measure_affinities(cfg, tmp_path, enc1, data)

    # Corrupt one encoder and delete one ground-truth pair (an interrupted run): only those are redone.
    enc_file = tmp_path / "encoders" / "depth.safetensors"
    raw = bytearray(enc_file.read_bytes())
    raw[len(raw) // 2] ^= 0x55
    enc_file.write_bytes(bytes(raw))
    (tmp_path / "affinity" / "light" / "count.json").unlink()
    msgs.clear()
    enc2, info2 = load_or_train_encoders(cfg, tmp_path, data, progress=msgs.append)
    assert msgs == ["training task network depth"]
    assert [n for n, i in info2.items() if not i["cached"]] == ["depth"]
    # Deterministic retraining: the rebuilt encoder equals the original.
    for a, b in zip(enc1["depth"].parameters(), enc2["depth"].parameters()):
        torch.testing.assert_close(a, b)
    msgs.clear()
    gt2 = measure_affinities(cfg, tmp_path, enc2, data, progress=msgs.append)
    assert msgs == ["ground truth: count -> light"]
    np.testing.assert_allclose(gt1["affinity"], gt2["affinity"], equal_nan=True)

    # The matrices follow from the cached per-image losses (independent recomputation).
    names = list(cfg.tasks)
    ti, si = names.index("depth"), names.index("count")
    pair = json.loads((tmp_path / "affinity" / "depth" / "count.json").read_text())["payload"]
    scratch = json.loads((tmp_path / "affinity" / "depth" / "_scratch.json").read_text())["payload"]
    assert gt2["affinity"][ti, si] == pytest.approx(np.log(np.mean(scratch["loss"]) / np.mean(pair["loss"])))
    assert gt2["win_rate"][ti, si] == pytest.approx(np.mean(np.array(pair["loss"]) < np.array(scratch["loss"])))
    assert np.all(np.isnan(np.diag(gt2["affinity"])))
    assert gt2["targets"] == names  # all five are targets


# ---------------------------------------------------------------------------------------------- probes
def test_out_of_domain_probes_skip_gracefully(monkeypatch, tmp_path):
    from depara.benches.taskbank import probesets

    monkeypatch.setattr(probesets, "FASHION_MNIST_DIRS", (str(tmp_path / "none"),))
    monkeypatch.delenv("DEPARA_FASHION_MNIST", raising=False)
    monkeypatch.setenv("DEPARA_SHARED_DATA", str(tmp_path / "nothing"))
    sets, skipped = probesets.out_of_domain_probes(6, 32, seed=0)
    assert set(skipped) == {"visda", "fashion-mnist"} and "visda_real_probe200" in skipped["visda"]
    x = sets["skimage"]
    assert x.shape == (6, 3, 32, 32) and x.min() >= -1 and x.max() <= 1 and x.std() > 0.05
    np.testing.assert_array_equal(x, probesets.skimage_probes(6, 32, seed=0))


# ---------------------------------------------------------------------------------------------- pipeline
def _read(path: Path) -> list[dict]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def _matrix(path: Path) -> tuple[list[str], np.ndarray]:
    from depara.evaluation.rank_quality import read_matrix_csv

    names, m = read_matrix_csv(path)
    return list(names), m


@pytest.fixture(scope="module")
def tiny_run(depara_cache, tmp_path_factory):
    from depara.cli.main import main

    out = tmp_path_factory.mktemp("taskbank_tiny")
    threads = torch.get_num_threads()
    code = main(["bench", "taskbank", "--scale", "tiny", "--out", str(out), "--quiet"])
    assert code == 0
    assert torch.get_num_threads() == threads  # the run's one-thread setting is restored
    return out


@pytest.mark.slow
def test_tiny_bench_writes_results(tiny_run):
    from depara.report.manifest import read_manifest

    man = read_manifest(tiny_run)
    assert man["kind"] == "taskbank" and "P@3" in man["summary"]
    for f in [*man["tables"].values(), *man["figures"].values()]:
        assert (tiny_run / f).is_file(), f
    rows = _read(tiny_run / "summary.csv")
    methods = {r["method"] for r in rows}
    assert {"DEPARA-E", "RSA", "linear CKA", "LogME (labels)"} <= methods
    assert {r["probe_set"] for r in rows} >= {"in-domain", "skimage"}
    node = _read(tiny_run / "node_options.csv")
    assert {r["node"] for r in node} == {"sum/mean", "sum/abs_mean", "mean/mean", "mean/abs_mean", "l2/mean",
                                          "l2/abs_mean"}
    # V is scale-invariant per map, so the sum and the mean of the output give the same nodes.
    for r1 in node:
        if r1["node"].startswith("sum/"):
            r2 = next(r for r in node if r["probe_set"] == r1["probe_set"] and r["node"] == "mean/" + r1["node"][4:])
            assert float(r1["mean_V"]) == pytest.approx(float(r2["mean_V"]), abs=1e-6)


@pytest.mark.slow
def test_tiny_bench_hits_match_independent_count(tiny_run):
    names, truth = _matrix(tiny_run / "gt_affinity.csv")
    _, e = _matrix(tiny_run / "matrices" / "in-domain__E.csv")
    _, r = _matrix(tiny_run / "matrices" / "in-domain__RSA.csv")
    pk = _read(tiny_run / "pk.csv")
    rel = 3
    for method, m in (("DEPARA-E", e), ("RSA", r)):
        for k in (1, rel, len(names) - 1):
            hits = 0
            for t in range(len(names)):
                if np.all(np.isnan(truth[t])):
                    continue
                cand = [s for s in range(len(names)) if s != t]
                top_true = set(sorted(cand, key=lambda s: -truth[t, s])[:rel])
                top_pred = sorted(cand, key=lambda s: -m[t, s])[:k]
                hits += len(top_true & set(top_pred))
            row = next(x for x in pk if x["method"] == method and x["probe_set"] == "in-domain" and int(x["K"]) == k)
            assert float(row["hits"]) == hits, (method, k)


@pytest.mark.slow
def test_tiny_bench_headline_is_library_default_similarity(tiny_run):
    """The headline row is the library default S = V(l2/mean) + λE (λ = DEFAULT_LAMBDA; ∞: E alone), evaluated
    independently from the written matrices."""
    import math

    from depara.evaluation.rank_quality import precision_recall_at_k
    from depara.options import DEFAULT_LAMBDA
    from depara.report.manifest import read_manifest
    from depara.benches.taskbank.bench import HEADLINE

    names, truth = _matrix(tiny_run / "gt_affinity.csv")
    _, v = _matrix(tiny_run / "matrices" / "in-domain__V__l2-mean.csv")
    _, e = _matrix(tiny_run / "matrices" / "in-domain__E.csv")
    s = e.copy() if math.isinf(DEFAULT_LAMBDA) else v + DEFAULT_LAMBDA * e
    rel = 3
    row = next(r for r in _read(tiny_run / "summary.csv") if r["method"] == HEADLINE and r["probe_set"] == "in-domain")
    hits = 0
    for t in range(len(names)):
        if np.all(np.isnan(truth[t])):
            continue
        cand = [j for j in range(len(names)) if j != t]
        top_true = set(sorted(cand, key=lambda j: -truth[t, j])[:rel])
        hits += len(top_true & set(sorted(cand, key=lambda j: -s[t, j])[:rel]))
    assert float(row[f"hits@{rel}"]) == hits
    assert float(row[f"P@{rel}"]) == pytest.approx(precision_recall_at_k(s, truth, rel, names=names).at(rel)[1])
    # The top-k lists, the manifest and the summary line name the headline method.
    top = _read(tiny_run / "top_sets.csv")
    for r in top:
        t = names.index(r["target"])
        cand = [j for j in range(len(names)) if j != t]
        assert r["DEPARA_top3"].split() == [names[j] for j in sorted(cand, key=lambda j: (-s[t, j], names[j]))[:rel]]
    man = read_manifest(tiny_run)
    assert man["extra"]["headline_method"] == HEADLINE
    assert man["settings"]["lambda"] == ("inf" if math.isinf(DEFAULT_LAMBDA) else DEFAULT_LAMBDA)
    assert man["extra"]["headline_P@3"] == pytest.approx(float(row["P@3"]))
    assert "in-sample" in man["extra"]["best_node_selection"] and HEADLINE in man["summary"]
    assert {r["method"] for r in _read(tiny_run / "summary.csv")} >= {
        HEADLINE, "DEPARA (λ=0.25, node sum/mean, paper)", "DEPARA-E"}


@pytest.mark.slow
def test_tiny_bench_label_scores_equal_direct_baselines(tiny_run, depara_cache, one_thread):
    """LogME / H-score / TransRate come through the harness; they equal direct depara.estimators.baselines calls."""
    from depara.estimators import baselines
    from depara.benches.taskbank.affinity import encode
    from depara.benches.taskbank.bench import _dense_regression_targets, cache_root_for

    cfg = make_config("tiny")
    data = SceneData(cfg)
    encoders, _ = load_or_train_encoders(cfg, cache_root_for(cfg, depara_cache), data, progress=lambda _m: None)
    names = list(cfg.tasks)
    mats = {k: _matrix(tiny_run / "matrices" / f"label__{k}.csv")[1] for k in ("LogME", "H-score", "TransRate")}
    checked = set()
    for tname in ("count", "light", "depth"):  # classification, global regression, dense regression
        target = get_task(tname)
        x, y = data.xy(target, "limited")
        ti = names.index(tname)
        for sname in ("autoencoding", "normal"):
            f = encode(encoders[sname], x).reshape(len(x), -1).astype(np.float64)
            si = names.index(sname)
            if tname == "count":
                labels = np.unique(y, return_inverse=True)[1]
                direct = {"LogME": baselines.logme(f, labels), "H-score": baselines.h_score(f, labels),
                          "TransRate": baselines.transrate(f, labels)}
            elif tname == "light":
                direct = {"LogME": baselines.logme(f, y.astype(np.float64), regression=True)}
            else:
                yr = _dense_regression_targets(target, y).astype(np.float64)
                direct = {"LogME": baselines.logme(f, yr[:, yr.std(axis=0) > 1e-8], regression=True)}
            for key, value in direct.items():
                assert mats[key][ti, si] == pytest.approx(value, rel=1e-9, abs=1e-12), (tname, sname, key)
                checked.add(key)
            if tname != "count":
                assert np.isnan(mats["H-score"][ti, si]) and np.isnan(mats["TransRate"][ti, si])
    assert checked == {"LogME", "H-score", "TransRate"}


def test_headline_constants_are_the_library_defaults():
    import inspect

    from depara.extraction.extract import build_graphs
    from depara.core.similarity import rank_sources, similarity, similarity_matrix
    from depara.options import DEFAULT_GRAPH_OPTIONS
    from depara.benches.taskbank.bench import BANK_OPTIONS, HEADLINE, LIBRARY_LAMBDA, LIBRARY_NODE

    # build_graphs' default options are THE defaults; the bank changes only the node grid (its probes' own)
    assert inspect.signature(build_graphs).parameters["options"].default is None
    assert LIBRARY_NODE == f"{DEFAULT_GRAPH_OPTIONS.scalar}/{DEFAULT_GRAPH_OPTIONS.channel_reduction}"
    assert BANK_OPTIONS == DEFAULT_GRAPH_OPTIONS.replace(node_size=None)
    for fn in (similarity_matrix, similarity, rank_sources):
        assert inspect.signature(fn).parameters["lam"].default == LIBRARY_LAMBDA, fn.__name__
    from depara.options import format_lam

    assert f"λ={format_lam(LIBRARY_LAMBDA)}" in HEADLINE


@pytest.mark.slow
def test_tiny_bench_second_run_reuses_cache(tiny_run, depara_cache, tmp_path):
    from depara.cli.main import main

    # Only the tiny task bank's entries: other pipelines (`depara demo`, the layers demo) share the session cache.
    def tiny_entries():
        return {p: p.stat().st_mtime_ns for p in (depara_cache / "taskbank").glob("tiny-*/**/*.safetensors")}

    stamps = tiny_entries()
    assert len(stamps) == 8
    assert main(["bench", "taskbank", "--scale", "tiny", "--out", str(tmp_path), "--quiet"]) == 0
    assert tiny_entries() == stamps
    a, b = _read(tiny_run / "summary.csv"), _read(tmp_path / "summary.csv")
    assert a == b  # deterministic under the same seed


def test_cli_bad_scale_and_threads(tmp_path, capsys):
    from depara.cli.main import main

    assert main(["bench", "taskbank", "--scale", "huge", "--out", str(tmp_path / "x")]) == 2
    assert "error: scale 'huge'" in capsys.readouterr().err
    assert main(["bench", "taskbank", "--threads", "-1", "--out", str(tmp_path / "x")]) == 2
    assert "error: --threads -1" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------- scoring pieces
def test_dense_targets_pooled_for_logme_match_block_means():
    from depara.benches.taskbank.bench import _dense_regression_targets

    s = generate_scenes(3, seed=2)
    depth = get_task("depth").targets(s)  # 3×1×32×32
    pooled = _dense_regression_targets(get_task("depth"), depth)
    assert pooled.shape == (3, 16)
    assert pooled[1, 4 * 2 + 3] == pytest.approx(depth[1, 0, 16:24, 24:32].mean(), rel=1e-5)
    sem = get_task("segmentsemantic").targets(s)  # labels -> class shares per cell, summing to 1
    shares = _dense_regression_targets(get_task("segmentsemantic"), sem).reshape(3, 5, 16)
    np.testing.assert_allclose(shares.sum(axis=1), 1.0, atol=1e-6)
    assert shares[0, 0, 0] == pytest.approx(np.mean(sem[0, :8, :8] == 0))


def test_node_similarity_per_option_matches_direct_autograd(one_thread):
    from depara.benches.taskbank.bench import NODE_OPTIONS, graph_scores

    torch.manual_seed(0)
    encoders = {n: TaskNet(get_task(n), 32, 4).encoder.eval() for n in ("depth", "normal", "light")}
    probes = task_inputs(get_task("autoencoding"), generate_scenes(10, seed=5))
    sc = graph_scores(encoders, probes)
    assert set(sc["V"]) == set(NODE_OPTIONS)

    def maps(enc, scalar, reduce):
        x = torch.from_numpy(probes).requires_grad_(True)
        f = enc(x).flatten(1)
        s = {"sum": f.sum(1), "mean": f.mean(1), "l2": f.norm(dim=1)}[scalar]
        (g,) = torch.autograd.grad(s.sum(), x)
        a = (x * g).detach()
        a = a.abs().mean(1) if reduce == "abs_mean" else a.mean(1)
        return a.flatten(1).double().numpy()

    for option in ("sum/mean", "l2/mean", "l2/abs_mean"):
        scalar, reduce = option.split("/")
        m = {n: maps(e, scalar, reduce) for n, e in encoders.items()}
        a, b = m["depth"], m["light"]
        cos = (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
        assert sc["V"][option][0, 2] == pytest.approx(cos.mean(), abs=1e-5), option
    np.testing.assert_allclose(sc["V"]["sum/mean"], sc["V"]["mean/mean"], atol=1e-6)
    # RSA and CKA are symmetric with a unit diagonal.
    for key in ("RSA", "CKA", "E"):
        np.testing.assert_allclose(sc[key], sc[key].T, atol=1e-9)
