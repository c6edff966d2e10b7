"""`depara report`: one self-contained HTML page + Markdown summary of any results folder; the ranking table
printer shared by the ranking commands."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest
from rich.console import Console

from depara.cli._table import print_ranking
from depara.cli.main import main
from depara.errors import DeparaError
from depara.report.html import MAX_HTML_ROWS, format_cell, load_results, render_report
from depara.report.manifest import write_manifest

from _report_helpers import (RANKING, assert_every_figure_embedded, assert_self_contained,
                             assert_table_matches_csv, embedded_images, find_table, make_demo_folder,
                             make_rank_folder, parse_page, table_for_file, tiny_png, write_csv_rows)


@pytest.fixture()
def rank_dir(tmp_path: Path) -> Path:
    return make_rank_folder(tmp_path / "rank")


# ------------------------------------------------------------------------------------------ the page


def test_page_parses_and_is_self_contained(rank_dir: Path) -> None:
    files = render_report(rank_dir)
    assert files.html == rank_dir / "report.html" and files.markdown == rank_dir / "report.md"
    page = parse_page(files.html)
    assert page.tags[:1] == ["html"] and "style" in page.tags
    assert_self_contained(page)
    text = files.html.read_text(encoding="utf-8")
    assert "Sources for target &#x27;depth&#x27; (rank)" in text
    assert "pick source normals (S = 0.812)" in text


def test_every_figure_is_embedded_byte_for_byte(rank_dir: Path) -> None:
    page = parse_page(render_report(rank_dir).html)
    assert assert_every_figure_embedded(page, rank_dir) == 2
    srcs = [a["src"] for t, a in page.attrs if t == "img"]
    assert all(s.startswith("data:image/png;base64,") for s in srcs)


def test_ranking_table_matches_csv_cell_by_cell(rank_dir: Path) -> None:
    page = parse_page(render_report(rank_dir).html)
    assert_table_matches_csv(page, rank_dir / "ranking.csv", rank_dir)
    assert_table_matches_csv(page, rank_dir / "matrix.csv", rank_dir)
    body, _ = find_table(page, RANKING[0])
    # hand-checked display of a few cells: 4 significant digits, tiny/huge in scientific notation, NaN in words
    assert [c["text"] for c in body[0][:2]] == ["normals", "0.8123"]
    assert body[1][2]["text"] == "-1.235e-04"  # the CSV's -0.00012345, a tie, rounded half away from zero
    assert body[3][1]["text"] == "undefined" and body[3][2]["text"] == "1.235e+06"
    assert body[0][4]["text"] == "1" and body[0][4]["title"] is None  # integers shown as they are


def test_pick_row_highlighted_and_compared_with_truth(tmp_path: Path) -> None:
    folder = make_rank_folder(tmp_path / "r", pick="depth", truth="normals")
    page = parse_page(render_report(folder).html)
    body, classes = find_table(page, RANKING[0])
    assert [row[0]["text"] for row, cls in zip(body, classes) if cls == "pick"] == ["depth"]
    text = (folder / "report.html").read_text(encoding="utf-8")
    assert "depara picks" in text and "best by ground truth" in text and "different choice" in text
    assert "regret" in text and "0.01235" in text
    same = make_rank_folder(tmp_path / "s", pick="normals", truth="normals")
    assert "same choice" in render_report(same).html.read_text(encoding="utf-8")


def test_ranking_without_pick_highlights_first_row_and_draws_score_bars(tmp_path: Path) -> None:
    folder = tmp_path / "r"
    folder.mkdir()
    write_csv_rows(folder / "ranking.csv", RANKING)
    write_manifest(folder, "rank", tables={"ranking": "ranking.csv"})
    text = render_report(folder).html.read_text(encoding="utf-8")
    page = parse_page(folder / "report.html")
    _, classes = find_table(page, RANKING[0])
    assert classes == ["pick", "", "", ""]
    # bar widths follow the S column: best 100 %, worst finite value 8 %, NaN no bar
    widths = [int(w) for w in re.findall(r"#c9dcfb (\d+)%", text)]
    assert widths == [100, round(8 + 92 * (0.7 - 0.41) / (0.8123456789012345 - 0.41)), 8]


def test_settings_and_extra_are_shown(rank_dir: Path) -> None:
    page = parse_page(render_report(rank_dir).html)
    kv = {row[0]["text"]: row[1]["text"] for table in page.tables for row in table
          if len(row) == 2 and row[0]["tag"] == "th"}
    assert kv["lam"] == "1" or kv["lam"] == "1.0"
    assert kv["seed"] == "0" and kv["probes"] == "probes/" and kv["scalar"] == "sum"
    assert kv["n_probes"] == "200"
    assert "Settings" in page.headings and "Details" in page.headings


def test_long_table_is_cut_with_a_note(tmp_path: Path) -> None:
    folder = tmp_path / "long"
    folder.mkdir()
    write_csv_rows(folder / "log.csv", [["epoch", "acc"]] + [[str(i), str(i / 1000)] for i in range(MAX_HTML_ROWS + 5)])
    write_csv_rows(folder / "ranking.csv", RANKING)
    write_manifest(folder, "layers-select", tables={"ranking": "ranking.csv", "log": "log.csv"})
    page = parse_page(render_report(folder).html)
    body, _ = find_table(page, ["epoch", "acc"])
    assert len(body) == MAX_HTML_ROWS
    assert_table_matches_csv(page, folder / "log.csv", folder, max_rows=MAX_HTML_ROWS)
    text = (folder / "report.html").read_text()
    assert f"showing the first {MAX_HTML_ROWS} of {MAX_HTML_ROWS + 5} rows" in text
    # the long secondary table is folded, the ranking is not
    assert text.count("<details>") == 1 and f"<details><summary>log: {MAX_HTML_ROWS + 5} rows" in text
    assert text.index("</details>") > text.index('data-file="log.csv"') > text.index('data-file="ranking.csv"')


def test_json_tables_render(tmp_path: Path) -> None:
    folder = tmp_path / "j"
    folder.mkdir()
    (folder / "rows.json").write_text('[{"method": "depara", "p_at_5": 0.75}, {"method": "rsa", "p_at_5": 0.5}]')
    (folder / "kv.json").write_text('{"spearman": 0.5, "kendall": 0.25}')
    write_manifest(folder, "score", tables={"methods": "rows.json", "summary": "kv.json"})
    page = parse_page(render_report(folder).html)
    body, _ = find_table(page, ["method", "p_at_5"])
    assert [[c["text"] for c in r] for r in body] == [["depara", "0.75"], ["rsa", "0.5"]]
    body, _ = find_table(page, ["key", "value"])
    assert [[c["text"] for c in r] for r in body] == [["spearman", "0.5"], ["kendall", "0.25"]]


# ------------------------------------------------------------------------------------------ sections


def test_subfolders_with_manifests_become_sections(tmp_path: Path) -> None:
    root = make_demo_folder(tmp_path / "demo")
    section = load_results(root)
    assert [c.rel for c in section.children] == ["taskbank", "layers", "more/deeper"]  # extra.sections first
    page = parse_page(render_report(root).html)
    assert_self_contained(page)
    assert assert_every_figure_embedded(page, root) == 1 + 3 * 2
    ids = [a["id"] for t, a in page.attrs if t == "section"]
    assert ids == ["sec-root", "sec-taskbank", "sec-layers", "sec-more-deeper"]
    links = [a["href"] for t, a in page.attrs if t == "a"]
    assert links == ["#sec-taskbank", "#sec-layers", "#sec-more-deeper"]
    text = (root / "report.html").read_text(encoding="utf-8")
    assert '<a href="#sec-layers">Sources for target &#x27;depth&#x27; (layers-select)</a>: pick source conv3' in text
    for sub in ("taskbank", "layers", "more/deeper"):  # same header in each: told apart by their file
        assert_table_matches_csv(page, root / sub / "ranking.csv", root)
    assert page.headings[0].startswith("depara demo")
    assert any(h.startswith("Sources for target 'depth' (layers-select)") for h in page.headings)


# ------------------------------------------------------------------------------------------ Markdown


def test_markdown_summary_links_figures_relative_to_out(tmp_path: Path) -> None:
    root = make_demo_folder(tmp_path / "demo")
    out = tmp_path / "elsewhere" / "rep"
    files = render_report(root, out)
    assert files.html.parent == out
    md = files.markdown.read_text(encoding="utf-8")
    assert md.startswith("# depara demo\n")
    assert "**What to pick:**\n\n- **Sources for target 'depth' (taskbank)**: pick source normals (S = 0.812)\n" in md
    assert "| normals | 0.8123 | 0.0312 | 0.7811 | 1 |" in md
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", md)
    assert len(links) == 7
    for link in links:
        assert (out / link).resolve().is_file(), link
    assert "| depara picks | conv3 |" in md and "| best by ground truth | conv4 |" in md


# ------------------------------------------------------------------------------------------ bad input


def test_missing_figure_is_a_one_line_error_naming_it(rank_dir: Path) -> None:
    (rank_dir / "figs" / "pr_curve.png").unlink()
    with pytest.raises(DeparaError) as err:
        render_report(rank_dir)
    msg = str(err.value)
    assert "\n" not in msg and "pr_curve.png" in msg and "'pr_curve'" in msg
    assert not (rank_dir / "report.html").exists() and not (rank_dir / "report.md").exists()


def test_missing_figure_in_a_subsection_names_it(tmp_path: Path) -> None:
    root = make_demo_folder(tmp_path / "demo")
    (root / "layers" / "ranking_bar.png").unlink()
    with pytest.raises(DeparaError, match=r"layers.ranking_bar\.png"):
        render_report(root)


def test_missing_table_and_no_manifest_and_bad_paths(tmp_path: Path, rank_dir: Path) -> None:
    with pytest.raises(DeparaError, match="no manifest.json"):
        render_report(tmp_path)
    with pytest.raises(DeparaError, match="not found"):
        render_report(tmp_path / "absent")
    (rank_dir / "matrix.csv").unlink()
    with pytest.raises(DeparaError, match=r"table 'similarity_matrix' file .*matrix\.csv is missing"):
        render_report(rank_dir)
    bad = tmp_path / "bad"
    bad.mkdir()
    write_manifest(bad, "rank", figures={"escape": "../rank/ranking_bar.png"})
    with pytest.raises(DeparaError, match="'escape' path '../rank/ranking_bar.png' must be relative"):
        render_report(bad)
    (bad / "fake.png").write_text("not an image")
    write_manifest(bad, "rank", figures={"fake": "fake.png"})
    with pytest.raises(DeparaError, match=r"fake\.png: not a PNG image"):
        render_report(bad)
    (bad / "manifest.json").write_text('{"kind": "rank", "tables": ["a.csv"]}')
    with pytest.raises(DeparaError, match="'tables' must map names to file names"):
        render_report(bad)


# ------------------------------------------------------------------------------------------ CLI


def test_cli_report_writes_both_files(rank_dir: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "out"
    assert main(["report", str(rank_dir), "--out", str(out)]) == 0
    assert (out / "report.html").is_file() and (out / "report.md").is_file()
    assert "pick source normals" in capsys.readouterr().out
    page = parse_page(out / "report.html")
    assert embedded_images(page)[0] == tiny_png(shade=0)


def test_cli_report_bad_folder_exits_2_with_one_line(tmp_path: Path, capsys) -> None:
    assert main(["report", str(tmp_path / "nope")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "nope" in err


# ------------------------------------------------------------------------------------------ formatting


@pytest.mark.parametrize("raw, shown", [
    ("0.8123456789", "0.8123"), ("12.3456", "12.35"), ("-0.00012345", "-1.235e-04"), ("0", "0"),
    ("0.0", "0"), ("250000.0", "2.500e+05"), ("nan", "undefined"), ("inf", "inf"), ("resnet18", "resnet18"),
    ("", ""), (3, "3"), (0.5, "0.5"), (None, ""), (True, "True"),
    ("0.125", "0.125"), ("18.125", "18.13"), ("2.675", "2.675"), ("-12.345", "-12.35"),  # ties: half away from 0
])
def test_format_cell(raw, shown) -> None:
    assert format_cell(raw) == shown


def _record(rows, columns, **kw) -> str:
    buf = io.StringIO()
    print_ranking(rows, columns, kw.pop("title", "Sources"), kw.pop("pick_line", "pick normals"),
                  console=Console(file=buf, width=100, color_system=None), **kw)
    return buf.getvalue()


def test_print_ranking_shows_rows_in_order_and_the_pick_line() -> None:
    rows = [{"source": "normals", "S": 0.8123456, "V": 0.03}, {"source": "depth", "S": 0.7, "V": -0.01}]
    text = _record(rows, ["source", "S"], title="Sources for depth", pick_line="pick source normals (S = 0.81)")
    lines = text.splitlines()
    assert "Sources for depth" in lines[0]
    first = next(i for i, l in enumerate(lines) if "normals" in l)
    second = next(i for i, l in enumerate(lines) if "depth" in l and "Sources" not in l)
    assert first < second
    assert "0.8123" in lines[first] and "0.03" not in text  # only the chosen columns
    assert lines[-1] == "→ pick source normals (S = 0.81)"


def test_print_ranking_bad_input() -> None:
    with pytest.raises(DeparaError, match="row 1 has no column 'S'"):
        _record([{"source": "a", "S": 1.0}, {"source": "b"}], ["source", "S"])
    with pytest.raises(DeparaError, match="no columns"):
        _record([{"source": "a"}], [])


def test_layout_headline_table_then_figures_then_other_tables(rank_dir: Path) -> None:
    text = render_report(rank_dir).html.read_text(encoding="utf-8")
    ranking, figure, matrix = (text.index(">ranking</h"), text.index("<img"), text.index(">similarity matrix</h"))
    assert ranking < figure < matrix
    md = (rank_dir / "report.md").read_text(encoding="utf-8")
    assert md.index("## ranking") < md.index("## Figures") < md.index("## similarity matrix")
    # a long nested extra value is folded away, a short one shown inline
    assert "<details><summary>" not in text and "{&quot;depth&quot;: [1, 2, 3]" in text


def test_score_column_named_in_extra_gets_bars_and_numeric_pick_highlights(tmp_path: Path) -> None:
    folder = tmp_path / "layers"
    folder.mkdir()
    write_csv_rows(folder / "layer_scores.csv", [["depth", "layer", "S_lam1", "acc"], ["1", "conv1", "1.0", "0.1"],
                                                 ["2", "conv2", "3.0", "0.3"], ["3", "fc", "2.0", "0.2"]])
    write_manifest(folder, "layers-select", tables={"layer_scores": "layer_scores.csv"},
                   extra={"pick_layer": 2, "primary_score": "S_lam1"})
    text = render_report(folder).html.read_text(encoding="utf-8")
    assert [int(w) for w in re.findall(r"#c9dcfb (\d+)%", text)] == [8, 100, 54]
    _, classes = find_table(parse_page(folder / "report.html"), ["depth", "layer", "S_lam1", "acc"])
    assert classes == ["", "pick", ""]
    assert "primary_score" not in text


def test_a_table_is_decoded_and_parsed_as_every_csv_depara_reads(rank_dir: Path) -> None:
    """Tables go through the readers' decode_text and parse_csv_rows: a byte-order mark is dropped (not glued to
    the first header), a Latin-1 table fails in their one line naming the table and the bad byte."""
    text = (rank_dir / "matrix.csv").read_text(encoding="utf-8")
    (rank_dir / "matrix.csv").write_bytes("\ufeff".encode() + text.encode())
    page = parse_page(render_report(rank_dir).html)
    assert [c["text"] for c in table_for_file(page, "matrix.csv")[0]] == ["", "a", "b"]
    (rank_dir / "matrix.csv").write_bytes(b",caf\xe9,b\n")
    with pytest.raises(DeparaError) as info:
        render_report(rank_dir)
    msg = str(info.value)
    assert msg.startswith("table 'similarity_matrix' file ") and "matrix.csv: not UTF-8 text (invalid byte 0xe9 " \
        "at offset 4)" in msg and "\n" not in msg


def test_rank_pick_line_rounds_half_away_from_zero() -> None:
    """`depara rank`'s sentence writes S, V and E as every report does: 0.28125 reads 0.2813, not 0.2812."""
    from depara.core.similarity import RankRow
    from depara.report.graph_files import pick_line

    rows = [RankRow("normals", 0.40625, 0.28125, -0.00005), RankRow("depth", 0.1, 0.1, 0.1)]
    assert pick_line(rows, "depth", 1.0) == "pick source 'normals' for target 'depth' (S = 0.4063 = V 0.2813 " \
        "+ 1·E -0.0001)"
    assert pick_line(rows, "depth", float("inf")) == "pick source 'normals' for target 'depth' (S = 0.4063, " \
        "E -0.0001)"
