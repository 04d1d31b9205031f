"""BubbleView time limits (issue 22, item 7): a click past the trial's time limit is stored
flagged late, by its t_ms or by the server's clock; the page takes no click past the limit; the
practice image is never one of the participant's main trials."""
from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select

from studyweb.api import LATE_GRACE_MS, SERVER_CLOCK_GRACE_MS
from studyweb.assignment import assign
from studyweb.db.schema import Event, Participant, Stimulus, Trial, utcnow
from studyweb.experiments import create_experiment

H = "X-Participant-Token"
LIMIT_MS = 10_000  # the pilot's time_limit_s (the default, 10 s)


@pytest.fixture
def started(enrol):
    """(client, token, session JSON) of an enrolled participant of 'pilot'."""
    client, token = enrol(PROLIFIC_PID="timing")
    return client, token, client.get("/api/v1/session", headers={H: token}).get_json()


def _save(client, token, trial_id, key, clicks=(), done=False):
    body = {"idempotency_key": key, "clicks": [dict(zip(("x", "y", "t_ms"), c)) for c in clicks],
            "display_w": 320.0, "display_h": 240.0, "done": done}
    return client.post(f"/api/v1/trials/{trial_id}/save", headers={H: token}, json=body)


def _stored(dbs, trial_id) -> list[tuple[float, bool]]:
    dbs.expire_all()
    return [(c.t_ms, c.late) for c in dbs.get(Trial, trial_id).clicks]


def test_a_click_past_the_time_limit_is_stored_flagged_late(started, dbs):
    client, token, s = started
    trial = s["trials"][1]
    assert trial["time_limit_ms"] == LIMIT_MS
    r = _save(client, token, trial["id"], "k1", [(1, 1, 5000), (2, 2, LIMIT_MS + LATE_GRACE_MS), (3, 3, 12_700)],
              done=True)
    assert r.status_code == 200  # nothing refused, nothing lost
    assert r.get_json()["stored_clicks"] == 3 and r.get_json()["late_clicks"] == 1
    assert _stored(dbs, trial["id"]) == [(5000, False), (LIMIT_MS + LATE_GRACE_MS, False), (12_700, True)]


@pytest.mark.parametrize("since_start_ms, late", [(LIMIT_MS + SERVER_CLOCK_GRACE_MS + 1000, True),
                                                   (LIMIT_MS + SERVER_CLOCK_GRACE_MS - 1000, False)])
def test_a_save_arriving_past_the_limit_by_the_servers_clock_is_late_whatever_its_t_ms(started, dbs,
                                                                                      since_start_ms, late):
    client, token, s = started
    tid = s["trials"][1]["id"]
    assert _save(client, token, tid, "k1", [(1, 1, 1000)]).get_json()["late_clicks"] == 0  # sets started_at
    trial = dbs.get(Trial, tid)
    trial.started_at = utcnow() - dt.timedelta(milliseconds=since_start_ms)
    dbs.commit()
    r = _save(client, token, tid, "k2", [(2, 2, 2000)], done=True)  # a small t_ms, arriving late
    assert r.status_code == 200 and r.get_json()["late_clicks"] == int(late)
    assert _stored(dbs, tid) == [(1000, False), (2000, late)]
    marks = dbs.scalars(select(Event).where(Event.trial_id == tid, Event.kind == "late_by_server_clock")).all()
    assert len(marks) == int(late)
    if late:
        assert marks[0].payload["time_limit_ms"] == LIMIT_MS and marks[0].payload["server_elapsed_ms"] > since_start_ms


def _assign(session, experiment, seed=0):
    participant = Participant(experiment_id=experiment.id, status="trials")
    session.add(participant)
    session.flush()
    trials = assign(session, experiment, participant, rng_seed=seed)
    pairs = [session.get(Stimulus, t.stimulus_id).pair_id for t in trials[1:]]
    return trials[0], pairs


def test_the_practice_image_is_never_a_main_trial(session, dataset):
    """With a pair to spare, the practice shows it; where every pair is the participant's (K = the
    three pairs, or both sides of all), the page's own practice image, not a main one again."""
    spare = create_experiment(session, dataset.path, "spare", per_participant=2, observers=5)
    every_pair = create_experiment(session, dataset.path, "every-pair", per_participant=3, observers=5)
    both_sides = create_experiment(session, dataset.path, "both-sides", per_participant=6, observers=5,
                                   allow_both_sides=True)
    for seed in range(4):
        practice, pairs = _assign(session, spare, seed)
        assert practice.is_practice and session.get(Stimulus, practice.stimulus_id).pair_id not in pairs
        for experiment, n_main in ((every_pair, 3), (both_sides, 6)):
            practice, pairs = _assign(session, experiment, seed)
            assert practice.is_practice and practice.stimulus_id is None and len(pairs) == n_main


def test_a_practice_without_a_stimulus_runs_on_the_pages_own_image(app, dataset, enrol_in):
    db = app.extensions["studyweb.sessions"]()
    create_experiment(db, dataset.path, "all-pairs", per_participant=3, observers=5)
    db.commit()
    db.close()
    client, token = enrol_in("all-pairs")
    practice, *main = client.get("/api/v1/session", headers={H: token}).get_json()["trials"]
    assert practice["is_practice"] and practice["blurred_url"] is None and len(main) == 3
    assert (practice["natural_w"], practice["natural_h"]) == (480, 360)  # bubbleview.js practiceImages
    r = _save(client, token, practice["id"], "p1", [(400, 300, 900)], done=True)
    assert r.status_code == 200 and r.get_json()["status"] == "trials"


@pytest.mark.browser
def test_the_page_takes_no_click_past_the_limit_and_never_shows_0_s_while_it_takes_them(app, dataset, enrol_in):
    """Describe mode, a 1.5-s limit: a click before it is taken; at the limit the clicking ends
    (the timer never read "0 s" while clicks were taken), a click after it is not taken, and the
    description still ends the trial."""
    from support.browser import CHROMIUM, chromium_page
    from studyweb.serving import serve_in_background

    if CHROMIUM is None:
        pytest.skip("browser tests need Debian's chromium (`which chromium` found nothing)")
    pytest.importorskip("playwright.sync_api", reason="browser tests need the playwright package")
    db = app.extensions["studyweb.sessions"]()
    create_experiment(db, dataset.path, "quick", per_participant=1, observers=5, mode="describe", time_limit_s=1.5)
    db.commit()
    db.close()
    with serve_in_background(app) as url, chromium_page(640, 480) as page:
        page.goto(f"{url}/s/quick?PROLIFIC_PID=page1")
        page.locator("#consent-yes").click()
        page.locator("#instructions-ok").click()
        page.locator("button.start").click()  # the practice trial
        page.wait_for_function("document.querySelector('canvas.bv-canvas').dataset.state === 'running'")
        # Every timer text together with whether clicks were taken when it was shown.
        page.evaluate("""() => {
            const canvas = document.querySelector('canvas.bv-canvas');
            window.shown = [];
            new MutationObserver(() => window.shown.push([document.querySelector('.bv-timer').textContent,
                                                          canvas.dataset.state]))
              .observe(document.querySelector('.bv-timer'), {childList: true, characterData: true, subtree: true});
        }""")
        box = page.locator("canvas.bv-canvas").bounding_box()
        page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
        page.wait_for_function("document.querySelector('canvas.bv-canvas').dataset.state === 'describe'")
        page.mouse.click(box["x"] + box["width"] / 3, box["y"] + box["height"] / 3)
        assert page.locator("canvas.bv-canvas").get_attribute("data-clicks") == "1"
        shown = page.evaluate("window.shown")
        assert shown and not [text for text, state in shown if state == "running" and text.strip().startswith("0")]
        assert "Time is up" in page.locator(".bv-timer").inner_text()
        page.locator("textarea.bv-text").fill("shapes on grey")
        page.locator("button.bv-done").click()
        page.wait_for_function("document.querySelector('canvas.bv-canvas').dataset.state !== 'describe'")
        page.wait_for_function("window.gazelabSaver.pending === 0")
    db = app.extensions["studyweb.sessions"]()
    try:
        trial = db.scalars(select(Trial).join(Participant).where(Participant.recruit_id == "page1",
                                                                 Trial.is_practice.is_(True))).one()
        assert trial.status == "done" and trial.response_text == "shapes on grey"
        assert [(c.late, c.t_ms < 1500) for c in trial.clicks] == [(False, True)]
    finally:
        db.close()
