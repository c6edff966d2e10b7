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
