"""The README and the documentation pages: a short README, no dead relative link, no `depara` command that
`depara --help` does not list.

The site itself is built by `mkdocs build --strict` in `.ci/run`; these checks need no mkdocs and take a few
seconds (mostly importing the CLI).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from depara.cli.main import main

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = ROOT / "docs"
README_MAX_LINES = 260

FENCE = re.compile(r"^```.*?^```", re.S | re.M)
INLINE_CODE = re.compile(r"`[^`\n]+`")
LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
# `depara <command> [<subcommand>]` in code: a word after `depara ` (not `depara.x`, not `import depara`)
COMMAND = re.compile(r"(?<![\w./-])depara ([a-z][a-z0-9-]*)(?: ([a-z][a-z0-9-]*)\b(?![:./]))?")
# a command name in `--help` output: rich's box ("│ name  …") or click's plain list ("  name  …")
HELP_NAME = re.compile(r"^(?:│ | {2})([a-z][a-z0-9-]*)(?:\s|$)")


def doc_pages() -> list[Path]:
    """README.md and the site's Markdown pages (docs/*.md, docs/reference/*.md; not the linked results folders)."""
    return [README, *sorted(DOCS.glob("*.md")), *sorted((DOCS / "reference").glob("*.md"))]


def relative_links(text: str) -> list[str]:
    """Link and image targets outside code, without external URLs and pure in-page anchors."""
    text = INLINE_CODE.sub("", FENCE.sub("", text))
    out = []
    for target in LINK.findall(text):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target) or target.startswith("#"):  # http:, mailto:, ...
            continue
        out.append(target.split("#", 1)[0])
    return out


def commands_named(text: str) -> set[tuple[str, str | None]]:
    """(command, following word) for every `depara …` in inline code and fenced code blocks."""
    code = "\n".join(FENCE.findall(text) + INLINE_CODE.findall(text))
    return {(m.group(1), m.group(2)) for m in COMMAND.finditer(code)}


def help_commands(capsys, *args: str) -> set[str] | None:
    """Names in the Commands section of `depara [ARGS] --help`; None when there is no such section (a leaf)."""
    assert main([*args, "--help"]) == 0
    out = capsys.readouterr().out
    if "Commands" not in out:
        return None
    section = out[out.index("Commands"):]
    return {m.group(1) for line in section.splitlines() if (m := HELP_NAME.match(line))}


def test_readme_is_short():
    n = len(README.read_text(encoding="utf-8").splitlines())
    assert n <= README_MAX_LINES, f"README.md has {n} lines; move the detail into a docs/ page"


def test_parsers_on_a_hand_made_page():
    text = ("See [a](a.md#x), ![f](img/f.png), [web](https://x.org), [here](#top) and `[no](code.md)`.\n"
            "```bash\ndepara bench taskbank --scale tiny\n[no](fence.md)\n```\n"
            "Run `depara demo layers`, `depara report DIR`, `depara extract torchvision:resnet18`; depara answers.\n"
            "```python\nimport depara\ndepara.build_graph(m)\n```\n")
    assert relative_links(text) == ["a.md", "img/f.png"]
    assert commands_named(text) == {("bench", "taskbank"), ("demo", "layers"), ("report", None), ("extract", None)}


@pytest.mark.parametrize("page", doc_pages(), ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_resolve(page):
    missing = [t for t in relative_links(page.read_text(encoding="utf-8")) if not (page.parent / t).is_file()]
    assert not missing, f"{page.relative_to(ROOT)}: links to missing files {missing}"


def test_mkdocs_nav_entries_exist():
    nav = [m.group(1) for line in (ROOT / "mkdocs.yml").read_text(encoding="utf-8").splitlines()
           if not line.lstrip().startswith("#") and (m := re.search(r"(?:^|\s|:\s)([\w./-]+\.md)\s*$", line))]
    assert "index.md" in nav and "reference/index.md" in nav
    assert [p for p in nav if not (DOCS / p).is_file()] == []


# words after "depara " in code that are not commands: `from depara import x`, error messages quoted in the docs
# ("not a readable depara graph file", "not a depara results folder")
NOT_COMMANDS = {"import", "graph", "results"}


@pytest.mark.parametrize("page", doc_pages(), ids=lambda p: str(p.relative_to(ROOT)))
def test_commands_exist(page, capsys):
    top = help_commands(capsys)
    assert top is not None and {"demo", "rank", "extract", "report"} <= top  # the parser reads the real help
    named = {(c, s) for c, s in commands_named(page.read_text(encoding="utf-8")) if c not in NOT_COMMANDS}
    if page == README:
        assert ("demo", None) in named
    unknown = sorted({cmd for cmd, _ in named} - top)
    assert not unknown, f"{page.name} names commands that `depara --help` does not list: {unknown}"
    for cmd in sorted({cmd for cmd, sub in named if sub}):
        subs = help_commands(capsys, cmd)
        if subs is None:  # a leaf command: the next word is its argument
            continue
        wrong = sorted({sub for c, sub in named if c == cmd and sub and sub not in subs})
        assert not wrong, f"{page.name} names `depara {cmd} {wrong}`, but `depara {cmd} --help` lists {sorted(subs)}"
