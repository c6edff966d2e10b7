"""Round 4: the procedural classification targets, their samplers, the cached ground truth, and the ROUND-4 RULE."""

from __future__ import annotations

import csv
import importlib.util
import tomllib
from pathlib import Path

import numpy as np
import pytest
import torch

from depara.errors import DeparaError
from depara.benches.taskbank import classify as C
from depara.benches.taskbank.scenes import SceneBatch

ROOT = Path(__file__).resolve().parents[1]


def _scenes() -> SceneBatch:
    """Three hand-built 8×8 scenes whose labels are worked out by hand in the test below."""
    n, h = 3, 8
    inst = np.zeros((n, h, h), np.int16)
    sem = np.zeros((n, h, h), np.int16)
    albedo = np.zeros((n, h, h, 3), np.float32)
    depth = np.ones((n, h, h), np.float32)
    # scene 0: object 1 = sphere, rows 0-2 × cols 0-2 (9 px); object 2 = box, rows 4-7 × cols 4-7 (16 px, largest)
    inst[0, 0:3, 0:3], sem[0, 0:3, 0:3] = 1, 1
    inst[0, 4:8, 4:8], sem[0, 4:8, 4:8] = 2, 2
    albedo[0] = (1, 0, 0)                       # red background: hue 0 -> bin 0
    albedo[0, 4:8, 4:8] = (0, 0, 1)             # blue largest object: hue 2/3 -> bin 2
    depth[0, 4:8, 4:8] = 0.6                    # >= 0.518 -> far (2)
    depth[0, 0:3, 0:3] = 0.1
    # scene 1: object 1 = pyramid, rows 0-1 × cols 6-7 (4 px, largest); object 2 = sphere of 2 px (not visible)
    inst[1, 0:2, 6:8], sem[1, 0:2, 6:8] = 1, 4
    inst[1, 7, 0:2], sem[1, 7, 0:2] = 2, 1
    albedo[1] = (0, 1, 1)                       # cyan background: hue 1/2 -> bin 2
    albedo[1, 0:2, 6:8] = (0, 1, 0)             # green: hue 1/3 -> bin 1
    depth[1, 0:2, 6:8] = 0.2                    # < 0.325 -> near (0)
    # scene 2: object 1 = cylinder, row 5 × cols 0-6 (7 px: 7/64 = 0.109 -> medium)
    inst[2, 5, 0:7], sem[2, 5, 0:7] = 1, 3
    albedo[2] = (0, 0, 1)                       # blue background -> bin 2
    albedo[2, 5, 0:7] = (1, 0, 1)               # magenta: hue 5/6 -> bin 3
    depth[2, 5, 0:7] = 0.4                      # middle (1)
    az = np.radians([100.0, 300.0, 200.0])
    light = np.stack([0.6 * np.cos(az), 0.6 * np.sin(az), np.full(3, 0.8)], axis=1).astype(np.float32)
    z = np.zeros((n, h, h), np.float32)
    return SceneBatch(image=albedo.copy(), albedo=albedo, depth=depth, normals=np.zeros((n, h, h, 3), np.float32),
                      shading=z, instance=inst, semantic=sem, occlusion_edges=z, image_edges=z, keypoints=z,
                      count=np.array([2, 1, 3]), shape=np.array([1, 3, 2]), light=light)


EXPECTED = {"shape": [1, 3, 2], "count": [1, 0, 2], "count_parity": [0, 1, 1], "light_side": [1, 3, 2],
            "object_hue": [2, 1, 3], "background_hue": [0, 2, 2], "size": [2, 0, 1], "position": [3, 1, 2],
            "has_sphere": [1, 0, 0], "depth_near": [2, 0, 1]}


def test_every_class_target_against_hand_computed_labels():
    s = _scenes()
    assert set(EXPECTED) == set(C.CLASS_TARGET_NAMES)
    for name, want in EXPECTED.items():
        y = C.get_class_target(name).labels(s)
        assert y.dtype == np.int64 and y.tolist() == want, name
    assert C.target_variants(["size"]) == ["size", "size@10"]
    assert C.parse_variant("size@10")[1] == 10 and C.parse_variant("size")[1] is None
    with pytest.raises(DeparaError, match="class target 'nope'"):
        C.get_class_target("nope")


def test_largest_object_ties_take_the_lowest_id_like_the_renderer():
    s = _scenes()
    inst = s.instance.copy()
    inst[2] = 0
    inst[2, 0, 0:3], inst[2, 7, 5:8] = 2, 1  # equal areas: id 1 (bottom right) is the largest
    t = SceneBatch(**{**s.arrays(), "instance": inst})
    assert C.get_class_target("position").labels(t)[2] == 3


def test_few_shot_and_stratified_samplers():
    y = np.repeat(np.arange(4), [25, 30, 12, 40])
    a, b = C.few_shot_indices(y, 3), C.few_shot_indices(y, 3)
    assert np.array_equal(a, b) and np.bincount(y[a]).tolist() == [10, 10, 10, 10]
    assert len(np.unique(a)) == 40 and not np.array_equal(a, C.few_shot_indices(y, 4))
    sub = C.stratified_subsample(y, 0)
    assert np.bincount(y[sub]).tolist() == [20, 24, 10, 32] and len(np.unique(sub)) == len(sub)
    assert np.array_equal(C.train_indices(y, 10, 3), a) and np.array_equal(C.train_indices(y, None, 0), sub)
    with pytest.raises(DeparaError, match="class 2 has 12 images"):
        C.few_shot_indices(y, 0, per_class=15)
    t = C.get_class_target("count_parity")
    assert C.degenerate_reason(t, np.r_[np.zeros(95, int), np.ones(10, int)], np.zeros(5, int)) is not None
    assert C.degenerate_reason(t, np.r_[np.zeros(50, int), np.ones(50, int)], np.zeros(5, int)) is None


def test_ground_truth_entry_is_cached_reread_and_remeasured_when_corrupt(tmp_path):
    from depara.benches.realbank.truth import linear_probe
    from depara.benches.taskbank.networks import Encoder
    from depara.benches.taskbank.tasks import get_task, task_inputs
    from depara.benches.taskbank.train import SceneData, make_config

    cfg = make_config("tiny", n_limited=48, n_test=32)
    data = SceneData(cfg)
    torch.manual_seed(0)
    enc = Encoder(cfg.width).eval()
    st = C.TruthSettings(ft_steps=3)
    first = C.measure_truth(cfg, tmp_path, "light_side", "net", enc, data, [0, 1], st=st)
    assert first["cached"] is False and len(first["linear_probe"]) == 2 == len(first["fine_tune"])
    # the linear probe, independently: the encoder's whole forward pass, flattened, on seed 0's subsample
    clean = get_task("autoencoding")
    with torch.no_grad():
        f_pool = enc(torch.from_numpy(task_inputs(clean, data.scenes("limited")))).flatten(1).double().numpy()
        f_test = enc(torch.from_numpy(task_inputs(clean, data.scenes("test")))).flatten(1).double().numpy()
    t = C.get_class_target("light_side")
    y_pool, y_test = t.labels(data.scenes("limited")), t.labels(data.scenes("test"))
    tr = C.stratified_subsample(y_pool, 0)
    assert first["linear_probe"][0] == pytest.approx(linear_probe(f_pool[tr], y_pool[tr], f_test, y_test), abs=1e-12)
    again = C.measure_truth(cfg, tmp_path, "light_side", "net", enc, data, [0, 1], st=st)
    assert again["cached"] is True and again["linear_probe"] == first["linear_probe"]
    assert again["fine_tune"] == first["fine_tune"]
    (path,) = list((tmp_path / "classify" / "light_side").glob("net-*.json"))
    path.write_text(path.read_text()[:-20] + "garbage", encoding="utf-8")
    rebuilt = C.measure_truth(cfg, tmp_path, "light_side", "net", enc, data, [0, 1], st=st)
    assert rebuilt["cached"] is False and rebuilt["fine_tune"] == first["fine_tune"]
    assert C.measure_truth(cfg, tmp_path, "light_side", "net", enc, data, [0, 1], st=st)["cached"] is True


def _choose():
    spec = importlib.util.spec_from_file_location("choose_defaults_r4", ROOT / "benchmarks" / "choose_defaults.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _write_family(folder: Path, mod, values: dict, base: float) -> None:
    """A classification_family.csv with every candidate at ``base`` except ``values[name] = (lp, ft)``."""
    folder.mkdir(parents=True)
    with open(folder / "classification_family.csv", "w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=["candidate", *mod.FAMILY_KEYS, "protocol", "mean_weighted_tau"])
        w.writeheader()
        for key in mod.family_candidates():
            name = mod.candidate_name(key)
            for i, p in enumerate(mod.PROTOCOLS):
                w.writerow({"candidate": name, **dict(zip(mod.FAMILY_KEYS, key)), "protocol": p,
                            "mean_weighted_tau": values.get(name, (base, base))[i]})


def test_round4_rule_on_hand_made_csvs(tmp_path):
    mod = _choose()
    assert len(mod.family_candidates()) == 48
    inc = "rep/global/pooled/standardised/labelled"
    # 1. the incumbent within 0.01 of the best: kept (the best is a simpler-looking candidate 0.008 higher)
    _write_family(tmp_path / "a1", mod, {inc: (0.50, 0.50), "rep/global/flat/centred/subset": (0.516, 0.500)}, 0.3)
    _write_family(tmp_path / "a2", mod, {inc: (0.50, 0.50), "rep/global/flat/centred/subset": (0.500, 0.516)}, 0.3)
    rec = mod.combine([tmp_path / "a1", tmp_path / "a2"], tolerance=0.01)
    assert rec["chosen"] == inc and rec["best"] == "rep/global/flat/centred/subset"
    assert rec["best_score"] == pytest.approx(0.508) and rec["incumbent_score"] == pytest.approx(0.5)
    # 2. the incumbent 0.2 behind: the simplest within 0.01 of the best (means over both folders and protocols)
    vals = {inc: (0.4, 0.4),
            "conv3/global/flat/centred/subset": (0.9, 0.3),          # best: mean 0.600 over the four cells
            "rep/knn/flat/centred/subset": (0.595, 0.595),           # within 0.01, rep
            "rep/per_probe/pooled/standardised/labelled": (0.592, 0.592),  # within, rep, per_probe < knn: chosen
            "rep/global/flat/centred/subset": (0.585, 0.585)}        # 0.015 behind: not eligible
    _write_family(tmp_path / "b1", mod, vals, 0.2)
    _write_family(tmp_path / "b2", mod, vals, 0.2)
    cfg = tmp_path / "defaults.toml"
    rec = mod.combine([tmp_path / "b1", tmp_path / "b2"], tolerance=0.01, write_config=cfg, out=tmp_path / "o")
    assert rec["best"] == "conv3/global/flat/centred/subset" and rec["best_score"] == pytest.approx(0.6)
    assert rec["chosen"] == "rep/per_probe/pooled/standardised/labelled"
    text = cfg.read_text(encoding="utf-8")
    assert "round 4" in text and "0.592" in text and "0.400" in text
    d = tomllib.loads(text)["depara"]
    assert (d["layer"], d["edge_comparison"], d["edge_features"], d["edge_scale"], d["probes"]) == (
        "representation", "per_probe", "pooled", "standardised", "labelled")
    assert d["node_weight"] == 0.0 and d["label_weight"] == 1.0
    assert (tmp_path / "o" / "classification_chosen.json").is_file()
    with pytest.raises(DeparaError, match="classification_family.csv"):
        mod.combine([tmp_path / "missing"])
