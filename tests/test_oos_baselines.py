"""Baseline rows of the benches (issue 20, Build 3): the noise ceilings and random lines against hand computations,
the rows that cannot apply, and the round-5 default's rank average per stage of the layer-pick bench."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import rankdata, spearmanr

from depara.benches.taskbank.baselines import CEILING, noise_ceiling_row, not_applicable_rows
from depara.errors import DeparaError

ROOT = Path(__file__).resolve().parents[1]
NAN = np.nan


def _realbank_layers():
    spec = importlib.util.spec_from_file_location("realbank_layers_oos", ROOT / "benchmarks" / "realbank_layers.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_taskbank_noise_ceiling_against_hand_computation():
    names = ["a", "b", "c", "d"]  # d is a source only (no truth row)
    truth = np.array([[NAN, 3, 1, 2], [1, NAN, 2, 3], [3, 2, NAN, 1], [NAN] * 4], float)
    # the other seed's matrix, its tasks in another order: d, c, b, a
    other_names = ["d", "c", "b", "a"]
    want = {"a": {"b": 3, "c": 1, "d": 2}, "b": {"a": 3, "c": 2, "d": 1}, "c": {"a": 2, "b": 3, "d": 1}}
    other = np.full((4, 4), NAN)
    for t, row in want.items():
        for s, v in row.items():
            other[other_names.index(t), other_names.index(s)] = v
    row = noise_ceiling_row(truth, other, names, other_names, ks=(1, 2), note="seed 1")
    # relevant = the truth's top 2: a -> {b, d}, b -> {d, c}, c -> {a, b}
    # top-1 by the other seed: a -> b (hit), b -> a (miss), c -> b (hit); top-2: a {b,d} 2, b {a,c} 1, c {b,a} 2
    assert row["method"] == CEILING and row["note"] == "seed 1" and row["n_targets"] == 3
    assert row["P@1"] == pytest.approx(2 / 3) and row["P@2"] == pytest.approx(5 / 6)
    rhos = [spearmanr([truth[i, j] for j in range(4) if j != i],
                      [want[names[i]][names[j]] for j in range(4) if j != i]).statistic for i in range(3)]
    assert row["mean_spearman"] == pytest.approx(np.mean(rhos))
    # a perfect copy of the truth reaches 1
    assert noise_ceiling_row(truth, truth, names, names, ks=(1, 2))["mean_spearman"] == pytest.approx(1.0)


def test_taskbank_noise_ceiling_bad_input_names_the_argument():
    truth = np.array([[NAN, 1.0], [2.0, NAN]])
    with pytest.raises(DeparaError, match="other: tasks"):
        noise_ceiling_row(truth, truth, ["a", "b"], ["a", "x"], ks=(1,))
    with pytest.raises(DeparaError, match="other: no measured affinities for target 'b'"):
        noise_ceiling_row(truth, np.array([[NAN, 1.0], [NAN, NAN]]), ["a", "b"], ["a", "b"], ks=(1,))


def test_not_applicable_rows_keep_every_column_empty_and_say_why():
    (row,) = not_applicable_rows({"static prior: number of parameters": "every source has the same"}, ks=(1, 5))
    assert row["note"] == "every source has the same"
    assert all(row[k] == "" for k in row if k not in ("method", "note"))
    assert {"P@1", "P@5", "mean_spearman"} <= set(row)


def test_layer_pick_outcomes_noise_ceiling_random_and_ties():
    mod = _realbank_layers()
    row = {"acc_stage1": 0.5, "acc_stage2": 0.7, "acc_stage3": 0.7,
           # seeds: 0 -> [.6 .7 .8], 1 -> [.4 .8 .6], 2 -> [.5 .6 .7] (the mean above is not used by the ceiling)
           **{f"acc_stage{s + 1}_seed{k}": v for k, vals in enumerate([[.6, .7, .8], [.4, .8, .6], [.5, .6, .7]])
              for s, v in enumerate(vals)},
           "X_stage1": 1.0, "X_stage2": 2.0, "X_stage3": 2.0}
    # seed 0 picks stage3; others' mean [.45 .7 .65]: miss, lost 5 points
    # seed 1 picks stage2; others' mean [.55 .65 .75]: miss, lost 10 points
    # seed 2 picks stage3; others' mean [.5 .75 .7]: miss, lost 5 points
    hit, lost = mod.pair_outcomes(row, mod.CEILING)
    assert hit == pytest.approx(0.0) and lost == pytest.approx(20 / 3)
    # random: two of the three stages are best (0.7); points lost (20 + 0 + 0) / 3
    assert mod.pair_outcomes(row, mod.RANDOM) == pytest.approx((2 / 3, 20 / 3))
    assert mod.pair_outcomes(row, "X") == pytest.approx((1.0, 0.0))  # tie between two best stages
    assert mod.pair_outcomes(row, mod.LAST) == pytest.approx((1.0, 0.0))
    row["X_stage1"] = 2.0  # a tie now includes the worst stage: the pessimistic pick takes it
    assert mod.pair_outcomes(row, "X") == pytest.approx((0.0, 20.0))


def test_layer_pick_round5_default_is_the_rank_average_of_its_parts():
    import torch

    from depara.benches.realbank.bench import load_defaults

    mod = _realbank_layers()
    g = torch.Generator().manual_seed(0)
    y = np.repeat(np.arange(3), 8)
    feats = {s: torch.randn(24, 4, 3, 3, generator=g) + (i + 1) * torch.from_numpy(y).float()[:, None, None, None]
             for i, s in enumerate(mod.STAGES)}
    dflt, _, _ = load_defaults()
    rows = np.arange(24)
    out = mod.stage_scores(feats, rows, y, rows[:12], rows, dflt)
    assert set(out) == {"E_label", "R4", "K5", "LogME", "PED", "kNN", "D5"}
    want = (rankdata(out["K5"]) + rankdata(out["PED"])) / 2
    assert out["D5"] == pytest.approx(list(want))


def test_layer_bench_noise_ceiling_and_random_rows_against_hand_computation():
    from scipy.stats import kendalltau

    from depara.benches.layers.baselines import CEILING, RANDOM, reference_rows

    per_seed = [{1: .6, 2: .7, 3: .8}, {1: .4, 2: .8, 3: .6}, {1: .5, 2: .6, 3: .7}]
    ceiling, random = reference_rows(per_seed, [1, 2, 3])
    assert (ceiling["method"], ceiling["family"], random["method"]) == (CEILING, "reference", RANDOM)
    # each seed picks its best depth, judged on the other two seeds' mean (as in the layer-pick test above):
    # regret 0.05, 0.10 and 0.05 (fractions, like every row of the layer bench)
    assert ceiling["regret"] == pytest.approx(0.2 / 3)
    acc = np.array([[s[d] for d in (1, 2, 3)] for s in per_seed])
    taus = [kendalltau(acc[i], np.delete(acc, i, axis=0).mean(axis=0)).statistic for i in range(3)]
    assert ceiling["kendall"] == pytest.approx(np.mean(taus))
    assert abs(random["kendall"]) < 0.2 and 0 < random["regret"] < 0.2
    (only_random,) = reference_rows(per_seed[:1], [1, 2, 3])  # one seed: no ceiling, random only
    assert only_random["method"] == RANDOM


def test_layer_table_adds_the_shipped_rank_average_only_where_both_parts_score():
    from depara.benches.layers.peers import peer_layer_table

    rng = np.random.default_rng(0)
    layers = [(1, "a"), (2, "b"), (3, "c")]
    y = np.repeat(np.arange(3), 6)
    feats = {n: rng.normal(size=(18, 4)) + (i + 1) * y[:, None] for i, (_, n) in enumerate(layers)}
    t = peer_layer_table(layers, feats, y, methods=["depara_labels", "logme"], shallower=False)
    want = (rankdata(t.scores["depara_labels"]) + rankdata(t.scores["logme"])) / 2
    assert t.scores["depara_labels_logme"] == pytest.approx(want)  # the shipped default (round 6)
    # one image per class: the label graph has no same-class probe, so the member and the average are absent
    t1 = peer_layer_table(layers, {n: f[::6] for n, f in feats.items()}, np.arange(3),
                          methods=["depara_labels", "logme"])
    assert "depara_labels" in t1.meta["not_scored"] and "depara_labels_logme" not in t1.methods


def test_taskbank_labels_scores_rank_average_across_the_sources():
    spec = importlib.util.spec_from_file_location("taskbank_labels_oos", ROOT / "benchmarks" / "taskbank_labels_oos.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    rng = np.random.default_rng(1)
    y = np.repeat(np.arange(3), 7)
    feats = {s: rng.normal(size=(21, 5)) + w * y[:, None] for s, w in (("a", 0.0), ("b", 1.0), ("c", 3.0))}
    out = mod.target_scores(feats, y)
    assert set(out) == {"depara_labels", "ped", "knn", "logme", "round4", "round5", "depara_labels_ped",
                        "depara_labels_logme"}
    want = (rankdata([out["depara_labels"][s] for s in "abc"]) + rankdata([out["logme"][s] for s in "abc"])) / 2
    assert [out["depara_labels_logme"][s] for s in "abc"] == pytest.approx(list(want))
    want = (rankdata([out["round5"][s] for s in "abc"]) + rankdata([out["ped"][s] for s in "abc"])) / 2
    assert [out["depara_labels_ped"][s] for s in "abc"] == pytest.approx(list(want))
    # the source whose features separate the classes most is ahead on the k-NN accuracy
    assert out["knn"]["c"] > out["knn"]["a"]


def test_layer_bench_kendall_per_seed_is_each_seeds_tau():
    from scipy.stats import kendalltau

    from depara.benches.layers.baselines import kendall_per_seed

    per_seed = [{1: .6, 2: .7, 3: .8}, {1: .4, 2: .8, 3: .6}, {1: .5, 2: .5, 3: .5}]
    text = kendall_per_seed(np.array([1.0, 2.0, 3.0]), per_seed, [1, 2, 3])
    want = [kendalltau([1, 2, 3], [.6, .7, .8]).statistic, kendalltau([1, 2, 3], [.4, .8, .6]).statistic]
    assert text == f"{want[0]:.2f} / {want[1]:.2f} / n/a"  # a constant seed has no τ
