"""depara.report.plots.ranking: every figure is written, labelled, and the tree clusters what it should."""

from __future__ import annotations

import matplotlib.colors
import numpy as np
import pytest
from scipy.cluster.hierarchy import fcluster

from depara.evaluation import rank_quality as ev
from depara.errors import DeparaError
from depara.report.plots import ranking as rp
from depara.core.similarity import RankRow
from depara.core.tree import similarity_to_distance, task_linkage
from depara.report.plots.ranking import draw_tree


@pytest.fixture
def captured(monkeypatch):
    """Keep each figure (instead of closing it) to check its labels; still write the PNG."""
    figs = []
    real = rp._save

    def keep(fig, path):
        figs.append((fig, [ax.get_xlabel() for ax in fig.axes], [ax.get_ylabel() for ax in fig.axes],
                     [t.get_text() for ax in fig.axes if ax.get_legend() for t in ax.get_legend().get_texts()],
                     [t.get_text() for ax in fig.axes for t in ax.get_yticklabels()]))
        return real(fig, path)

    monkeypatch.setattr(rp, "_save", keep)
    return figs


def _curves():
    rng = np.random.default_rng(0)
    truth = rng.random((8, 8))
    truth[7] = np.nan
    return {"A": ev.precision_recall_at_k(truth + 0.1 * rng.random((8, 8)), truth, 3),
            "B": ev.precision_recall_at_k(rng.random((8, 8)), truth, 3)}


def _png(path):
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 2000
    return data


def test_pr_and_pk_curves(tmp_path, captured):
    curves = _curves()
    pub = {"A (published)": ev_points()}
    rp.plot_pr_curve(curves, tmp_path / "pr.png", published=pub)
    rp.plot_precision_at_k(curves, tmp_path / "pk.png", published=pub)
    _png(tmp_path / "pr.png")
    _png(tmp_path / "pk.png")
    (_, xl, yl, legend, _), (_, xl2, yl2, legend2, _) = captured
    assert "recall" in xl[0] and "precision" in yl[0]
    assert legend == ["A", "B", "oracle", "random", "A (published)"]
    assert xl2[0].startswith("K") and "P@K" in yl2[0] and "oracle" in legend2
    # the oracle reference drawn is min(1, relevant/K)
    # a published series with "match" takes the colour of that curve
    fig = captured[0][0]
    colour_b = next(line.get_color() for line in fig.axes[0].get_lines() if line.get_label() == "B")
    rp.plot_pr_curve(curves, tmp_path / "pr2.png", published={"B (pub)": {**ev_points(), "match": "B"}})
    scat = captured[2][0].axes[0].collections[0]
    np.testing.assert_allclose(scat.get_edgecolor()[0][:3], matplotlib.colors.to_rgb(colour_b))
    fig = captured[1][0]
    oracle = next(line for line in fig.axes[0].get_lines() if line.get_label() == "oracle")
    k = np.arange(1, 8)
    np.testing.assert_allclose(oracle.get_ydata(), np.minimum(1, 3 / k))


def ev_points():
    return {"K": np.array([1, 2]), "precision": np.array([0.9, 0.8]), "recall": np.array([0.3, 0.5])}


def test_lambda_sweep(tmp_path, captured):
    rows = [{"lambda": lam, "P@1": 0.5 + lam / 20, "P@5": 0.4} for lam in (0.0, 0.01, 0.1, 1.0, 10.0)]
    rp.plot_lambda_sweep(rows, tmp_path / "l.png", chosen=0.25)
    _png(tmp_path / "l.png")
    _, xl, yl, legend, _ = captured[0]
    assert "λ" in xl[0] and yl[0] and legend == ["P@1", "P@5", "chosen λ = 0.25"]


def _two_clusters():
    names = ["a1", "a2", "a3", "b1", "b2"]
    s = np.full((5, 5), 0.1)
    s[:3, :3] = 0.9
    s[3:, 3:] = 0.8
    s[0, 4] = 0.2  # asymmetric entry: symmetrised before clustering
    np.fill_diagonal(s, np.nan)
    return names, s


def test_tree_clusters_and_is_labelled(tmp_path, captured):
    names, s = _two_clusters()
    for method in ("average", "complete", "single"):
        z = task_linkage(s, method)
        np.testing.assert_array_equal(fcluster(z, 2, "maxclust"), [1, 1, 1, 2, 2])
    rp.plot_tree(names, task_linkage(s, "average"), tmp_path / "t.png", method="average")
    _png(tmp_path / "t.png")
    _, xl, yl, _, ticks = captured[0]
    assert "dissimilarity" in xl[0] and sorted(ticks) == sorted(names)


def test_similarity_to_distance():
    names, s = _two_clusters()
    d = similarity_to_distance(s)
    np.testing.assert_allclose(d, d.T)
    assert np.all(np.diag(d) == 0) and d.min() == 0 and d.max() == 1
    # most similar pair -> 0, least similar -> 1 (after symmetrisation: (0.1 + 0.2)/2 = 0.15 is not the min)
    assert d[0, 1] == 0 and d[0, 3] == 1 and 0 < d[0, 4] < 1
    np.testing.assert_array_equal(similarity_to_distance(np.ones((3, 3))), np.zeros((3, 3)))


def test_heatmap_and_ranking_bars(tmp_path, captured):
    names, s = _two_clusters()
    rp.plot_heatmap(names, s, tmp_path / "h.png")
    _png(tmp_path / "h.png")
    assert captured[0][1][0] == "source task" and captured[0][2][0] == "target task"
    rows = [RankRow("m1", 0.9, 0.7, 0.8), RankRow("m2", 0.95, 0.8, 0.6), RankRow("m3", 0.2, 0.1, 0.4)]
    rp.plot_ranking(rows, tmp_path / "r.png", lam=0.25, title="ranking")
    _png(tmp_path / "r.png")
    fig, xl, yl, legend, ticks = captured[1]
    y_of = dict(zip(ticks, fig.axes[0].get_yticks()))
    assert y_of["m2"] > y_of["m1"] > y_of["m3"]  # best at the top
    assert "score" in xl[0] and len(legend) == 3  # S, V, λ·E (the one ranking bar chart marks both parts)
    rp.plot_ranking([{"name": "x", "S": 1.0}, {"name": "y", "S": -0.5}], tmp_path / "r2.png")
    _png(tmp_path / "r2.png")


def test_bad_input(tmp_path):
    names, s = _two_clusters()
    with pytest.raises(DeparaError, match="linkage method 'fancy'"):
        draw_tree(names, s, tmp_path / "t.png", method="fancy")
    bad = s.copy()
    bad[1, 3] = np.nan
    with pytest.raises(DeparaError, match="non-finite value at row 1, column 3"):
        draw_tree(names, bad, tmp_path / "t.png")
    with pytest.raises(DeparaError, match="4 names"):
        draw_tree(names[:4], s, tmp_path / "t.png")
    with pytest.raises(DeparaError, match="does not match 4 task names"):
        rp.plot_heatmap(names[:4], s, tmp_path / "h.png")
    with pytest.raises(DeparaError, match="folder .* does not exist"):
        draw_tree(names, s, tmp_path / "no" / "t.png")
    assert not (tmp_path / "no").exists()
    with pytest.raises(DeparaError, match="no curves"):
        rp.plot_pr_curve({}, tmp_path / "p.png")
