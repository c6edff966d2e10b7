"""Transferability estimators behind one registry: DEPARA and its peers.

:mod:`~depara.estimators.registry` holds the registry (:func:`get_estimator`, :func:`list_estimators`,
:func:`register_estimator`), :mod:`~depara.estimators.baselines` the peers' formulas (numpy only),
:mod:`~depara.estimators.scoring` scores candidate sources with every registered estimator from precomputed arrays.
"""

from .registry import (Estimator, SourceInputs, TargetInputs, estimator_names, get_estimator, list_estimators,
                       parse_estimators, reference_representation, register_estimator)

__all__ = ["Estimator", "SourceInputs", "TargetInputs", "register_estimator", "list_estimators", "get_estimator",
           "estimator_names", "parse_estimators", "reference_representation"]
