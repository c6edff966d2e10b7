"""Render any depara results folder into one self-contained HTML page and a Markdown summary.

A results folder is identified by its ``manifest.json`` (see :mod:`depara.report.manifest`). The page holds the title,
the one-line summary (what to pick), the chosen source/layer beside the ground truth where the manifest's
``extra`` names them, every table listed in the manifest (CSV or JSON) as an HTML table, every figure embedded as
a base64 data URI, the remaining ``extra`` values and the settings. Sub-folders with their own manifests (the
demo's ``taskbank/`` and ``layers/``) become sections of the same page.

The page needs nothing else: CSS is inline, there is no script, no external ``src``/``href``; only in-page
``#anchor`` links. The Markdown summary links the figure files by relative path instead of embedding them.

Conventions read from ``extra`` (all optional; owners of the pipelines write them):

- ``pick`` (or ``chosen``, ``chosen_source``, ``chosen_layer``): what depara picks;
- ``truth_best`` (or ``best``, ``best_source``, ``best_layer``, ``truth``): the best one by ground truth;
- numbers comparing the two (``regret``, ``relative_accuracy``, ``pick_accuracy``, ``best_accuracy``,
  ``pick_rank_in_truth``, ...): any key starting with ``pick_``/``truth_``/``chosen_`` or named in
  :data:`COMPARISON_KEYS` is shown in the same box;
- ``sections``: an ordered list of sub-folder names to render first (others follow, sorted by name).

Every file is read through one function, :func:`read_member`, which resolves links and confines the read to the
results folder: a table, figure or manifest that resolves outside it (a symlinked ``ranking.csv`` pointing at a
system file, an ``.svg`` pointing at a private file) or that is not a regular file (a FIFO) is **not read**; the
page and the summary carry a note saying so instead. Sub-folders are followed at most :data:`MAX_SECTION_LEVELS`
sections deep (deeper ones get a note), manifests and JSON tables go through the validated JSON reader
(:mod:`depara.io.readers`), and the Markdown summary escapes HTML in every text taken from the folder.

Rows of a table whose first cell equals the pick are highlighted; in a table whose name starts with ``ranking``
(best first), the first row is highlighted when there is no pick, and the score column gets a bar.
"""

from __future__ import annotations

import base64
import json
import math
import os
import stat
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

from ..io.files import check_out_tree, ensure_dir, write_text
from ..errors import DeparaError
from ..evaluation.uncertainty import UNDEFINED, format_number
from ..io.escape import html_text, markdown_text, visible
from ..io.readers import decode_text, exists as _exists, loads_json, parse_csv_rows, real_path as _real
from .manifest import MANIFEST, MAX_MANIFEST_BYTES, read_manifest_bytes

__all__ = ["ReportFiles", "Section", "Table", "load_results", "render_report", "render_html",
           "render_markdown", "format_cell", "pick_and_truth"]

#: The page shows at most this many rows of a table (the rest is in the CSV); the Markdown summary fewer.
MAX_HTML_ROWS = 200
MAX_MARKDOWN_ROWS = 30
#: Secondary tables (not rankings/summaries) longer than this are folded on the page.
FOLD_ROWS = 25
#: How deep below a results folder sub-folders are searched for manifests.
MAX_DEPTH = 3
#: How many levels of nested sections (results folders inside results folders) are rendered.
MAX_SECTION_LEVELS = 8
#: Largest table or figure file read (bytes).
MAX_MEMBER_BYTES = 64 * 2**20

IMAGE_TYPES = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".gif": "image/gif",
               ".svg": "image/svg+xml", ".webp": "image/webp"}
_MAGIC = {".png": (b"\x89PNG\r\n\x1a\n",), ".jpg": (b"\xff\xd8",), ".jpeg": (b"\xff\xd8",),
          ".gif": (b"GIF87a", b"GIF89a")}

PICK_KEYS = ("pick", "chosen", "chosen_source", "chosen_layer", "pick_source", "pick_layer")
TRUTH_KEYS = ("truth_best", "best", "best_source", "best_layer", "truth", "truth_source", "truth_layer")
#: ``extra`` keys naming the score column of the tables (it gets a bar in every table that has it).
SCORE_COLUMN_KEYS = ("score_column", "primary_score")
COMPARISON_KEYS = ("regret", "relative_accuracy", "top1_regret", "top1_relative_accuracy", "match",
                   "spearman", "kendall", "weighted_tau")
HEADLINE_TABLES = ("ranking", "summary", "layers", "scores")
#: Kinds whose figure comes before the tables (select: the sentence, one figure, then the top 10).
FIGURE_FIRST_KINDS = ("select",)
_SCORE_COLUMNS = ("s", "score", "depara", "s_v+λe", "v+λe")


# --------------------------------------------------------------------------------------------- loading


@dataclass(frozen=True)
class Table:
    """One table of a results folder: ``header`` (C names) and ``rows`` (R lists of C strings)."""

    name: str
    path: Path
    header: list[str]
    rows: list[list[str]]
    rel: str = ""  # path below the rendered root folder, e.g. "taskbank/ranking.csv"


@dataclass(frozen=True)
class Section:
    """One results folder (``rel`` = its path below the rendered root, "" for the root) and its sub-folders."""

    folder: Path
    rel: str
    manifest: dict[str, Any]
    tables: list[Table]
    figures: list[tuple[str, Path]]
    children: list["Section"] = field(default_factory=list)
    #: Files not rendered and why (outside the results folder, not a regular file, nesting too deep).
    notes: list[str] = field(default_factory=list)
    #: The resolved results folder every file of the report is confined to.
    root: Path | None = None

    @property
    def anchor(self) -> str:
        return "sec-" + ("".join(c if c.isalnum() else "-" for c in self.rel) or "root")

    @property
    def title(self) -> str:
        return str(self.manifest.get("title") or self.manifest.get("kind") or self.rel)


@dataclass(frozen=True)
class ReportFiles:
    """The files :func:`render_report` wrote."""

    html: Path
    markdown: Path
    summary: str


def load_results(results_dir: str | os.PathLike) -> Section:
    """Read a results folder, its tables and figure paths, and its sub-folders with manifests.

    Everything is checked here, before anything is written: a table or figure that the manifest lists but that
    is missing raises a one-line :class:`DeparaError` naming the file; one that resolves outside the folder (or
    is not a regular file) is left out with a note (:attr:`Section.notes`).
    """
    root = Path(results_dir)
    if not root.is_dir():
        raise DeparaError(f"results folder {root}: not found (expected a folder with a {MANIFEST})")
    return _load_section(root, root, _real(root), 1)


class _Refused(Exception):
    """A member file that exists but must not be read (outside the results folder, not a regular file)."""


def read_member(root_real: Path, path: Path, what: str, max_bytes: int = MAX_MEMBER_BYTES) -> bytes:
    """THE way the report reads a file: ``path`` after resolving links, only inside ``root_real``, only regular.

    Raises :class:`DeparaError` when the file is missing or too large, and ``_Refused`` (a note, not an error)
    when it resolves outside ``root_real`` or is a FIFO/device/socket — such files are never opened.
    """
    if not _exists(path):
        raise DeparaError(f"{what} file {path} is missing")
    real = _real(path)
    if not real.is_relative_to(root_real):
        raise _Refused(f"{what} file {path} links outside the results folder; not read")
    try:
        st = os.stat(real)
    except OSError as exc:
        raise DeparaError(f"{what} file {path}: cannot be read ({exc.strerror or exc})") from None
    if not stat.S_ISREG(st.st_mode):
        raise _Refused(f"{what} file {path} is not a regular file (a folder, FIFO, device or socket); not read")
    if st.st_size > max_bytes:
        raise DeparaError(f"{what} file {path}: {st.st_size} bytes, more than the limit of {max_bytes}")
    try:
        with open(real, "rb") as fh:
            return fh.read(max_bytes + 1)[:max_bytes]
    except OSError as exc:
        raise DeparaError(f"{what} file {path}: cannot be read ({exc.strerror or exc})") from None


def _load_section(folder: Path, root: Path, root_real: Path, level: int) -> Section:
    where = folder / MANIFEST
    if not _exists(where) and not where.is_symlink():
        raise DeparaError(f"{folder}: no {MANIFEST} (not a depara results folder)")
    try:
        manifest = read_manifest_bytes(read_member(root_real, where, "manifest", MAX_MANIFEST_BYTES), where)
    except _Refused as exc:
        raise DeparaError(f"{where}: the manifest links outside the results folder or is not a regular file; "
                          f"refusing to read it ({exc})") from None
    notes: list[str] = []
    tables = []
    for name, rel in _entries(manifest, "tables", where):
        path = _member(folder, rel, f"table {name!r}", where)
        try:
            tables.append(_read_table(name, path, root, root_real))
        except _Refused as exc:
            notes.append(f"table {name!r} not shown: {exc}")
    figures = []
    for name, rel in _entries(manifest, "figures", where):
        path = _member(folder, rel, f"figure {name!r}", where)
        if not _exists(path):
            raise DeparaError(f"{where}: figure {name!r} file {path} is missing")
        try:
            data = read_member(root_real, path, f"figure {name!r}")
        except _Refused as exc:
            notes.append(f"figure {name!r} not shown: {exc}")
            continue
        _check_magic(name, path, data)
        figures.append((name, path))
    rel = folder.relative_to(root).as_posix() if folder != root else ""
    subs = _child_folders(folder, manifest.get("extra", {}))
    if subs and level >= MAX_SECTION_LEVELS:
        notes.append(f"{len(subs)} sub-folder(s) with a manifest below {rel or '.'}/ not rendered: results nested "
                     f"more than {MAX_SECTION_LEVELS} levels deep")
        subs = []
    children = [_load_section(sub, root, root_real, level + 1) for sub in subs]
    return Section(folder, rel, manifest, tables, figures, children, notes, root_real)


def _entries(manifest: Mapping[str, Any], key: str, where: Path) -> list[tuple[str, str]]:
    value = manifest.get(key) or {}
    if not isinstance(value, Mapping):
        raise DeparaError(f"{where}: '{key}' must map names to file names, got {type(value).__name__}")
    return [(str(k), str(v)) for k, v in value.items()]


def _member(folder: Path, rel: str, what: str, where: Path) -> Path:
    """``folder/rel``, refusing absolute paths and paths that leave the results folder."""
    path = Path(rel)
    if path.is_absolute() or ".." in path.parts or "\0" in rel or not rel.strip():
        raise DeparaError(f"{where}: {what} path {rel!r} must be relative to the results folder")
    return folder / path


def _child_folders(folder: Path, extra: Any, depth: int = 1) -> list[Path]:
    """Sub-folders holding a manifest: those named in ``extra['sections']`` first, then the rest by name."""
    found: list[Path] = []
    if depth <= MAX_DEPTH:
        try:
            subs = sorted(p for p in folder.iterdir() if p.is_dir() and not p.is_symlink()
                          and not p.name.startswith((".", "_")))
        except OSError:
            subs = []
        for sub in subs:
            if (sub / MANIFEST).is_file() or (sub / MANIFEST).is_symlink():
                found.append(sub)
            else:
                found.extend(_child_folders(sub, {}, depth + 1))
    order = extra.get("sections") if isinstance(extra, Mapping) else None
    if isinstance(order, Sequence) and not isinstance(order, str):
        rank = {folder / str(name): i for i, name in enumerate(order)}
        found.sort(key=lambda p: rank.get(p, len(rank)))
    return found


def _read_table(name: str, path: Path, root: Path, root_real: Path) -> Table:
    data = read_member(root_real, path, f"table {name!r}")
    rel = path.relative_to(root).as_posix()
    if path.suffix.lower() == ".json":
        header, rows = _json_table(loads_json(data, str(path)))
        return Table(name, path, header, rows, rel)
    what = f"table {name!r} file {path}"
    records = parse_csv_rows(decode_text(data, what), what)  # the readers' decoding and parsing, as every CSV
    if not records:
        return Table(name, path, [], [], rel)
    header, rows = records[0], records[1:]
    width = max([len(header)] + [len(r) for r in rows])
    header = header + [""] * (width - len(header))
    rows = [r + [""] * (width - len(r)) for r in rows]
    return Table(name, path, header, rows, rel)


def _json_table(data: Any) -> tuple[list[str], list[list[str]]]:
    """A JSON table: a list of objects (one row each), an object of objects, or a flat object (key/value)."""
    if isinstance(data, list) and data and all(isinstance(r, Mapping) for r in data):
        header: list[str] = []
        for r in data:
            header.extend(k for k in r if k not in header)
        return header, [[_plain(r.get(k, "")) for k in header] for r in data]
    if isinstance(data, Mapping) and data and all(isinstance(v, Mapping) for v in data.values()):
        header = [""]
        for r in data.values():
            header.extend(k for k in r if k not in header)
        return header, [[str(key)] + [_plain(r.get(k, "")) for k in header[1:]] for key, r in data.items()]
    if isinstance(data, Mapping):
        return ["key", "value"], [[str(k), _plain(v)] for k, v in data.items()]
    if isinstance(data, list):
        return ["value"], [[_plain(v)] for v in data]
    return ["value"], [[_plain(data)]]


def _plain(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, float):
        return repr(value)
    return json.dumps(value) if isinstance(value, (list, dict)) else str(value)


# --------------------------------------------------------------------------------------------- formatting


def format_cell(value: Any) -> str:
    """A table cell as people read it: numbers to 4 significant digits, NaN as :data:`UNDEFINED` (the word
    select's report uses), everything else as text."""
    if isinstance(value, bool) or value is None:
        return "" if value is None else str(value)
    text = value if isinstance(value, str) else _plain(value)
    number = _as_number(text)
    if number is None:
        return text
    if isinstance(number, int):
        return str(number)
    if math.isnan(number):
        return UNDEFINED
    if math.isinf(number):
        return "inf" if number > 0 else "-inf"
    if number != 0 and (abs(number) >= 1e5 or abs(number) < 1e-3):
        return format_number(number, ".3e")
    return format_number(number, ".4g")


def _as_number(text: str) -> int | float | None:
    stripped = text.strip()
    if not stripped:
        return None
    try:
        return int(stripped)
    except ValueError:
        pass
    try:
        return float(stripped)
    except ValueError:
        return None


def pick_and_truth(extra: Mapping[str, Any]) -> tuple[Any, Any]:
    """What a manifest's ``extra`` says depara picks and what is best by ground truth (None when absent)."""
    pick, truth, _ = _pick_and_truth(extra)
    return pick, truth


def _pick_and_truth(extra: Mapping[str, Any]) -> tuple[Any, Any, list[tuple[str, Any]]]:
    pick = next((extra[k] for k in PICK_KEYS if k in extra), None)
    truth = next((extra[k] for k in TRUTH_KEYS if k in extra), None)
    used = set(PICK_KEYS) | set(TRUTH_KEYS)
    comparison = [(k, v) for k, v in extra.items() if k not in used and _is_comparison(k) and _is_scalar(v)]
    return pick, truth, comparison


def _is_comparison(key: str) -> bool:
    return key in COMPARISON_KEYS or key.startswith(("pick_", "truth_", "chosen_"))


def _is_scalar(value: Any) -> bool:
    return value is None or isinstance(value, (str, int, float, bool))


def _remaining_extra(extra: Mapping[str, Any]) -> list[tuple[str, Any]]:
    pick, truth, comparison = _pick_and_truth(extra)
    shown = set(PICK_KEYS) | set(TRUTH_KEYS) | {k for k, _ in comparison} | {"sections"} | set(SCORE_COLUMN_KEYS)
    return [(k, v) for k, v in extra.items() if k not in shown]


def _split_tables(tables: Sequence[Table]) -> tuple[list[Table], list[Table]]:
    """Headline tables (rankings, summaries; else the first) go above the figures, the others below them."""
    headline = [t for t in tables if t.name.lower().startswith(HEADLINE_TABLES)] or list(tables[:1])
    return headline, [t for t in tables if t not in headline]


def _score_column(header: Sequence[str]) -> int | None:
    lowered = [h.strip().lower() for h in header]
    for name in _SCORE_COLUMNS:
        if name in lowered:
            return lowered.index(name)
    return None


def _highlighted_rows(table: Table, pick: Any) -> set[int]:
    if pick is not None and _is_scalar(pick):
        hits = {i for i, r in enumerate(table.rows) if r and r[0] == str(pick)}
        if hits:
            return hits
    if table.name.lower().startswith("ranking") and table.rows and pick is None:
        return {0}
    if table.name.lower().startswith("top") and table.rows:  # select's "top candidates": the pick comes first
        return {0}
    return set()


# --------------------------------------------------------------------------------------------- HTML

_CSS = """
:root { --ink:#1f2933; --muted:#616e7c; --line:#d9e2ec; --accent:#2f6fde; --pick:#e3f8e9; --pickline:#2f9e5b; }
* { box-sizing: border-box; }
body { font: 15px/1.5 -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; color: var(--ink);
       margin: 0; background: #f5f7fa; }
main { max-width: 1120px; margin: 0 auto; padding: 24px 28px 48px; background: #fff; min-height: 100vh; }
h1 { font-size: 26px; margin: 8px 0 4px; }
h2 { font-size: 21px; margin: 36px 0 8px; padding-top: 8px; border-top: 2px solid var(--line); }
h3 { font-size: 17px; margin: 24px 0 6px; }
h4 { font-size: 15px; margin: 18px 0 6px; color: var(--muted); }
.kind { display: inline-block; font-size: 12px; text-transform: uppercase; letter-spacing: .06em;
        color: #fff; background: var(--accent); border-radius: 4px; padding: 1px 8px; vertical-align: middle; }
.summary { font-size: 17px; background: var(--pick); border-left: 5px solid var(--pickline); padding: 10px 14px;
           margin: 10px 0 14px; border-radius: 4px; }
.summary b { color: #1b5e3a; }
.summary ul { margin: 4px 0 0; padding-left: 20px; font-size: 15.5px; }
.summary li { margin: 3px 0; }
a { color: var(--accent); }
.cards { display: flex; flex-wrap: wrap; gap: 12px; margin: 8px 0 12px; }
.card { border: 1px solid var(--line); border-radius: 6px; padding: 8px 14px; min-width: 180px; background: #fbfcfd; }
.card .label { font-size: 12px; color: var(--muted); text-transform: uppercase; letter-spacing: .04em; }
.card .value { font-size: 18px; font-weight: 600; word-break: break-word; }
.card.ok { border-color: var(--pickline); background: var(--pick); }
.card.miss { border-color: #d9822b; background: #fff4e6; }
.tablewrap { overflow-x: auto; margin: 6px 0 4px; }
table { border-collapse: collapse; font-size: 13.5px; }
th, td { border: 1px solid var(--line); padding: 4px 9px; text-align: left; vertical-align: top; }
th { background: #eef2f7; font-weight: 600; white-space: nowrap; }
td.short { white-space: nowrap; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
tbody tr:nth-child(even) td { background: #fafbfc; }
tbody tr.pick td { background: var(--pick); font-weight: 600; }
.note { color: var(--muted); font-size: 13px; margin: 2px 0 10px; }
code { font-family: SFMono-Regular, Menlo, Consolas, monospace; font-size: 12.5px; background: #f0f3f7;
       padding: 0 4px; border-radius: 3px; }
pre { background: #f0f3f7; padding: 8px; border-radius: 4px; overflow-x: auto; font-size: 12.5px; margin: 0; }
figure { margin: 12px 0 18px; border: 1px solid var(--line); border-radius: 6px; padding: 10px; background: #fff; }
figure img { max-width: 100%; height: auto; display: block; margin: 0 auto; }
figcaption { color: var(--muted); font-size: 13px; margin-top: 6px; text-align: center; }
details { margin: 8px 0; }
summary { cursor: pointer; color: var(--muted); }
footer { margin-top: 36px; color: var(--muted); font-size: 12px; border-top: 1px solid var(--line); padding-top: 8px; }
"""


def _e(value: Any) -> str:
    return html_text(value)


def render_html(section: Section) -> str:
    """The whole page for ``section`` (and its sub-sections) as one self-contained HTML string."""
    parts = ["<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
             '<meta name="viewport" content="width=device-width, initial-scale=1">',
             f"<title>{_e(section.title)} — depara report</title>", f"<style>{_CSS}</style>", "</head>",
             "<body>", "<main>"]
    parts.extend(_section_html(section, level=1))
    parts.append("<footer>Rendered by <code>depara report</code> from "
                 f"<code>{_e(section.folder.name or section.folder)}</code>. "
                 "Self-contained: figures are embedded, nothing is loaded from the network.</footer>")
    parts.extend(["</main>", "</body>", "</html>", ""])
    return "\n".join(parts)


def _section_html(section: Section, level: int) -> list[str]:
    m = section.manifest
    h = min(level, 4)
    out = [f'<section id="{section.anchor}">',
           f'<h{h}>{_e(section.title)} <span class="kind">{_e(m.get("kind", ""))}</span></h{h}>']
    if section.rel:
        out.append(f'<p class="note">folder <code>{_e(section.rel)}/</code></p>')
    if section.children:
        # one line per sub-section, each with its own pick, reads better than their summaries joined
        out.append('<nav class="summary"><b>What to pick</b><ul>')
        out.extend(f'<li><a href="#{c.anchor}">{_e(c.title)}</a>: {_e(c.manifest.get("summary", ""))}</li>'
                   for c in section.children)
        out.append("</ul></nav>")
    elif m.get("summary"):
        out.append(f'<p class="summary"><b>What to pick:</b> {_e(m["summary"])}</p>')
    extra = m.get("extra") or {}
    extra = extra if isinstance(extra, Mapping) else {"extra": extra}
    score_name = next((str(extra[k]) for k in SCORE_COLUMN_KEYS if isinstance(extra.get(k), str)), None)
    pick, truth, comparison = _pick_and_truth(extra)
    if pick is not None or truth is not None or comparison:
        out.append(_pick_cards_html(pick, truth, comparison))
    sub = min(h + 1, 4)
    headline, others = _split_tables(section.tables)
    figures = [_figure_html(name, path, section.root) for name, path in section.figures]
    if m.get("kind") in FIGURE_FIRST_KINDS:
        out.extend(figures)
        figures = []
    for table in headline:
        out.extend(_table_html(table, pick, sub, score_name))
    out.extend(figures)
    for note in section.notes:
        out.append(f'<p class="note refused">{_e(note)}</p>')
    for table in others:
        lines = _table_html(table, pick, sub, score_name)
        if len(table.rows) > FOLD_ROWS:  # long secondary tables (logs, per-K curves): one click away
            lines = [f"<details><summary>{_e(table.name.replace('_', ' '))}: {len(table.rows)} rows "
                     f"(<code>{_e(table.path.name)}</code>)</summary>"] + lines + ["</details>"]
        out.extend(lines)
    remaining = _remaining_extra(extra)
    settings = m.get("settings") or {}
    # above sub-sections, run details would push the answers off the first screen: fold them
    fold = bool(section.children) and bool(remaining or settings)
    if fold:
        out.append("<details><summary>run details and settings</summary>")
    if remaining:
        out.append(f"<h{sub}>Details</h{sub}>")
        out.append(_kv_html(remaining))
    if settings:
        out.append(f"<h{sub}>Settings</h{sub}>")
        items = settings.items() if isinstance(settings, Mapping) else [("settings", settings)]
        out.append(_kv_html(list(items)))
    if fold:
        out.append("</details>")
    for child in section.children:
        out.extend(_section_html(child, level + 1))
    out.append("</section>")
    return out


def _pick_cards_html(pick: Any, truth: Any, comparison: list[tuple[str, Any]]) -> str:
    cards = []
    match = None if pick is None or truth is None else _same(pick, truth)
    state = "" if match is None else (" ok" if match else " miss")
    if pick is not None:
        cards.append(_card("depara picks", pick, state))
    if truth is not None:
        cards.append(_card("best by ground truth", truth, ""))
    if match is not None:
        cards.append(_card("agreement", "same choice" if match else "different choice", state))
    cards.extend(_card(k.replace("_", " "), format_cell(v), "") for k, v in comparison)
    return '<div class="cards">' + "".join(cards) + "</div>"


def _same(a: Any, b: Any) -> bool:
    if isinstance(b, (list, tuple)):  # truth may be a set of equally good answers
        return any(_same(a, x) for x in b)
    return str(a) == str(b)


def _card(label: str, value: Any, state: str) -> str:
    shown = ", ".join(map(str, value)) if isinstance(value, (list, tuple)) else value
    return (f'<div class="card{state}"><div class="label">{_e(label)}</div>'
            f'<div class="value">{_e(shown)}</div></div>')


def _table_html(table: Table, pick: Any, level: int, score_name: str | None = None) -> list[str]:
    out = [f'<h{level}>{_e(table.name.replace("_", " "))}</h{level}>',
           f'<p class="note">from <code>{_e(table.path.name)}</code>, {len(table.rows)} rows</p>']
    if not table.header:
        out.append('<p class="note">(empty table)</p>')
        return out
    highlight = _highlighted_rows(table, pick)
    if score_name is not None and score_name in table.header:
        score_col: int | None = table.header.index(score_name)
    else:
        score_col = _score_column(table.header) if table.name.lower().startswith("ranking") else None
    lo, hi = _column_range(table, score_col)
    out.append(f'<div class="tablewrap"><table data-file="{_e(table.rel)}">')
    out.append("<thead><tr>" + "".join(f"<th>{_e(c)}</th>" for c in table.header) + "</tr></thead><tbody>")
    for i, row in enumerate(table.rows[:MAX_HTML_ROWS]):
        cls = ' class="pick"' if i in highlight else ""
        cells = []
        for j, raw in enumerate(row):
            shown = format_cell(raw)
            attrs = ' class="num"' if _as_number(raw) is not None else (' class="short"' if len(raw) <= 40 else "")
            if shown != raw:
                attrs += f' title="{_e(raw)}"'
            if j == score_col and lo is not None:
                attrs += _bar_style(raw, lo, hi)
            cells.append(f"<td{attrs}>{_e(shown)}</td>")
        out.append(f"<tr{cls}>" + "".join(cells) + "</tr>")
    out.append("</tbody></table></div>")
    if len(table.rows) > MAX_HTML_ROWS:
        out.append(f'<p class="note">showing the first {MAX_HTML_ROWS} of {len(table.rows)} rows; '
                   f"the full table is <code>{_e(table.path.name)}</code></p>")
    return out


def _column_range(table: Table, col: int | None) -> tuple[float | None, float | None]:
    if col is None:
        return None, None
    values = [float(v) for v in (_as_number(r[col]) for r in table.rows) if v is not None and math.isfinite(v)]
    return (min(values), max(values)) if values else (None, None)


def _bar_style(raw: str, lo: float, hi: float) -> str:
    value = _as_number(raw)
    if value is None or not math.isfinite(value):
        return ""
    frac = 1.0 if hi == lo else (value - lo) / (hi - lo)
    pct = round(8 + 92 * frac)  # the worst keeps a sliver, so every bar is visible
    return (f' style="background: linear-gradient(90deg, #c9dcfb {pct}%, transparent {pct}%)"')


def _check_magic(name: str, path: Path, data: bytes) -> None:
    magic = _MAGIC.get(path.suffix.lower())
    if magic and not data.startswith(magic):
        raise DeparaError(f"figure {name!r} file {path}: not a {path.suffix.lstrip('.').upper()} image")


def _figure_html(name: str, path: Path, root_real: Path | None = None) -> str:
    caption = f'{_e(name.replace("_", " "))} <code>{_e(path.name)}</code>'
    mime = IMAGE_TYPES.get(path.suffix.lower())
    if mime is None:
        return f'<p class="note">figure {caption}: not an embeddable image type, see the file.</p>'
    try:
        root = root_real if root_real is not None else _real(path.parent)
        data = read_member(root, path, f"figure {name!r}")
    except _Refused as exc:
        return f'<p class="note">figure {caption}: not shown ({_e(exc)}).</p>'
    _check_magic(name, path, data)
    uri = f"data:{mime};base64," + base64.b64encode(data).decode("ascii")
    return f'<figure><img alt="{_e(name)}" src="{uri}"><figcaption>{caption}</figcaption></figure>'


def _kv_html(items: list[tuple[str, Any]]) -> str:
    rows = []
    for key, value in items:
        if isinstance(value, Mapping) and value and all(_is_scalar(v) for v in value.values()):
            shown = _kv_html(list(value.items()))
        elif isinstance(value, (list, tuple)) and all(_is_scalar(v) for v in value) and len(value) <= 30:
            shown = _e(", ".join(format_cell(v) for v in value))
        elif _is_scalar(value):
            shown = _e(format_cell(value) if not isinstance(value, str) else value)
        else:
            text = json.dumps(value, default=str)
            shown = (f"<pre>{_e(text)}</pre>" if len(text) <= 200 else
                     f"<details><summary>{len(value)} entries</summary><pre>{_e(text)}</pre></details>")
        rows.append(f"<tr><th>{_e(key)}</th><td>{shown}</td></tr>")
    return '<div class="tablewrap"><table><tbody>' + "".join(rows) + "</tbody></table></div>"


# --------------------------------------------------------------------------------------------- Markdown


def render_markdown(section: Section, out_dir: str | os.PathLike) -> str:
    """A Markdown summary of ``section``; figures are linked relative to ``out_dir`` (where it is written)."""
    lines = _section_md(section, 1, Path(out_dir))
    return "\n".join(lines).rstrip() + "\n"


def _section_md(section: Section, level: int, out_dir: Path) -> list[str]:
    m = section.manifest
    hashes = "#" * min(level, 6)
    lines = [f"{hashes} {_md_text(section.title)}", ""]
    meta = f"kind {_md_code(m.get('kind', ''))}" + (f", folder {_md_code(section.rel + '/')}" if section.rel else "")
    lines += [meta, ""]
    if section.children:
        lines += ["**What to pick:**", ""]
        lines += [f"- **{_md_text(c.title)}**: {_md_text(c.manifest.get('summary', ''))}"
                  for c in section.children] + [""]
    elif m.get("summary"):
        lines += [f"**What to pick:** {_md_text(m['summary'])}", ""]
    extra = m.get("extra") or {}
    extra = extra if isinstance(extra, Mapping) else {"extra": extra}
    pick, truth, comparison = _pick_and_truth(extra)
    rows = []
    if pick is not None:
        rows.append(("depara picks", pick))
    if truth is not None:
        rows.append(("best by ground truth", truth))
        if pick is not None:
            rows.append(("agreement", "same choice" if _same(pick, truth) else "different choice"))
    rows += [(k.replace("_", " "), format_cell(v)) for k, v in comparison]
    if rows:
        lines += _md_table(["", "value"], [[k, _md_value(v)] for k, v in rows]) + [""]
    sub = "#" * min(level + 1, 6)
    headline, others = _split_tables(section.tables)
    figures = [f"{sub} Figures", ""] if section.figures else []
    for name, path in section.figures:
        figures += [f"![{_md_text(name)}]({_md_link(_rel_link(path, out_dir))})", ""]
    if m.get("kind") in FIGURE_FIRST_KINDS:
        lines += figures
        figures = []
    for table in headline:
        lines += _table_md(table, sub, out_dir)
    lines += figures
    for note in section.notes:
        lines += [f"> {_md_text(note)}", ""]
    for table in others:
        lines += _table_md(table, sub, out_dir)
    remaining = _remaining_extra(extra)
    if remaining:
        lines += [f"{sub} Details", ""] + _md_table(["key", "value"], [[k, _md_value(v)] for k, v in remaining]) + [""]
    settings = m.get("settings") or {}
    if settings:
        items = settings.items() if isinstance(settings, Mapping) else [("settings", settings)]
        lines += [f"{sub} Settings", ""] + _md_table(["option", "value"], [[k, _md_value(v)] for k, v in items])
        lines.append("")
    for child in section.children:
        lines += _section_md(child, level + 1, out_dir)
    return lines


def _table_md(table: Table, hashes: str, out_dir: Path) -> list[str]:
    lines = [f"{hashes} {_md_text(table.name.replace('_', ' '))}", "",
             f"From {_md_code(_rel_link(table.path, out_dir))} ({len(table.rows)} rows).", ""]
    if table.header:
        shown = [[format_cell(c) for c in r] for r in table.rows[:MAX_MARKDOWN_ROWS]]
        lines += _md_table(table.header, shown)
        if len(table.rows) > MAX_MARKDOWN_ROWS:
            lines += ["", f"(first {MAX_MARKDOWN_ROWS} of {len(table.rows)} rows)"]
        lines.append("")
    return lines


def _md_value(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, (list, tuple)) and all(_is_scalar(v) for v in value):
        return ", ".join(format_cell(v) for v in value)
    if _is_scalar(value):
        return format_cell(value)
    return json.dumps(value, default=str)


def _md_text(text: Any) -> str:
    """Text from a results folder made inert in Markdown (:func:`depara.escape.markdown_text`)."""
    return markdown_text(text)


def _md_code(text: Any) -> str:
    """A code span (its content is literal in Markdown: no HTML); backticks in the text are replaced."""
    return "`" + " ".join(visible(text, newlines=True).split()).replace("`", "'") + "`"


def _md_link(target: str) -> str:
    """A relative link target, percent-encoded so no character of a file name can end the link or add HTML."""
    return urllib.parse.quote(target, safe="/._-~")


def _md_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(_md_text(h) for h in header) + " |", "|" + "---|" * len(header)]  # "|" escaped
    lines += ["| " + " | ".join(_md_text(c) for c in r) + " |" for r in rows]
    return lines


def _rel_link(path: Path, out_dir: Path) -> str:
    return Path(os.path.relpath(_real(path), _real(out_dir))).as_posix()


# --------------------------------------------------------------------------------------------- entry point


def render_report(results_dir: str | os.PathLike, out_dir: str | os.PathLike | None = None, *,
                  name: str = "report") -> ReportFiles:
    """Render ``results_dir`` into ``out_dir/report.html`` (self-contained) and ``out_dir/report.md``.

    ``out_dir`` defaults to ``results_dir``. Everything is read and checked before anything is written, and each
    file is written atomically, so a bad folder leaves no half-written report.
    """
    target = check_out_tree(out_dir if out_dir is not None else results_dir, "out_dir")
    section = load_results(results_dir)
    out = ensure_dir(target, "out_dir")
    page = render_html(section)
    summary = render_markdown(section, out)
    html_path = write_text(out / f"{name}.html", page)
    md_path = write_text(out / f"{name}.md", summary)
    return ReportFiles(html=html_path, markdown=md_path, summary=str(section.manifest.get("summary", "")))
