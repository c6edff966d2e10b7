"""depara.selection.harness (scores from precomputed arrays, evaluation, outputs, torch extraction) and `depara score`."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from scipy import stats
from torch import nn

from depara.estimators import baselines as B
from depara.selection import harness as H
from depara.cli.main import main
from depara.errors import DeparaError
from depara.report.manifest import read_manifest

from _baselines_helpers import softmax
from _core_torch_helpers import FixedSize


def _arrays(seed: int = 0, n: int = 60, n_classes: int = 3):
    """Three sources whose features carry decreasing amounts of label signal, with head probabilities."""
    rng = np.random.default_rng(seed)
    labels = rng.permutation(np.arange(n) % n_classes)
    centres = rng.standard_normal((n_classes, 8))
    sources = {}
    for name, strength in (("good", 2.0), ("fair", 0.7), ("poor", 0.0)):
        feats = rng.standard_normal((n, 8)) + strength * centres[labels]
        probs = softmax(feats[:, :5] * 2)
        sources[name] = H.SourceInputs(features=feats, probs=probs)
    return sources, labels


def test_score_sources_matches_each_estimator():
    sources, labels = _arrays()
    table = H.score_sources(sources, labels, methods="logme,leep,nce,hscore,transrate,rsa,cka")
    assert table.sources == ("good", "fair", "poor")
    assert table.meta["rsa_cka_reference"] == "one-hot labels"
    one_hot = np.eye(3)[labels]
    for i, name in enumerate(table.sources):
        s = sources[name]
        assert table.scores["logme"][i] == B.logme(s.features, labels)
        assert table.scores["leep"][i] == B.leep(s.probs, labels)
        assert table.scores["nce"][i] == B.nce(s.probs.argmax(1), labels)
        assert table.scores["hscore"][i] == B.h_score(s.features, labels)
        assert table.scores["transrate"][i] == B.transrate(s.features, labels)
        assert table.scores["rsa"][i] == B.rsa(s.features, one_hot)
        assert table.scores["cka"][i] == B.linear_cka(s.features, one_hot)
    # label signal decreases good > fair > poor: every feature-based estimator must see it
    for m in ("logme", "hscore", "transrate", "rsa", "cka"):
        assert table.ranking(m) == ["good", "fair", "poor"], m


def test_score_sources_target_features_and_defaults():
    sources, labels = _arrays(1)
    target = sources["good"].features @ np.random.default_rng(3).standard_normal((8, 4))
    table = H.score_sources(sources, labels, methods=["rsa", "cka"], target_features=target)
    assert table.meta["rsa_cka_reference"] == "target features"
    assert table.scores["cka"][0] == pytest.approx(B.linear_cka(sources["good"].features, target))
    # methods=None: every method the inputs allow (no graphs -> no depara; labels -> the frozen label-graph default)
    assert H.score_sources(sources, labels).methods == ("logme", "leep", "nce", "hscore", "transrate", "rsa", "cka",
                                                        "depara_labels", "sfda", "nleep", "parc", "gbc", "pactran",
                                                        "etran", "ncti", "ped")
    # bare arrays are features
    bare = H.score_sources({k: v.features for k, v in sources.items()}, labels, methods="logme")
    assert bare.scores["logme"][0] == B.logme(sources["good"].features, labels)


def test_score_sources_regression():
    rng = np.random.default_rng(0)
    feats = rng.standard_normal((50, 6))
    targets = feats[:, :2] + 0.1 * rng.standard_normal((50, 2))
    table = H.score_sources({"a": feats, "b": rng.standard_normal((50, 6))}, targets, regression=True)
    assert table.methods == ("logme", "rsa", "cka")
    assert table.scores["logme"][0] == B.logme(feats, targets, regression=True)
    assert table.ranking("logme") == ["a", "b"]
    with pytest.raises(DeparaError, match="method leep: needs class labels"):
        H.score_sources({"a": feats}, targets, regression=True, methods="leep")


def test_evaluate_scores_by_hand():
    table = H.ScoreTable(sources=("a", "b", "c", "d"), methods=("m1", "m2"),
                         scores={"m1": np.array([4.0, 3.0, 2.0, 1.0]), "m2": np.array([1.0, 2.0, 3.0, 4.0])})
    truth = {"a": 0.9, "b": 0.6, "c": 0.8, "d": 0.5}
    rows = {r["method"]: r for r in H.evaluate_scores(table, truth, ks=(1, 2, 3, 9))}
    y = np.array([0.9, 0.6, 0.8, 0.5])
    assert rows["m1"]["kendall"] == pytest.approx(stats.kendalltau([4, 3, 2, 1], y).statistic)
    assert rows["m1"]["kendall"] == pytest.approx(4 / 6)  # 5 concordant, 1 discordant pair of 6
    assert rows["m1"]["pearson"] == pytest.approx(stats.pearsonr([4, 3, 2, 1], y).statistic)
    assert rows["m1"]["weighted_tau"] == pytest.approx(stats.weightedtau([4, 3, 2, 1], y).statistic)
    # m1 picks a (the best): relative accuracy 1; P@1 = 1; P@2: {a, b} vs {a, c} -> 1/2; P@3: {a,b,c} = {a,c,b}
    assert (rows["m1"]["pick"], rows["m1"]["relative_accuracy"], rows["m1"]["regret"]) == ("a", 1.0, 0.0)
    assert (rows["m1"]["p_at_1"], rows["m1"]["p_at_2"], rows["m1"]["p_at_3"]) == (1.0, 0.5, 1.0)
    assert "p_at_9" not in rows["m1"]
    # m2 picks d: 0.5 / 0.9
    assert rows["m2"]["pick"] == "d"
    assert rows["m2"]["relative_accuracy"] == pytest.approx(0.5 / 0.9)
    assert rows["m2"]["regret"] == pytest.approx(0.4)
    assert rows["m2"]["p_at_1"] == 0.0


def test_evaluate_scores_ties_are_pessimistic_and_constant_is_nan():
    table = H.ScoreTable(sources=("a", "b", "c"), methods=("flat",), scores={"flat": np.zeros(3)})
    row = H.evaluate_scores(table, [0.9, 0.5, 0.7])[0]
    assert np.isnan(row["kendall"]) and np.isnan(row["pearson"])
    assert row["pick"] == "b" and row["p_at_1"] == 0.0  # worst of the tied sources
    # the one P@K (depara.evaluation.rank_quality.rank_quality, sklearn order: truth first): tied top scores, relevant ranked last
    from depara.evaluation.rank_quality import rank_quality
    assert rank_quality(np.array([0.1, 0.9, 0.5]), np.array([1.0, 1.0, 0.0]), ks=[1]).p_at_k[1] == 0.0


def test_harness_bad_input():
    sources, labels = _arrays()
    with pytest.raises(DeparaError, match="unknown method 'logmee'"):
        H.score_sources(sources, labels, methods="logmee")
    with pytest.raises(DeparaError, match="source good has no source-head probabilities"):
        H.score_sources({"good": H.SourceInputs(features=sources["good"].features)}, labels, methods="leep")
    with pytest.raises(DeparaError, match="method depara: source good has no DEPARA graph"):
        H.score_sources(sources, labels, methods="depara")
    with pytest.raises(DeparaError, match="source fair: features has 59 rows"):
        H.score_sources({"fair": sources["fair"].features[:59]}, labels, methods="logme")
    with pytest.raises(DeparaError, match="truth: no ground-truth value for source 'poor'"):
        H.evaluate_scores(H.score_sources(sources, labels, methods="logme"), {"good": 1, "fair": 2})
    bad = dict(sources)
    bad["fair"] = H.SourceInputs(features=np.full((60, 8), np.nan), probs=sources["fair"].probs)
    with pytest.raises(DeparaError, match="logme on source fair: features: contains NaN"):
        H.score_sources(bad, labels, methods="logme")
    with pytest.raises(DeparaError, match="labels: expected classes 0..3 all present"):
        H.score_sources(sources, np.where(labels == 2, 3, labels), methods="hscore")


def test_write_results(tmp_path):
    sources, labels = _arrays()
    table = H.score_sources(sources, labels, methods="logme,hscore,cka")
    truth = {"good": 0.9, "fair": 0.7, "poor": 0.4}
    evaluation = H.evaluate_scores(table, truth)
    paths = H.write_results(tmp_path / "res", table, evaluation, truth=truth, settings={"seed": 0})
    manifest = read_manifest(tmp_path / "res")
    assert manifest["kind"] == "score"
    assert "agrees best" in manifest["summary"] and "picks source good" in manifest["summary"]
    for rel in [*manifest["tables"].values(), *manifest["figures"].values()]:
        assert (tmp_path / "res" / rel).stat().st_size > 0
    scores = json.loads(paths["scores_json"].read_text())
    assert scores["rankings"]["logme"] == ["good", "fair", "poor"]
    assert scores["truth"] == truth
    assert (tmp_path / "res" / "evaluation.csv").read_text().splitlines()[0].startswith("method,kendall")


# ----------------------------------------------------------------------------------------------- torch
def _tiny_net(seed: int, n_out: int = 4) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(2), nn.Flatten(),
                         nn.Linear(16, 6), nn.ReLU(), nn.Linear(6, n_out))


def test_extract_inputs_penultimate_and_probs():
    torch.manual_seed(0)
    images = torch.randn(10, 3, 16, 16)
    model = _tiny_net(1)
    inputs = H.extract_inputs({"m": model}, images, batch_size=4)["m"]
    with torch.no_grad():
        want = model[:6](images).numpy()
        logits = model(images).double()
    assert inputs.features.shape == (10, 6)
    np.testing.assert_allclose(inputs.features, want, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(inputs.probs, torch.softmax(logits, 1).numpy(), rtol=1e-6)
    pooled = H.extract_inputs({"m": model}, images, feature_layer="1")["m"].features  # conv map -> avg pool
    with torch.no_grad():
        np.testing.assert_allclose(pooled, model[:2](images).mean(dim=(2, 3)).numpy(), rtol=1e-5, atol=1e-6)
    with pytest.raises(DeparaError, match="no layer named 'nope'"):
        H.extract_inputs({"m": model}, images, feature_layer="nope")


def test_run_harness_end_to_end_with_depara(tmp_path):
    pytest.importorskip("depara.core.similarity")
    torch.manual_seed(0)
    images = torch.randn(24, 3, 16, 16)
    labels = np.arange(24) % 3
    models = {"s1": _tiny_net(1), "s2": _tiny_net(2), "s3": _tiny_net(3)}
    res = H.run_harness(models, images, labels, target_model=_tiny_net(4, n_out=3), probes=images[:10],
                        truth={"s1": 0.5, "s2": 0.7, "s3": 0.6}, out=tmp_path / "out", ks=(1, 2))
    assert res.table.methods == H.estimator_names(default=True)
    assert res.table.meta["rsa_cka_reference"] == "target features"
    from depara.extraction.extract import build_graph
    from depara.core.similarity import similarity

    g_t = build_graph(_tiny_net(4, n_out=3), images[:10], "6")
    want = similarity(build_graph(models["s2"], images[:10], "6"), g_t)
    assert res.table.scores["depara"][1] == pytest.approx(want, rel=1e-6)
    assert len(res.evaluation) == len(H.estimator_names(default=True))
    assert read_manifest(tmp_path / "out")["kind"] == "score"
    with pytest.raises(DeparaError, match="method depara: needs a target model and a probe set"):
        H.run_harness(models, images, labels, methods="depara")


# -------------------------------------------------------------------------------------------------- CLI
def test_cli_score_npz(tmp_path, capsys):
    sources, labels = _arrays()
    specs = []
    for name, s in sources.items():
        np.savez(tmp_path / f"{name}.npz", features=s.features, probs=s.probs)
        specs += ["--sources", f"{name}={tmp_path / name}.npz"]
    np.savez(tmp_path / "target.npz", labels=labels)
    (tmp_path / "truth.csv").write_text("source,accuracy\ngood,0.9\nfair,0.7\npoor,0.4\n")
    code = main(["score", "--method", "logme,leep", "-m", "nce", *specs, "--target-data",
                 str(tmp_path / "target.npz"), "--truth", str(tmp_path / "truth.csv"), "--out", str(tmp_path / "o")])
    assert code == 0
    data = json.loads((tmp_path / "o" / "scores.json").read_text())
    assert data["methods"] == ["logme", "leep", "nce"]
    assert data["scores"]["logme"]["good"] == pytest.approx(B.logme(sources["good"].features, labels))
    assert (tmp_path / "o" / "evaluation.png").is_file()
    assert "agrees best" in capsys.readouterr().out


def test_cli_score_bad_input(tmp_path, capsys):
    sources, labels = _arrays()
    np.savez(tmp_path / "a.npz", features=sources["good"].features)
    np.savez(tmp_path / "t.npz", labels=labels)
    base = ["score", "--sources", str(tmp_path / "a.npz"), "--target-data", str(tmp_path / "t.npz"),
            "--out", str(tmp_path / "o")]
    assert main([*base, "--method", "bogus"]) == 2
    assert "error: --method: unknown method 'bogus'" in capsys.readouterr().err
    assert main([*base, "--method", "leep"]) == 2
    assert "source a has no source-head probabilities" in capsys.readouterr().err
    np.savez(tmp_path / "nolabels.npz", x=labels)
    assert main(["score", "--sources", str(tmp_path / "a.npz"), "--target-data", str(tmp_path / "nolabels.npz"),
                 "--out", str(tmp_path / "o")]) == 2
    assert "no 'labels' array" in capsys.readouterr().err
    assert main([*base[:-2], "--out", str(tmp_path / "missing" / "deeper" / "o")]) == 2


def _image_folder(root, n_per_class=4, classes=("cat", "dog", "eel")):
    from PIL import Image

    rng = np.random.default_rng(0)
    for c in classes:
        (root / c).mkdir(parents=True)
        for i in range(n_per_class):
            Image.fromarray(rng.integers(0, 255, (20, 20, 3), dtype=np.uint8)).save(root / c / f"{i}.png")
    return root


def test_labelled_images(tmp_path):
    probes, labels, classes = H.labelled_images(_image_folder(tmp_path / "data"), "16x16")
    assert classes == ["cat", "dog", "eel"]
    assert labels.tolist() == [0] * 4 + [1] * 4 + [2] * 4
    assert probes.ids[4] == "dog/0.png" and tuple(probes.tensor().shape) == (12, 3, 16, 16)
    (tmp_path / "one" / "only").mkdir(parents=True)
    with pytest.raises(DeparaError, match="at least 2 class subfolders"):
        H.labelled_images(tmp_path / "one")


def test_cli_score_image_folder(tmp_path, monkeypatch, capsys):
    import depara.cli.score as score_cli

    nets = {"torchvision:a": _tiny_net(1, 5), "torchvision:b": _tiny_net(2, 5), "file:t.pt": _tiny_net(3, 3)}
    monkeypatch.setattr(score_cli, "_load_model", lambda spec: nets[spec])
    data = _image_folder(tmp_path / "data")
    code = main(["score", "-s", "torchvision:a,torchvision:b", "--target-data", str(data), "--target-model",
                 "file:t.pt", "--preprocess", "16x16", "--method", "logme,cka,depara", "--out", str(tmp_path / "o")])
    assert code == 0, capsys.readouterr().err
    manifest = read_manifest(tmp_path / "o")
    assert manifest["settings"]["classes"] == ["cat", "dog", "eel"]
    assert set(manifest["extra"]["rankings"]) == {"logme", "cka", "depara"}
    assert sorted(manifest["extra"]["rankings"]["logme"]) == ["a", "b"]


def test_cli_score_npz_with_saved_graphs(tmp_path):
    from depara.core.graph import Graph
    from depara.core.similarity import similarity

    rng = np.random.default_rng(0)
    sources, labels = _arrays()
    graphs = {}
    for name in ("good", "fair", "target"):
        graphs[name] = Graph.from_arrays(rng.standard_normal((12, 4, 4)), rng.standard_normal((12, 6)))
        graphs[name].save(tmp_path / f"{name}.safetensors")
    args = ["score", "-m", "depara,cka", "--lam", "0.5", "--out", str(tmp_path / "o")]
    for name in ("good", "fair"):
        np.savez(tmp_path / f"{name}.npz", features=sources[name].features)
        args += ["-s", f"{name}={tmp_path / name}.npz", "--graph", f"{name}={tmp_path / name}.safetensors"]
    target_feats = rng.standard_normal((60, 5))
    np.savez(tmp_path / "t.npz", labels=labels, features=target_feats)
    assert main([*args, "--target-data", str(tmp_path / "t.npz"), "--target-graph",
                 str(tmp_path / "target.safetensors")]) == 0
    data = json.loads((tmp_path / "o" / "scores.json").read_text())
    assert data["scores"]["depara"]["fair"] == pytest.approx(similarity(graphs["fair"], graphs["target"], lam=0.5))
    assert data["scores"]["cka"]["good"] == pytest.approx(B.linear_cka(sources["good"].features, target_feats))
    assert data["meta"]["rsa_cka_reference"] == "target features"


# ------------------------------------------------------------------------------- sources of different input sizes
def test_sources_with_different_input_sizes_get_their_own_preprocessing():
    from depara.extraction.probes import Preprocess, ProbeSet

    rng = np.random.default_rng(0)
    images = ProbeSet.from_images([rng.integers(0, 255, (20, 20, 3), dtype=np.uint8) for _ in range(12)],
                                  preprocess="8x8")
    labels = np.arange(12) % 3
    models = {"small": FixedSize(8, 0, n_classes=4), "large": FixedSize(12, 1, n_classes=4)}
    # one size for all: the 12-px model cannot run on 8×8 inputs -> one line naming the model and the size
    with pytest.raises(DeparaError, match=r"^source large: the model cannot run on 8×8 inputs \(.*\); give it its "
                                          r"own preprocessing"):
        H.run_harness(models, images, labels, methods="logme")
    res = H.run_harness(models, images, labels, methods="logme,cka", target_model=FixedSize(12, 2, n_classes=4),
                        target_preprocess="12x12", preprocess={"large": Preprocess(size=12)})
    # each model's features equal a run on the images preprocessed at its own size
    for name, size in (("small", 8), ("large", 12)):
        want = H.extract_inputs({name: models[name]}, images.tensor(f"{size}x{size}"))[name].features
        np.testing.assert_allclose(res.inputs[name].features, want, rtol=1e-6)
        assert res.inputs[name].features.shape == (12, 2 * size * size)
    with pytest.raises(DeparaError, match="preprocess: 'nope' is not a model name"):
        H.extract_inputs(models, images, preprocess={"nope": "8x8"})
    # DEPARA graphs: each source on its own size, one node grid, so the two are comparable
    graphs = H.build_depara_graphs(models, images, preprocess={"large": "12x12"})
    assert graphs["small"].meta["input_size"] == [8, 8] and graphs["large"].meta["input_size"] == [12, 12]
    assert graphs["small"].nodes.shape == graphs["large"].nodes.shape == (12, 56 * 56)


def test_cli_score_sources_of_different_sizes(tmp_path, monkeypatch, capsys):
    import depara.cli.score as score_cli

    nets = {"torchvision:small": FixedSize(8, 0, n_classes=4), "torchvision:large": FixedSize(12, 1, n_classes=4)}
    monkeypatch.setattr(score_cli, "_load_model", lambda spec: nets[spec])
    data = _image_folder(tmp_path / "data")
    args = ["score", "-s", "torchvision:small,torchvision:large", "--target-data", str(data), "--preprocess", "8x8",
            "--method", "logme,cka"]
    assert main([*args, "--out", str(tmp_path / "bad")]) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]  # not the bars
    assert len(err) == 1 and err[0].startswith("error: source large: the model cannot run on 8×8 inputs")
    assert err[0].endswith("(--source-preprocess large=WxH)")
    assert main([*args, "--source-preprocess", "large=12x12", "--out", str(tmp_path / "o")]) == 0
    assert read_manifest(tmp_path / "o")["settings"]["source_preprocess"] == {"large": "12x12"}


def test_harness_scores_the_frozen_label_default_without_a_target_model():
    """`depara_labels` (the label-graph member of the frozen default) runs in the harness from images and labels
    alone — no target model, no probe set — and equals an independent computation: the kNN comparison (round 6:
    k = 10; each probe's share of same-class neighbours minus its class's share of the others, averaged) of the
    cosine similarities of the source's features on the labelled images, each dimension centred."""
    from depara.options import DEFAULT_EDGE_COMPARISON, DEFAULT_EDGE_FEATURES, DEFAULT_EDGE_SCALE

    assert (DEFAULT_EDGE_COMPARISON, DEFAULT_EDGE_FEATURES, DEFAULT_EDGE_SCALE) == ("knn", "pooled", "centred")
    torch.manual_seed(0)
    models = {n: nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(2), nn.Flatten(),
                               nn.Linear(16, 8), nn.ReLU(), nn.Linear(8, 3)) for n in ("a", "b")}
    x = torch.randn(30, 3, 12, 12)
    y = np.arange(30) % 3
    res = H.run_harness(models, x, y, methods=["depara_labels"])
    assert res.table.methods == ("depara_labels",)
    for i, name in enumerate(res.table.sources):
        f = res.inputs[name].features.astype(np.float64)
        f = f.reshape(f.shape[0], f.shape[1], -1).mean(axis=2) if f.ndim > 2 else f  # pooled over space
        f = f - f.mean(axis=0)
        f = f / np.linalg.norm(f, axis=1, keepdims=True)
        sim = f @ f.T
        k = 10
        terms = []
        for j in range(len(y)):
            others = np.delete(np.arange(len(y)), j)
            near = others[np.argsort(-sim[j, others], kind="stable")[:k]]
            terms.append(np.mean(y[near] == y[j]) - np.mean(y[others] == y[j]))
        assert res.table.scores["depara_labels"][i] == pytest.approx(np.mean(terms), abs=1e-6)
    # and beside a peer, still without a target model
    both = H.run_harness(models, x, y, methods=["logme", "depara_labels"])
    assert np.allclose(both.table.scores["depara_labels"], res.table.scores["depara_labels"])


def test_cli_score_weightless_models_do_not_depend_on_the_order_of_sources(tmp_path, capsys):
    """Models without weights are built right after torch.manual_seed(--seed) (as select builds them): the same
    sources in two orders give the same scores, and the same architecture under two names the same weights."""
    data = _image_folder(tmp_path / "data")
    tables = []
    for order in (("a=torchvision:mobilenet_v3_small", "b=torchvision:resnet18", "c=torchvision:resnet18"),
                  ("c=torchvision:resnet18", "b=torchvision:resnet18", "a=torchvision:mobilenet_v3_small")):
        out = tmp_path / f"o{len(tables)}"
        code = main(["score", "-s", ",".join(order), "--target-data", str(data), "--preprocess", "32x32",
                     "--method", "logme,hscore", "--seed", "3", "--out", str(out)])
        assert code == 0, capsys.readouterr().err
        tables.append(json.loads((out / "scores.json").read_text())["scores"])
    assert tables[0] == tables[1]
    assert tables[0]["logme"]["b"] == tables[0]["logme"]["c"] != tables[0]["logme"]["a"]


def test_cli_score_prints_names_as_given_and_undefined_numbers_as_the_report_does(tmp_path, capsys):
    """A source name with rich markup is printed as given (escaped), never swallowed; correlations that are undefined
    (two sources with the same features: constant scores) print in the word of every table and of select's report
    ("undefined"), never Python's "nan"."""
    from depara.evaluation.uncertainty import UNDEFINED, rounded
    from depara.report.html import format_cell

    rng = np.random.default_rng(0)
    np.savez(tmp_path / "t.npz", labels=np.arange(30) % 3)
    np.savez(tmp_path / "a.npz", features=rng.standard_normal((30, 4)))
    (tmp_path / "truth.json").write_text(json.dumps({"x[red]": 1.0, "b": 2.0}))
    code = main(["score", "-s", f"x[red]={tmp_path / 'a.npz'},b={tmp_path / 'a.npz'}", "--target-data",
                 str(tmp_path / "t.npz"), "-m", "logme", "--truth", str(tmp_path / "truth.json"), "--out",
                 str(tmp_path / "o")])
    out = capsys.readouterr().out
    assert code == 0
    logme = json.loads((tmp_path / "o" / "scores.json").read_text())["scores"]["logme"]
    assert logme["x[red]"] == logme["b"]
    rows = [line for line in out.splitlines() if line.startswith("│")]
    assert any(line.split("│")[1].strip() == "x[red]" and line.split("│")[2].strip() == format_cell(logme["b"])
               for line in rows)
    agreement = next(line for line in rows if line.split("│")[1].strip() == "logme")
    cells = [c.strip() for c in agreement.split("│")]
    assert cells[2:5] == [UNDEFINED] * 3 == [rounded(float("nan"))[0]] * 3 and cells[6] == "x[red]"
    assert not any("nan" in line for line in rows)
    assert "(logme: tied: x[red], b)" in " ".join(out.split())  # the summary names the tie, markup as given


@pytest.mark.parametrize("content", [b"", b"PK\x03\x04 truncated"])
def test_an_unreadable_npz_names_the_file_and_the_reason_in_the_projects_wording(tmp_path, content):
    """The reason comes from depara.errors.exception_reason (type and first line), like every other file error."""
    from depara.selection.targets import load_source_npz

    path = tmp_path / "s.npz"
    path.write_bytes(content)
    with pytest.raises(DeparaError, match=rf"^path {path}: not a readable \.npz \((BadZipFile|EOFError|ValueError)"
                                          r"(: [^\n]*)?\)$"):
        load_source_npz(path)


def test_summary_line_reports_ties_instead_of_picking_one():
    """`depara score`'s line: a method whose top score is shared picks none of the tied sources; votes that tie are
    "too close to call"; a clear majority still picks (hand-made tables)."""
    def table(**scores):
        return H.ScoreTable(sources=("a", "b", "c"), methods=tuple(scores),
                            scores={m: np.array(v, dtype=float) for m, v in scores.items()})

    assert H.summary_line(table(logme=[1, 1, 0], cka=[2, 2, 0])) == \
        "no pick: no method ranks one source first (logme: tied: a, b; cka: tied: a, b)"
    assert H.summary_line(table(logme=[1, 0, 0], cka=[0, 1, 0])) == \
        "too close to call: a, b are each ranked first by 1 of 2 methods"
    assert H.summary_line(table(logme=[0, 1, 0], cka=[0, 1, 0], rsa=[1, 1, 0])) == \
        "pick source b (2 of 3 methods rank it first); rsa tied: a, b"
    assert H.summary_line(table(depara=[0, 0, 1], logme=[1, 1, 0])) == "pick source c (DEPARA); logme: tied: a, b"
    assert H.summary_line(table(depara=[np.nan] * 3, logme=[0, 0, 1])) == \
        "pick source c (1 of 2 methods rank it first); depara undefined"
