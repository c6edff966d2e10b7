"""Layer selection: per-layer DEPARA scores, correlations with transfer accuracy, results folder, CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from scipy.spatial.distance import pdist

from depara.io.files import read_csv, write_csv
from depara.cli.main import main
from depara.errors import DeparaError
from depara.extraction.extract import build_graph, build_graphs
from depara.core.similarity import edge_similarity, node_similarity
from depara.benches.layers import build_model, load_checkpoint, score_layers, train_domain, transfer_units
from depara.benches.layers.select import correlate, read_transfer_accuracies
from depara.options import LAYER_SELECTION_OPTIONS

from _layers_helpers import make_tiny_digits

ARCH = dict(arch="narrow_vgg11_bn", width=0.125, image_size=32)


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict:
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("layers_select")
    data = make_tiny_digits(root)
    out = {"data": data}
    for domain in ("synthetic", "real"):
        train_domain(data, domain, root / domain, epochs=1, batch_size=16, lr=0.05, progress=False, **ARCH)
        out[domain] = root / domain
    return out


def test_correlate_hand_computed():
    rows = [{"depth": 1, "S": 1.0}, {"depth": 2, "S": 3.0}, {"depth": 3, "S": 2.0}]
    (c,) = correlate(rows, {1: 0.5, 2: 0.7, 3: 0.9}, ["S"])
    # ranks of S (1,3,2) vs accuracy (1,2,3): sum d^2 = 2 -> rho = 1 - 6*2/(3*8) = 0.5; 2 concordant, 1 discordant
    assert c["spearman"] == pytest.approx(0.5)
    assert c["kendall"] == pytest.approx(1 / 3)
    assert (c["pick_depth"], c["best_depth"]) == (2, 3)
    assert c["regret"] == pytest.approx(0.2)
    with pytest.raises(DeparaError, match="cover 1 of the scored layers"):
        correlate(rows, {1: 0.5}, ["S"])


def _manual_map_and_features(model, x, layer):
    """Input×gradient of the layer's mean, |.| averaged over colour channels; the layer's flattened output."""
    captured = {}
    handle = model.get_submodule(layer).register_forward_hook(lambda m, i, o: captured.__setitem__("o", o))
    x = x.clone().requires_grad_(True)
    model(x)
    handle.remove()
    out = captured["o"]
    (grad,) = torch.autograd.grad(out.flatten(1).mean(1).sum(), x)
    return (x * grad).abs().mean(1).flatten(1).detach().numpy(), out.flatten(1).detach().numpy()


def test_gradients_not_accumulated_across_layers():
    torch.manual_seed(0)
    model = build_model("narrow_vgg11_bn", 10, width=0.125).eval()
    x = torch.randn(5, 3, 32, 32)
    layers = [u.output for u in transfer_units(model)[:4]]
    opts = dict(scalar="mean", channel_reduction="abs_mean", center=False, node_size=None)
    together = build_graphs(model, x, layers, **opts)
    for layer in layers:
        alone = build_graph(model, x, layer, **opts)
        nodes, feats = _manual_map_and_features(model, x, layer)
        np.testing.assert_allclose(together[layer].nodes, alone.nodes, rtol=1e-5, atol=1e-9)
        np.testing.assert_allclose(together[layer].nodes, nodes, rtol=1e-4, atol=1e-9)
        np.testing.assert_allclose(together[layer].edges, 1 - pdist(feats, "cosine"), rtol=1e-4, atol=1e-6)
    # the check has teeth: accumulated gradients (the original bug) would give visibly different maps
    n1, _ = _manual_map_and_features(model, x, layers[0])
    n2, _ = _manual_map_and_features(model, x, layers[1])
    assert not np.allclose(together[layers[1]].nodes, n1 + n2, rtol=1e-2)
    assert all(p.grad is None for p in model.parameters())


def test_score_layers_equals_similarity_of_separately_built_graphs(runs):
    from depara.extraction.probes import Preprocess, ProbeSet

    src, src_info = load_checkpoint(runs["synthetic"])
    tgt, tgt_info = load_checkpoint(runs["real"])
    probes = runs["data"] / "real" / "test"
    rows = score_layers(src, src_info, tgt, tgt_info, probes, lams=(1.0, 10.0))
    assert [r["depth"] for r in rows] == list(range(1, 11))  # every layer but the classifier
    prep = Preprocess(size=(32, 32), mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))
    ps = ProbeSet.from_folder(probes, preprocess=prep)
    opts = dict(scalar="mean", channel_reduction="abs_mean", center=False, node_size=32)
    tgt_graph = build_graph(tgt, ps, "classifier.6", **opts)
    for r in (rows[0], rows[6], rows[9]):
        g = build_graph(src, ps, r["layer"], **opts)
        assert r["V"] == pytest.approx(node_similarity(g, tgt_graph), abs=1e-6)
        assert r["E"] == pytest.approx(edge_similarity(g, tgt_graph), abs=1e-6)
        assert r["S_lam10"] == pytest.approx(r["V"] + 10 * r["E"])
    # other reductions are options
    rows_sum = score_layers(src, src_info, tgt, tgt_info, probes, lams=(1.0,),
                            options=LAYER_SELECTION_OPTIONS.replace(scalar="sum", channel_reduction="mean", center=True))
    assert rows_sum[0]["V"] != pytest.approx(rows[0]["V"])


def test_layers_select_cli_writes_a_results_folder(runs, tmp_path, capsys):
    accs = [0.3, 0.5, 0.6, 0.55, 0.5, 0.45, 0.4, 0.35, 0.3, 0.2]
    (tmp_path / "tenth").mkdir()
    write_csv(tmp_path / "tenth" / "transfer.csv", [{"depth": d, "layer": "", "test_acc": a}
                                                    for d, a in enumerate(accs, start=1)])
    out = tmp_path / "sel"
    code = main(["layers-select", "--source", str(runs["synthetic"]), "--target", str(runs["real"]),
                 "--probes", str(runs["data"] / "real" / "test"), "--lam", "1,10", "--transfer",
                 f"tenth={tmp_path / 'tenth'}", "--out", str(out)])
    assert code == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["kind"] == "layers-select" and manifest["figures"] == {"layers": "layers.png"}
    assert manifest["summary"].startswith("transfer layers 1..#")
    scores = read_csv(out / "layer_scores.csv")
    assert [float(r["acc_tenth"]) for r in scores] == pytest.approx(accs)
    corr = read_csv(out / "correlations.csv")
    assert [r["score"] for r in corr] == ["V", "E", "S_lam1", "S_lam10"]
    for r in corr:  # the lost accuracy is read off the table: best minus the accuracy at the top-scored layer
        top = max(scores, key=lambda s: float(s[r["score"]]))
        assert float(r["regret"]) == pytest.approx(0.6 - float(top["acc_tenth"]))
    assert (out / "layers.png").stat().st_size > 10_000
    assert manifest["extra"]["pick_layer"] == int(max(scores, key=lambda s: float(s["S_lam1"]))["depth"])
    # On screen: a table of the layers best first by V+1·E, then the pick in one line.
    screen = capsys.readouterr().out
    assert "Layers by DEPARA (S λ=1)" in screen and "tenth %" in screen
    best = max(scores, key=lambda s: float(s["S_lam1"]))
    first_row = next(line for line in screen.splitlines() if line.lstrip("│ ").startswith("1 "))
    assert f"#{best['depth']}" in first_row
    assert f"→ {manifest['summary'][:30]}" in " ".join(screen.split())


def test_layers_select_bad_inputs(runs, tmp_path, capsys):
    write_csv(tmp_path / "bad.csv", [{"k": 1, "acc": 0.5}])
    with pytest.raises(DeparaError, match="expected a transfer.csv with columns depth and test_acc"):
        read_transfer_accuracies(tmp_path / "bad.csv")
    (tmp_path / "empty").mkdir()
    code = main(["layers-select", "--source", str(runs["synthetic"]), "--target", str(runs["real"]),
                 "--probes", str(tmp_path / "empty"), "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: ") and err.count("\n") == 1
    code = main(["layers-select", "--source", str(runs["synthetic"]), "--target", str(tmp_path / "nope"),
                 "--probes", str(runs["data"] / "real" / "test"), "--lam", "x", "--out", str(tmp_path / "o")])
    assert code == 2


def test_average_over_seeds_hand_computed():
    from depara.benches.layers.demo import average_over_seeds

    a = [{"depth": "2", "layer": "f.5", "kind": "conv", "val_acc": "0.5", "test_acc": "0.4"},
         {"depth": "1", "layer": "f.2", "kind": "conv", "val_acc": "0.7", "test_acc": "0.6"}]
    b = [{"depth": "1", "layer": "f.2", "kind": "conv", "val_acc": "0.9", "test_acc": "0.8"},
         {"depth": "2", "layer": "f.5", "kind": "conv", "val_acc": "0.5", "test_acc": "0.4"}]
    rows = average_over_seeds([a, b], first_seed=3)
    assert [r["depth"] for r in rows] == [1, 2]
    assert rows[0]["test_acc"] == pytest.approx(0.7) and rows[0]["val_acc"] == pytest.approx(0.8)
    assert rows[0]["test_acc_std"] == pytest.approx(0.1414213, abs=1e-6)  # sample std of (0.6, 0.8)
    assert rows[1]["test_acc_std"] == 0 and rows[0]["test_acc_seed4"] == 0.8 and rows[0]["n_seeds"] == 2
