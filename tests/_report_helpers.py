"""Helpers for the report tests: hand-made results folders and an HTML checker built on html.parser."""

from __future__ import annotations

import base64
import csv
import struct
import zlib
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

from depara.evaluation.uncertainty import UNDEFINED
from depara.report.manifest import MANIFEST, read_manifest, write_manifest


def tiny_png(width: int = 3, height: int = 2, shade: int = 0) -> bytes:
    """A valid RGB PNG built by hand (no imaging library), different bytes for each ``shade``."""
    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    raw = b"".join(b"\x00" + bytes(v for x in range(width) for v in ((shade + 40 * y + x) % 256, 90, 200))
                   for y in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


RANKING = [
    ["source", "S", "V", "E", "truth_rank"],
    ["normals", repr(0.8123456789012345), repr(0.0312), repr(0.7811456789012345), "1"],
    ["depth", repr(0.7), repr(-0.00012345), repr(0.70012345), "3"],
    ["edges2d", repr(0.41), repr(0.0), repr(0.41), "2"],
    ["autoencoder", "nan", repr(1234567.5), repr(-0.25), "4"],
]


def write_csv_rows(path: Path, rows: list[list[str]]) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as fh:
        csv.writer(fh).writerows(rows)
    return path


def make_rank_folder(folder: Path, *, kind: str = "rank", pick: str = "normals", truth: str = "normals",
                     shade: int = 0, extra_tables: dict[str, str] | None = None) -> Path:
    """A results folder like `depara rank` writes: ranking CSV, a matrix CSV, two figures, pick vs truth."""
    folder.mkdir(parents=True, exist_ok=True)
    write_csv_rows(folder / "ranking.csv", RANKING)
    write_csv_rows(folder / "matrix.csv", [["", "a", "b"], ["a", "1.0", "0.25"], ["b", "0.25", "1.0"]])
    (folder / "ranking_bar.png").write_bytes(tiny_png(shade=shade))
    (folder / "figs").mkdir(exist_ok=True)
    (folder / "figs" / "pr_curve.png").write_bytes(tiny_png(shade=shade + 7))
    write_manifest(
        folder, kind, title=f"Sources for target 'depth' ({kind})", summary=f"pick source {pick} (S = 0.812)",
        settings={"lam": 1.0, "seed": 0, "probes": "probes/", "node": {"scalar": "sum", "reduction": "mean"}},
        tables={"ranking": "ranking.csv", "similarity_matrix": "matrix.csv", **(extra_tables or {})},
        figures={"ranking_bar": "ranking_bar.png", "pr_curve": "figs/pr_curve.png"},
        extra={"pick": pick, "truth_best": truth, "regret": 0.0123456, "n_probes": 200,
               "per_target": {"depth": [1, 2, 3], "edges": {"a": [1]}}},
    )
    return folder


def make_demo_folder(folder: Path) -> Path:
    """A demo-like folder: a top manifest plus two sub-folders with their own manifests (one nested deeper)."""
    make_rank_folder(folder / "taskbank", kind="taskbank", shade=20)
    make_rank_folder(folder / "layers", kind="layers-select", pick="conv3", truth="conv4", shade=40)
    make_rank_folder(folder / "more" / "deeper", kind="score", shade=60)
    (folder / "overview.png").write_bytes(tiny_png(shade=80))
    write_manifest(folder, "demo", title="depara demo", summary="source: pick normals | layer: pick conv3",
                   settings={"scale": "tiny", "seed": 0}, figures={"overview": "overview.png"},
                   extra={"sections": ["taskbank", "layers"]})
    return folder


class PageParser(HTMLParser):
    """Collects what the checks need: every tag, img sources, links, and every table as rows of cells."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[str] = []
        self.attrs: list[tuple[str, dict[str, str]]] = []
        self.tables: list[list[list[dict[str, Any]]]] = []
        self.table_files: list[str | None] = []
        self.row_classes: list[list[str]] = []
        self.headings: list[str] = []
        self._cell: dict[str, Any] | None = None
        self._heading: list[str] | None = None
        self._depth = 0
        self.stack: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: (v or "") for k, v in attrs}
        self.tags.append(tag)
        self.attrs.append((tag, a))
        if tag not in ("meta", "img", "br", "hr", "link", "input"):
            self.stack.append(tag)
        if tag == "table":
            self.tables.append([])
            self.table_files.append(a.get("data-file"))
            self.row_classes.append([])
        elif tag == "tr" and self.tables:
            self.tables[-1].append([])
            self.row_classes[-1].append(a.get("class", ""))
        elif tag in ("td", "th") and self.tables:
            self._cell = {"tag": tag, "text": "", "title": a.get("title")}
        elif tag in ("h1", "h2", "h3", "h4"):
            self._heading = []

    def handle_endtag(self, tag: str) -> None:
        assert self.stack and self.stack[-1] == tag, f"mismatched </{tag}>, open: {self.stack[-3:]}"
        self.stack.pop()
        if tag in ("td", "th") and self._cell is not None:
            self.tables[-1][-1].append(self._cell)
            self._cell = None
        elif tag in ("h1", "h2", "h3", "h4") and self._heading is not None:
            self.headings.append("".join(self._heading).strip())
            self._heading = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell["text"] += data
        if self._heading is not None:
            self._heading.append(data)


def parse_page(path: Path) -> PageParser:
    parser = PageParser()
    parser.feed(path.read_text(encoding="utf-8"))
    parser.close()
    assert not parser.stack, f"unclosed tags: {parser.stack}"
    return parser


def all_manifest_folders(root: Path) -> list[Path]:
    return sorted(p.parent for p in root.rglob(MANIFEST))


def assert_self_contained(page: PageParser) -> None:
    """No script, no stylesheet link, no src or href that would leave the page."""
    assert "script" not in page.tags and "link" not in page.tags and "iframe" not in page.tags
    for tag, attrs in page.attrs:
        if "src" in attrs:
            assert attrs["src"].startswith("data:"), f"<{tag}> loads {attrs['src'][:60]}"
        if "href" in attrs:
            assert attrs["href"].startswith("#"), f"<{tag}> links to {attrs['href']}"
        assert not any(k.startswith("on") for k in attrs), f"<{tag}> has an event handler"


def embedded_images(page: PageParser) -> list[bytes]:
    out = []
    for tag, attrs in page.attrs:
        if tag == "img":
            header, _, data = attrs["src"].partition(",")
            assert header.endswith(";base64"), header
            out.append(base64.b64decode(data, validate=True))
    return out


def assert_every_figure_embedded(page: PageParser, results_root: Path) -> int:
    """Each figure of each manifest below ``results_root`` is in the page, byte for byte; returns how many."""
    images = embedded_images(page)
    count = 0
    for folder in all_manifest_folders(results_root):
        for name, rel in read_manifest(folder)["figures"].items():
            data = (folder / rel).read_bytes()
            assert data in images, f"figure {name} of {folder} is not embedded"
            count += 1
    assert len(images) == count, f"{len(images)} images on the page, {count} figures in the manifests"
    return count


def find_table(page: PageParser, header: list[str]) -> tuple[list[list[dict[str, Any]]], list[str]]:
    """The page's table whose header row equals ``header`` (the first such) and its row classes."""
    for table, classes in zip(page.tables, page.row_classes):
        if table and [c["text"] for c in table[0]] == header:
            return table[1:], classes[1:]
    raise AssertionError(f"no table with header {header}")


def table_for_file(page: PageParser, rel: str) -> list[list[dict[str, Any]]]:
    """The page's table rendered from ``rel`` (path below the rendered folder), header row included."""
    hits = [t for t, f in zip(page.tables, page.table_files) if f == rel]
    assert len(hits) == 1, f"{len(hits)} tables from {rel} on the page"
    return hits[0]


def assert_table_matches_csv(page: PageParser, csv_path: Path, root: Path, max_rows: int = 200) -> None:
    """The HTML table from ``csv_path`` equals the CSV cell by cell (the first ``max_rows`` rows are shown): the
    full value is the cell's text or its title, and the text shown is that value rounded (checked against float()
    of the CSV cell, not against the report's formatter)."""
    with open(csv_path, newline="", encoding="utf-8") as fh:
        records = list(csv.reader(fh))
    table = table_for_file(page, csv_path.relative_to(root).as_posix())
    assert [c["text"] for c in table[0]] == records[0]
    body = table[1:]
    assert len(body) == min(len(records) - 1, max_rows)
    for html_row, csv_row in zip(body, records[1:]):
        assert len(html_row) == len(csv_row)
        for cell, raw in zip(html_row, csv_row):
            full = cell["title"] if cell["title"] is not None else cell["text"]
            assert full == raw
            try:
                expected = float(raw)
            except ValueError:
                assert cell["text"] == raw
                continue
            if expected != expected:  # NaN: shown in words, as every table shows it
                assert cell["text"] == UNDEFINED
            else:
                shown = float(cell["text"])
                assert abs(shown - expected) <= 1e-3 * abs(expected), (cell["text"], raw)
