"""The `depara select` report page in a real headless browser (Playwright driving the system's Chromium).

It renders with no console errors and no failed requests, every figure decodes (naturalWidth > 0), and the
pick, its interval and P(best) are visible on the page. Skipped, with the reason, when Playwright or a Chromium
executable is not available.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install playwright)")


def _chromium() -> str | None:
    for candidate in (os.environ.get("DEPARA_CHROMIUM"), "/usr/bin/chromium", shutil.which("chromium"),
                      shutil.which("chromium-browser"), shutil.which("google-chrome")):
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return candidate
    return None


@pytest.fixture(scope="module")
def report_page(tmp_path_factory) -> tuple[Path, object]:
    from PIL import Image

    from depara.selection.job import select
    from depara.extraction.zoo import ModelEntry

    root = tmp_path_factory.mktemp("browser")
    rng = np.random.default_rng(0)
    for c in range(3):
        (root / "data" / f"c{c}").mkdir(parents=True)
        for i in range(5):
            Image.fromarray((rng.random((16, 16, 3)) * 80 + 60 * c).astype(np.uint8)).save(
                root / "data" / f"c{c}" / f"{i}.png")
    models = {}
    for k in range(2):
        torch.manual_seed(k)
        net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU(), torch.nn.Conv2d(4, 6, 3),
                                  torch.nn.ReLU(), torch.nn.Flatten(), torch.nn.Linear(6 * 12 * 12, 3))
        models[f"net{k}"] = ModelEntry(f"net{k}", "module", preprocessing="16x16", module=net)
    sel = select(root / "data", models, n_boot=20, cache_dir=root / "cache")
    files = sel.report(root / "out")
    return files.html, sel


def test_report_renders_in_headless_chromium(report_page):
    html, sel = report_page
    exe = _chromium()
    if exe is None:
        pytest.skip("no Chromium executable found (/usr/bin/chromium, chromium, google-chrome; or set DEPARA_CHROMIUM)")
    errors: list[str] = []
    failed: list[str] = []
    with sync_api.sync_playwright() as p:
        try:
            browser = p.chromium.launch(executable_path=exe, args=["--no-sandbox", "--disable-gpu"])
        except Exception as exc:  # noqa: BLE001 - a broken browser install is an environment problem
            pytest.skip(f"Chromium at {exe} does not start under Playwright ({type(exc).__name__})")
        try:
            page = browser.new_page()
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.on("requestfailed", lambda r: failed.append(r.url))
            page.goto(html.as_uri(), wait_until="load")
            images = page.eval_on_selector_all(
                "img", "els => els.map(e => ({ok: e.complete && e.naturalWidth > 0, w: e.naturalWidth}))")
            text = page.inner_text("body")
            pick_row_visible = page.is_visible("tr.pick")
        finally:
            browser.close()
    assert errors == [] and failed == []
    assert len(images) == 2 and all(im["ok"] for im in images), images  # ranking_intervals, layer_curves
    model, layer = sel.best
    assert f"{model}:{layer}" in text
    s = sel.scorer
    lo, hi = sel.intervals[s][sel.order[0]]
    assert f"[{lo:.4g}, {hi:.4g}]" in text  # the pick's interval, as written in ranking.csv
    assert re.search(r"P\(best\) = \d\.\d\d", text)
    assert pick_row_visible
