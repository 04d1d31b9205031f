"""Browser tests of the CodeCharts task page (static/codecharts.js, static/codecharts_flow.js)
against the real server: the timed screens come in order, a typed code is stored at its
chart position in image pixels, a typo is caught in the page, the tutorial gate screens a
participant out, a small window is asked to grow, and the chart screen shows its codes.

Images are 480x360 px, shown at 960x720 CSS px (display_width_px 1000, max_upscale 2). No test
asserts on durations: a loaded machine shows screens late, never in another order."""
from __future__ import annotations

import io
import math

import pytest

from support.browser import chromium_page, require_browser

pytestmark = pytest.mark.browser
require_browser()
IMAGE_SIZE = (480, 360)  # natural size, image px
TIMED = ("fixation", "image", "sentinel", "chart", "answer")
# Records every value the stage's data-screen takes. A record's oldValue is the value before it
# changed, so the value after record i is the oldValue of record i+1 (or the current one).
RECORD_SCREENS = """
window.__screens = [];
new MutationObserver((records) => {
  records.forEach((r, i) => window.__screens.push(
    i + 1 < records.length ? records[i + 1].oldValue : r.target.getAttribute("data-screen")));
}).observe(document, { subtree: true, attributes: true, attributeOldValue: true, attributeFilter: ["data-screen"] });
"""


@pytest.fixture
def serve(serve_with, tmp_path, write_pair):
    """serve(name, **codecharts) -> base URL of the app (werkzeug, in a thread) with CodeCharts
    experiment `name` on 3 pairs of 480x360 images: 2 images per participant after the tutorial
    (3 images, 3 sentinels); fixation 300 ms, image 600 ms, chart 400 ms unless overridden."""
    from datadir import Dataset
    from studyweb.experiments import create_experiment

    def start(name: str, **codecharts) -> str:
        ds = Dataset.create(tmp_path / name, name, seed=1)
        ds.add_pairs([write_pair(ds.path, f"{name}{i}", size=IMAGE_SIZE) for i in range(3)])
        timing = {"fixation_ms": 300, "image_ms": [600], "chart_ms": 400, **codecharts}
        return serve_with(lambda db: create_experiment(db, ds.path, name, task="codecharts", per_participant=2,
                                                       observers=5, completion_code="CC1", codecharts=timing))

    return start


@pytest.fixture
def page():
    with chromium_page(1100, 900) as page:
        page.add_init_script(RECORD_SCREENS)
        yield page


def _enter(page, base, name, recruit_id):
    page.goto(f"{base}/s/{name}?PROLIFIC_PID={recruit_id}")
    page.locator("#consent-yes").click()
    page.locator("#instructions-ok").click()
    page.wait_for_url("**/task*")


def _to_answer(page):
    """Start the next trial and wait for its answer box; returns (trial, chart) as the page has them."""
    page.locator("button.start").click()
    page.wait_for_function("document.querySelector('.cc-stage').dataset.screen === 'answer'")
    return page.evaluate("[window.gazelabLastTrial, window.gazelabLastChart]")


def _type(page, code):
    page.locator("#cc-code").fill(code)
    page.keyboard.press("Enter")


def _nearest(chart, point):
    return min(chart["codes"], key=lambda c: math.hypot(c["x"] - point["x"], c["y"] - point["y"]))


def _good_code(trial, chart, k):
    """A code on the chart: the one nearest a sentinel's target (found by looking at its screen,
    as a participant does), else the k-th code (mod n)."""
    if trial["kind"] == "sentinel":
        from studyweb.codecharts import locate_sentinel_target

        x, y = locate_sentinel_target(chart["sentinel_png"], chart["width"])
        return _nearest(chart, {"x": x, "y": y})
    return chart["codes"][k % len(chart["codes"])]


def _assert_screens_in_order(screens, kinds):
    """The timed screens, trial by trial: fixation, image or sentinel, chart, answer."""
    timed = [s for s in screens if s in TIMED]
    assert timed == [s for kind in kinds for s in ("fixation", kind, "chart", "answer")], screens


def _db(app):
    return app.extensions["studyweb.sessions"]()


def _participant(db, recruit_id):
    from studyweb.db.schema import Participant

    return db.query(Participant).filter_by(recruit_id=recruit_id).one()


def test_a_full_run_shows_the_screens_in_order_and_stores_each_code_at_its_position(serve, page, app):
    from studyweb.db.schema import Click, Response

    base = serve("ccrun")
    _enter(page, base, "ccrun", "run1")
    db = _db(app)
    try:
        n_trials = len(_participant(db, "run1").trials)
    finally:
        db.close()
    assert n_trials == 8  # 3 tutorial images + 3 sentinels, then 2 images
    typed, kinds, screens, labels = [], [], [], []
    for k in range(n_trials):
        trial, chart = _to_answer(page)
        labels.append(page.locator(".status").inner_text())
        assert (chart["width"], chart["height"]) == (trial["display_w"], trial["display_h"])
        code = _good_code(trial, chart, 7 * k + 3)
        kinds.append(trial["kind"])
        typed.append((trial, chart, code))
        screens = page.evaluate("window.__screens")  # read before the last answer leaves the page
        _type(page, code["code"].lower())
    page.wait_for_url("**/debrief*")
    _assert_screens_in_order(screens, kinds)
    assert kinds.count("sentinel") == 3
    assert labels == [f"Tutorial {i} of 6" for i in range(1, 7)] + ["Image 1 of 2", "Image 2 of 2"]

    db = _db(app)
    try:
        participant = _participant(db, "run1")
        assert participant.status == "debrief"
        for trial, chart, code in typed:
            response = db.query(Response).filter_by(trial_id=trial["id"]).one()
            assert response.valid and response.choice == code["code"]
            if trial["kind"] == "sentinel":
                assert response.correct is True
                continue
            # Display px of the code's centre scaled to image px of the natural size.
            x = code["x"] * IMAGE_SIZE[0] / chart["width"]
            y = code["y"] * IMAGE_SIZE[1] / chart["height"]
            assert response.x == pytest.approx(x, abs=0.01) and response.y == pytest.approx(y, abs=0.01)
            click = db.query(Click).filter_by(trial_id=trial["id"]).one()
            assert click.x == pytest.approx(x, abs=0.01) and click.y == pytest.approx(y, abs=0.01)
        assert sum(not t["is_practice"] for t, _, _ in typed) == 2
    finally:
        db.close()


def test_a_code_of_the_wrong_shape_is_refused_in_the_page_and_a_retry_is_sent(serve, page, app):
    from studyweb.db.schema import Response

    base = serve("cctypo")
    answers = []
    page.on("request", lambda r: answers.append(r.post_data_json) if r.method == "POST" and "/answer" in r.url
            else None)
    _enter(page, base, "cctypo", "typo1")
    trial, chart = _to_answer(page)
    for typo in ("hello", "B4", "47B"):
        _type(page, typo)
        assert "a letter and two digits" in page.locator(".cc-hint").inner_text()
        assert page.evaluate("document.querySelector('.cc-stage').dataset.screen") == "answer"
    code = _good_code(trial, chart, 5)["code"]
    _type(page, f" {code[0].lower()} {code[1:]} ")  # case and spaces do not matter
    page.wait_for_function("window.gazelabSaver.pending === 0")
    # Saves go out in order: the one request is the retry, so none of the typos was sent.
    assert [a["code"].replace(" ", "").upper() for a in answers] == [code]
    assert answers[0]["rt_ms"] >= 0
    assert page.evaluate("window.gazelabSaver.rejected.length") == 0
    db = _db(app)
    try:
        response = db.query(Response).filter_by(trial_id=trial["id"]).one()
        assert response.choice == code and response.valid
    finally:
        db.close()


def test_invalid_codes_in_the_tutorial_end_at_the_screened_out_page_with_no_main_trials_left(serve, page, app):
    base = serve("ccgate")
    _enter(page, base, "ccgate", "gate1")
    kinds = []
    for _ in range(6):
        trial, _chart = _to_answer(page)
        assert trial["is_practice"]
        kinds.append(trial["kind"])
        screens = page.evaluate("window.__screens")
        _type(page, "A11")  # a code's two digits differ: never on a chart
    page.wait_for_function("document.querySelector('.status').textContent.includes('Thank you')")
    page.wait_for_url("**/screened-out*")
    _assert_screens_in_order(screens, kinds)
    db = _db(app)
    try:
        participant = _participant(db, "gate1")
        assert participant.status == "screened_out"
        assert [t.status for t in participant.trials if not t.is_practice] == []
        assert all(t.status == "done" for t in participant.trials)
    finally:
        db.close()


def test_a_small_window_is_asked_to_grow_and_the_trial_starts_once_it_has(serve, app):
    base = serve("ccsmall")
    with chromium_page(700, 500) as page:
        page.add_init_script(RECORD_SCREENS)
        _enter(page, base, "ccsmall", "small1")
        prompt = page.locator(".cc-toosmall")
        prompt.wait_for(state="visible")
        assert "make your window larger" in prompt.inner_text()
        assert page.locator(".cc-fullscreen").is_visible()
        assert not page.locator("button.start").is_visible()
        assert [s for s in page.evaluate("window.__screens") if s in TIMED] == []
        page.set_viewport_size({"width": 1100, "height": 900})
        trial, _chart = _to_answer(page)
        assert not prompt.is_visible()
        box = page.locator(".cc-stage").bounding_box()
        assert (box["width"], box["height"]) == pytest.approx((trial["display_w"], trial["display_h"]), abs=0.5)
        assert [s for s in page.evaluate("window.__screens") if s in TIMED] == \
            ["fixation", trial["kind"], "chart", "answer"]


def test_the_chart_screen_shows_dark_codes_spread_over_the_image_area(serve, page, app):
    import numpy as np
    from PIL import Image

    base = serve("ccshot", chart_ms=8000)  # long enough to take a screenshot of it
    _enter(page, base, "ccshot", "shot1")
    page.locator("button.start").click()
    page.wait_for_function("document.querySelector('.cc-stage').dataset.screen === 'chart'")
    box = page.locator(".cc-stage").bounding_box()
    shot = page.screenshot(clip=box)
    assert page.evaluate("window.__screens.at(-1)") == "chart"  # still the chart after the shot
    gray = np.asarray(Image.open(io.BytesIO(shot)).convert("L"), dtype=float)
    dark = gray < 100
    # Text is a small share of the area (the noise image would be ~40% dark) ...
    assert 0.002 < dark.mean() < 0.15, dark.mean()
    # ... and lies all over it: every cell of a 4x4 grid holds some of it.
    h, w = dark.shape
    cells = [dark[i * h // 4:(i + 1) * h // 4, j * w // 4:(j + 1) * w // 4].mean() for i in range(4) for j in range(4)]
    assert min(cells) > 0.001, cells

