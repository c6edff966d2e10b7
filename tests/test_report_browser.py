"""The `depara select` report page in a real headless browser (Playwright driving the system's Chromium).

It renders with no console errors and no failed requests, every figure decodes (naturalWidth > 0) and is laid
out on the page, and the pick's row (its model and layer) is visible. Skipped, with the reason, when Playwright or
a Chromium executable is not available — except where ``DEPARA_REQUIRE_BROWSER=1`` (CI's ``.ci/run``, which
installs Debian's Chromium): there a missing browser fails the test.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
if os.environ.get("DEPARA_REQUIRE_BROWSER") == "1":  # CI: a missing Playwright is an error there, not a skip
    from playwright import sync_api
else:
    sync_api = pytest.importorskip("playwright.sync_api",
                                   reason="playwright is not installed (pip install playwright)")


def _skip_or_fail(reason: str) -> None:
    if os.environ.get("DEPARA_REQUIRE_BROWSER") == "1":
        pytest.fail(f"{reason}; DEPARA_REQUIRE_BROWSER=1 asks for the browser test to run")
    pytest.skip(reason)


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
        _skip_or_fail("no Chromium executable found (/usr/bin/chromium, chromium, google-chrome; or set "
                      "DEPARA_CHROMIUM)")
    errors: list[str] = []
    failed: list[str] = []
    with sync_api.sync_playwright() as p:
        try:
            browser = p.chromium.launch(executable_path=exe, args=["--no-sandbox", "--disable-gpu"])
        except Exception as exc:  # noqa: BLE001 - a broken browser install is an environment problem
            _skip_or_fail(f"Chromium at {exe} does not start under Playwright ({type(exc).__name__}: {exc})")
        try:
            page = browser.new_page()
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.on("requestfailed", lambda r: failed.append(r.url))
            page.goto(html.as_uri(), wait_until="load")
            images = page.eval_on_selector_all(
                "img", "els => els.map(e => ({ok: e.complete && e.naturalWidth > 0, w: e.naturalWidth, "
                       "shown: e.getBoundingClientRect().width > 0}))")
            text = page.inner_text("body")
            model, layer = sel.best
            # the pick's row: the first table row with a cell "model:layer", or cells "model" and "layer"
            row = page.evaluate(_FIND_ROW, [model, layer])
            assert row >= 0, "no table row names the pick"
            pick_row = page.locator("tr").nth(row)
            pick_row_visible = pick_row.is_visible()
            pick_row_text = pick_row.inner_text()
        finally:
            browser.close()
    assert errors == [] and failed == []
    assert images and all(im["ok"] and im["shown"] for im in images), images
    assert f"{model}:{layer}" in text or (model in text and layer in text)
    assert pick_row_visible, pick_row_text


_FIND_ROW = """([model, layer]) => [...document.querySelectorAll('tr')].findIndex(tr => {
    const cells = [...tr.querySelectorAll('td, th')].map(c => c.textContent.trim());
    return cells.includes(model + ':' + layer) || (cells.includes(model) && cells.includes(layer));
})"""
