"""Map library errors, which name the ARGUMENT (``methods``, ``root``), to the CLI flag the user typed."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

from ..errors import DeparaError


@contextmanager
def flags(**argument_to_flag: str) -> Iterator[None]:
    """Inside the block, a DeparaError whose message starts with an argument name (``"methods: ..."``,
    ``"root /x: ..."``) is re-raised with that name replaced by its flag (``flags(methods="--method")``)."""
    try:
        yield
    except DeparaError as exc:
        msg = str(exc)
        for argument, flag in argument_to_flag.items():
            if msg.startswith((argument + ":", argument + " ")):
                raise DeparaError(flag + msg[len(argument):]) from None
        raise


def check_number(flag: str, value: float, *, low: float = 0.0, strict: bool = False,
                 high: float | None = None) -> float:
    """A real-valued option checked before any work: finite, ``>= low`` (``> low`` with ``strict``) and, when
    given, ``<= high``; else a one-line DeparaError naming the flag (NaN, inf and negative learning rates would
    otherwise fail deep inside a training loop, or silently train nothing)."""
    import math

    ok = isinstance(value, (int, float)) and math.isfinite(value) and (value > low if strict else value >= low) \
        and (high is None or value <= high)
    if not ok:
        bound = f"> {low:g}" if strict else f">= {low:g}"
        rng = f"a finite number {bound}" + (f" and <= {high:g}" if high is not None else "")
        raise DeparaError(f"{flag}: expected {rng}, got {value!r}")
    return float(value)
