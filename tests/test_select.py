"""`depara.select` / `depara select`: each case (target model / labels only / neither), the scores against
independent computations, the cache reuse, the bad-input table."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

torch = pytest.importorskip("torch")
from _core_torch_helpers import write_shifted_classes, write_shifted_images  # noqa: E402

from depara.cli.main import main  # noqa: E402
from depara.errors import DeparaError  # noqa: E402
from depara.selection.job import select  # noqa: E402
from depara.core.edges import pair_index  # noqa: E402
from depara.core.similarity import similarity  # noqa: E402
from depara.extraction.zoo import ModelEntry  # noqa: E402

SIZE = 16


def _net(seed: int, width: int = 4) -> torch.nn.Module:
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Conv2d(3, width, 3), torch.nn.ReLU(), torch.nn.Conv2d(width, 8, 3),
                               torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(2), torch.nn.Flatten(),
                               torch.nn.Linear(32, 3))


def _entry(name: str, seed: int, size: int = SIZE) -> ModelEntry:
    return ModelEntry(name, f"module:{name}", preprocessing=f"{size}x{size}", module=_net(seed))


@pytest.fixture(scope="module")
def classes(tmp_path_factory) -> Path:
    return write_shifted_classes(tmp_path_factory.mktemp("classes"), 5)


@pytest.fixture(scope="module")
def flat(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("flat")
    write_shifted_images(root, 8)
    return root


@pytest.fixture(scope="module")
def scripted(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("nets")
    out = {}
    for i in range(3):
        out[f"net{i}"] = d / f"net{i}.pt"
        torch.jit.script(_net(i)).save(str(out[f"net{i}"]))
    flat_net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * SIZE * SIZE, 4))
    out["fixed"] = d / "fixed.pt"
    torch.jit.script(flat_net).save(str(out["fixed"]))
    return out


# ------------------------------------------------------------------------------------------------ pairs
def test_pair_index_keeps_distinct_probe_pairs_in_condensed_order():
    n = 5
    np.testing.assert_array_equal(pair_index(np.arange(n), n), np.arange(10))
    # resample (3, 0, 3, 1): pairs (3,0), (3,3)✗, (3,1), (0,3), (0,1), (3,1) → condensed (0,3)=2, (1,3)=5, (0,1)=0
    np.testing.assert_array_equal(pair_index(np.array([3, 0, 3, 1]), n), [2, 5, 2, 0, 5])


from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


@settings(max_examples=60, deadline=None)
@given(st.integers(3, 9).flatmap(lambda n: st.tuples(st.just(n), st.lists(st.integers(0, n - 1), min_size=2,
                                                                           max_size=12))))
def test_pair_index_equals_brute_force(case):
    from scipy.spatial.distance import squareform

    n, idx = case
    idx = np.array(idx)
    cond = np.arange(n * (n - 1) // 2)
    full = squareform(cond + 1)  # full[i, j] = condensed index + 1 (0 on the diagonal)
    expected = [full[idx[a], idx[b]] - 1 for a in range(len(idx)) for b in range(a + 1, len(idx))
                if idx[a] != idx[b]]
    np.testing.assert_array_equal(pair_index(idx, n), expected)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 4), st.integers(0, 4)), min_size=3, max_size=30))
def test_spearman_equals_scipy_with_ties(pairs):
    from depara.selection.scoring import spearman as _spearman

    x, y = (np.array(v, dtype=float) for v in zip(*pairs))
    expected = stats.spearmanr(x, y).statistic if x.std() > 0 and y.std() > 0 else np.nan
    got = _spearman(x, y)
    assert (np.isnan(got) and np.isnan(expected)) or got == pytest.approx(expected, abs=1e-12)


def test_rank_average_by_hand_and_against_scipy():
    """Four candidates, two probe sets; ranks 1 = lowest, ties averaged, a NaN part leaves its candidate out."""
    from depara.selection.scoring import rank_average, with_rank_averages

    labels_score = np.array([[0.9, 0.1], [0.2, 0.3], [0.5, 0.3], [0.7, np.nan]])  # [candidate, probe set]
    peer = np.array([[-3.0, 2.0], [-1.0, 1.0], [-2.0, 1.0], [-4.0, 0.0]])
    got = rank_average(np.stack([labels_score, peer]))
    # probe set 0: ranks (4, 1, 2, 3) and (2, 4, 3, 1) → (3, 2.5, 2.5, 2)
    # probe set 1 (candidate 3 undefined): (1, 2.5, 2.5) and (3, 1.5, 1.5) → (2, 2, 2), NaN
    np.testing.assert_array_equal(got[:, 0], [3.0, 2.5, 2.5, 2.0])
    np.testing.assert_array_equal(got[:, 1], [2.0, 2.0, 2.0, np.nan])
    np.testing.assert_array_equal(got[:, 0], (stats.rankdata(labels_score[:, 0]) + stats.rankdata(peer[:, 0])) / 2)
    values = np.stack([labels_score, peer])  # values[s, c, r] of the registry scorers
    out = with_rank_averages(values, ["depara_labels", "logme"], ["depara_labels_logme", "logme"])
    np.testing.assert_array_equal(out[0], got)
    np.testing.assert_array_equal(out[1], peer)


# ------------------------------------------------------------------------------------------------- cases
def _pooled_layer_outputs(net: torch.nn.Module, images: torch.Tensor) -> dict[str, np.ndarray]:
    """Every child's output on ``images``, averaged over space (N×C), by forward hooks: independent of select."""
    out: dict[str, np.ndarray] = {}
    hooks = [m.register_forward_hook(lambda _m, _i, o, name=name: out.__setitem__(name, o.detach().double()))
             for name, m in net.named_children()]
    with torch.no_grad():
        net(images)
    for h in hooks:
        h.remove()
    return {k: (v.flatten(2).mean(2) if v.ndim == 4 else v).numpy() for k, v in out.items()}


def _knn_label_agreement(feats: np.ndarray, labels: np.ndarray) -> float:
    """The round-6 frozen default by hand: dimensions centred over the probes, cosine similarities, each probe's
    k = min(10, N − 2) most similar others, the share of them in its class minus its class's share of the others."""
    f = feats - feats.mean(axis=0)
    f = f / np.linalg.norm(f, axis=1, keepdims=True)
    sim = f @ f.T
    n = len(labels)
    k = min(10, n - 2)
    terms = []
    for i in range(n):
        others = np.array([j for j in range(n) if j != i])
        near = others[np.argsort(-sim[i, others], kind="stable")[:k]]
        same = labels[others] == labels[i]
        terms.append(np.mean(labels[near] == labels[i]) - same.mean())
    return float(np.mean(terms))


def test_labels_only_case_scores_against_independent_computations(classes, tmp_path):
    models = {"a": _entry("a", 0), "b": _entry("b", 1)}
    sel = select(classes, models, n_boot=30, cache_dir=tmp_path)
    # round 6: the default ranks by the rank average of the label graph's score and LogME (configs/defaults.toml)
    assert sel.case == "labels" and sel.scorer == "depara_labels_logme"
    assert set(sel.scorers) == {"depara_labels_logme", "depara_labels", "logme", "hscore", "transrate", "rsa", "cka",
                                "gbc", "ped"}
    assert {m for m, _ in sel.candidates} == {"a", "b"}
    assert sel.models["a"]["layers"] == ["0", "1", "2", "3", "4"]  # generic family: children minus the head
    rows = sel.table
    vals = [r["depara_labels_logme"] for r in rows]
    # competition ranks: 1 + how many candidates score strictly higher (a rank average can tie)
    assert [r["rank"] for r in rows] == [1 + sum(w > v for w in vals) for v in vals]
    assert vals == sorted(vals, reverse=True) and (rows[0]["model"], rows[0]["layer"]) == sel.best
    # the rank average is scipy's average ranks of its two parts across the candidates, averaged
    expected = (stats.rankdata(sel.values["depara_labels"]) + stats.rankdata(sel.values["logme"])) / 2
    np.testing.assert_array_equal(sel.values["depara_labels_logme"], expected)
    # independent: depara_labels at the frozen defaults (kNN comparison, k = 10 capped at N − 2, of the layer
    # output averaged over space, centred) from the networks' own layer outputs
    from depara.extraction.probes import ProbeSet
    from depara.options import DEFAULT_EDGE_COMPARISON, DEFAULT_EDGE_FEATURES, DEFAULT_EDGE_SCALE

    assert (DEFAULT_EDGE_COMPARISON, DEFAULT_EDGE_FEATURES, DEFAULT_EDGE_SCALE) == ("knn", "pooled", "centred")
    labels = np.repeat([0, 1, 2], 5)
    images = ProbeSet.from_folder(classes, f"{SIZE}x{SIZE}").tensor()
    feats = {m: _pooled_layer_outputs(_net(seed), images) for m, seed in (("a", 0), ("b", 1))}
    for c, (m, layer) in enumerate(sel.candidates):
        assert sel.values["depara_labels"][c] == pytest.approx(_knn_label_agreement(feats[m][layer], labels),
                                                               abs=1e-6)
    # LogME, the default's peer, is recomputed on every half-sample (its interval is finite); the peers that do
    # not rank get no interval by default (peer_boot = 0: the report shows them as ranks only)
    assert np.isfinite(sel.intervals["logme"]).all() and np.isfinite(sel.intervals["depara_labels_logme"]).all()
    assert sel.settings["peer_boot"] == 0 and np.isnan(sel.intervals["ped"]).all()
    assert 0.0 <= sel.p_best <= 1.0
    assert "pick model" in sel.summary and str(sel.best[1]) in sel.summary


def test_target_model_case_equals_depara_similarity(flat, tmp_path):
    target = ModelEntry("t", "module:t", preprocessing="16x16", module=_net(7), layers=("2",))
    sel = select(flat, {"a": _entry("a", 0), "b": _entry("b", 1)}, target_model=target, layers=["1", "3"],
                 n_boot=20, cache_dir=tmp_path, scorers=["depara", "depara_v", "depara_e"])
    assert sel.case == "target_model" and sel.scorer == "depara_e"  # frozen default: node weight 0
    assert sel.scorers == ["depara", "depara_v", "depara_e"] and sel.settings["nodes"] is True
    assert sel.candidates == [("a", "1"), ("a", "3"), ("b", "1"), ("b", "3")]
    assert sel.settings["target_model"]["layer"] == "2"
    # the sentence quotes what depara_e's share was worth on the procedural task bank (BENCH_RELIABILITY_LABEL_FREE)
    assert not sel.tied and "measured for depara_e" in sel.summary
    assert "the procedural bank at demo scale" in sel.summary
    from depara.extraction.extract import build_graphs
    from depara.extraction.probes import ProbeSet

    probes = ProbeSet.from_folder(flat, "16x16")
    tg = build_graphs(_net(7), probes, ["2"], node_size=56)["2"]
    for c, (m, layer) in enumerate(sel.candidates):
        g = build_graphs(_net(0 if m == "a" else 1), probes, [layer], node_size=56)[layer]
        assert sel.values["depara"][c] == pytest.approx(similarity(g, tg), abs=1e-5)
        lo, hi = sel.intervals["depara"][c]
        assert lo <= hi


def test_neither_labels_nor_target_is_one_line_error(flat, tmp_path):
    with pytest.raises(DeparaError, match="no labels and no target_model"):
        select(flat, {"a": _entry("a", 0)}, cache_dir=tmp_path)


def test_models_with_different_input_sizes(classes, tmp_path):
    sel = select(classes, {"small": _entry("small", 0, 16), "big": _entry("big", 1, 24)}, n_boot=0,
                 cache_dir=tmp_path)
    assert {m for m, _ in sel.candidates} == {"small", "big"}
    assert sel.models["big"]["preprocess"]["size"] == [24, 24]
    assert np.isnan(sel.p_best) and sel.too_close == [] and "no interval: n_boot = 0" in sel.summary


# --------------------------------------------------------------------------------------------------- cache
def _snapshot(root: Path) -> dict[str, tuple[int, bytes]]:
    return {str(p): (p.stat().st_mtime_ns, p.read_bytes()) for p in sorted(root.rglob("*")) if p.is_file()}


def test_adding_a_model_reuses_every_entry_unchanged(classes, tmp_path):
    models = {"a": _entry("a", 0), "b": _entry("b", 1)}
    first = select(classes, models, n_boot=5, cache_dir=tmp_path)
    before = _snapshot(tmp_path / "store")
    # pooled features + block of scores per (model, layer), each beside its check record (no graph: with labels
    # only, the frozen label score reads the pooled features)
    assert len(before) == 2 * 2 * 2 * 5
    assert first.settings["scores_reused"] == 0
    second = select(classes, {**models, "c": _entry("c", 2)}, n_boot=5, cache_dir=tmp_path)
    after = _snapshot(tmp_path / "store")
    assert {k: after[k] for k in before} == before  # same files, same bytes, same mtimes
    assert len(after) == len(before) + 2 * 10
    assert second.models["a"]["extracted"] == [] and second.models["b"]["extracted"] == []
    assert len(second.models["c"]["extracted"]) == 5
    assert second.settings["scores_reused"] == 10  # only the added model's candidates are scored
    # a rank average ranks across the candidates, so an added model legitimately moves it; its parts are reused
    for s in (s for s in first.scorers if s != "depara_labels_logme"):
        for c, cand in enumerate(first.candidates):
            c2 = second.candidates.index(cand)
            assert np.array_equal(second.values[s][c2], first.values[s][c], equal_nan=True)
            assert np.array_equal(second.intervals[s][c2], first.intervals[s][c], equal_nan=True)
    # the reused scores are the ones a fresh computation gives (the added model does not change them)
    fresh = select(classes, {**models, "c": _entry("c", 2)}, n_boot=5, cache_dir=tmp_path / "fresh")
    assert fresh.settings["scores_reused"] == 0
    for s in first.scorers:
        np.testing.assert_array_equal(fresh.values[s], second.values[s])
        np.testing.assert_array_equal(fresh.intervals[s], second.intervals[s])
    assert fresh.order == second.order and fresh.p_best == second.p_best
    # another seed draws other resamples: nothing of the scores is reused, the graphs are
    other = select(classes, models, n_boot=5, seed=1, cache_dir=tmp_path)
    assert other.settings["scores_reused"] == 0 and other.models["a"]["extracted"] == []


def test_interrupted_run_resumes(classes, tmp_path):
    class Boom(torch.nn.Module):
        def forward(self, x):
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        select(classes, {"a": _entry("a", 0), "boom": ModelEntry("boom", "m", preprocessing="16x16",
                                                                 module=Boom(), layers=("output",))},
               n_boot=0, cache_dir=tmp_path)
    sel = select(classes, {"a": _entry("a", 0), "b": _entry("b", 1)}, n_boot=0, cache_dir=tmp_path)
    assert sel.models["a"]["extracted"] == [] and len(sel.models["b"]["extracted"]) == 5
    assert not list(tmp_path.rglob("*.part"))


# ----------------------------------------------------------------------------------------------------- CLI
def test_cli_select_writes_results_and_prints_pick(classes, scripted, tmp_path, capsys):
    out = tmp_path / "out"
    zoo = tmp_path / "zoo.toml"
    zoo.write_text("".join(f'[[model]]\nname = "{n}"\nspec = "file:{scripted[n]}"\npreprocessing = "16x16"\n'
                           for n in ("net0", "net1")))
    rc = main(["select", str(classes), "--zoo", str(zoo), "--out", str(out), "--cache", str(tmp_path / "c"),
               "--n-boot", "10", "--quiet"])
    text = capsys.readouterr().out
    assert rc == 0
    assert "pick model" in text and "95% interval" in text
    data = json.loads((out / "ranking.json").read_text())
    assert data["best"]["layer"] == "output" and data["best"]["model"] in ("net0", "net1")
    assert (out / "report.html").is_file() and (out / "ranking.csv").is_file()
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["kind"] == "select" and manifest["figures"] == {"candidates": "select.png"}
    assert manifest["tables"] == {"top candidates": "top.csv"}  # the report shows the top 10, the rest stays in files
    assert main(["cache", "info", "--cache", str(tmp_path / "c")]) == 0
    assert "entries: 4" in capsys.readouterr().out  # pooled features and scores of 2 candidates (labels only: no graph)
    assert main(["cache", "clear", "--cache", str(tmp_path / "c")]) == 0
    assert "removed 4 entries" in capsys.readouterr().out


def _bad_cases(root: Path, scripted: dict[str, Path]) -> list[tuple[list[str], str]]:
    """(arguments, expected message part) of the bad-input table."""
    few = root / "few"
    write_shifted_images(few / "a", 1)
    write_shifted_images(few / "b", 1)
    one = root / "one"
    write_shifted_images(one / "only", 4)
    corrupt = root / "corrupt"
    write_shifted_images(corrupt / "a", 3)
    write_shifted_images(corrupt / "b", 3)
    (corrupt / "b" / "bad.png").write_bytes(b"not an image")
    mixed = root / "mixed"
    write_shifted_images(mixed / "a", 3)
    write_shifted_images(mixed, 2)
    zoo_missing = root / "missing.toml"
    zoo_missing.write_text('[[model]]\nname = "x"\n')
    zoo_dup = root / "dup.toml"
    zoo_dup.write_text(f'[[model]]\nname = "x"\nspec = "file:{scripted["net0"]}"\n' * 2)
    good = str(root / "good")
    write_shifted_images(Path(good) / "a", 3)
    write_shifted_images(Path(good) / "b", 3, shift=90)
    net = f"file:{scripted['net0']}"
    return [
        ([good, "--models", "resnet:18"], "unknown source 'resnet'"),
        ([good, "--models", "torchvision:not_a_model"], "unknown torchvision model"),
        ([good, "--models", "torchvision:squeezenet1_0@NOPE"], "weights 'NOPE'"),
        ([good, "--models", f"file:{scripted['fixed']}"], "cannot take the images at its input size 3×224×224"),
        ([good, "--models", "torchvision:squeezenet1_0", "--layers", "features.99"],
         "layer 'features.99': no module"),
        ([str(few), "--models", net], "at least 3 are needed"),
        ([str(one), "--models", net], "a single class"),
        ([str(corrupt), "--models", net], "bad.png is not a readable image"),
        ([str(mixed), "--models", net], "mixes 2 images at the top level"),
        ([good, "--zoo", str(zoo_missing)], "missing field 'spec'"),
        ([good, "--zoo", str(zoo_dup)], "duplicate name 'x'"),
        ([good], "give candidate models"),
        ([good, "--models", net, "--protocol", "zero-shot"], "protocol"),
    ]


def test_cli_bad_input_table(scripted, tmp_path, capsys):
    cases = _bad_cases(tmp_path / "in", scripted)
    for args, message in cases:
        out = tmp_path / "out"
        rc = main(["select", *args, "--out", str(out), "--cache", str(tmp_path / "cache"), "--quiet"])
        err = capsys.readouterr().err.strip()
        assert rc == 2, (args, err)
        assert err.startswith("error: ") and message in err and "\n" not in err, (args, err)
        assert not out.exists(), args  # nothing written


def test_cli_checks_each_path_once_in_the_library(tmp_path, capsys, monkeypatch):
    """`depara select` parses and calls depara.select: the data and cache checks run once (in the library, the
    error naming the flag), and only --out, which depara.select does not take, is checked by the CLI."""
    import depara.io.files as files

    calls = []
    for name in ("check_cache_dir", "check_results_out"):
        real = getattr(files, name)
        monkeypatch.setattr(files, name, lambda *a, _real=real, _name=name, **k: (calls.append(_name),
                                                                                  _real(*a, **k))[1])
    good = tmp_path / "good"
    write_shifted_images(good / "a", 3)
    write_shifted_images(good / "b", 3, shift=90)
    args = ["select", str(good), "--models", "torchvision:resnet18", "--out", str(tmp_path / "o"), "--quiet"]
    rc = main([*args, "--cache", str(tmp_path / "c"), "--protocol", "zero-shot"])  # fails after the path checks
    err = capsys.readouterr().err.strip()
    assert rc == 2 and err.startswith("error: --protocol: expected one of"), err
    assert calls == ["check_results_out", "check_cache_dir"]
    (tmp_path / "cache").write_text("a file, not a folder")
    assert main([*args, "--cache", str(tmp_path / "cache")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: --cache {tmp_path / 'cache'}") and "\n" not in err, err
    assert not (tmp_path / "o").exists()


def test_every_field_of_the_selection_is_documented():
    """Each field of Selection is one its docstring describes (no field that nothing reads or writes out)."""
    import dataclasses
    import re

    from depara.selection.result import Selection

    documented = set(re.findall(r"(?:^\s*|[;,] )(\w+) :", Selection.__doc__, flags=re.M))
    assert {f.name for f in dataclasses.fields(Selection)} <= documented


def test_mixed_mode_images_are_converted(tmp_path):
    root = tmp_path / "modes"
    for c, mode in enumerate(("L", "RGBA", "P")):
        write_shifted_images(root / mode, 3, shift=50 * c, mode=mode)
    sel = select(root, {"a": _entry("a", 0)}, layers=["3"], n_boot=0, cache_dir=tmp_path)
    assert sel.best == ("a", "3")


# ---------------------------------------------------------------------------------------------------- demo
@pytest.mark.slow
def test_demo_tiny_end_to_end_and_cached(tmp_path):
    """`depara demo` at its tiny size: select on real digits, the measured truth beside the pick, the report;
    a second run retrains nothing and rebuilds no graph."""
    from depara.benches.demo import DEMO_ZOO, run_demo
    from depara.report.manifest import read_manifest

    cache = tmp_path / "cache"
    first = run_demo(tmp_path / "out", cache_dir=cache, scale="tiny", progress=False)
    manifest = read_manifest(tmp_path / "out")
    assert manifest["kind"] == "select"
    extra = manifest["extra"]
    sel, truth = first["selection"], first["truth"]
    best = max(truth, key=truth.get)
    assert extra["truth_best"] == f"{best[0]}:{best[1]}"
    assert extra["pick"] == f"{sel.best[0]}:{sel.best[1]}"
    assert extra["regret"] == pytest.approx(truth[best] - truth[sel.best], abs=1e-3)
    assert set(sel.models) == set(DEMO_ZOO) and set(truth) == set(sel.candidates)
    assert (tmp_path / "out" / "report.html").is_file() and (tmp_path / "out" / "scorers_vs_truth.csv").is_file()
    before = _snapshot(cache)
    second = run_demo(tmp_path / "out", cache_dir=cache, scale="tiny", progress=False)
    assert _snapshot(cache) == before
    assert all(not info["extracted"] for info in second["selection"].models.values())
    assert second["selection"].best == sel.best


@pytest.mark.ray
def test_engine_ray_equals_local_and_reports_a_failed_model(classes, tmp_path):
    """select(engine="ray"): one Ray task per model fills the store; same ranking as the local engine; a model
    whose task fails is left out with its error (the others complete)."""
    ray = pytest.importorskip("ray")
    import os

    src = str(Path(__file__).resolve().parents[1] / "src")
    os.environ["PYTHONPATH"] = os.pathsep.join([src, os.environ.get("PYTHONPATH", "")])
    models = {"a": _entry("a", 0), "b": _entry("b", 1)}
    local = select(classes, models, n_boot=10, cache_dir=tmp_path / "local")
    bad = ModelEntry("bad", "module:bad", preprocessing=f"{SIZE}x{SIZE}", module=_net(2), layers=("no_such",))
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        on_ray = select(classes, {**models, "bad": bad}, n_boot=10, cache_dir=tmp_path / "ray", engine="ray",
                        skip_failed=True)
    finally:
        ray.shutdown()
    assert on_ray.candidates == local.candidates and on_ray.best == local.best
    for s in local.scorers:
        np.testing.assert_allclose(on_ray.values[s], local.values[s], rtol=1e-6, equal_nan=True)
    assert list(on_ray.settings["skipped_models"]) == ["bad"] and "no_such" in on_ray.settings["skipped_models"]["bad"]
    with pytest.raises(DeparaError, match="engine: expected 'local' or 'ray'"):
        select(classes, models, cache_dir=tmp_path / "x", engine="spark")


def test_unknown_engine_and_address_without_ray_are_refused(classes, tmp_path):
    with pytest.raises(DeparaError, match="engine: expected 'local' or 'ray'"):
        select(classes, {"a": _entry("a", 0)}, cache_dir=tmp_path, engine="spark")
    with pytest.raises(DeparaError, match="address: only with engine='ray'"):
        select(classes, {"a": _entry("a", 0)}, cache_dir=tmp_path, address="auto")
