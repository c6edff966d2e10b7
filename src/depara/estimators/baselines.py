"""The peer transferability estimators, all in one namespace: LogME, LEEP, NCE, H-score, TransRate, RSA,
linear CKA, and the recent SFDA, NLEEP, PARC, GBC, PACTran, ETran, NCTI, PED (numpy/scipy; NLEEP and PARC also
scikit-learn's PCA / GaussianMixture / StandardScaler, as their authors' code does).

Each is defined, and registered in :mod:`depara.estimators.registry`, in the module of its family:
:mod:`~depara.estimators.evidence` (LogME, PACTran, PED), :mod:`~depara.estimators.separability` (H-score,
TransRate, GBC, SFDA, ETran, NCTI), :mod:`~depara.estimators.head` (LEEP, NCE, NLEEP) and
:mod:`~depara.estimators.representation` (RSA, CKA, PARC); their shared input checks are
:mod:`~depara.estimators.checks`.

Every function takes numpy arrays and returns one Python float; for every one of them **higher = better**
(the source is predicted to transfer better to the target). Inputs are validated at the door: a bad input
raises a one-line :class:`~depara.errors.DeparaError` naming the argument.

Values equal the public reference implementations (thuml/LogME at commit 56551ca, ``tllib.ranking`` of
thuml/Transfer-Learning-Library at commit c4aa59e, the authors' code of the recent ones) on well-posed inputs to
1e-6 relative; where they differ each docstring says what is done and why.
"""

from __future__ import annotations

from .evidence import logme, pactran_gaussian, ped, ped_features
from .head import leep, nce, nleep
from .representation import linear_cka, parc, rsa
from .separability import (etran, etran_combine, etran_components, gbc, h_score, ncti, ncti_combine, ncti_components,
                           sfda, transrate)

__all__ = ["logme", "leep", "nce", "h_score", "transrate", "rsa", "linear_cka", "pactran_gaussian", "etran",
           "etran_components", "etran_combine", "ncti", "ncti_components", "ncti_combine", "ped",
           "ped_features", "sfda", "nleep", "parc", "gbc"]
