"""Probe ids: the one validation rule for the ids of a graph's probes (numpy-free).

Two graphs are comparable only on identical ids in identical order, so ids must be unique strings, one per probe.
:func:`depara.extraction.extract.build_graphs` checks them BEFORE a (possibly long) extraction with this function;
:class:`depara.core.graph.Graph` applies it too.
"""

from __future__ import annotations

from typing import Any, Sequence

from ..errors import DeparaError

__all__ = ["check_probe_ids"]


def check_probe_ids(probe_ids: Sequence[Any] | None, n: int, what: str = "probe_ids") -> tuple[str, ...]:
    """``probe_ids`` as a tuple of ``n`` unique strings (default ``"0".."n−1"``); DeparaError naming ``what``."""
    if probe_ids is None:
        return tuple(str(i) for i in range(n))
    if isinstance(probe_ids, (str, bytes)):
        raise DeparaError(f"{what}: expected a sequence of {n} ids, got a single string")
    ids = tuple(str(p) for p in probe_ids)
    if len(ids) != n:
        raise DeparaError(f"{what}: {len(ids)} ids for {n} probes")
    if len(set(ids)) != n:
        seen: set[str] = set()
        dup = next(p for p in ids if p in seen or seen.add(p))  # type: ignore[func-returns-value]
        raise DeparaError(f"{what}: ids must be unique, {dup!r} occurs {ids.count(dup)} times")
    return ids
