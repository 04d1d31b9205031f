"""Who can take a study and the way out for those who cannot (`studyweb.screening`): the phone
rule, the device check before consent, the comprehension check, the screened-out page with its
own code or URL, the status in the database and the export, the slot freed, and the CodeCharts
tutorial's feedback; in Chromium, a failed tutorial reaching the screen-out URL and the device
check's refusal with "Check again" and its way out."""
from __future__ import annotations

import csv

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from studyweb.db.schema import Event, Participant
from studyweb.screening import device_problems, is_phone

H = "X-Participant-Token"
IPHONE = ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko)"
          " Version/17.0 Mobile/15E148 Safari/604.1")
IPAD_DESKTOP = ("Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko)"
                " Version/17.0 Safari/605.1.15")
WINDOWS = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36"
QUIZ = {"questions": [{"text": "What do you type?", "choices": ["the code I saw last", "any code"],
                       "answer": "the code I saw last"}], "max_attempts": 2}


@pytest.mark.parametrize("agent, touch, fine, screen, phone", [
    (IPHONE, 5, False, (390, 844), True),
    ("Mozilla/5.0 (Linux; Android 14; Pixel 8) Chrome/126.0 Mobile Safari/537.36", 5, False, (412, 915), True),
    (IPAD_DESKTOP, 5, False, (1024, 1366), True),  # iPadOS asks for the desktop site
    (IPAD_DESKTOP, 0, True, (1512, 982), False),  # a Mac
    (WINDOWS, 10, True, (1366, 768), False),  # a touch-screen laptop has a trackpad
    (WINDOWS, 10, False, (600, 960), True),  # touch only, a small screen
    (WINDOWS, 10, False, (1920, 1080), False),  # a large touch-only screen (a kiosk): a computer
    (WINDOWS, 0, True, (1280, 720), False),
])
def test_the_phone_rule(agent, touch, fine, screen, phone):
    assert is_phone(agent, touch, fine, *screen) is phone


RULE = {"min_window": [1024, 640], "phone_window": [320, 480], "phones": "exclude", "fullscreen": True}


@pytest.mark.parametrize("rule, report, agent, expected", [
    (RULE, {"window_w": 1200, "window_h": 700, "fullscreen_ok": True}, WINDOWS, []),
    (RULE, {"window_w": 1000, "window_h": 700}, WINDOWS,
     ["window is 1000 x 700 pixels; the study needs at least 1024 x 640"]),
    (RULE, {"window_w": 1200, "window_h": 700, "fullscreen_ok": False}, WINDOWS, ["full screen"]),
    (RULE, {"window_w": 390, "window_h": 664}, IPHONE, ["cannot be done on a phone or tablet"]),
    ({**RULE, "phones": "allow"}, {"window_w": 390, "window_h": 664}, IPHONE, []),  # held to phone_window
    ({**RULE, "phones": "allow"}, {"window_w": 300, "window_h": 664}, IPHONE, ["at least 320 x 480"]),
])
def test_device_problems_name_what_is_missing(rule, report, agent, expected):
    found = device_problems(rule, report, agent)
    assert len(found) == len(expected) and all(e in f for e, f in zip(expected, found))


@pytest.fixture
def codecharts(app, tmp_path, write_pair):
    """make(name, **design keys) -> `name`: a CodeCharts design on 3 pairs of 480x360 images
    (shown at 960x720 CSS px), 2 images per participant, in the app's database."""
    from datadir import Dataset
    from studyweb.designs import create_from_design

    def make(name: str, **keys) -> str:
        ds = Dataset.create(tmp_path / name, name, seed=1)
        ds.add_pairs([write_pair(ds.path, f"{name}{i}", size=(480, 360)) for i in range(3)])
        design = {"per_participant": 2, "observers": 5, "completion_code": "DONE1", "screenout_code": "SCR1",
                  "blocks": [{"name": "cc", "task": "codecharts",
                              "codecharts": {"fixation_ms": 300, "image_ms": [600], "chart_ms": 400}}], **keys}
        db = app.extensions["studyweb.sessions"]()
        create_from_design(db, design, ds.path, name)
        db.commit()
        db.close()
        return name

    return make


def _enter(app, name: str, pid: str, agent: str = WINDOWS):
    client = app.test_client()
    r = client.get(f"/s/{name}", query_string={"PROLIFIC_PID": pid}, headers={"User-Agent": agent})
    assert r.status_code == 302
    return client


def _report(window=(1280, 800), screen=(1920, 1080), dpr="1.5", touch="0", fine="1"):
    return {"screen_w": str(screen[0]), "screen_h": str(screen[1]), "window_w": str(window[0]),
            "window_h": str(window[1]), "dpr": dpr, "touch_points": touch, "fine_pointer": fine, "fullscreen_ok": "1"}


def test_the_consent_page_carries_the_rule_with_the_window_a_codecharts_image_needs(app, codecharts):
    import html
    import json
    import re

    import math

    from studyweb.tasks.codecharts import least_shown_size

    def rule_of(name: str) -> tuple[dict, str]:
        page = _enter(app, name, "p1").get(f"/s/{name}/consent").get_data(as_text=True)
        return json.loads(html.unescape(re.search(r'data-rule="([^"]*)"', page).group(1))), page

    # 960x720 images, which the page may shrink until codes are MIN_CODE_PX high, plus its
    # margins (24, 64): within the default 1024x640 (the CodeCharts task's needed_window).
    rule, page = rule_of(codecharts("ccrule"))
    assert rule == {"min_window": [1024, 640], "phone_window": [320, 480], "phones": "exclude", "fullscreen": False}
    assert 'id="consent" hidden' in page and "device_check.js" in page
    w, h = least_shown_size(480, 360, {"display_width_px": 1000, "max_upscale": 2})
    assert (w + 24, h + 64) < (1024, 640)


def test_a_browser_that_passes_is_recorded_with_its_pixel_ratio(app, codecharts, participant_of):
    name = codecharts("ccpass")
    client = _enter(app, name, "p1")
    r = client.post(f"/s/{name}/consent", data={"consent": "yes", **_report()})
    assert "/instructions" in r.location
    p = participant_of(client.get_cookie(app.config["PARTICIPANT_COOKIE"]).value)
    assert (p.status, p.screen_w, p.screen_h, p.window_w, p.window_h) == ("instructions", 1920, 1080, 1280, 800)
    event = next(e for e in p.events if e.kind == "device_check")
    assert event.payload["dpr"] == 1.5 and event.payload["passed"] is True and event.payload["phone"] is False


def test_a_window_too_small_or_a_phone_is_screened_out_with_its_own_code(app, codecharts, participant_of, dbs):
    from studyweb.assignment import observer_counts
    from studyweb.experiments import experiment_by_name

    name = codecharts("ccsmall")
    small = _enter(app, name, "small")
    r = small.post(f"/s/{name}/consent", data={"consent": "yes", **_report(window=(1000, 700))})
    assert "/screened-out" in r.location
    page = small.get(r.location).get_data(as_text=True)
    assert "SCR1" in page and "DONE1" not in page and "cannot provide" in page
    p = participant_of(small.get_cookie(app.config["PARTICIPANT_COOKIE"]).value)
    assert (p.status, p.qc_status, p.completion_code, p.trials) == ("screened_out", "screened_out", "SCR1", [])
    assert p.qc_reason.startswith("device: the browser window is 1000 x 700") and p.qc_decided_at is not None
    assert [e.kind for e in p.events] == ["device_check", "screened_out"]
    # nothing more to do: every page leads back to the screened-out page
    for path in ("consent", "instructions", "task", "debrief", "complete", "resume"):
        assert "/screened-out" in small.get(f"/s/{name}/{path}").location
    phone = _enter(app, name, "phone", agent=IPHONE)
    r = phone.post(f"/s/{name}/device", data=_report(window=(390, 664), screen=(390, 844), dpr="3", touch="5",
                                                     fine="0"))
    assert "/screened-out" in r.location
    p = participant_of(phone.get_cookie(app.config["PARTICIPANT_COOKIE"]).value)
    assert p.status == "screened_out" and "phone" in p.qc_reason
    assert next(e for e in p.events if e.kind == "device_check").payload["dpr"] == 3.0
    assert observer_counts(dbs, experiment_by_name(dbs, name)) == {}


def test_the_screenout_url_is_where_a_screened_out_participant_is_sent(app, codecharts):
    name = codecharts("ccurl", screenout_url="https://app.prolific.com/submissions/complete?cc=SCR9")
    client = _enter(app, name, "p1")
    r = client.post(f"/s/{name}/device", data={})  # no report: given up all the same
    r = client.get(r.location)
    assert r.status_code == 302 and r.location == "https://app.prolific.com/submissions/complete?cc=SCR9"
    shown = client.get(f"/s/{name}/screened-out?show=code").get_data(as_text=True)
    assert "SCR9" in shown and "screenout-link" in shown


def test_comprehension_repeats_the_instructions_then_screens_out(app, codecharts, participant_of):
    name = codecharts("ccquiz", comprehension=QUIZ, device=False)
    passing = _enter(app, name, "passes")
    passing.post(f"/s/{name}/consent", data={"consent": "yes"})
    assert "/comprehension" in passing.post(f"/s/{name}/instructions", data={"window_w": "1200"}).location
    quiz = passing.get(f"/s/{name}/comprehension").get_data(as_text=True)
    assert "What do you type?" in quiz and "attempt 1 of 2" in quiz
    r = passing.post(f"/s/{name}/comprehension", data={"q0": "any code"})
    assert "/instructions" in r.location and "again=1" in r.location
    assert "Some of your answers were not right" in passing.get(r.location).get_data(as_text=True)
    assert "/s/" in passing.get(f"/s/{name}/task").location  # not on the task page yet
    assert "/task" in passing.post(f"/s/{name}/comprehension", data={"q0": "the code I saw last"}).location
    p = participant_of(passing.get_cookie(app.config["PARTICIPANT_COOKIE"]).value)
    assert p.status == "practice"
    assert [(e.kind, e.payload["attempt"]) for e in p.events if e.kind.startswith("comprehension")] == \
        [("comprehension_failed", 1), ("comprehension_passed", 2)]
    failing = _enter(app, name, "fails")
    failing.post(f"/s/{name}/consent", data={"consent": "yes"})
    for _ in range(2):
        r = failing.post(f"/s/{name}/comprehension", data={"q0": "any code"})
    assert "/screened-out" in r.location
    p = participant_of(failing.get_cookie(app.config["PARTICIPANT_COOKIE"]).value)
    assert p.status == "screened_out" and p.qc_reason.startswith("comprehension: 2 round(s)")
    assert "instructions were not answered correctly" in failing.get(f"/s/{name}/screened-out").get_data(as_text=True)


def test_the_export_says_screened_out(app, codecharts, dbs, tmp_path):
    from studyweb.experiments import experiment_by_name
    from studyweb.export import export_csv

    name = codecharts("ccexport")
    _enter(app, name, "gone").post(f"/s/{name}/device", data=_report(window=(640, 480)))
    files = export_csv(dbs, experiment_by_name(dbs, name), tmp_path / "csv")
    with open(files["participants"], encoding="utf-8", newline="") as handle:
        row = next(csv.DictReader(handle))
    assert (row["status"], row["qc_status"], row["completion_code"]) == ("screened_out", "screened_out", "SCR1")
    assert row["qc_reason"].startswith("device:") and row["window_w"] == "640"


def test_tutorial_feedback_names_the_code_at_a_sentinels_dot(app, codecharts, dbs):
    from studyweb import codecharts as cc
    from studyweb.db.schema import Trial
    from studyweb.tasks.codecharts import chart_of

    name = codecharts("ccfeed", device=False)
    client = _enter(app, name, "p1")
    client.post(f"/s/{name}/consent", data={"consent": "yes"})
    client.post(f"/s/{name}/instructions", data={"window_w": "1200"})
    token = client.get_cookie(app.config["PARTICIPANT_COOKIE"]).value
    trials = client.get("/api/v1/session", headers={H: token}).get_json()["trials"]
    sentinel = next(t for t in trials if t["is_practice"] and t["kind"] == "sentinel")
    image = next(t for t in trials if t["is_practice"] and t["kind"] == "image")
    assert client.get(f"/s/{name}/feedback/{sentinel['id']}").status_code == 404  # not answered yet
    item = chart_of(dbs.get(Trial, sentinel["id"]), dbs.query(Participant).one().experiment.settings)
    far = max(range(len(item.chart.codes)), key=lambda i: (item.chart.xs[i] - item.target[0]) ** 2
              + (item.chart.ys[i] - item.target[1]) ** 2)
    client.post(sentinel["answer_url"], headers={H: token},
                json={"idempotency_key": "s", "code": item.chart.codes[far], "rt_ms": 900})
    client.post(image["answer_url"], headers={H: token}, json={"idempotency_key": "i", "code": "a11", "rt_ms": 900})
    feedback = client.get(f"/s/{name}/feedback/{sentinel['id']}").get_json()
    nearest = min(range(len(item.chart.codes)), key=lambda i: (item.chart.xs[i] - item.target[0]) ** 2
                  + (item.chart.ys[i] - item.target[1]) ** 2)
    assert feedback == {"kind": "sentinel", "code": item.chart.codes[far], "valid": True, "correct": False,
                        "expected": item.chart.codes[nearest]}
    assert cc.sentinel_correct(item.chart, item.target, feedback["expected"], item.radius_px)
    # a code's two digits differ: A11 is on no chart
    assert client.get(f"/s/{name}/feedback/{image['id']}").get_json() == \
        {"kind": "image", "code": "A11", "valid": False, "correct": None, "expected": None}
    other = _enter(app, name, "p2")
    assert other.get(f"/s/{name}/feedback/{sentinel['id']}").status_code == 404  # not theirs


@pytest.fixture
def checked(app, codecharts):
    return codecharts("ccjunk", comprehension=QUIZ)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(value=st.text(max_size=20) | st.sampled_from(["\u00b2", "nan", "inf", "-1", "1e999", "1" * 30, "\x00"]))
def test_junk_in_the_device_report_comprehension_and_page_numbers_never_500(app, checked, value):
    fields = ("screen_w", "screen_h", "window_w", "window_h", "dpr", "touch_points", "fine_pointer", "fullscreen_ok")
    client = _enter(app, checked, f"junk{abs(hash(value))}")
    assert client.post(f"/s/{checked}/consent", data={"consent": "yes", **{f: value for f in fields}}).status_code < 500
    for path, data in ((f"/s/{checked}/instructions?page={value}", None), (f"/s/{checked}/comprehension", None),
                       (f"/s/{checked}/comprehension", {"q0": value}), (f"/s/{checked}/device", {"dpr": value}),
                       (f"/s/{checked}/feedback/1", None)):
        r = client.get(path) if data is None else client.post(path, data=data)
        assert r.status_code < 500, (path, value, r.data[:300])


# --- In Chromium ----------------------------------------------------------------------------------


def _browser():
    from support.browser import CHROMIUM

    if CHROMIUM is None:
        pytest.skip("browser tests need Debian's chromium (`which chromium` found nothing)")
    return pytest.importorskip("playwright.sync_api", reason="browser tests need the playwright package")


@pytest.mark.browser
def test_failing_the_tutorial_reaches_the_screenout_url_and_exports_screened_out(app, serve_with, codecharts,
                                                                                  tmp_path):
    from support.browser import chromium_page

    from studyweb.experiments import experiment_by_name
    from studyweb.export import export_csv

    _browser()
    name = codecharts("ccfail")
    base = serve_with(lambda db: None)
    # The recruitment site's screened-out link, served here (a test reaches no other host).
    screenout = f"{base}/recruiter/submissions/complete?cc=SCREENED"
    db = app.extensions["studyweb.sessions"]()
    experiment = experiment_by_name(db, name)
    experiment.settings = {**experiment.settings, "screenout_url": screenout}
    db.commit()
    db.close()
    with chromium_page(1100, 900) as page:
        page.goto(f"{base}/s/{name}?PROLIFIC_PID=failer")
        page.locator("#consent-yes").click()  # the device check passes at 1100 x 900
        page.locator("#instructions-ok").click()
        feedback = []
        for k in range(6):
            page.locator("button.start").click()
            page.wait_for_function("document.querySelector('.cc-stage').dataset.screen === 'answer'")
            answered = page.evaluate("window.gazelabLastTrial.id")
            page.locator("#cc-code").fill("A11")  # a code's two digits differ: never on a chart
            page.keyboard.press("Enter")
            if k < 5:  # the next tutorial screen says how this one went
                page.wait_for_function(f"window.gazelabLastTrial.id !== {answered}"
                                       " && document.querySelector('.cc-stage').dataset.screen === 'ready'")
                feedback.append(page.locator(".cc-feedback").inner_text())
        page.wait_for_url(screenout, timeout=20000)
    assert all("A11" in text for text in feedback) and any("red dot was" in text for text in feedback)
    db = app.extensions["studyweb.sessions"]()
    try:
        files = export_csv(db, experiment_by_name(db, name), tmp_path / "csv")
    finally:
        db.close()
    with open(files["participants"], encoding="utf-8", newline="") as handle:
        row = next(r for r in csv.DictReader(handle) if r["recruit_id"] == "failer")
    assert row["status"] == "screened_out" and row["qc_reason"].startswith("tutorial:")


@pytest.mark.browser
def test_the_device_check_asks_for_a_larger_window_and_lets_a_phone_end_the_study(app, serve_with, codecharts):
    sync_api = _browser()
    from support.browser import ARGS, CHROMIUM

    name = codecharts("ccdev")
    base = serve_with(lambda db: None)
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            page = browser.new_page(viewport={"width": 900, "height": 600})
            page.goto(f"{base}/s/{name}?PROLIFIC_PID=small")
            refusal = page.locator(".device-refusal")
            refusal.wait_for(state="visible")
            assert "900 × 600 pixels; this study needs at least 1024 × 640" in refusal.inner_text()
            assert not page.locator("#consent-yes").is_visible()
            page.locator("#device-again").click()  # still too small: still refused, never a dead end
            assert refusal.is_visible() and page.locator("#device-give-up").is_visible()
            page.set_viewport_size({"width": 1100, "height": 900})  # checked again as the window grows
            page.locator("#consent-yes").click()
            page.wait_for_url("**/instructions*")
            phone = browser.new_context(viewport={"width": 390, "height": 664}, screen={"width": 390, "height": 844},
                                        device_scale_factor=3, is_mobile=True, has_touch=True, user_agent=IPHONE)
            page = phone.new_page()
            page.goto(f"{base}/s/{name}?PROLIFIC_PID=phone")
            page.locator(".device-refusal").wait_for(state="visible")
            assert "cannot be done on a phone or tablet" in page.locator(".device-problems").inner_text()
            assert not page.locator("#device-again").is_visible()  # a phone cannot be made a computer
            page.locator("#device-give-up").click()
            page.wait_for_url("**/screened-out*")
            assert page.locator("#screenout-code").inner_text() == "SCR1"
            assert page.evaluate("document.documentElement.scrollWidth") <= 390  # nothing runs off a phone
        finally:
            browser.close()
    db = app.extensions["studyweb.sessions"]()
    try:
        rows = {p.recruit_id: p for p in db.query(Participant)}
        assert rows["small"].status == "instructions" and rows["small"].window_w == 1100
        assert rows["phone"].status == "screened_out"
        check = db.query(Event).filter_by(participant_id=rows["phone"].id, kind="device_check").one()
        assert check.payload["phone"] is True and check.payload["dpr"] == 3 and check.payload["window_w"] == 390
    finally:
        db.close()


@pytest.mark.browser
def test_fullscreen_is_asked_for_on_the_task_page_and_again_when_left(app, serve_with, codecharts):
    from support.browser import chromium_page

    _browser()
    name = codecharts("ccfull", device={"fullscreen": True})
    base = serve_with(lambda db: None)
    with chromium_page(1100, 900) as page:
        page.goto(f"{base}/s/{name}?PROLIFIC_PID=full")
        page.locator("#consent-yes").click()
        page.locator("#instructions-ok").click()
        gate = page.locator("#fullscreen-gate")
        gate.wait_for(state="visible")
        assert "runs in full screen" in gate.inner_text()
        page.locator("#fullscreen-enter").click()
        gate.wait_for(state="hidden")
        assert page.evaluate("document.fullscreenElement !== null")
        page.evaluate("document.exitFullscreen()")
        gate.wait_for(state="visible")
        assert "You left full screen" in gate.inner_text()
        kinds = []
        for _ in range(50):  # the events go out as the page goes on
            db = app.extensions["studyweb.sessions"]()
            try:
                participant = db.query(Participant).filter_by(recruit_id="full").one()
                kinds = [e.kind for e in db.query(Event).filter_by(participant_id=participant.id)]
            finally:
                db.close()
            if "fullscreen_exit" in kinds:
                break
            page.wait_for_timeout(100)
    assert "fullscreen_enter" in kinds and "fullscreen_exit" in kinds
