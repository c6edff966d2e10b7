"""`depara select` tells the truth: intervals that hold their score for every scorer, undefined scores without a
rank, ties reported as ties, too few images per class said in one line, names that cannot break an output, and
no progress-bar noise in logs."""

from __future__ import annotations

import csv
import html.parser
import io
import re
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from _core_torch_helpers import write_shifted_classes, write_shifted_images  # noqa: E402
from PIL import Image  # noqa: E402
from rich.console import Console  # noqa: E402

from depara.cli._table import print_ranking  # noqa: E402
from depara.cli.main import main  # noqa: E402
from depara.errors import DeparaError  # noqa: E402
from depara.report.html import render_report  # noqa: E402
from depara.selection.report import SHARE_COLUMN, top_rows, write_selection  # noqa: E402
from depara.selection.job import SCORERS, Selection, select  # noqa: E402
from depara.extraction.zoo import ModelEntry  # noqa: E402

SIZE = 16


def _net(seed: int, zero: bool = False) -> torch.nn.Module:
    torch.manual_seed(seed)
    layers = [torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU(), torch.nn.Conv2d(4, 8, 3), torch.nn.ReLU(),
              torch.nn.AdaptiveAvgPool2d(2), torch.nn.Flatten(), torch.nn.Linear(32, 3)]
    if zero:  # a layer whose output is the same for every image: its scores are undefined
        with torch.no_grad():
            layers[2].weight.zero_()
            layers[2].bias.fill_(0.5)
    return torch.nn.Sequential(*layers)


def _entry(name: str, seed: int, **kw) -> ModelEntry:
    return ModelEntry(name, f"module:{name}", preprocessing=f"{SIZE}x{SIZE}", module=_net(seed, **kw))


@pytest.fixture(scope="module")
def classes(tmp_path_factory) -> Path:
    return write_shifted_classes(tmp_path_factory.mktemp("classes"), 6)


# ------------------------------------------------------------------------------------------------ intervals
def test_every_select_scorer_holds_its_score_in_a_finite_interval(classes, tmp_path):
    """Target model and labels: every scorer select offers, every candidate: the interval is finite and holds the
    point estimate (with-replacement resamples put LogME / H-score / TransRate intervals above their values)."""
    target = ModelEntry("t", "module:t", preprocessing=f"{SIZE}x{SIZE}", module=_net(7), layers=("2",))
    sel = select(classes, {"a": _entry("a", 0), "b": _entry("b", 1)}, target_model=target, layers=["1", "3"],
                 scorers=list(SCORERS), n_boot=10, peer_boot=10, cache_dir=tmp_path)
    assert set(sel.scorers) == set(SCORERS)
    for s in sel.scorers:
        for c in range(len(sel.candidates)):
            v, (lo, hi) = sel.values[s][c], sel.intervals[s][c]
            assert np.isfinite(v) and np.isfinite(lo) and np.isfinite(hi), (s, sel.candidates[c])
            assert lo <= v <= hi, (s, sel.candidates[c], v, lo, hi)
    assert sel.settings["half_sample_size"] == 9
    shares = np.array([r["p_best"] for r in sel.table])
    assert shares.sum() == pytest.approx(1.0) and sel.p_best == shares[0]


# ---------------------------------------------------------------------------------------- degenerate cases
def test_undefined_score_gets_no_rank_interval_or_share():
    """A candidate whose ranking score is NaN (e.g. a scorer undefined on its features) is listed last, without a
    rank, an interval or a share; the others are ranked among themselves."""
    from depara.selection.verdict import verdict as _verdict

    rng = np.random.default_rng(0)
    vals = np.empty((1, 3, 11))
    vals[0, 0] = 0.5 + 0.01 * rng.normal(size=11)
    vals[0, 1] = 0.3 + 0.01 * rng.normal(size=11)
    vals[0, 2] = np.nan
    v = _verdict(vals, ["depara_labels"], "depara_labels", n=20, m=10)
    assert v.order == [0, 1, 2] and v.ranked == 2 and v.too_close == [] and v.tied == []
    assert np.isnan(v.shares[2]) and v.shares[0] == pytest.approx(1.0) and np.all(np.isnan(v.intervals["depara_labels"][2]))
    cands = [("a", "1"), ("a", "2"), ("z", "1")]
    sel = Selection(candidates=cands, scorers=["depara_labels"], scorer="depara_labels",
                    values={"depara_labels": vals[0, :, 0]}, intervals=v.intervals, order=v.order, p_best=1.0,
                    too_close=[], case="labels", settings={"n_boot": 10, "protocol": "finetune"},
                    models={"a": {"layers": ["1", "2"]}, "z": {"layers": ["1"]}}, shares=v.shares, ranked=v.ranked)
    last = sel.table[-1]
    assert (last["model"], last["rank"]) == ("z", None) and np.isnan(last["p_best"])
    assert np.isnan(last["depara_labels_lo"]) and [r["rank"] for r in sel.table[:2]] == [1, 2]
    assert "1 candidate(s) not ranked (depara_labels undefined)" in sel.summary
    with pytest.raises(DeparaError, match="depara_labels: undefined \\(NaN\\) for every candidate"):
        _verdict(np.full((1, 2, 3), np.nan), ["depara_labels"], "depara_labels", n=6, m=3)


def test_ties_at_the_top_are_reported_as_ties(classes, tmp_path):
    """Two models with the same weights score the same: neither is 'best' with P = 1; they share the wins."""
    sel = select(classes, {"a": _entry("a", 0), "twin": _entry("twin", 0)}, layers=["3"], n_boot=20,
                 cache_dir=tmp_path)
    assert sel.values["depara_labels"][0] == sel.values["depara_labels"][1]
    assert sel.tied == [("twin", "3")] and ("twin", "3") in sel.too_close
    assert sel.p_best == pytest.approx(0.5) and [r["rank"] for r in sel.table] == [1, 1]
    assert "tied with twin:3" in sel.summary and "too close to call" in sel.summary


def test_three_probes_give_no_share_and_no_interval(tmp_path):
    """3 probes: no half-sample has a pair of probes, so nothing is claimed about how sure the pick is."""
    flat = tmp_path / "flat"
    write_shifted_images(flat, 3)
    target = ModelEntry("t", "module:t", preprocessing=f"{SIZE}x{SIZE}", module=_net(7), layers=("2",))
    sel = select(flat, {"a": _entry("a", 0), "b": _entry("b", 1)}, target_model=target, layers=["1"], n_boot=20,
                 cache_dir=tmp_path / "c")
    assert np.isnan(sel.p_best) and np.all(np.isnan(sel.intervals["depara_e"]))
    assert "no interval: too few probes to resample" in sel.summary and "P(best)" not in sel.summary


def test_too_few_images_per_class_said_in_one_line(tmp_path):
    singletons = tmp_path / "single"
    for c in range(5):
        write_shifted_images(singletons / f"c{c}", 1, shift=40 * c)
    with pytest.raises(DeparaError, match=r"the label scorers need at least 2 images per class; class 'c0' has 1 "
                                          r"\(5 classes below the minimum\)"):
        select(singletons, {"a": _entry("a", 0)}, cache_dir=tmp_path / "c")
    target = ModelEntry("t", "module:t", preprocessing=f"{SIZE}x{SIZE}", module=_net(7), layers=("2",))
    sel = select(singletons, {"a": _entry("a", 0)}, target_model=target, layers=["1"], n_boot=4,
                 cache_dir=tmp_path / "c")
    assert sel.scorer == "depara_e" and "depara_labels" not in sel.scorers
    assert sel.notes == ["label scorers left out: the label scorers need at least 2 images per class; class 'c0' "
                         "has 1 (5 classes below the minimum)"]
    assert sel.notes[0] in sel.summary


# ------------------------------------------------------------------------------------------------- names
_ALPHABET = st.sampled_from(list("ab[]/=+-@$\\<>&\"'`*_|#!(){}.:;,") + ["[/bold]", "[red]", "\x1b[31m", "\r",
                                                                      "\x00", "\u202e", "\u00e9\u0301", "\U0001f600",
                                                                      "\u4e2d", "<script>", "=cmd|' /C calc'!A0",
                                                                      "\n", "\t", "$\\frac{$"])
_NAMES = st.lists(_ALPHABET, min_size=1, max_size=12).map("".join)
_TAGS = {"html", "head", "meta", "title", "style", "body", "main", "section", "h1", "h2", "h3", "h4", "p", "b",
         "code", "div", "table", "thead", "tbody", "tr", "th", "td", "figure", "img", "figcaption", "footer",
         "details", "summary", "nav", "ul", "li", "a", "span", "pre"}
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f\u202e]")


class _Tags(html.parser.HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: set[str] = set()

    def handle_starttag(self, tag, attrs) -> None:
        self.tags.add(tag)


def _fake_selection(models: list[str], layers: list[str]) -> Selection:
    cands = [(m, layer) for m in models for layer in layers]
    c = len(cands)
    v = np.linspace(0.5, -0.5, c)  # negative scores too: their text must stay as it is in CSV
    values = {"depara_labels": v, "logme": v[::-1].copy()}
    intervals = {s: np.stack([x - 0.05, x + 0.05], axis=1) for s, x in values.items()}
    return Selection(candidates=cands, scorers=["depara_labels", "logme"], scorer="depara_labels", values=values,
                     intervals=intervals, order=list(range(c)), p_best=0.6, too_close=cands[1:2], case="labels",
                     settings={"n_boot": 10, "half_sample_size": 5, "protocol": "finetune"},
                     models={m: {"layers": list(layers)} for m in models},
                     shares=np.r_[0.6, 0.4, np.zeros(c - 2)])


def _blank_png(sel, path: Path) -> None:
    Image.new("RGB", (2, 2)).save(path, format="PNG")


def test_names_in_the_figure_are_plain_text(tmp_path):
    """Names with TeX-like text ($\\frac{$), markup and control characters are drawn as text, never parsed."""
    write_selection(_fake_selection(["$\\frac{$[/bold]\x1b", "m$x$"], ["l\r1", "<b>$"]), tmp_path)
    assert Image.open(tmp_path / "select.png").size[0] > 100


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(models=st.lists(_NAMES, min_size=1, max_size=2, unique=True),
       layers=st.lists(_NAMES, min_size=2, max_size=2, unique=True))
def test_names_cannot_break_any_output(tmp_path_factory, models, layers):
    """Markup, control characters, formulas and long unicode in model and layer names: the terminal table, the
    CSV files, report.html and report.md all come out, with the names inert."""
    from unittest import mock

    sel = _fake_selection(models, layers)
    out = tmp_path_factory.mktemp("names")
    with mock.patch("depara.selection.report._figure", _blank_png):  # the figure's names: the test below
        write_selection(sel, out)
    files = render_report(out)
    page = files.html.read_text(encoding="utf-8")
    parser = _Tags()
    parser.feed(page)
    assert parser.tags <= _TAGS, parser.tags - _TAGS  # a name never becomes an element
    md = files.markdown.read_text(encoding="utf-8")
    assert not re.search(r"<[A-Za-z/!?]", md) and not _CONTROL.search(md)
    assert not _CONTROL.search(re.sub(r"<style>.*?</style>", "", page, flags=re.S))
    for name in ("top.csv", "ranking.csv", "layers.csv"):
        with open(out / name, newline="", encoding="utf-8") as fh:
            for row in csv.DictReader(fh):
                for key, cell in row.items():
                    assert not _CONTROL.search(cell.replace("\t", " "))
                    if key in ("model", "layer", "candidate") and cell[:1] in ("=", "+", "-", "@"):
                        float(cell)  # a name never starts like a formula (a number may)
    with open(out / "top.csv", newline="", encoding="utf-8") as fh:
        last = list(csv.DictReader(fh))[-1]
    assert last["depara_labels (95% interval)"].startswith("-0.")  # a negative score is not escaped
    buf = io.StringIO()
    rows = top_rows(sel, k=len(sel.candidates))
    print_ranking(rows, list(rows[0]), title="t", pick_line=sel.summary,
                  console=Console(file=buf, width=200, color_system=None))
    assert not _CONTROL.search(buf.getvalue())


def test_markup_in_a_model_name_through_the_cli(classes, tmp_path, capsys):
    net = tmp_path / "net.pt"
    torch.jit.script(_net(0)).save(str(net))
    zoo = tmp_path / "zoo.toml"
    zoo.write_text(f'[[model]]\nname = "[/bold]net[red]"\nspec = "file:{net}"\npreprocessing = "16x16"\n')
    rc = main(["select", str(classes), "--zoo", str(zoo), "--cache", str(tmp_path / "c"), "--n-boot", "5",
               "--out", str(tmp_path / "out")])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    assert "[/bold]net[red]" in captured.out
    # no progress bar redraws in a log: stderr/stdout are not terminals here
    assert "\r" not in captured.err and "\r" not in captured.out
    with open(tmp_path / "out" / "top.csv", newline="", encoding="utf-8") as fh:
        head = next(csv.reader(fh))
    assert head[:4] == ["rank", "model", "layer", "depara_labels_logme (95% interval)"] and SHARE_COLUMN in head
    others = ("depara_labels", "logme", "hscore", "transrate", "rsa", "cka", "gbc", "ped")  # all but the ranking one
    assert [h for h in head if h.endswith(" rank")] == [f"{p} rank" for p in others]


def test_control_characters_in_an_error_are_shown_not_sent_to_the_terminal(tmp_path, capsys):
    """A folder name with an ESC sequence reaches the one-line error as the visible escape ``\\x1b``."""
    rc = main(["select", str(tmp_path / "no\x1b[2Jsuch"), "--models", "torchvision:resnet18", "--cache",
               str(tmp_path / "c")])
    err = capsys.readouterr().err
    assert rc == 2 and "\x1b" not in err and "no\\x1b[2Jsuch" in err and err.count("\n") == 1


def test_report_reads_sentence_then_figure_then_top_table(tmp_path):
    """report.html / report.md of a select run: the sentence first, then the one figure, then the top-10 table
    (rank, model, layer, score with interval, share won, the other scorers' ranks); the rest only in files."""
    from unittest import mock

    sel = _fake_selection(["m1", "m2", "m3", "m4"], ["a", "b", "c"])  # 12 candidates: the table keeps 10
    with mock.patch("depara.selection.report._figure", _blank_png):
        write_selection(sel, tmp_path)
    files = render_report(tmp_path)
    page = files.html.read_text(encoding="utf-8")
    sentence, figure, table = page.index("What to pick:"), page.index("<img"), page.index('data-file="top.csv"')
    assert sentence < figure < table and page.count("<img") == 1 and 'data-file="ranking.csv"' not in page
    md = files.markdown.read_text(encoding="utf-8")
    assert md.index("**What to pick:**") < md.index("](select.png)") < md.index("## top candidates")
    with open(tmp_path / "top.csv", newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 10 and list(rows[0]) == ["rank", "model", "layer", "depara_labels (95% interval)",
                                                 SHARE_COLUMN, "logme rank"]
    assert rows[0]["depara_labels (95% interval)"] == "0.50 [0.45, 0.55]" and rows[0]["logme rank"] == "12"
    with open(tmp_path / "ranking.csv", newline="", encoding="utf-8") as fh:
        assert len(list(csv.DictReader(fh))) == 12


def test_rank_average_intervals_stay_within_the_possible_ranks():
    """A rank average lies in [1, ranked candidates]: its interval is cut there (hand case: 3 candidates, spread
    half-samples that would reach past both ends), and still holds the point value."""
    from depara.selection.scorers import LABELS_DEFAULT
    from depara.selection.verdict import verdict

    rng = np.random.default_rng(0)
    point = np.array([1.0, 2.0, 3.0])
    halves = np.clip(point[:, None] + rng.normal(0, 3.0, size=(3, 50)), 1, 3)
    vals = np.concatenate([point[:, None], halves], axis=1)[None]
    said = verdict(vals, [LABELS_DEFAULT], LABELS_DEFAULT, n=40, m=20)
    iv = said.intervals[LABELS_DEFAULT]
    assert np.all(iv[:, 0] >= 1.0) and np.all(iv[:, 1] <= 3.0)
    assert np.all((iv[:, 0] <= point) & (point <= iv[:, 1]))


def test_the_pick_sentence_and_table_round_half_away_from_zero():
    """18.5 reads 19 (not Python's half-to-even 18), a share of 0.125 reads 13 % and 0.13."""
    s = "depara_labels"
    sel = Selection(candidates=[("a", "1"), ("b", "1")], scorers=[s], scorer=s,
                    values={s: np.array([18.5, 10.0])}, intervals={s: np.array([[17.0, 20.0], [9.0, 11.0]])},
                    order=[0, 1], p_best=0.125, too_close=[], case="labels",
                    settings={"n_boot": 10, "protocol": "finetune"}, shares=np.array([0.125, 0.875]), ranked=2)
    assert sel.summary.startswith("pick model 'a' at layer '1' (depara_labels = 19, 95% interval [17, 20]); "
                                  "first in 13% of probe half-samples")
    top = top_rows(sel)[0]
    assert top[SHARE_COLUMN] == "0.13" and top[f"{s} (95% interval)"] == "19 [17, 20]"


def test_undefined_reads_the_same_in_every_select_output(tmp_path):
    """One convention (docs/select.md, Output): an undefined number is ``nan`` in ranking.csv and reads
    "undefined" wherever a person reads it (top.csv, the terminal table, the report); a rank that does not exist
    is an empty cell in both CSVs."""
    from unittest import mock

    from _report_helpers import parse_page, table_for_file

    s, p = "depara_labels_ped", "logme"
    sel = Selection(candidates=[("a", "1"), ("a", "2"), ("b", "1")], scorers=[s, p], scorer=s,
                    values={s: np.array([0.6, 0.4, np.nan]), p: np.array([1.0, np.nan, 0.5])},
                    intervals={s: np.array([[0.5, 0.7], [0.3, 0.5], [np.nan, np.nan]]), p: np.full((3, 2), np.nan)},
                    order=[0, 1, 2], p_best=0.8, too_close=[], case="labels",
                    settings={"n_boot": 10, "protocol": "finetune", "half_sample_size": 5},
                    models={"a": {"layers": ["1", "2"]}, "b": {"layers": ["1"]}},
                    shares=np.array([0.8, 0.2, np.nan]), ranked=2)
    with mock.patch("depara.selection.report._figure", _blank_png):
        write_selection(sel, tmp_path)
    with open(tmp_path / "top.csv", newline="", encoding="utf-8") as fh:
        top = list(csv.DictReader(fh))
    with open(tmp_path / "ranking.csv", newline="", encoding="utf-8") as fh:
        ranking = list(csv.DictReader(fh))
    assert (top[2]["rank"], top[2][f"{s} (95% interval)"], top[2][SHARE_COLUMN]) == ("", "undefined", "undefined")
    assert top[1][f"{p} rank"] == "" and top[2][f"{p} rank"] == "2"
    assert (ranking[2]["rank"], ranking[2][s], ranking[2]["p_best"]) == ("", "nan", "nan")
    from depara.report.html import format_cell

    page = parse_page(render_report(tmp_path).html)  # the report shows top.csv, each number through format_cell
    shown = table_for_file(page, "top.csv")
    cell = dict(zip([c["text"] for c in shown[0]], shown[3]))
    assert cell[SHARE_COLUMN]["text"] == format_cell(ranking[2]["p_best"]) == "undefined"
    assert cell["rank"]["text"] == format_cell(ranking[2]["rank"]) == ""
