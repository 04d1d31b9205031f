"""Browser tests of the save queue (static/saver.js) against the real server: text the database
cannot store is kept (with U+FFFD in place of the bad character), and a save the server refuses
for its content never blocks the participant's later saves or the completion."""
from __future__ import annotations

import json
import pytest

from support.browser import chromium_page, require_browser

pytestmark = pytest.mark.browser
require_browser()


@pytest.fixture
def serve(serve_with, tmp_path, write_pair):
    """serve(name, **settings) -> base URL of the app (werkzeug, in a thread) with experiment
    `name` on a 3-pair dataset of 64x48 images, 2 trials per participant plus the practice."""
    from datadir import Dataset
    from studyweb.experiments import create_experiment

    def start(name: str, **settings) -> str:
        ds = Dataset.create(tmp_path / name, name, seed=1)
        ds.add_pairs([write_pair(ds.path, f"{name}{i}", size=(64, 48)) for i in range(3)])
        return serve_with(lambda db: create_experiment(db, ds.path, name, per_participant=2, observers=5,
                                                       completion_code="SAVES1", **settings))

    return start


@pytest.fixture
def page():
    with chromium_page(640, 520) as page:
        yield page


def _enter(page, base, name, recruit_id):
    page.goto(f"{base}/s/{name}?PROLIFIC_PID={recruit_id}")
    page.locator("#consent-yes").click()
    page.locator("#instructions-ok").click()


def _start_and_click(page, n_clicks):
    page.locator("button.start").click()
    page.wait_for_function("document.querySelector('canvas.bv-canvas').dataset.state === 'running'")
    box = page.locator("canvas.bv-canvas").bounding_box()
    for k in range(n_clicks):
        page.mouse.click(box["x"] + (0.2 + 0.25 * k) * box["width"], box["y"] + 0.5 * box["height"])


def _participant(app, recruit_id):
    from studyweb.db.schema import Participant

    db = app.extensions["studyweb.sessions"]()
    try:
        p = db.query(Participant).filter_by(recruit_id=recruit_id).one()
        return p.status, [(t.status, len(t.clicks), t.response_text) for t in p.trials if not t.is_practice], \
            [t.id for t in p.trials]
    finally:
        db.close()


def test_a_lone_surrogate_in_a_description_is_stored_replaced(serve, page, app):
    base = serve("describe", mode="describe", time_limit_s=60)
    _enter(page, base, "describe", "text1")
    for text in ("practice", "a\ud800b", "ok \U0001F600"):  # the first real trial carries the bad text
        _start_and_click(page, 1)
        page.evaluate("t => { document.querySelector('.bv-text').value = t; }", text)
        page.locator("button.bv-done").click()
    page.wait_for_url("**/debrief*")
    status, trials, _ = _participant(app, "text1")
    assert status == "debrief"
    assert trials == [("done", 1, "a\ufffdb"), ("done", 1, "ok \U0001F600")]
    assert page.evaluate("window.gazelabSaver ? window.gazelabSaver.rejected.length : 0") == 0


def test_a_refused_save_never_blocks_later_saves_or_the_completion(serve, page, app):
    base = serve("refuse", max_clicks=3, time_limit_s=60)
    refused = {"trial": None, "count": 0}

    def refuse_first_trial_clicks(route, request):
        body = json.loads(request.post_data or "{}")
        if request.url.endswith(f"/trials/{refused['trial']}/save") and body.get("clicks"):
            refused["count"] += 1
            route.fulfill(status=422, content_type="application/json",
                          body=json.dumps({"error": "unprocessable_entity", "message": "refused by the test"}))
        else:
            route.continue_()

    page.route("**/api/v1/trials/*/save", refuse_first_trial_clicks)
    _enter(page, base, "refuse", "refuse1")
    refused["trial"] = _participant(app, "refuse1")[2][1]  # the first real trial (after the practice)
    for _ in range(3):  # practice, the refused trial, the next one
        _start_and_click(page, 3)
    page.wait_for_url("**/debrief*")
    page.locator("#debrief-ok").click()
    assert page.locator("#completion-code").inner_text() == "SAVES1"
    status, trials, _ = _participant(app, "refuse1")
    # The refused trial still ended (its end was sent again without the refused clicks), and the
    # next trial's clicks were all stored.
    assert status == "complete" and trials == [("done", 0, None), ("done", 3, None)]
    assert refused["count"] >= 1
