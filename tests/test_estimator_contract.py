"""One contract over every registered estimator (in the spirit of scikit-learn's ``parametrize_with_checks``):
its tags say what it needs, it refuses a missing input with one line naming itself, it returns a finite float
from the inputs its tags ask for, and it ranks a source whose features carry the target's classes above one whose
features are the same rows shuffled (no relation to the classes)."""

from __future__ import annotations

import numpy as np
import pytest

from depara.core.graph import Graph
from depara.errors import DeparaError
from depara.estimators import (BUILTIN_ORDER, SourceInputs, Tags, TargetInputs, estimator_names, get_estimator,
                               list_estimators)

N, D, C = 90, 6, 3
RNG = np.random.default_rng(7)
LABELS = np.repeat(np.arange(C), N // C)
CENTRES = RNG.normal(scale=4.0, size=(C, D))
INFORMATIVE = CENTRES[LABELS] + RNG.normal(size=(N, D))
NOISE = INFORMATIVE[RNG.permutation(N)]  # the same feature distribution, no relation to the classes


def _probs(features: np.ndarray) -> np.ndarray:
    logits = features @ CENTRES.T
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _source(features: np.ndarray) -> SourceInputs:
    attributions = np.abs(features[:, :, None]) + 0.1  # a node per probe (any positive map works)
    return SourceInputs(features=features, probs=_probs(features), graph=Graph.from_arrays(attributions, features))


def _target() -> TargetInputs:
    target_features = CENTRES[LABELS] + 0.1 * RNG.normal(size=(N, D))
    graph = Graph.from_arrays(np.abs(target_features[:, :, None]) + 0.1, target_features)
    return TargetInputs(labels=LABELS, graph=graph, lam=1.0)


NAMES = estimator_names()


def test_every_builtin_is_registered_in_the_listing_order():
    assert NAMES == BUILTIN_ORDER and len(NAMES) == 20  # DEPARA's four, the 15 peers and the k-NN baseline


@pytest.mark.parametrize("name", NAMES)
def test_tags_are_the_estimators_own_flags(name):
    e = get_estimator(name)
    assert isinstance(e.tags, Tags)
    for flag in Tags.__dataclass_fields__:
        assert getattr(e.tags, flag) is getattr(e, flag)
    assert e in list_estimators(**{flag: getattr(e, flag) for flag in Tags.__dataclass_fields__})


@pytest.mark.parametrize("name", NAMES)
def test_a_missing_input_is_refused_naming_the_estimator(name):
    e = get_estimator(name)
    empty = SourceInputs()
    if not (e.needs_features or e.needs_source_probs or e.needs_graph):
        pytest.skip("needs no per-source input")
    with pytest.raises(DeparaError, match=f"method {name}: source s has no"):
        e.check({"s": empty}, _target())


@pytest.mark.parametrize("name", NAMES)
def test_finite_score_and_informative_beats_noise(name):
    e = get_estimator(name)
    target = _target()
    good, bad = _source(INFORMATIVE), _source(NOISE)
    e.check({"good": good, "bad": bad}, target)
    s_good, s_bad = e.score(good, target), e.score(bad, target)
    assert isinstance(s_good, float) and np.isfinite(s_good) and np.isfinite(s_bad)
    assert s_good > s_bad
