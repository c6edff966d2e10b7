"""Scoring of the pretrained bank on cached features (depara.benches.realbank.pretrained_scoring), tiny scale."""

from __future__ import annotations

import math

import numpy as np
import pytest

from depara.benches.realbank import pretrained_scoring as S
from depara.estimators import get_estimator


def test_members_span_the_rule_space():
    assert len(S.MEMBERS) == 10  # (global, per_probe, knn × k ∈ {5, 10, √N}) × (centred, standardised)
    assert S.MEMBERS["DEPARA-label [knn k=√N, standardised]"] == ("knn", "standardised", None)
    assert S.MEMBERS["DEPARA-label [per_probe, centred]"] == ("per_probe", "centred", None)


def test_scores_and_refusals():
    rng = np.random.default_rng(0)
    y = np.repeat([0, 1, 2], 10)
    f = rng.normal(size=(30, 6)) + 10.0 * np.eye(6)[y]
    seconds = {}
    peers = S.peer_scores(f, y, seconds)
    assert peers["LogME"] == get_estimator("logme").fn(f, y)
    assert peers["k-NN accuracy"] == 1.0  # three well-separated clusters
    assert set(seconds) == set(peers) and all(v >= 0 for v in seconds.values())
    members = S.member_scores(f, y)
    # every probe's 5 nearest are of its class: kNN lift = 1 − n⁺/(N − 1) = 1 − 9/29; per-probe AUC = 1
    assert members["DEPARA-label [knn k=5, centred]"] == pytest.approx(20 / 29)
    assert members["DEPARA-label [per_probe, centred]"] == pytest.approx(1.0)
    noise = S.member_scores(rng.normal(size=(30, 6)), y)
    assert all(members[m] > noise[m] for m in S.MEMBERS)
    # one class only: LogME refuses (needs 2 classes) and the bank records NaN instead of failing; k-NN is
    # trivially right
    refused = S.peer_scores(f, np.zeros(30, dtype=np.int64))
    assert math.isnan(refused["LogME"]) and refused["k-NN accuracy"] == 1.0
