"""Results folders and what reads them: the manifest convention (:mod:`~depara.report.manifest`), the writers of
``score`` and ``rank`` folders, the HTML / Markdown report of any results folder (:mod:`~depara.report.html`) and the
figures (:mod:`~depara.report.plots`).

The report's names (``render_report``, ``load_results``, …) are importable from here; they load on first use.
"""

from __future__ import annotations

from typing import Any

_HTML = ("ReportFiles", "Section", "Table", "load_results", "render_report", "render_html", "render_markdown",
         "format_cell", "pick_and_truth")


def __getattr__(name: str) -> Any:
    if name in _HTML:
        from . import html

        return getattr(html, name)
    raise AttributeError(f"module 'depara.report' has no attribute {name!r}")
