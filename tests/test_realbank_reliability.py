"""Split-half reliability of the real-image bank's truth, against hand computations."""

from __future__ import annotations

import math

import numpy as np
import pytest

from depara.benches.realbank.evaluation import split_half_reliability, split_halves


def test_two_seeds_by_hand():
    # halves = one seed each: ranks (1, 2, 3) vs (1, 3, 2); Spearman = 1 − 6·Σd²/(n(n²−1)) = 1 − 6·2/24 = 0.5
    per_seed = np.array([[0.1, 0.2, 0.3], [0.1, 0.3, 0.2]])
    out = split_half_reliability(per_seed, "spearman")
    assert out["splits"] == 1
    assert out["r_half"] == pytest.approx(0.5)
    assert out["reliability"] == pytest.approx(2 * 0.5 / 1.5)  # Spearman–Brown
    assert out["ceiling"] == pytest.approx(math.sqrt(2 / 3))


def test_four_seeds_by_hand():
    # splits {0,1}|{2,3}, {0,2}|{1,3}, {0,3}|{1,2}; half means by hand, Kendall τ-b per split
    per_seed = np.array([[1.0, 2.0, 3.0], [1.0, 2.5, 3.0], [1.0, 3.5, 3.0], [1.0, 2.0, 4.0]])
    # {0,1} (1, 2.25, 3) vs {2,3} (1, 2.75, 3.5): same order -> τ = 1
    # {0,2} (1, 2.75, 3) vs {1,3} (1, 2.25, 3.5): same order -> τ = 1
    # {0,3} (1, 2, 3.5)  vs {1,2} (1, 3, 3):    second half ties candidates 2 and 3 -> τ-b = 2/√6
    assert [a for a, _ in split_halves(4)] == [(0, 1), (0, 2), (0, 3)]
    out = split_half_reliability(per_seed, "kendall")
    r = (1 + 1 + 2 / math.sqrt(6)) / 3
    assert out["r_half"] == pytest.approx(r)
    assert out["reliability"] == pytest.approx(2 * r / (1 + r))


def test_too_few_seeds_is_nan():
    assert math.isnan(split_half_reliability(np.array([[0.1, 0.2]]))["reliability"])


@pytest.mark.filterwarnings("error::RuntimeWarning")  # P@3 is NaN on every seed: no "Mean of empty slice"
def test_seed_ceiling_with_two_sources_by_hand():
    """Fewer sources than P@3 needs: the ceiling still comes back, P@3 NaN (it raised KeyError before)."""
    from depara.benches.realbank.evaluation import METRICS, seed_ceiling

    # seeds × sources; leave one seed out, the other seeds' mean is the truth:
    # seed 0 scores (1, 2) vs truth (2, 2.5): same order, τ = 1, regret 0, P@1 = 1
    # seed 1 scores (3, 1) vs truth (1, 3): reversed, τ = −1, regret 100·(3 − 1) = 200, P@1 = 0
    # seed 2 scores (1, 4) vs truth (2, 1.5): reversed, τ = −1, regret 100·(2 − 1.5) = 50, P@1 = 0
    out = seed_ceiling(np.array([[1.0, 2.0], [3.0, 1.0], [1.0, 4.0]]), ["a", "b"])
    assert set(out) == set(METRICS)
    assert out["kendall"] == pytest.approx(-1 / 3)
    assert out["regret"] == pytest.approx(250 / 3)
    assert out["p_at_1"] == pytest.approx(1 / 3)
    assert math.isnan(out["p_at_3"])
