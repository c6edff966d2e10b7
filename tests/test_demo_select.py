"""`depara demo` (select on real digits beside the measured truth) at its tiny size, and its parts.

The showcase's own numbers (the ``demo`` size, seeds 0-2) are in benchmarks/results/demo_select/, made by
benchmarks/demo_time.py; here the wiring, the cached truth and the images are checked at the tiny size.
"""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import depara.benches.demo as demo  # noqa: E402
from depara.io.files import read_csv  # noqa: E402
from depara.errors import DeparaError  # noqa: E402
from depara.report.manifest import read_manifest  # noqa: E402


def _files(folder):
    return {p: p.stat().st_mtime_ns for p in folder.rglob("*") if p.is_file()}


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("demo_select")
    first = demo.run_demo(root / "out", cache_dir=root / "cache", scale="tiny", progress=False)
    return root, first


@pytest.mark.slow
def test_tiny_demo_reports_pick_runner_up_and_truth(tiny_run):
    root, first = tiny_run
    sel, truth = first["selection"], first["truth"]
    assert set(truth) == set(sel.candidates) and set(sel.models) == set(demo.DEMO_ZOO)
    extra = read_manifest(root / "out")["extra"]
    name = {c: f"{c[0]}:{c[1]}" for c in sel.candidates}
    pick, runner = sel.candidates[sel.order[0]], sel.candidates[sel.order[1]]
    best, worst = max(truth, key=truth.get), min(truth, key=truth.get)
    assert extra["pick"] == name[pick] and extra["pick_runner_up"] == name[runner]
    assert extra["pick_accuracy"] == pytest.approx(truth[pick], abs=0.01)
    assert extra["pick_runner_up_accuracy"] == pytest.approx(truth[runner], abs=0.01)
    assert extra["truth_best"] == name[best] and extra["truth_worst"] == name[worst]
    assert extra["truth_spread"] == pytest.approx(truth[best] - truth[worst], abs=0.01)
    assert extra["regret"] == pytest.approx(truth[best] - truth[pick], abs=0.01)
    untrained = max(v for c, v in truth.items() if c[0] == "resnet18-untrained")
    assert extra["truth_best_untrained_accuracy"] == pytest.approx(untrained, abs=0.01)
    for text in (name[pick], name[runner], f"{truth[pick]:.1f}%", f"{truth[runner]:.1f}%", f"{truth[best]:.1f}%"):
        assert text in first["summary"], text
    rows = read_csv(root / "out" / "truth.csv")
    assert [r["candidate"] for r in rows][0] == name[best] and len(rows) == len(truth)
    html = (root / "out" / "report.html").read_text(encoding="utf-8")
    assert name[runner] in html and "truth spread" in html  # extra keys are shown with spaces


@pytest.mark.slow
def test_cached_rerun_retrains_nothing_and_reads_the_truth(tiny_run):
    root, first = tiny_run
    before = _files(root / "cache")
    second = demo.run_demo(root / "out", cache_dir=root / "cache", scale="tiny", progress=False)
    assert _files(root / "cache") == before  # no network retrained, no graph, score or truth rewritten
    assert second["selection"].settings["demo"]["truth_computed"] == 0
    assert second["truth"] == first["truth"]
    assert all(not info["extracted"] for info in second["selection"].models.values())


@pytest.mark.slow
def test_truth_equals_an_independent_linear_probe(tiny_run):
    """One candidate's stored truth against a probe computed here: a forward hook, 2x2 average pooling by numpy,
    scikit-learn's own pipeline."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from depara.extraction.probes import ProbeSet
    from depara.extraction.zoo import read_zoo

    root, first = tiny_run
    cfg = demo.SELECT_SCALES["tiny"]
    _, (test_x, test_y) = demo.demo_images(root / "again", cfg, 0)
    entry = next(e for e in read_zoo(root / "out" / "zoo.toml") if e.name == "resnet18-synthdigits")
    model = entry.load().eval()
    grabbed = {}
    model.layer2.register_forward_hook(lambda _m, _i, out: grabbed.__setitem__("x", out))

    def feats(images):
        x = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float() / 255.0
        with torch.no_grad():
            model((x - 0.5) / 0.5)
        f = grabbed["x"].numpy()  # N×C×H×W, H and W even here (32 px input: 4×4 at layer2)
        n, c, h, w = f.shape
        return f.reshape(n, c, 2, h // 2, 2, w // 2).mean(axis=(3, 5)).reshape(n, -1)

    train = ProbeSet.from_folder(root / "out" / "data", demo.DEMO_PREPROCESS)
    images = [np.asarray(train.image(i)) for i in range(len(train))]
    labels = [int(pid.split("/")[0]) for pid in train.ids]
    clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500, C=0.1)).fit(feats(images), labels)
    expected = 100.0 * clf.score(feats(list(test_x)), test_y)
    assert first["truth"][("resnet18-synthdigits", "layer2")] == pytest.approx(expected, abs=1e-9)


def test_demo_images_are_disjoint_balanced_and_seeded(tmp_path):
    cfg = {"select_per_class": 3, "test_per_class": 5}
    folder, (test_x, test_y) = demo.demo_images(tmp_path / "a", cfg, 7)
    assert sorted(p.name for p in folder.iterdir()) == [str(d) for d in range(10)]
    assert all(len(list((folder / str(d)).iterdir())) == 3 for d in range(10))
    assert test_x.shape == (50, 32, 32, 3) and test_x.dtype == np.uint8
    assert np.bincount(test_y).tolist() == [5] * 10
    again = demo.demo_images(tmp_path / "b", cfg, 7)[1][0]
    other = demo.demo_images(tmp_path / "c", cfg, 8)[1][0]
    assert np.array_equal(test_x, again) and not np.array_equal(test_x, other)
    # light digits on a dark background: the brightest 1 % of each image is far above its median
    flat = test_x.reshape(len(test_x), -1).astype(float)
    assert np.all(np.percentile(flat, 99, axis=1) - np.median(flat, axis=1) > 60)
    # the plain digits target (the earlier demo) draws the same digits, centred and clean
    plain = demo.demo_images(tmp_path / "d", cfg, 7, target="digits")[1]
    assert plain[0].shape == test_x.shape and np.array_equal(plain[1], test_y)


def test_demo_bad_input(tmp_path):
    with pytest.raises(DeparaError, match="target 'photos'"):
        demo.run_demo(tmp_path / "o", target="photos", progress=False)
    with pytest.raises(DeparaError, match="scale 'huge'"):
        demo.run_demo(tmp_path / "o", scale="huge", progress=False)
    with pytest.raises(DeparaError, match="--seed -1"):
        demo.run_demo(tmp_path / "o", seed=-1, progress=False)


@pytest.mark.slow
def test_the_earlier_digits_demo_still_runs(tiny_run, tmp_path):
    """The earlier demo (centred, clean digits) at the tiny size: kept as a test, not as the showcase (the zoo
    is the same, so the tiny run's trained networks are reused)."""
    root, _ = tiny_run
    out = demo.run_demo(tmp_path / "out", cache_dir=root / "cache", scale="tiny", target="digits",
                        progress=False)
    assert set(out["truth"]) == set(out["selection"].candidates)
    assert read_manifest(tmp_path / "out")["settings"]["demo"]["target"] == "digits"


def _selection_without_resamples():
    """Three candidates ranked by a hand-set score, as `select(..., n_boot=0)` returns them: no intervals, no
    shares of half-samples."""
    from depara.selection.result import Selection

    cands = [("net-a", "layer1"), ("net-a", "layer2"), ("net-untrained", "layer1")]
    values = {"depara_labels": np.array([0.2, 0.5, 0.1])}
    return Selection(candidates=cands, scorers=["depara_labels"], scorer="depara_labels", values=values,
                     intervals={"depara_labels": np.full((3, 2), np.nan)}, order=[1, 0, 2], p_best=float("nan"),
                     too_close=[], case="labels", settings={"n_boot": 0, "protocol": "linear"},
                     models={"net-a": {"layers": ["layer1", "layer2"]}, "net-untrained": {"layers": ["layer1"]}})


def test_truth_sentence_is_selects_sentence_plus_the_truth_and_never_nan():
    """Without half-samples (n_boot = 0) the demo's line is select's own sentence (no interval, no share: never
    "first in nan%") followed by the measured truth of the pick, runner-up, best, worst and best untrained layer."""
    sel = _selection_without_resamples()
    truth = {("net-a", "layer1"): 81.25, ("net-a", "layer2"): 70.0, ("net-untrained", "layer1"): 12.5}
    text = demo.truth_sentence(sel, truth)
    assert text.startswith(sel.summary + ". Measured")
    assert "no interval: n_boot = 0" in text and "nan" not in text.lower() and "first in" not in text
    assert text.endswith("the pick net-a:layer2 70.0%, the runner-up net-a:layer1 81.2%, the best net-a:layer1 "
                         "81.2% (regret 11.2 points), the worst net-untrained:layer1 12.5%, the best untrained layer "
                         "12.5%")


@pytest.mark.slow
def test_a_results_path_with_markup_is_printed_as_given(tiny_run, tmp_path, capsys):
    """The narrated steps print the results path as given: a folder "a[/x]" is text, not a closing markup tag
    (which once ended the run in a MarkupError after all the work). Cached: the tiny run's networks are reused."""
    root, _ = tiny_run
    out = tmp_path / "a[" / "x]"
    demo.run_demo(out, cache_dir=root / "cache", scale="tiny", progress=True)
    err = "".join(capsys.readouterr().err.split())  # the console wraps long lines anywhere
    assert "".join(str(out / "report.html").split()) in err
