"""The main jobs: ``depara select`` (:mod:`~depara.selection.job`: which model, and which of its layers, to
transfer to a target set) and ``depara score`` (:mod:`~depara.selection.harness`: every estimator over candidate
sources, with :mod:`~depara.selection.targets` reading its target data).

``select``, ``Selection`` and the job's constants are importable from here; they load on first use (torch).
"""

from __future__ import annotations

from typing import Any

_JOB = ("select", "Selection", "DEFAULT_SCORER", "SCORERS", "GRAPH_OPTIONS", "bootstrap_indices",
        "percentile_interval", "PROTOCOLS")


def __getattr__(name: str) -> Any:
    if name in _JOB:
        from . import job

        return getattr(job, name)
    raise AttributeError(f"module 'depara.selection' has no attribute {name!r}")
