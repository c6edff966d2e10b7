"""depara.io.escape: each output's rule on hand-made names (the fuzz test is in tests/test_select_truth.py)."""

from __future__ import annotations

import io

from rich.console import Console

from depara.io.escape import csv_cell, html_text, markdown_text, plot_text, terminal, visible


def test_visible_shows_control_and_bidi_characters():
    assert visible("a\x1b[2Jb\x00\u202e") == "a\\x1b[2Jb\\x00\\u202e"
    assert visible("a\nb") == "a\\x0ab" and visible("a\nb", newlines=True) == "a\nb"
    assert visible("ümlaut 中 😀") == "ümlaut 中 😀"


def test_terminal_text_prints_literally_through_rich():
    buf = io.StringIO()
    Console(file=buf, color_system=None, width=80).print(terminal("[/bold]net[red]\x1b[31m"))
    assert buf.getvalue() == "[/bold]net[red]\\x1b[31m\n"


def test_html_markdown_csv_and_figure_rules():
    assert html_text('<a href="x">&\'</a>\t\n\r') == "&lt;a href=&quot;x&quot;&gt;&amp;&#x27;&lt;/a&gt;\t\n\\x0d"
    assert markdown_text("a|b_c*d `e` [l](u)\n<i>") == "a\\|b\\_c\\*d \\`e\\` \\[l\\](u) &lt;i&gt;"
    assert [csv_cell(v) for v in ("=1+2", "+x", "-x", "@x", "-0.5", "name", 3, None, 2.5)] == \
        ["'=1+2", "'+x", "'-x", "'@x", "-0.5", "name", 3, None, 2.5]
    assert plot_text("$\\frac{$") == "\\$\\frac{\\$"
