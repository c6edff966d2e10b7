"""Fine-tuning truth of the pretrained bank (depara.benches.realbank.pretrained_finetune): the cut top part of each
source computes the full network's deepest candidate layer from the cached layer's output (skips without the
source's package), the fx cut on a hand-built graph, the fine-tuning loop on a toy problem, and the model measures
against a hand-computed ranking."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from depara.benches.realbank import pretrained as P
from depara.benches.realbank import pretrained_finetune as F
from depara.benches.realbank import rule as R
from depara.benches.realbank.pretrained_bench import TARGETS, BenchConfig
from depara.errors import DeparaError
from depara.extraction.extract import capture_features


@pytest.mark.parametrize("name", P.SOURCE_NAMES)
def test_top_part_of_the_cached_output_equals_the_full_forward(name):
    spec = P.get_source(name)
    if not P.available(spec):
        pytest.skip(f"{spec.package} not installed")
    model = P.load_source(name)
    x = P.preprocess(spec, np.random.default_rng(1).random((2, 40, 48, 3), dtype=np.float32))
    cut = F.CUTS[name]
    assert cut.top == spec.layers[-1] and cut.cached in spec.layers
    outs = capture_features(model, x, [cut.cached, cut.top])  # one forward pass of the whole network, hooked
    with torch.no_grad():
        got = F.top_part(name, model)(outs[cut.cached])
    expected = outs[cut.top]
    assert got.shape == expected.shape
    assert (got - expected).abs().max() <= 1e-4 * expected.abs().max()


class _Toy(nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.b, self.c = nn.Linear(3, 3), nn.Linear(3, 3), nn.Linear(3, 2)

    def forward(self, x):
        h = torch.relu(self.a(x))
        return self.c(self.b(h) * 2.0)


class _Skip(_Toy):
    def forward(self, x):
        h = self.a(x)
        return self.c(self.b(h) + x)


def test_cut_graph_runs_the_graph_from_the_cut_and_refuses_a_skip_across_it():
    toy = _Toy()
    gm = torch.fx.symbolic_trace(toy)
    top = F.cut_graph(gm, "relu", "c")  # a node's name, or a module's target ("c")
    h = torch.randn(4, 3)
    with torch.no_grad():
        assert torch.equal(top(h), toy.c(toy.b(h) * 2.0))
    assert [n.op for n in top.graph.nodes].count("placeholder") == 1
    with pytest.raises(DeparaError, match="skip across the cut"):
        F.cut_graph(torch.fx.symbolic_trace(_Skip()), "a", "c")
    with pytest.raises(DeparaError, match="'nope'"):
        F.cut_graph(gm, "nope", "c")


def _toy_problem(seed: int, n: int):
    """Two classes told apart by the sign of channel 0's mean (1×1 maps of 4 channels, 2×2 spatial)."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    x = rng.normal(size=(n, 4, 2, 2)).astype(np.float32)
    x[:, 0] += np.where(y == 1, 1.5, -1.5)[:, None, None]
    return torch.from_numpy(x), y


def _top():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(4, 8, 1), nn.BatchNorm2d(8), nn.ReLU())


def test_finetune_is_deterministic_learns_a_separable_problem_and_leaves_its_input_alone():
    x_tr, y_tr = _toy_problem(0, 96)
    x_te, y_te = _toy_problem(1, 200)
    top = _top()
    before = {k: v.clone() for k, v in top.state_dict().items()}
    cfg = F.FinetuneConfig(steps=40, batch_size=16, lr_top=1e-2, lr_head=1e-2)
    a = F.finetune(top, x_tr, y_tr, x_te, y_te, cfg, seed=3)
    b = F.finetune(top, x_tr, y_tr, x_te, y_te, cfg, seed=3)
    untrained = F.finetune(top, x_tr, y_tr, x_te, y_te, F.FinetuneConfig(steps=0), seed=3)
    assert a == b
    assert a >= 0.9 and a >= untrained + 0.2
    for k, v in top.state_dict().items():  # a deep copy is trained; BatchNorm statistics of the input unchanged
        assert torch.equal(v, before[k])


def test_finetune_keeps_the_top_parts_batchnorm_statistics_frozen():
    top = _top()
    bn = top[1]
    with torch.no_grad():
        bn.running_mean.normal_()  # not the initial zeros, so a batch update would show
    start = bn.running_mean.clone()
    seen = []
    # the hook travels with the deep copy that is trained: it sees the copy's mode and statistics at every call
    bn.register_forward_hook(lambda m, i, o: seen.append((m.training, m.running_mean.clone())))
    x, y = _toy_problem(0, 32)
    F.finetune(top, x, y, x, y, F.FinetuneConfig(steps=3, batch_size=8), seed=0)
    assert len(seen) >= 3
    assert not any(training for training, _ in seen)
    assert all(torch.equal(mean, start) for _, mean in seen)


def test_finetune_truth_is_cached_and_extended_seed_by_seed(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(F, "finetune", lambda top, xtr, ytr, xte, yte, cfg, seed: calls.append(seed) or 0.5 + seed)
    monkeypatch.setattr(P, "source_version", lambda spec: "toy==1")
    target = next(t for t in TARGETS if t.name == "digits-parity")
    y = np.arange(100) % 2
    args = (target, "mobilenet_v2-imagenet", torch.zeros(100, 1, 1, 1), y, BenchConfig(), F.FinetuneConfig())
    assert F.finetune_truth(*args, 2, tmp_path, None)["accuracy"] == [0.5, 1.5]
    assert F.finetune_truth(*args, 3, tmp_path, None)["accuracy"] == [0.5, 1.5, 2.5]
    assert F.finetune_truth(*args, 2, tmp_path, None)["accuracy"] == [0.5, 1.5]
    assert calls == [0, 1, 2]


def test_model_measures_by_hand():
    sources = ["a", "b", "c"]
    layers_of = lambda s: ("l1", "l2", "l3")  # noqa: E731
    truth = np.array([0.9, 0.5, 0.7])
    # the 'below' read is l2: ordered like the truth for "good", reversed for "bad"; l3 (the 'last' read) reversed
    scores = {s: {"good": {"l1": 0.0, "l2": g, "l3": -g}, "bad": {"l1": 0.0, "l2": -g, "l3": g}}
              for s, g in zip(sources, (3.0, 1.0, 2.0))}
    good = F.model_measures(truth, scores, sources, R.Candidate(("good",), "below"), layers_of)
    assert good == {"model_wtau": pytest.approx(1.0), "model_kendall": pytest.approx(1.0), "model_regret": 0.0}
    bad = F.model_measures(truth, scores, sources, R.Candidate(("good",), "last"), layers_of)
    assert bad["model_kendall"] == pytest.approx(-1.0) and bad["model_regret"] == pytest.approx(40.0)
    # rank average of a part ordered like the truth and one reversed: all tied → the pessimistic pick (b, 0.5)
    tied = F.model_measures(truth, scores, sources, R.Candidate(("good", "bad"), "below"), layers_of)
    assert tied["model_regret"] == pytest.approx(40.0)
