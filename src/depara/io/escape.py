"""User-provided names made safe for every output: the terminal, HTML, Markdown and CSV. One module, one rule each.

Names of models, layers, classes, files reach every output of a run. Each output has its own active characters:

* terminal (:func:`terminal`): rich console markup (``[bold]``, ``[/]``) would be parsed, and control characters
  (ESC sequences, carriage returns, NUL) would act on the terminal; markup is escaped and control characters are
  shown as ``\\xNN`` / ``\\uNNNN`` escapes;
* HTML (:func:`html_text`): ``& < > " '`` as entities (text and attribute values alike), control characters
  shown as escapes;
* Markdown (:func:`markdown_text`): one line, HTML escaped, and the characters that start Markdown syntax
  (``\\ ` * _ [ ] | ~``) backslash-escaped (``< > &`` are HTML-escaped);
* figures (:func:`plot_text`): matplotlib reads text between ``$`` signs as mathematics (and fails on bad
  TeX); ``$`` is escaped, control characters shown as escapes;
* CSV (:func:`csv_cell`): a text cell a spreadsheet would run as a formula (first character ``= + - @`` or a tab /
  carriage return) gets a leading ``'`` (OWASP's rule); numbers are left as they are.

Every function takes any value (``str()`` of it) and returns a ``str``; nothing here raises on a name.
"""

from __future__ import annotations

import html
import re
from typing import Any

__all__ = ["visible", "terminal", "html_text", "markdown_text", "csv_cell", "plot_text"]

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069]")
_MD_SPECIAL = re.compile(r"([\\`*_\[\]|~])")
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _escape_control(match: re.Match) -> str:
    code = ord(match.group(0))
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def visible(value: Any, newlines: bool = False) -> str:
    """``str(value)`` with control and bidirectional-override characters shown as escapes (``\\x1b``); with
    ``newlines`` a newline stays a newline."""
    text = str(value)
    if newlines:
        return "\n".join(_CONTROL.sub(_escape_control, part) for part in text.split("\n"))
    return _CONTROL.sub(_escape_control, text)


def terminal(value: Any) -> str:
    """Text for a rich console or table cell: control characters escaped, then rich markup escaped."""
    from rich.markup import escape

    return escape(visible(value))


def html_text(value: Any) -> str:
    """Text for HTML element content or a quoted attribute value (newlines and tabs, plain whitespace in HTML,
    stay as they are)."""
    return html.escape("\t".join(visible(part, newlines=True) for part in str(value).split("\t")), quote=True)


def markdown_text(value: Any) -> str:
    """Inline Markdown text that renders as the literal name: one line (whitespace runs become one space),
    HTML escaped, Markdown syntax characters backslash-escaped."""
    flat = " ".join(visible(value, newlines=True).split())
    return _MD_SPECIAL.sub(r"\\\1", html.escape(flat, quote=False))


def csv_cell(value: Any) -> Any:
    """A CSV cell: numbers (and None) unchanged; text that a spreadsheet would evaluate gets a leading ``'``,
    control characters other than tab are shown as escapes."""
    if value is None or isinstance(value, (int, float)):
        return value
    text = str(value)
    if text.startswith(_FORMULA_START):
        try:
            float(text)
            return text  # a number written as text ("-0.5") is data, not a formula
        except ValueError:
            text = "'" + text
    return visible(text)


def plot_text(value: Any) -> str:
    """A matplotlib label: control characters escaped and ``$`` escaped (no mathtext)."""
    return visible(value).replace("$", "\\$")
