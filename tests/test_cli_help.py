"""``depara --help``: the main jobs first (select, demo, report), the other commands grouped in help panels."""

from __future__ import annotations

import re

from depara.cli.main import main


def _help(capsys, monkeypatch) -> str:
    monkeypatch.setenv("COLUMNS", "160")
    assert main(["--help"]) == 0
    return capsys.readouterr().out


def _panels(text: str) -> list[tuple[str, list[str]]]:
    """(panel title, its command names in order) of a rich help screen."""
    panels: list[tuple[str, list[str]]] = []
    for line in text.splitlines():
        title = re.match(r"\s*╭─ (.+?) ─", line)
        if title:
            panels.append((title.group(1), []))
            continue
        row = re.match(r"\s*│ ([a-z][a-z-]*)\s{2,}", line)
        if row and panels:
            panels[-1][1].append(row.group(1))
    return panels


def test_main_jobs_come_first_and_the_rest_is_grouped(capsys, monkeypatch):
    panels = dict(_panels(_help(capsys, monkeypatch)))
    assert panels["Commands"] == ["select", "demo", "report"]
    assert panels["Graphs"] == ["layers", "extract", "compare", "rank", "tree"]
    assert panels["Estimators"] == ["score"]
    assert set(panels["Benches with measured ground truth"]) == {"train", "transfer", "layers-select", "taskonomy",
                                                                  "bench"}
    assert panels["Data"] == ["data"] and panels["Cache"] == ["cache"]
    listed = [c for name, cmds in panels.items() if name != "Options" for c in cmds]
    assert len(listed) == len(set(listed)) == 16  # every command once


def test_bench_help_names_both_banks(capsys, monkeypatch):
    text = _help(capsys, monkeypatch)
    line = next(ln for ln in text.splitlines() if re.match(r"\s*│ bench\s", ln))
    assert "task bank" in line and "real-image bank" in line
