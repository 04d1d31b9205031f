"""The BubbleView screen at a small image size (issue 10), checked on screenshots in Chromium.

Stimuli are 160x120 px; the window is 1000x800 CSS px, so with the defaults
(display_width_px 1000, max_upscale 2) each image is shown 320x240 CSS px. Screenshots are
taken at CSS scale, one screenshot pixel per CSS pixel."""
from __future__ import annotations

import re

import numpy as np
import pytest

from support.browser import chromium_page, require_browser
from studyweb.serving import serve_in_background as served

pytestmark = pytest.mark.browser
require_browser()
SIZE = (160, 120)  # natural size, image px
MAX_UPSCALE = 2
BUBBLE_FRAC = 0.08  # of the shown width: 25.6 CSS px at 320, large enough to measure
TIME_LIMIT_S = 20
BACKGROUND = (128, 128, 128)
# (BGR colour, centre x, centre y) of 30x30 px squares on the grey background, image px.
OBJECTS = [((40, 40, 220), 35, 35), ((220, 60, 40), 120, 35), ((40, 200, 40), 35, 88), ((30, 220, 230), 120, 88)]


@pytest.fixture
def server(app, tmp_path, write_pair):
    """Base URL of the app served in a thread, with two experiments on 160x120 images:
    'objects' (coloured squares on grey; 20 s per image, one click ends a trial) and 'noise'
    (random pixels, so every pixel of a bubble differs from the blur; bubble radius 0.08 of the
    width, two clicks end a trial). Two images per participant, after the practice."""
    import cv2

    from datadir import Dataset
    from studyweb.experiments import create_experiment

    db = app.extensions["studyweb.sessions"]()
    for name, settings in [("objects", {"time_limit_s": TIME_LIMIT_S, "max_clicks": 1}),
                           ("noise", {"time_limit_s": 60, "max_clicks": 2, "bubble_radius_frac": BUBBLE_FRAC})]:
        ds = Dataset.create(tmp_path / name, name, seed=1)
        ds.add_pairs([write_pair(ds.path, f"{name}{i}", size=SIZE) for i in range(3)])
        if name == "objects":
            for i in range(3):
                cv2.imwrite(str(ds.path / "images" / f"{name}{i}_x.png"), _objects_image())
        create_experiment(db, ds.path, name, sides="x", per_participant=2, observers=5, **settings)
    db.commit()
    db.close()
    with served(app) as url:
        yield url


@pytest.fixture
def page():
    with chromium_page(1000, 800, device_scale_factor=2) as page:
        yield page


def test_small_image_is_shown_at_most_max_upscale_with_its_objects_visible(server, page):
    _enter(page, f"{server}/s/objects?PROLIFIC_PID=shown")
    _start(page)  # the practice
    _click_at(page, 0.5, 0.5)  # its one click ends it
    _start(page)
    status = page.locator(".status")
    assert status.is_visible() and status.inner_text().startswith("Image 1 of 2")
    box = page.locator("canvas.bv-canvas").bounding_box()
    assert box["width"] <= MAX_UPSCALE * SIZE[0] and box["height"] <= MAX_UPSCALE * SIZE[1]
    assert (box["width"], box["height"]) == (MAX_UPSCALE * SIZE[0], MAX_UPSCALE * SIZE[1])  # the window has room
    shot = _canvas_screenshot(page)
    scale = shot.shape[1] / SIZE[0]
    background = _mean_rgb(shot, 80 * scale, 62 * scale, 4 * scale)
    assert np.linalg.norm(background - BACKGROUND[::-1]) < 12
    # Each object's centre still stands out of the blur (σ 30 px left about 17 units here).
    for bgr, cx, cy in OBJECTS:
        centre = _mean_rgb(shot, cx * scale, cy * scale, 5 * scale)
        assert np.linalg.norm(centre - background) > 100, (bgr, centre, background)
        assert np.linalg.norm(centre - np.array(bgr[::-1])) < 40, (bgr, centre)
    assert status.inner_text().startswith("Image 1 of 2")  # still there while the trial runs


def test_bubble_radius_is_the_configured_fraction_of_the_shown_width(server, page):
    _enter(page, f"{server}/s/noise?PROLIFIC_PID=bubble")
    _start(page)
    assert page.locator(".status").inner_text().startswith("Practice trial")
    blurred = _canvas_screenshot(page)
    _click_at(page, 0.5, 0.5)
    page.wait_for_function("document.querySelector('canvas.bv-canvas').dataset.clicks === '1'")
    revealed = _canvas_screenshot(page)
    changed = np.abs(revealed.astype(int) - blurred.astype(int)).max(axis=2) > 40
    ys, xs = np.nonzero(changed)
    shown_w = page.locator("canvas.bv-canvas").bounding_box()["width"]
    expected = BUBBLE_FRAC * shown_w  # CSS px (the screenshot is at CSS scale)
    assert shown_w == MAX_UPSCALE * SIZE[0]
    for extent in (xs.max() - xs.min() + 1, ys.max() - ys.min() + 1):
        assert abs(extent / 2 - expected) <= 2.5, (extent, expected)
    assert abs((xs.mean() - shown_w / 2)) <= 2 and abs(ys.mean() - blurred.shape[0] / 2) <= 2


def test_reload_resumes_a_timed_trial_with_no_more_time_than_was_left(server, page):
    _enter(page, f"{server}/s/objects?PROLIFIC_PID=reload")
    _start(page)
    _click_at(page, 0.5, 0.5)  # ends the practice
    _start(page)
    # No click: before the fix only saves with clicks or events carried the elapsed time.
    page.wait_for_function(f"parseInt(document.querySelector('.bv-timer').textContent) <= {TIME_LIMIT_S - 2}",
                           timeout=15000)
    before = _seconds_left(page)
    page.reload()
    page.wait_for_function("document.querySelector('.status').textContent.startsWith('Image 1 of 2')")
    _start(page)
    after = _seconds_left(page)
    assert after <= before < TIME_LIMIT_S
    assert page.locator(".status").inner_text().startswith("Image 1 of 2")


def _objects_image():
    """The 160x120 grey image with the OBJECTS (BGR, uint8)."""
    image = np.full((SIZE[1], SIZE[0], 3), BACKGROUND, np.uint8)
    for colour, cx, cy in OBJECTS:
        image[cy - 15:cy + 15, cx - 15:cx + 15] = colour
    return image


def _enter(page, url):
    page.goto(url)
    page.locator("#consent-yes").click()
    page.locator("#instructions-ok").click()


def _start(page):
    """Press Start and wait until the trial runs (its images are drawn)."""
    page.locator("button.start").click()
    page.wait_for_function("document.querySelector('canvas.bv-canvas').dataset.state === 'running'")


def _click_at(page, fx, fy):
    box = page.locator("canvas.bv-canvas").bounding_box()
    page.mouse.click(box["x"] + fx * box["width"], box["y"] + fy * box["height"])


def _canvas_screenshot(page):
    """The canvas as shown, RGB uint8, one pixel per CSS pixel."""
    import cv2

    png = page.locator("canvas.bv-canvas").screenshot(scale="css", animations="disabled")
    return cv2.cvtColor(cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


def _mean_rgb(shot, cx, cy, half):
    """Mean RGB of the square of half-width `half` around (cx, cy), screenshot px."""
    x0, x1, y0, y1 = (int(round(v)) for v in (cx - half, cx + half, cy - half, cy + half))
    return shot[y0:y1, x0:x1].reshape(-1, 3).mean(axis=0)


def _seconds_left(page) -> int:
    text = page.locator(".bv-timer").inner_text()
    match = re.fullmatch(r"(\d+) s", text.strip())
    assert match, text
    return int(match.group(1))
