"""Errors raised for bad input.

Every error depara raises for bad input is a :class:`DeparaError` whose message is ONE line naming the
offending file / layer / argument and what was expected. The CLI prints it as ``error: <message>`` and exits 2.
"""

from __future__ import annotations


class DeparaError(ValueError):
    """Bad input: the message is one line naming the thing and what was expected."""

    def __init__(self, message: str):
        super().__init__(" ".join(str(message).split()))


def exception_reason(exc: BaseException, limit: int | None = 200) -> str:
    """One line saying why ``exc`` happened: a :class:`DeparaError`'s own first line, else ``<Type>: <reason>``
    (an error raised by user code, e.g. a model's forward pass, or by a worker), the reason cut at ``limit``
    characters (None: not cut). TorchScript puts a generic header ("The following operation failed in the
    TorchScript interpreter.") and a traceback first and the reason last, so for it the last ``...Error: ...`` line
    is taken."""
    if isinstance(exc, DeparaError):
        return (str(exc).strip().splitlines() or [""])[0]
    name = type(exc).__name__
    lines = [ln.strip() for ln in str(exc).strip().splitlines() if ln.strip()]
    if not lines:
        return name
    if len(lines) > 1 and "TorchScript" in lines[0]:
        reason = next((ln for ln in reversed(lines) if "Error" in ln.split(":", 1)[0]), lines[-1])
    else:
        reason = lines[0]
    reason = reason.removeprefix(f"{name}: ")
    if reason.startswith("builtins."):  # TorchScript's re-raised Python exception: "builtins.KeyError: ..."
        name, _, reason = reason.removeprefix("builtins.").partition(": ")
    return f"{name}: {reason[:limit]}" if reason else name  # [:None] keeps it whole
