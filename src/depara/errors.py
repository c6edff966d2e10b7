"""Errors raised for bad input.

Every error depara raises for bad input is a :class:`DeparaError` whose message is ONE line naming the
offending file / layer / argument and what was expected. The CLI prints it as ``error: <message>`` and exits 2.
"""

from __future__ import annotations


class DeparaError(ValueError):
    """Bad input: the message is one line naming the thing and what was expected."""

    def __init__(self, message: str):
        super().__init__(" ".join(str(message).split()))
