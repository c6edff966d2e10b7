"""Print a ranking on screen: a rich table (best first, the pick highlighted) and one line saying what to pick.

Shared by the commands that rank something (`depara rank`, `depara layers-select`, ...)::

    print_ranking(rows, ["source", "S", "V", "E"], title="Sources for target 'depth'",
                  pick_line="pick source 'normals' (S = 0.81)")
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from rich.console import Console
from rich.table import Table

from ..errors import DeparaError
from ..report.html import format_cell


def print_ranking(rows: Sequence[Mapping[str, Any]], columns: Sequence[str], title: str, pick_line: str, *,
                  pick_row: int | None = 0, console: Console | None = None) -> None:
    """Print ``rows`` (dicts, best first) as a table of ``columns``, then ``pick_line`` in bold.

    ``pick_row`` is the index of the row to highlight (the first by default; None for none). Numbers are shown
    to 4 significant digits. A column missing from a row raises a one-line :class:`DeparaError`.
    """
    if not columns:
        raise DeparaError("print_ranking: no columns given (expected at least one column name)")
    for i, row in enumerate(rows):
        missing = [c for c in columns if c not in row]
        if missing:
            raise DeparaError(f"print_ranking: row {i} has no column {missing[0]!r} (has {', '.join(map(str, row))})")
    table = Table(title=title, title_style="bold", header_style="bold cyan", show_lines=False)
    numeric = [all(_is_number(r[c]) for r in rows) and bool(rows) for c in columns]
    table.add_column("#", justify="right", style="dim")
    for col, is_num in zip(columns, numeric):
        table.add_column(str(col), justify="right" if is_num else "left")
    for i, row in enumerate(rows):
        style = "bold green" if i == pick_row else None
        table.add_row(str(i + 1), *[format_cell(row[c]) for c in columns], style=style)
    out = console if console is not None else Console()
    out.print(table)
    out.print(f"[bold green]→[/bold green] [bold]{_escape(pick_line)}[/bold]")


def _is_number(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, (int, float)):
        return True
    try:
        float(str(value))
    except ValueError:
        return False
    return True


def _escape(text: str) -> str:
    from rich.markup import escape

    return escape(str(text))
