"""Browser tests: Playwright drives Debian's chromium through the real pages and JS.

The image (600x450 px) is larger than the viewport (480x400 CSS px, device_scale_factor 2), so
the canvas is scaled; clicks are made at display positions and must be stored at the matching
image pixel positions within 1 px."""
from __future__ import annotations

import pytest

from support.browser import chromium_page, require_browser
from studyweb.serving import serve_in_background as served

pytestmark = pytest.mark.browser
require_browser()
IMAGE_SIZE = (600, 450)  # natural size, image px
CLICKS = [(0.2, 0.3), (0.75, 0.5), (0.5, 0.9)]  # fractions of the displayed canvas


@pytest.fixture
def server(app, tmp_path, write_pair):
    """Base URL of the app served by werkzeug in a thread, with experiment 'browser' on a
    dataset of 600x450 images (2 trials of 3 clicks each, plus the practice)."""
    from datadir import Dataset
    from studyweb.experiments import create_experiment

    ds = Dataset.create(tmp_path / "big", "big", seed=1)
    ds.add_pairs([write_pair(ds.path, f"b{i}", size=IMAGE_SIZE) for i in range(3)])
    db = app.extensions["studyweb.sessions"]()
    create_experiment(db, ds.path, "browser", per_participant=2, observers=5, max_clicks=3, time_limit_s=60,
                      completion_code="BRWSR1")
    db.commit()
    db.close()
    with served(app) as url:
        yield url


@pytest.fixture
def page():
    with chromium_page(480, 400, device_scale_factor=2) as page:
        yield page


def _do_trial(page, n_clicks=3):
    """Start the next trial and click n_clicks of CLICKS; returns the expected image px."""
    page.locator("button.start").click()
    canvas = page.locator("canvas.bv-canvas")
    page.wait_for_function("document.querySelector('canvas.bv-canvas').dataset.state === 'running'")
    box = canvas.bounding_box()
    assert box["width"] < IMAGE_SIZE[0] and box["height"] < IMAGE_SIZE[1]  # displayed scaled down
    expected = []
    for fx, fy in CLICKS[:n_clicks]:
        x, y = box["x"] + fx * box["width"], box["y"] + fy * box["height"]
        page.mouse.click(x, y)
        expected.append(((x - box["x"]) * IMAGE_SIZE[0] / box["width"], (y - box["y"]) * IMAGE_SIZE[1] / box["height"]))
    return expected


def _stored(app, recruit_id):
    from studyweb.db.schema import Participant

    db = app.extensions["studyweb.sessions"]()
    try:
        p = db.query(Participant).filter_by(recruit_id=recruit_id).one()
        return p.status, [(t.status, [(c.x, c.y) for c in t.clicks]) for t in p.trials if not t.is_practice]
    finally:
        db.close()


def _assert_close(stored, expected):
    assert len(stored) == len(expected)
    for (sx, sy), (ex, ey) in zip(stored, expected):
        assert abs(sx - ex) <= 1 and abs(sy - ey) <= 1, (stored, expected)


def test_consent_to_completion_with_scaled_display(server, page, app):
    page.goto(f"{server}/s/browser?PROLIFIC_PID=web1&STUDY_ID=s&SESSION_ID=x")
    page.locator("#consent-yes").click()
    page.locator("#instructions-ok").click()
    _do_trial(page)  # practice
    first = _do_trial(page)
    second = _do_trial(page)
    page.wait_for_url("**/debrief*")
    page.locator("#debrief-ok").click()
    assert page.locator("#completion-code").inner_text() == "BRWSR1"
    status, trials = _stored(app, "web1")
    assert status == "complete" and [s for s, _ in trials] == ["done", "done"]
    _assert_close(trials[0][1], first)
    _assert_close(trials[1][1], second)


def test_reload_mid_study_resumes(server, page, app):
    page.goto(f"{server}/s/browser?PROLIFIC_PID=web2")
    page.locator("#consent-yes").click()
    page.locator("#instructions-ok").click()
    _do_trial(page)  # practice
    before = _do_trial(page, n_clicks=2)  # the first trial, unfinished
    page.reload()
    # The practice is not repeated; the unfinished trial comes back with its clicks.
    page.wait_for_function("document.querySelector('.status').textContent.startsWith('Image 1 of 2')")
    page.locator("button.start").click()
    page.wait_for_function("document.querySelector('canvas.bv-canvas').dataset.state === 'running'")
    box = page.locator("canvas.bv-canvas").bounding_box()
    fx, fy = CLICKS[2]
    page.mouse.click(box["x"] + fx * box["width"], box["y"] + fy * box["height"])  # the cap's third click
    after = [(fx * IMAGE_SIZE[0], fy * IMAGE_SIZE[1])]
    second = _do_trial(page)
    page.wait_for_url("**/debrief*")
    status, trials = _stored(app, "web2")
    assert status == "debrief"
    _assert_close(trials[0][1], before + after)
    _assert_close(trials[1][1], second)


def test_admin_login_build_maps_and_export(server, page, app):
    page.goto(f"{server}/admin/")
    page.locator("#username").fill("alice")
    page.locator("#password").fill("correct horse")
    page.locator("#login").click()
    page.get_by_role("link", name="browser").click()
    page.locator("#build-maps").click()
    assert "Maps:" in page.content()
    with page.expect_download() as download:
        page.locator("#export-csv").click()
    assert download.value.suggested_filename == "browser-csv.zip"
