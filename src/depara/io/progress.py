"""Progress bars that stay out of logs: one helper for every bar of the select job.

``progress_bar(items, desc=..., enabled=True)`` is a tqdm bar when ``enabled`` and the bar's stream (stderr) is
a terminal; when the output goes to a file or a pipe it is off (tqdm's ``disable=None``), so a log gets no
carriage-return redraws. ``enabled=False`` (``--quiet``, ``progress=False``) turns it off everywhere.
"""

from __future__ import annotations

from typing import Any, Iterable

__all__ = ["progress_bar"]


def progress_bar(items: Iterable[Any] | None = None, *, desc: str, enabled: bool, total: int | None = None,
                 **options: Any):
    """A tqdm bar over ``items`` (or a manual one of ``total`` steps): shown only when ``enabled`` and the
    output is a terminal; otherwise the plain iterable behaviour, nothing written."""
    from tqdm.auto import tqdm

    return tqdm(items, total=total, desc=desc, disable=None if enabled else True, leave=options.pop("leave", False),
                **options)
