"""`depara select`'s faster paths give the values of the plain ones: PED on every half-sample at once against
one fit per half-sample, the label graph's score with its edges built once, the non-ranking peers' intervals
opt-in (``peer_boot``)."""

from __future__ import annotations

import numpy as np
import pytest

from depara.errors import DeparaError
from depara.estimators import depara_family
from depara.estimators.evidence import logme, logme_resampled, ped, ped_features, ped_resampled
from depara.estimators.registry import get_estimator
from depara.evaluation.uncertainty import half_samples
from depara.selection.scoring import Resamples, peer_halves, peer_score


def _classes(n: int, d: int, c: int, sep: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = np.arange(n) % c
    return (rng.normal(size=(n, d)) + sep * rng.normal(size=(c, d))[y]).astype(np.float32), y


# (N, D, classes, separation): wide (N/2 < D, LogME on the N×N Gram) and narrow (N/2 > D, on the D×D one),
# overlapping classes (PED takes several steps) and well-separated ones (no overlap: no step); D > C (the steps
# on the means' coordinates in their span) and D <= C (on the means themselves)
CASES = [(40, 64, 4, 0.3, 0), (60, 5, 3, 0.5, 1), (30, 12, 2, 0.05, 2), (48, 16, 6, 20.0, 3), (48, 3, 6, 0.4, 10),
         (48, 4, 4, 0.4, 11)]


@pytest.mark.parametrize("case", CASES)
def test_ped_resampled_equals_one_fit_per_half_sample(case):
    n, d, c, sep, seed = case
    f, y = _classes(n, d, c, sep, seed)
    halves = half_samples(n, 25, seed, y)
    expected = np.array([ped(f[h], y[h]) for h in halves])
    np.testing.assert_allclose(ped_resampled(f, y, halves), expected, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("case", [(40, 8, 5, 1.0, 5), (40, 32, 5, 0.8, 5)])  # narrow, then wide
def test_ped_resampled_with_rows_that_stop_at_different_steps(case):
    # some half-samples have no overlapping classes (no step), the others take all 6: the rows still stepping
    # are carried on without the stopped ones, whose means must stay as they were
    n, d, c, sep, seed = case
    f, y = _classes(n, d, c, sep, seed)
    halves = half_samples(n, 25, seed, y)
    steps = [ped_features(f[h], y[h])[1] for h in halves]
    assert 0 in steps and 6 in steps
    expected = np.array([ped(f[h], y[h]) for h in halves])
    np.testing.assert_allclose(ped_resampled(f, y, halves), expected, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("d", [6, 30])  # LogME on the D×D, then on the half-sample's own Gram matrix
def test_ped_resampled_coincident_class_means_do_not_move(d):
    # two classes with the same samples: their means coincide, no direction to move (ped_features: no move)
    rng = np.random.default_rng(4)
    base = rng.normal(size=(10, d))
    f, y = np.concatenate([base, base]), np.repeat([0, 1], 10)
    rows = np.array([np.r_[0:10, 10:20:2], np.r_[0:5, 10:20]])
    np.testing.assert_allclose(ped_resampled(f, y, rows), [ped(f[r], y[r]) for r in rows], rtol=1e-9)
    np.testing.assert_allclose(ped_resampled(f, y, np.arange(20)[None]), [logme(f, y)], rtol=1e-9)


def test_ped_resampled_refuses_a_row_without_some_class():
    f, y = _classes(12, 4, 3, 1.0, 5)
    with pytest.raises(DeparaError, match="idx_sets: row 1 lacks a class"):
        ped_resampled(f, y, np.array([[0, 1, 2, 3], [0, 3, 6, 9]]))
    with pytest.raises(DeparaError, match="idx_sets"):
        ped_resampled(f, y, np.array([[0, 1, 99]]))


def test_peer_halves_equals_peer_score_row_by_row():
    f, y = _classes(40, 32, 4, 0.4, 6)
    halves = half_samples(40, 12, 0, y)
    ped_est, logme_est = get_estimator("ped"), get_estimator("logme")
    assert ped_est.resampled is not None and logme_est.resampled is not None
    for est in (ped_est, logme_est):
        expected = [peer_score(est.name, f[h], y[h]) for h in halves]
        np.testing.assert_allclose(peer_halves(est, f, y, halves), expected, rtol=1e-9, atol=1e-12)
    # unstratified halves of tiny classes: a half-sample without some class goes row by row (PED on the
    # relabelled classes it has; NaN with a single class)
    f, y = _classes(12, 3, 4, 1.0, 7)
    rows = np.array([[0, 1, 2, 5], [0, 4, 8, 8], [0, 4, 1, 5]])  # row 1: class 0 only
    for est in (ped_est, logme_est):
        expected = [peer_score(est.name, f[r], y[r]) for r in rows]
        assert np.isfinite(expected[0]) and np.isnan(expected[1]) and np.isfinite(expected[2])
        np.testing.assert_allclose(peer_halves(est, f, y, rows), expected, rtol=1e-12)


@pytest.mark.parametrize("case", CASES)
def test_logme_resampled_equals_one_fit_per_half_sample(case):
    """LogME on every half-sample at once (wide rows on blocks of the full set's Gram matrix, narrow rows on their
    D×D one) gives each row's own fit, to round-off; a row without some class is refused, naming idx_sets."""
    n, d, c, sep, seed = case
    f, y = _classes(n, d, c, sep, seed)
    halves = half_samples(n, 25, seed, y)
    expected = [logme(f[h], y[h]) for h in halves]
    np.testing.assert_allclose(logme_resampled(f, y, halves), expected, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(logme_resampled(f, y, np.arange(n)[None]), [logme(f, y)], rtol=1e-9)
    with pytest.raises(DeparaError, match="idx_sets: row 1 lacks a class"):
        logme_resampled(f, y, np.stack([halves[0], np.resize(np.flatnonzero(y == 0), len(halves[0]))]))


@pytest.mark.parametrize("ties", [False, True])
def test_knn_label_agreement_on_all_half_samples_at_once_equals_each_alone(ties):
    from depara.core.edges import edges_from_features
    from depara.core.similarity_edges import label_agreement, label_agreement_terms, resampled_label_agreement

    f, y = _classes(41, 6, 4, 0.8, 9)
    if ties:  # coarse features: many equal similarities, tied at the k-th neighbour
        f = np.round(f)
    e = edges_from_features(f, center=True, edge="cosine")
    halves = half_samples(41, 30, 1, y)
    got = resampled_label_agreement(e, y, "knn", halves)
    for r, h in enumerate(halves):  # each half-sample's own graph, scored alone
        i, j = np.triu_indices(h.size, k=1)
        a, b = h[i], h[j]
        terms = label_agreement_terms(np.asarray(e, np.float64)[41 * a - a * (a + 1) // 2 + b - a - 1], y[h], "knn")
        assert got[r] == pytest.approx(np.nanmean(terms), abs=1e-12)
    assert resampled_label_agreement(e, y, "knn", np.arange(41)[None])[0] == pytest.approx(
        label_agreement(e, y, "knn"), abs=1e-12)


def test_label_graph_score_builds_its_edges_once(monkeypatch):
    f, y = _classes(30, 8, 3, 0.5, 8)
    res = Resamples(30, half_samples(30, 15, 0, y))
    est = get_estimator("depara_labels")
    edges = depara_family.depara_labels_edges(None, f)
    expected = np.concatenate([depara_family.depara_labels_resampled(edges, y, np.arange(30)[None]),
                               depara_family.depara_labels_resampled(edges, y, res.halves)])
    calls = []
    original = depara_family.depara_labels_edges
    monkeypatch.setattr(depara_family, "depara_labels_edges", lambda *a: calls.append(1) or original(*a))
    np.testing.assert_array_equal(res.at_once(est, None, f, y), expected)
    assert len(calls) == 1 and expected.shape == (16,)


# ------------------------------------------------------------------------------------------ extraction
torch = pytest.importorskip("torch")


def _net(seed: int) -> "torch.nn.Module":
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU(inplace=True), torch.nn.Conv2d(4, 6, 3),
                               torch.nn.ReLU(inplace=True), torch.nn.AdaptiveAvgPool2d(2), torch.nn.Flatten(),
                               torch.nn.Linear(24, 3))


def test_pooled_features_equal_pooling_the_full_features():
    from depara.core.similarity_edges import pool_features
    from depara.extraction.extract import build_graphs, pooled_features

    model = _net(0)
    x = torch.rand(10, 3, 12, 12)
    layers = ["0", "1", "3", "5"]  # "1" is an in-place ReLU: pooled in its hook before the next op runs
    full: dict = {}
    build_graphs(model, x, layers, batch_size=4, nodes=False,
                 on_features=lambda name, f: full.__setitem__(name, pool_features(f)))
    got = pooled_features(model, x, layers, batch_size=4)
    assert list(got) == layers
    for name in layers:
        np.testing.assert_array_equal(got[name], full[name])
    # by hand: the first conv's output averaged over space
    with torch.no_grad():
        np.testing.assert_allclose(got["0"], model[0](x).mean(dim=(2, 3)).numpy(), rtol=1e-5, atol=1e-6)


    class Log(torch.nn.Module):
        def forward(self, t):
            return torch.log(t)

    bad = x.clone()
    bad[7, 0, 0, 0] = -1.0  # its log is NaN
    with pytest.raises(DeparaError, match="layer '0': features contain NaN/Inf \\(first at probe '7'\\)"):
        pooled_features(torch.nn.Sequential(Log(), model), bad, ["0"])


def test_keep_decoded_decodes_once_and_gives_the_same_tensors(tmp_path, monkeypatch):
    from PIL import Image

    from depara.extraction import probes as probes_mod
    from depara.extraction.probes import ProbeSet

    for i in range(6):
        Image.fromarray((np.random.default_rng(i).random((9, 9, 3)) * 255).astype(np.uint8)).save(tmp_path / f"{i}.png")
    ps = ProbeSet.from_folder(tmp_path, "8x8")
    plain = ps.tensor(None, slice(1, 4))
    calls = []
    original = probes_mod._apply
    monkeypatch.setattr(probes_mod, "_apply", lambda *a: calls.append(1) or original(*a))
    with ps.keep_decoded(10**6):
        a = ps.tensor(None, slice(1, 4))
        a += 1.0  # a copy: the kept tensors are not changed by a caller
        b = ps.tensor("8x8", [1, 2, 3])
    assert len(calls) == 6  # every probe once, not once per call
    torch.testing.assert_close(b, plain, rtol=0, atol=0)
    with ps.keep_decoded(10):  # over the budget: decoded on every call, as outside the block
        ps.tensor(None, slice(0, 2))
        ps.tensor(None, slice(0, 2))
    assert len(calls) == 6 + 4
    ps.tensor(None, slice(0, 1))
    assert len(calls) == 6 + 4 + 1  # released after the block


def test_labels_only_select_skips_graph_edges_with_the_same_scores(tmp_path, monkeypatch):
    from PIL import Image

    from depara.extraction.zoo import ModelEntry
    from depara.selection import job
    from depara.selection.job import select

    for c in range(3):
        (tmp_path / "data" / f"c{c}").mkdir(parents=True)
        for i in range(6):
            img = np.random.default_rng(10 * c + i).random((12, 12, 3)) * 0.5 + 0.2 * c
            Image.fromarray((img * 255).astype(np.uint8)).save(tmp_path / "data" / f"c{c}" / f"{i}.png")
    models = lambda: {n: ModelEntry(n, f"module:{n}", preprocessing="12x12", module=_net(i))  # noqa: E731
                      for i, n in enumerate("ab")}
    fast = select(tmp_path / "data", models(), n_boot=12, peer_boot=4, cache_dir=tmp_path / "c1")
    assert fast.settings["peer_boot"] == 4
    store = list((tmp_path / "c1" / "store").rglob("*"))
    monkeypatch.setattr(job, "_needs_edges", lambda _job: True)  # the graphs as before
    slow = select(tmp_path / "data", models(), n_boot=12, peer_boot=4, cache_dir=tmp_path / "c2")
    assert fast.candidates == slow.candidates and fast.order == slow.order
    for s in slow.scorers:
        np.testing.assert_array_equal(fast.values[s], slow.values[s])
        np.testing.assert_array_equal(fast.intervals[s], slow.intervals[s])
    assert np.isfinite(fast.intervals["logme"]).all()  # peer_boot = 4: the peers' intervals too
    assert len(store) < len(list((tmp_path / "c2" / "store").rglob("*")))  # no graph entries written


def test_cli_peer_boot_reaches_select(tmp_path, monkeypatch):
    from depara.cli.main import main
    from depara.options import SELECT_PEER_BOOT
    from depara.selection import job

    seen = []

    def fake_select(*args, **kwargs):
        seen.append(kwargs)
        raise DeparaError("stop here")

    monkeypatch.setattr(job, "select", fake_select)
    (tmp_path / "data").mkdir()
    for argv, expected in ((["--peer-boot", "7"], 7), ([], SELECT_PEER_BOOT)):
        assert main(["select", str(tmp_path / "data"), "--models", "torchvision:resnet18", "--quiet",
                     "--cache", str(tmp_path / "c"), *argv]) != 0
        assert seen[-1]["peer_boot"] == expected
    assert SELECT_PEER_BOOT == 0  # the non-ranking peers' intervals are opt-in
