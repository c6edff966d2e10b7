"""Peer estimators per layer (depara.benches.layers.peers): scores equal the baselines called directly, the evaluation
equals scipy's correlations, pooled features equal a hand computation, and `layers-select --peers` writes a
results folder."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from scipy import stats

from depara.estimators import baselines
from depara.io.files import read_csv, write_csv, write_json
from depara.cli.main import main
from depara.errors import DeparaError
from depara.extraction.extract import capture_features
from depara.benches.layers import build_model, transfer_units
from depara.benches.layers.models import ModelInfo, save_info, save_weights
from depara.benches.layers.peers import (evaluate_layers, layer_key, peer_layer_table, pooled_layer_features,
    resolve_target_data)

from _layers_helpers import make_tiny_digits

LAYERS = [(1, "conv.a"), (2, "conv.b"), (3, "fc.c")]
ACCS = {1: 0.9, 2: 0.6, 3: 0.3}


def _separable_layers(n_per_class: int = 20, classes: int = 3, dim: int = 6, seed: int = 0):
    """Three layers whose class signal shrinks with depth: strong, weak, none (pure noise)."""
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(classes), n_per_class)
    onehot = np.eye(classes)[labels] @ rng.normal(size=(classes, dim))
    noise = lambda: rng.normal(size=(labels.size, dim))  # noqa: E731
    feats = {"conv.a": 4.0 * onehot + 0.3 * noise(), "conv.b": 1.0 * onehot + noise(), "fc.c": noise()}
    return feats, labels


def test_label_based_scores_equal_the_baselines_and_rank_the_separable_layer_first():
    feats, labels = _separable_layers()
    table = peer_layer_table(LAYERS, feats, labels, methods=("logme", "hscore", "transrate"), shallower=False)
    assert table.sources == tuple(layer_key(d, n) for d, n in LAYERS) == ("#1 conv.a", "#2 conv.b", "#3 fc.c")
    expected = [baselines.logme(feats[n], labels) for _, n in LAYERS]
    np.testing.assert_allclose(table.scores["logme"], expected, rtol=1e-12)
    np.testing.assert_allclose(table.scores["hscore"], [baselines.h_score(feats[n], labels) for _, n in LAYERS],
                               rtol=1e-12)
    np.testing.assert_allclose(table.scores["transrate"],
                               [baselines.transrate(feats[n], labels) for _, n in LAYERS], rtol=1e-12)
    assert expected[0] > expected[1] > expected[2]  # the construction's known answer

    rows = {r["method"]: r for r in evaluate_layers(table, ACCS)}
    logme = rows["logme"]
    assert logme["kendall"] == pytest.approx(1.0) and logme["spearman"] == pytest.approx(1.0)
    assert logme["pearson"] == pytest.approx(stats.pearsonr(expected, [0.9, 0.6, 0.3]).statistic)
    assert (logme["pick_depth"], logme["pick_layer"], logme["best_depth"], logme["regret"]) == (1, "conv.a", 1, 0.0)
    assert logme["family"] == "label-based"


def test_evaluation_equals_scipy_and_reads_the_accuracy_lost_off_the_table():
    feats, labels = _separable_layers(seed=1)
    depara_rows = [{"depth": 1, "layer": "conv.a", "V": 0.5, "E": 0.1, "S_lam10": 1.5},
                   {"depth": 2, "layer": "conv.b", "V": 0.7, "E": 0.2, "S_lam10": 2.7},
                   {"depth": 3, "layer": "fc.c", "V": 0.6, "E": 0.3, "S_lam10": 3.6}]
    table = peer_layer_table(LAYERS, feats, labels, methods=("logme",), depara_rows=depara_rows)
    assert table.methods == ("logme", "DEPARA V", "DEPARA E", "DEPARA V+10E", "shallower")
    np.testing.assert_array_equal(table.scores["DEPARA V"], [0.5, 0.7, 0.6])
    np.testing.assert_array_equal(table.scores["shallower"], [-1.0, -2.0, -3.0])
    accs = {1: 0.5, 2: 0.8, 3: 0.6}
    rows = {r["method"]: r for r in evaluate_layers(table, accs)}
    v = rows["DEPARA V"]  # V ranks #2 > #3 > #1, as the accuracy does
    assert v["kendall"] == pytest.approx(stats.kendalltau([0.5, 0.7, 0.6], [0.5, 0.8, 0.6]).statistic) == 1.0
    assert (v["pick_depth"], v["regret"]) == (2, 0.0)
    e = rows["DEPARA E"]  # E picks #3 (0.6) while #2 (0.8) is best: 0.2 lost
    assert e["kendall"] == pytest.approx(stats.kendalltau([0.1, 0.2, 0.3], [0.5, 0.8, 0.6]).statistic)
    assert e["kendall_p"] == pytest.approx(stats.kendalltau([0.1, 0.2, 0.3], [0.5, 0.8, 0.6]).pvalue)
    assert e["weighted_tau"] == pytest.approx(stats.weightedtau([0.1, 0.2, 0.3], [0.5, 0.8, 0.6]).statistic)
    assert (e["pick_depth"], e["best_depth"]) == (3, 2) and e["regret"] == pytest.approx(0.2)
    assert e["relative_accuracy"] == pytest.approx(0.6 / 0.8) and e["family"] == "depara"
    assert rows["shallower"]["pick_depth"] == 1 and rows["shallower"]["regret"] == pytest.approx(0.3)


def test_label_free_scores_use_the_target_outputs_and_constant_scores_cannot_pick():
    rng = np.random.default_rng(2)
    target = rng.normal(size=(30, 4))
    rotation = np.linalg.qr(rng.normal(size=(4, 4)))[0]
    probe = {"conv.a": rng.normal(size=(30, 5)), "conv.b": 3.0 * target @ rotation, "fc.c": rng.normal(size=(30, 2))}
    feats, labels = _separable_layers(n_per_class=1, classes=3)  # one image per class: H-score = C−1 everywhere
    table = peer_layer_table(LAYERS, feats, labels, probe_features=probe, target_outputs=target,
                             methods=("hscore", "rsa", "cka"), shallower=False)
    np.testing.assert_allclose(table.scores["cka"], [baselines.linear_cka(probe[n], target) for _, n in LAYERS])
    np.testing.assert_allclose(table.scores["rsa"], [baselines.rsa(probe[n], target) for _, n in LAYERS])
    # linear CKA is invariant to rotation and scale: the rotated copy of the target's logits scores 1
    assert table.scores["cka"][1] == pytest.approx(1.0) and np.argmax(table.scores["rsa"]) == 1
    assert table.meta["constant_scores"] == ["hscore"] and np.ptp(table.scores["hscore"]) == 0 \
        and table.scores["hscore"][0] == pytest.approx(2.0)
    rows = {r["method"]: r for r in evaluate_layers(table, ACCS)}
    assert np.isnan(rows["hscore"]["kendall"]) and np.isnan(rows["hscore"]["spearman"])
    assert np.isnan(rows["hscore"]["kendall_p"])
    assert rows["hscore"]["pick_depth"] == 3 and rows["hscore"]["regret"] == pytest.approx(0.6)  # pessimistic
    assert rows["cka"]["pick_depth"] == 2 and rows["cka"]["family"] == "label-free"


def test_bad_inputs():
    feats, labels = _separable_layers()
    with pytest.raises(DeparaError, match="method leep: not a per-layer method .*source head"):
        peer_layer_table(LAYERS, feats, labels, methods=("leep",))
    with pytest.raises(DeparaError, match="method rsa: needs probe_features"):
        peer_layer_table(LAYERS, feats, labels, methods=("rsa",))
    with pytest.raises(DeparaError, match="no features for layer 'fc.c'"):
        peer_layer_table(LAYERS, {"conv.a": feats["conv.a"], "conv.b": feats["conv.b"]}, labels, methods=("logme",))
    with pytest.raises(DeparaError, match="no DEPARA row for depth 3"):
        peer_layer_table(LAYERS, feats, labels, methods=(), depara_rows=[{"depth": 1, "V": 1}, {"depth": 2, "V": 1}])
    table = peer_layer_table(LAYERS, feats, labels, methods=("logme",))
    with pytest.raises(DeparaError, match="no transfer accuracy for depth 3"):
        evaluate_layers(table, {1: 0.5, 2: 0.4})
    with pytest.raises(DeparaError, match="images: expected a non-empty float tensor"):
        pooled_layer_features(torch.nn.Identity(), torch.zeros(3, 4), ["x"])


def test_pooled_layer_features_equal_capture_then_mean():
    torch.manual_seed(0)
    model = build_model("narrow_vgg11_bn", 10, width=0.125).eval()
    x = torch.randn(5, 3, 32, 32)
    names = [u.output for u in transfer_units(model)[:-1]]
    got = pooled_layer_features(model, x, names, batch_size=2)  # batches of 2, 2, 1
    ref = capture_features(model, x, names)
    for name in names:
        t = ref[name]
        expect = t.mean(dim=(2, 3)) if t.ndim == 4 else t
        np.testing.assert_allclose(got[name], expect.double().numpy(), rtol=1e-5, atol=1e-6)
        assert got[name].shape[0] == 5


@pytest.fixture(scope="module")
def tiny_runs(tmp_path_factory) -> dict:
    """Untrained tiny source/target checkpoints, tiny digits data, and a transfer folder naming its target data."""
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("layers_peers")
    data = make_tiny_digits(root)
    out = {"data": data}
    for seed, domain in enumerate(("synthetic", "real")):
        torch.manual_seed(seed)
        run = root / domain
        run.mkdir()
        save_weights(build_model("narrow_vgg11_bn", 10, width=0.125), run / "best.safetensors")
        save_info(ModelInfo(arch="narrow_vgg11_bn", classes=[str(i) for i in range(10)], width=0.125, image_size=32,
                            mean=[0.5] * 3, std=[0.5] * 3, domain=domain), run)
        out[domain] = run
    tdir = root / "transfer_half"
    tdir.mkdir()
    accs = [0.3, 0.5, 0.6, 0.55, 0.5, 0.45, 0.4, 0.35, 0.3, 0.2]
    write_csv(tdir / "transfer.csv", [{"depth": d, "layer": "", "test_acc": a} for d, a in enumerate(accs, 1)])
    write_json(tdir / "transfer.json", {"data": str(data / "real_1of2")})
    out["transfer"], out["accs"] = tdir, accs
    return out


def test_layers_select_cli_with_peers_writes_a_score_folder(tiny_runs, tmp_path, capsys):
    out = tmp_path / "sel"
    code = main(["layers-select", "--source", str(tiny_runs["synthetic"]), "--target", str(tiny_runs["real"]),
                 "--probes", str(tiny_runs["data"] / "real" / "test"), "--transfer", f"half={tiny_runs['transfer']}",
                 "--out", str(out), "--peers"])
    assert code == 0, capsys.readouterr().err
    manifest = json.loads((out / "peers" / "manifest.json").read_text())
    assert manifest["kind"] == "score" and manifest["summary"] in capsys.readouterr().out
    for name in list(manifest["tables"].values()) + list(manifest["figures"].values()):
        assert (out / "peers" / name).is_file(), name
    assert manifest["settings"]["n_train"] == {"half": 20} and manifest["settings"]["n_probes"] == 10
    evaluation = read_csv(out / "peers" / "peer_evaluation_half.csv")
    from depara.benches.layers.baselines import NOT_APPLICABLE, PARAMS_PRIOR, ROUND4_LABELS
    from depara.benches.layers.peers import LABEL_METHODS

    # every registered label method that is defined on 20 samples of 10 classes (NLEEP's 50 Gaussians are not:
    # left out with its reason), the round-6 rank average, the round-4 member and the parameter prior, then
    # RSA/CKA, DEPARA's columns, the trivial rule, random (one transfer seed: no noise ceiling) and the prior that
    # cannot apply per layer, and NLEEP's reason as the last row
    assert [r["method"] for r in evaluation] == [m for m in LABEL_METHODS if m != "nleep"] + [
        "depara_labels_logme", ROUND4_LABELS, PARAMS_PRIOR, "rsa", "cka", "DEPARA V", "DEPARA E", "DEPARA V+E",
        "DEPARA V+10E", "shallower", "random", *NOT_APPLICABLE, "nleep"]
    assert [r["family"] for r in evaluation[-3:]] == ["reference", "n/a", "n/a"] and evaluation[-2]["note"]
    assert evaluation[-1]["note"].startswith("undefined on this data: ") and evaluation[-1]["kendall"] == ""
    scores = read_csv(out / "peers" / "peer_scores_half.csv")
    from scipy.stats import rankdata

    col = {m: np.array([float(r[m]) for r in scores]) for m in ("depara_labels", "logme", "depara_labels_logme",
                                                                PARAMS_PRIOR)}
    assert col["depara_labels_logme"] == pytest.approx((rankdata(col["depara_labels"]) + rankdata(col["logme"])) / 2)
    assert np.all(np.diff(col[PARAMS_PRIOR]) > 0)  # every deeper cut copies more parameters
    evaluation = [r for r in evaluation if r["family"] not in ("reference", "n/a")]
    depara = read_csv(out / "layer_scores.csv")
    assert [float(r["DEPARA V+10E"]) for r in scores] == pytest.approx([float(r["S_lam10"]) for r in depara])
    assert [float(r["acc_half"]) for r in scores] == pytest.approx(tiny_runs["accs"])
    for r in evaluation:  # accuracy lost = best minus the accuracy at the top-scored layer, read off the table
        best = max(float(s[r["method"]]) for s in scores)  # tied top scores (H-score may be constant, a rank
        worst = min(float(s["acc_half"]) for s in scores if float(s[r["method"]]) == best)  # average can tie):
        assert float(r["regret"]) == pytest.approx(0.6 - worst)  # the pick is the worst tied layer


def test_one_forward_pass_per_batch_gives_the_peers_and_the_round4_member(tiny_runs, monkeypatch):
    """The target fraction's train images go through the source once per batch: the pooled features of the peers
    and the flattened ones of the round-4 member come from the same pass; the member equals label_agreement of
    the flattened outputs computed here."""
    import depara.extraction.extract as extract
    from depara.benches.layers import load_checkpoint
    from depara.benches.layers.baselines import ROUND4, ROUND4_LABELS
    from depara.benches.layers.engine import load_split, normalise
    from depara.benches.layers.peers import score_layers_with_peers
    from depara.core.similarity_edges import label_agreement, probe_edges

    calls = []
    real = extract.capture_features
    monkeypatch.setattr(extract, "capture_features", lambda m, x, layers: (calls.append(len(x)), real(m, x, layers))[1])
    got = score_layers_with_peers(tiny_runs["synthetic"], tiny_runs["real"], tiny_runs["data"] / "real" / "test",
                                  {"half": tiny_runs["transfer"]}, methods=("logme",), batch_size=8)
    # 10 probes through the source and through the target, 20 train images through the source: batches of 8
    assert calls == [8, 2, 8, 2, 8, 8, 4]
    monkeypatch.setattr(extract, "capture_features", real)
    model, info = load_checkpoint(tiny_runs["synthetic"])
    model.eval()
    train = load_split(tiny_runs["data"] / "real_1of2", "train", 32, classes=info.classes)
    names = [u.output for u in transfer_units(model)[:-1]]
    outs = capture_features(model, normalise(train.images, info.mean, info.std).float(), names)
    want = [label_agreement(probe_edges(outs[n].flatten(1).double().numpy(), pooling="flat", scale="centred"),
                            train.labels.numpy(), ROUND4["edge_comparison"]) for n in names]
    np.testing.assert_allclose(got["tables"]["half"].scores[ROUND4_LABELS], want, rtol=1e-6, atol=1e-9)


def test_layers_select_peers_bad_inputs(tiny_runs, tmp_path, capsys):
    base = ["layers-select", "--source", str(tiny_runs["synthetic"]), "--target", str(tiny_runs["real"]),
            "--probes", str(tiny_runs["data"] / "real" / "test")]
    assert main(base + ["--out", str(tmp_path / "a"), "--peers"]) == 2
    err = capsys.readouterr().err
    assert err == "error: --peers: needs --transfer NAME=FOLDER (the accuracies to compare the scores against)\n"
    bare = tmp_path / "bare"
    bare.mkdir()
    write_csv(bare / "transfer.csv", [{"depth": 1, "test_acc": 0.5}, {"depth": 2, "test_acc": 0.4}])
    assert main(base + ["--out", str(tmp_path / "b"), "--transfer", f"x={bare}", "--peers"]) == 2
    err = capsys.readouterr().err
    assert "no transfer.json beside it" in err and err.count("\n") == 1
    assert not (tmp_path / "b").exists()  # checked before any work
    with pytest.raises(DeparaError, match="target data folder .* not found"):
        write_json(bare / "transfer.json", {"data": str(tmp_path / "gone")})
        resolve_target_data({"x": bare})


@pytest.mark.slow
def test_demo_layers_tiny_writes_the_peer_comparison(depara_cache, tmp_path):
    from depara.benches.layers import run_layers_demo

    torch.set_num_threads(1)
    r = run_layers_demo("tiny", tmp_path / "demo", progress=False, peers_out=tmp_path / "peers")
    manifest = json.loads((tmp_path / "peers" / "manifest.json").read_text())
    assert manifest["kind"] == "score" and r["peers"] == manifest["summary"]
    scores = read_csv(tmp_path / "peers" / "peer_scores_tenth.csv")
    transfer = read_csv(tmp_path / "demo" / "transfer_tenth.csv")
    assert [float(s["acc_tenth"]) for s in scores] == pytest.approx([float(t["test_acc"]) for t in transfer])
    assert (tmp_path / "peers" / "peer_layers.png").stat().st_size > 10_000


def test_peers_summary_writes_numbers_as_every_report_does():
    """An undefined τ reads "undefined" (the word of every table), numbers round half away from zero."""
    from depara.benches.layers.peers import peers_summary

    rows = [{"method": "logme", "family": "label", "kendall": 0.125, "pick_depth": 2, "regret": 0.00125},
            {"method": "DEPARA V+E", "family": "depara", "kendall": float("nan"), "pick_depth": 1, "regret": 0.1}]
    assert peers_summary({"tenth": rows}) == ("tenth: best agreement logme (Kendall τ 0.13, picks #2, loses 0.1 "
                                              "pts); DEPARA V+E τ undefined")


def test_add_rank_averages_by_hand():
    """The layer benches' rank-average row: mean of scipy's ranks of its parts across the layers (1 = lowest);
    a rank average whose parts are not all present is not added."""
    from scipy import stats

    from depara.benches.layers.baselines import add_rank_averages

    labels_score, peer = np.array([0.9, 0.2, 0.5, 0.7]), np.array([-3.0, -1.0, -2.0, -4.0])
    out = add_rank_averages({"depara_labels": labels_score, "logme": peer})
    np.testing.assert_array_equal(out["depara_labels_logme"], [3.0, 2.5, 2.5, 2.0])  # (4,1,2,3) and (2,4,3,1)
    np.testing.assert_array_equal(out["depara_labels_logme"], (stats.rankdata(labels_score) + stats.rankdata(peer)) / 2)
    assert set(add_rank_averages({"logme": peer})) == {"logme"}
