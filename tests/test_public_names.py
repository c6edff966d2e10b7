"""Every name the README and the docs use is importable from the path they give, without a deprecation warning;
the module paths of release 0.1 still import (with a DeprecationWarning) and give the very same objects."""

from __future__ import annotations

import ast
import importlib
import re
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

import depara

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
DOTTED = re.compile(r"`(depara(?:\.[A-Za-z_]\w*)+)")


def _python_blocks(text: str) -> list[str]:
    """The fenced code blocks in Python (``python``, ``py``, ``pycon``) of a Markdown text."""
    blocks, current = [], None
    for line in text.splitlines():
        fence = line.strip().startswith("```")
        if fence and current is None:
            lang = line.strip()[3:].strip().lower()
            current = [] if lang in ("python", "py", "pycon") else False
        elif fence:
            if current:
                blocks.append("\n".join(current))
            current = None
        elif current is not None and current is not False:
            current.append(line)
    return blocks


def _import_statements(text: str) -> list[str]:
    """``import depara…`` / ``from depara… import …`` statements of the fenced code blocks (parentheses joined)."""
    out = []
    for block in _python_blocks(text):
        lines = block.splitlines()
        i = 0
        while i < len(lines):
            line = lines[i].lstrip(" >.")
            if re.match(r"(from depara[\w.]* import |import depara)", line):
                stmt = line.split("#")[0]
                while stmt.count("(") > stmt.count(")") and i + 1 < len(lines):
                    i += 1
                    stmt += " " + lines[i].split("#")[0].strip()
                out.append(stmt.strip().rstrip(";"))
            i += 1
    return out


def _resolve(dotted: str):
    """The object a dotted name ``depara.a.b.c`` names: the longest importable module, then attributes."""
    parts = dotted.split(".")
    for k in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:k]))
        except ModuleNotFoundError:
            continue
        for attr in parts[k:]:
            obj = getattr(obj, attr)
        return obj
    raise ImportError(dotted)


DOC_IMPORTS = sorted({s for p in DOCS for s in _import_statements(p.read_text())})
DOC_NAMES = sorted({m.group(1).rstrip(".") for p in DOCS for m in DOTTED.finditer(p.read_text())})


def test_the_docs_import_something():
    assert len(DOC_IMPORTS) > 20 and len(DOC_NAMES) > 50  # the extraction itself works


@pytest.mark.parametrize("statement", DOC_IMPORTS)
def test_doc_import_statements_run_without_deprecation(statement):
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        exec(compile(ast.parse(statement), "<docs>", "exec"), {})


@pytest.mark.parametrize("dotted", DOC_NAMES)
def test_doc_dotted_names_resolve_without_deprecation(dotted):
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        assert _resolve(dotted) is not None


def test_every_public_name_of_the_package_resolves():
    for name in depara.__all__:
        assert getattr(depara, name) is not None, name


def _new_path(old: str) -> str:
    """The new module of an old path, from the two published tables."""
    if old in depara.MOVED_MODULES:
        return "depara." + depara.MOVED_MODULES[old]
    head, _, rest = old.partition(".")
    return "depara." + depara.MOVED_PACKAGES[head] + (f".{rest}" if rest else "")


OLD_PATHS = sorted(depara.MOVED_MODULES) + sorted(depara.MOVED_PACKAGES) + ["train.engine", "taskbank.scenes",
                                                                              "plots.ranking", "realbank.truth"]


@pytest.mark.parametrize("old", OLD_PATHS)
def test_old_module_path_warns_and_is_the_new_module(old):
    new = _new_path(old)
    if "." in old:  # the old parent package first (it warns on its own)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            importlib.import_module(f"depara.{old.rpartition('.')[0]}")
    sys.modules.pop(f"depara.{old}", None)  # the alias only; the module itself stays imported under its new name
    with pytest.warns(DeprecationWarning, match=re.escape(f"depara.{old} moved to {new}")):
        module = importlib.import_module(f"depara.{old}")
    assert module is importlib.import_module(new)
    assert module.__name__ == new and module.__spec__.name == new  # the module keeps its own identity


def test_old_names_resolve_to_the_same_objects():
    for old in ("depara.baselines", "depara.graph", "depara.train"):
        sys.modules.pop(old, None)
    with pytest.warns(DeprecationWarning):
        from depara.baselines import logme as old_logme
        from depara.graph import Graph as OldGraph
        from depara.train import layers_select as old_layers_select
    from depara.benches.layers import layers_select
    from depara.core.graph import Graph
    from depara.estimators.baselines import logme

    assert old_logme is logme and OldGraph is Graph and old_layers_select is layers_select


def test_old_attribute_of_the_package_warns():
    sys.modules.pop("depara.evaluate", None)
    depara.__dict__.pop("evaluate", None)
    with pytest.warns(DeprecationWarning, match="depara.evaluate moved to depara.evaluation.rank_quality"):
        module = depara.evaluate
    assert module.rank_quality is depara.rank_quality


def test_an_unknown_name_is_still_an_attribute_error():
    with pytest.raises(AttributeError, match="no attribute 'nonexistent'"):
        depara.nonexistent  # noqa: B018
    with pytest.raises(ModuleNotFoundError):
        importlib.import_module("depara.nonexistent")


def test_draw_tree_at_its_old_place_warns_and_is_the_plot():
    from depara.core import tree
    from depara.report.plots.ranking import draw_tree

    with pytest.warns(DeprecationWarning, match="moved to depara.report.plots.ranking.draw_tree"):
        old = tree.draw_tree
    assert old is draw_tree
    with pytest.raises(AttributeError):
        tree.no_such_name  # noqa: B018


def test_label_graph_at_its_old_place_warns_and_builds_the_label_graph():
    from depara.core import labels
    from depara.core.graph import Graph

    with pytest.warns(DeprecationWarning, match="Graph.from_labels"):
        label_graph = labels.label_graph
    g = label_graph(np.array([0, 0, 1, 1]), None, {"name": "t"})
    assert g == Graph.from_labels(np.array([0, 0, 1, 1]), None, {"name": "t"})
    assert g.meta["kind"] == "labels" and g.meta["n_classes"] == 2 and g.nodes.shape == (4, 0)


def test_edge_scales_at_their_old_name_warn_and_are_the_same_tuple():
    # SCALES names run sizes in the benches; the edge scalings are EDGE_SCALES
    from depara.core import similarity_edges

    with pytest.warns(DeprecationWarning, match="SCALES is now EDGE_SCALES"):
        old = similarity_edges.SCALES
    assert old is similarity_edges.EDGE_SCALES == ("centred", "standardised")
    with pytest.raises(AttributeError):
        similarity_edges.no_such_name  # noqa: B018
