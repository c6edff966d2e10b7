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


def _words(capsys, monkeypatch, *args: str) -> str:
    """A help screen as plain words: box drawing dropped, wrapped lines joined."""
    monkeypatch.setenv("COLUMNS", "160")
    assert main([*args, "--help"]) == 0
    return " ".join(re.sub(r"[│╭╮╰╯─]", " ", capsys.readouterr().out).split())


def test_select_help_says_what_this_round_does(capsys, monkeypatch):
    from depara.options import SELECT_N_BOOT, SELECT_PEER_BOOT
    from depara.selection.scorers import DEFAULT_SCORER

    text = _words(capsys, monkeypatch, "select")
    assert "bootstrap" not in text  # the intervals are over probe half-samples
    assert "half-sample intervals" in text
    # "[@WEIGHTS]" would be read as terminal markup and vanish: the spec is written without brackets
    assert "Candidate models, SPEC or SPEC@WEIGHTS" in text and "(SPEC or SPEC@WEIGHTS)" in text
    assert f"The ranking one is always computed: {DEFAULT_SCORER[('labels', 'finetune')]} with labels, " \
           f"{DEFAULT_SCORER[('target_model', 'finetune')]} with only --target-model." in text
    assert DEFAULT_SCORER[("labels", "finetune")] == "depara_labels_logme"  # the round-6 default the help names
    peer = re.search(r"--peer-boot <int> (.+?) \[default: (\d+)\]", text)
    assert peer and int(peer.group(2)) == SELECT_PEER_BOOT == 0 and "default 0: ranks only" in peer.group(1)
    assert re.search(rf"--n-boot <int> .+? \[default: {SELECT_N_BOOT}\]", text)


def test_group_help_names_every_subcommand(capsys, monkeypatch):
    import typer.main

    from depara.cli.app import cache_app, demo_app

    demo = _words(capsys, monkeypatch, "demo")
    for cmd in typer.main.get_command(demo_app).commands:
        assert f"`depara demo {cmd}`" in demo
    cache = _words(capsys, monkeypatch, "cache")
    names = list(typer.main.get_command(cache_app).commands)
    assert f"`depara select` reuses: {', '.join(names)}." in cache
    top = _words(capsys, monkeypatch)
    assert f"reuses: {', '.join(names)}." in top


def test_every_option_of_score_says_what_it_does(capsys, monkeypatch):
    """`depara score --help`: each option carries a help text (--batch-size, --device and --seed had none)."""
    import click
    import typer.main

    from depara.cli.main import app

    command = typer.main.get_command(app)
    score = command.get_command(click.Context(command), "score")
    options = [p for p in score.params if p.param_type_name == "option" and p.opts[0] != "--help"]
    assert {"--batch-size", "--device", "--seed"} <= {p.opts[0] for p in options}
    assert [p.opts[0] for p in options if not (p.help or "").strip()] == []
