"""What the browser tests share: Debian's chromium driven by Playwright and a page at a given
viewport (the app is served by `studyweb.serving.serve_in_background`, or the `serve_with` fixture).

A browser test module starts with `require_browser()` (module-level skip, with the
reason, when chromium or playwright is missing) and `pytestmark = pytest.mark.browser`."""
from __future__ import annotations

import shutil
from contextlib import contextmanager

import pytest

CHROMIUM = shutil.which("chromium")
# Headless Chromium as the machines here run it: no sandbox (root in CI), no GPU, nothing fetched.
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]


def require_browser():
    """playwright.sync_api, or skip the calling module when chromium or playwright is missing."""
    if CHROMIUM is None:
        pytest.skip("browser tests need Debian's chromium (`which chromium` found nothing)", allow_module_level=True)
    return pytest.importorskip("playwright.sync_api", reason="browser tests need the playwright package")


@contextmanager
def chromium_page(width: int, height: int, device_scale_factor: float = 1):
    """A fresh page in a new headless Chromium with a viewport of width x height CSS px."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        context = browser.new_context(viewport={"width": width, "height": height},
                                      device_scale_factor=device_scale_factor)
        try:
            yield context.new_page()
        finally:
            context.close()
            browser.close()
