"""Transferability estimators behind one registry: DEPARA and its peers.

:mod:`~depara.estimators.registry` holds the registry (:func:`get_estimator`, :func:`list_estimators`,
:func:`register_estimator`, the :func:`estimator` decorator); each family of estimators registers itself where it is
defined: :mod:`~depara.estimators.evidence`, :mod:`~depara.estimators.separability`, :mod:`~depara.estimators.head`,
:mod:`~depara.estimators.representation` (the peers, all also in :mod:`~depara.estimators.baselines`) and
:mod:`~depara.estimators.depara_family` (DEPARA). :mod:`~depara.estimators.scoring` scores candidate sources with
every registered estimator from precomputed arrays.
"""

# Importing the family modules registers their estimators (the listing order is registry.BUILTIN_ORDER).
from . import depara_family, evidence, head, knn_baseline, representation, separability  # noqa: F401  (registering)
from .depara_family import depara_labels_edges, depara_labels_resampled
from .registry import (BUILTIN_ORDER, Estimator, SourceInputs, Tags, TargetInputs, estimator, estimator_names,
                       get_estimator, list_estimators, parse_estimators, reference_representation,
                       register_estimator)

__all__ = ["Estimator", "Tags", "SourceInputs", "TargetInputs", "estimator", "register_estimator", "list_estimators",
           "get_estimator", "estimator_names", "parse_estimators", "reference_representation", "BUILTIN_ORDER",
           "depara_labels_edges", "depara_labels_resampled"]
