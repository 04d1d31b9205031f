"""One response per trial (issue 22), on SQLite and on PostgreSQL: answers racing into one
trial through a real gunicorn server store one response per question and every other request
gets 409 naming the trial; the database's unique (trial, question) turns a second row into that
409 too; the questionnaire page meeting that 409 goes on to its next trial (Chromium); an
idempotency key is held to its route and trial, so the same body sent to two trials is never
dropped as a duplicate; migration 0006 moves the duplicates a database already holds aside and
says how many."""
from __future__ import annotations

import json
import logging
import threading
from collections import Counter

import cv2
import numpy as np
import pytest
import requests
from sqlalchemy import func, select, text

from studyweb import db
from studyweb.db.schema import Click, DuplicateResponse, Event, Response, SaveRecord, Trial

H = "X-Participant-Token"
RACERS = 12
SIZE = (480, 360)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request, tmp_path):
    """A migrated study database: a SQLite file in tmp_path, or a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'study.db'}"
    return request.getfixturevalue("postgres_db")


@pytest.fixture
def app(study_app_on, database_url, dataset, tmp_path, write_pair):
    """The conftest `app` (experiment 'pilot', BubbleView) on `database_url`, plus 'cc'
    (CodeCharts, 4 images of 480x360, K=2, no tutorial) and 'quest' (choose_best, K=2: two
    trials of three candidates each); conftest's client, enrol_in and dbs follow it."""
    from datadir import Dataset
    from studyweb.designs import create_from_design
    from studyweb.experiments import create_experiment

    study = study_app_on(database_url)
    methods = {}
    for k, method in enumerate(("salggan", "hag", "cyclegan")):
        folder = tmp_path / "edits" / method
        folder.mkdir(parents=True)
        for pair_id in dataset.pairs["pair_id"]:
            cv2.imwrite(str(folder / f"{pair_id}.png"), np.full((12, 16, 3), 40 * (k + 1), np.uint8))
        methods[method] = str(folder)
    ds = Dataset.create(tmp_path / "ccds", "cc", seed=1)
    ds.add_pairs([write_pair(ds.path, f"c{i}", size=SIZE) for i in range(4)])
    session = study.extensions["studyweb.sessions"]()
    create_experiment(session, ds.path, "cc", task="codecharts", per_participant=2, observers=5,
                      completion_code="CC1", codecharts={"image_ms": [1000], "sentinel_every": 3, "tutorial": False})
    create_from_design(session, {"title": "Q", "per_participant": 2, "observers": 4, "completion_code": "Q1",
                                 "methods": methods, "blocks": [{"name": "best", "task": "choose_best",
                                                                 "questions": [{"id": "realism", "text": "Best?"}]}]},
                       dataset.path, "quest")
    session.commit()
    session.close()
    return study


# --- Racing answers through a real server ---------------------------------------------------


def test_racing_answers_store_one_response_per_trial_and_409_the_rest(app, gunicorn, database_url, dbs):
    """Twelve answers with different keys released at once into each of two CodeCharts trials
    and a choose_best trial (the issue: 4 of 6 CodeCharts trials got several responses on
    SQLite, 6 of 6 on PostgreSQL)."""
    server = gunicorn(database_url)
    cookie = app.config["PARTICIPANT_COOKIE"]
    cc_token, cc_trials = _enrol(server.url, "cc", "race-cc", cookie)
    q_token, q_trials = _enrol(server.url, "quest", "race-q", cookie)
    races = []
    for trial in cc_trials[:2]:
        chart = requests.get(f"{server.url}{trial['chart_url']}", headers={H: cc_token}, timeout=30).json()
        code = chart["codes"][len(chart["codes"]) // 2]["code"]
        races.append((cc_token, trial, lambda i, tid=trial["id"], code=code: {
            "idempotency_key": f"cc-{tid}-{i}", "code": code, "rt_ms": 900,
            "events": [{"type": "answer_typed", "t_ms": 10.0 * i}]}))
    trial = q_trials[0]
    labels = [c["label"] for c in trial["candidates"]]
    races.append((q_token, trial, lambda i, tid=trial["id"]: {
        "idempotency_key": f"q-{tid}-{i}", "answers": [{"question": "realism", "choice": labels[i % len(labels)]}],
        "rt_ms": 1500}))

    for token, trial, body_of in races:
        results = _race(f"{server.url}{trial['answer_url']}", token, body_of)
        assert Counter(r.status_code for r in results) == {200: 1, 409: RACERS - 1}, [r.text[:200] for r in results]
        for r in results:
            if r.status_code == 409:
                assert r.json() == {"error": "conflict", "message": f"trial {trial['id']} is already answered"}
        winner = next(i for i, r in enumerate(results) if r.status_code == 200)
        assert results[winner].json()["duplicate"] is False
        # Exactly the winner's answer is stored, and nothing of the others: no key, click or event.
        dbs.expire_all()
        tid = trial["id"]
        rows = dbs.scalars(select(Response).where(Response.trial_id == tid)).all()
        assert len(rows) == 1 and rows[0].idempotency_key == body_of(winner)["idempotency_key"]
        keys = [body_of(i)["idempotency_key"] for i in range(RACERS)]
        assert dbs.scalars(select(SaveRecord.idempotency_key).where(SaveRecord.idempotency_key.in_(keys))).all() \
            == [keys[winner]]
        expected_clicks = 1 if trial.get("task") == "codecharts" and rows[0].valid and trial["kind"] == "image" else 0
        assert dbs.scalar(select(func.count()).select_from(Click).where(Click.trial_id == tid)) == expected_clicks
        events = dbs.scalars(select(Event.t_ms).where(Event.trial_id == tid, Event.kind == "answer_typed")).all()
        assert events == ([10.0 * winner] if "events" in body_of(0) else [])
        assert dbs.get(Trial, tid).status == "done"
    assert "internal error" not in server.log_tail(10**7)


def _enrol(base: str, experiment: str, recruit_id: str, cookie: str) -> tuple[str, list[dict]]:
    """(token, trials) of a participant who entered `experiment` over HTTP, consented and read
    the instructions."""
    with requests.Session() as browser:
        assert browser.get(f"{base}/s/{experiment}", params={"PROLIFIC_PID": recruit_id}, timeout=30).ok
        token = browser.cookies.get(cookie)
        for page, form in (("consent", {"consent": "yes"}), ("instructions", {"window_w": "800"})):
            assert browser.post(f"{base}/s/{experiment}/{page}", data=form, allow_redirects=False,
                                timeout=30).status_code == 302
        state = browser.get(f"{base}/api/v1/session", headers={H: token}, timeout=30).json()
    return token, [t for t in state["trials"] if not t["is_practice"]]


def _race(url: str, token: str, body_of) -> list[requests.Response]:
    """POST body_of(i) to `url` from RACERS threads, each on its own connection, released at once."""
    barrier = threading.Barrier(RACERS)
    results: list = [None] * RACERS

    def post(i: int) -> None:
        with requests.Session() as own:
            barrier.wait(timeout=30)
            results[i] = own.post(url, headers={H: token}, json=body_of(i), timeout=60)

    threads = [threading.Thread(target=post, args=(i,)) for i in range(RACERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=90)
    assert not any(thread.is_alive() for thread in threads), "a request hung"
    return results


@pytest.mark.browser
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_409_for_an_answered_trial_moves_the_page_on(app, serve_with, database_url, dbs):
    """The questionnaire page whose answer meets a trial answered meanwhile (another tab): the
    409 is set aside and the page goes on to the next trial, never asking the answered one again."""
    from support.browser import CHROMIUM, chromium_page

    if CHROMIUM is None:
        pytest.skip("browser tests need Debian's chromium (`which chromium` found nothing)")
    pytest.importorskip("playwright.sync_api", reason="browser tests need the playwright package")
    base = serve_with(lambda session: None)
    with chromium_page(1200, 800) as page:
        page.goto(f"{base}/s/quest?PROLIFIC_PID=tab409")
        page.locator("#consent-yes").click()
        page.locator("#instructions-ok").click()
        page.wait_for_selector('.qn-stage[data-state="answering"]')
        first = page.evaluate("window.gazelabLastTrial")
        token = page.evaluate("document.getElementById('task').dataset.token")
        other_tab = requests.post(f"{base}{first['answer_url']}", headers={H: token}, timeout=30, json={
            "idempotency_key": "other-tab", "answers": [{"question": "realism", "choice": "A"}]})
        assert other_tab.status_code == 200
        page.locator('.qn-candidate[data-label="B"] img').click()
        page.locator("button.qn-next").click()
        page.wait_for_function(f"window.gazelabLastTrial.id !== {first['id']}", timeout=15000)
        page.wait_for_selector('.qn-stage[data-state="answering"]')
        page.locator('.qn-candidate[data-label="C"] img').click()
        page.locator("button.qn-next").click()
        page.wait_for_url("**/debrief*")
        rejected = page.evaluate("t => JSON.parse(localStorage.getItem(`gazelab.rejected.${t}`) || '[]')", token)
    assert [(item["status"], json.loads(item["why"])["message"]) for item in rejected] == [
        (409, f"trial {first['id']} is already answered")]
    stored = dbs.execute(select(Response.trial_id, Response.idempotency_key, Response.payload)
                         .join(Trial, Trial.id == Response.trial_id).order_by(Trial.position)).all()
    assert [(tid, key) for tid, key, _ in stored][0] == (first["id"], "other-tab")
    assert len(stored) == 2 and stored[1].payload["label"] == "C"


# --- The unique constraint behind the check -------------------------------------------------


def test_a_second_response_row_refused_by_the_database_is_a_409_and_stores_nothing(app, enrol_in, dbs):
    """A response already in the table for a trial still open (imported, or written by a path
    that skipped the check): the INSERT's IntegrityError becomes the same 409, and nothing of
    the request stays, its idempotency key included."""
    client, token = enrol_in("cc", PROLIFIC_PID="constraint")
    trial = next(t for t in client.get("/api/v1/session", headers={H: token}).get_json()["trials"]
                 if t["kind"] == "image")
    participant_id = dbs.get(Trial, trial["id"]).participant_id
    dbs.add(Response(participant_id=participant_id, trial_id=trial["id"], task="codecharts", question="code",
                     choice="A00", idempotency_key="imported"))
    dbs.commit()
    code = client.get(trial["chart_url"], headers={H: token}).get_json()["codes"][0]["code"]
    body = {"idempotency_key": "second", "code": code, "rt_ms": 800, "events": [{"type": "answer_typed"}]}
    r = client.post(trial["answer_url"], headers={H: token}, json=body)
    assert r.status_code == 409
    assert r.get_json() == {"error": "conflict", "message": f"trial {trial['id']} is already answered"}
    dbs.expire_all()
    assert dbs.get(Trial, trial["id"]).status != "done"
    assert dbs.scalars(select(Response.idempotency_key).where(Response.trial_id == trial["id"])).all() == ["imported"]
    assert dbs.scalar(select(func.count()).select_from(Click).where(Click.trial_id == trial["id"])) == 0
    assert dbs.scalar(select(func.count()).select_from(Event).where(Event.trial_id == trial["id"])) == 0
    assert dbs.get(SaveRecord, (participant_id, "second")) is None
    assert client.post(trial["answer_url"], headers={H: token}, json=body).status_code == 409  # still, when resent


# --- Idempotency keys held to their route and trial -----------------------------------------


def test_the_same_save_body_to_two_trials_is_never_a_duplicate(app, enrol, participant_of):
    """The issue: the same body sent to T2 after T1 was answered 200 {"duplicate": true,
    "stored_clicks": 0} and T2's clicks were dropped."""
    client, token = enrol(PROLIFIC_PID="two-trials")
    trials = client.get("/api/v1/session", headers={H: token}).get_json()["trials"]
    t1, t2 = trials[1]["id"], trials[2]["id"]
    body = {"idempotency_key": "same", "clicks": [{"x": 3, "y": 4, "t_ms": 50}], "display_w": 32, "display_h": 24}
    first = client.post(f"/api/v1/trials/{t1}/save", headers={H: token}, json=body)
    assert first.get_json()["duplicate"] is False
    r = client.post(f"/api/v1/trials/{t2}/save", headers={H: token}, json=body)
    assert r.status_code == 409 and "'same'" in r.get_json()["message"] and "another trial" in r.get_json()["message"]
    r = client.post(f"/api/v1/trials/{t2}/save", headers={H: token}, json={**body, "idempotency_key": "fresh"})
    assert r.status_code == 200 and r.get_json()["stored_clicks"] == 1 and r.get_json()["duplicate"] is False
    retry = client.post(f"/api/v1/trials/{t1}/save", headers={H: token}, json=body)  # a genuine resend
    assert retry.status_code == 200 and retry.get_json()["duplicate"] is True
    clicks = {t.id: [(c.x, c.y, c.t_ms) for c in t.clicks] for t in participant_of(token).trials}
    assert clicks[t1] == clicks[t2] == [(3.0, 4.0, 50.0)]


def test_the_same_answer_body_to_two_trials_is_never_a_duplicate(app, enrol_in, dbs):
    client, token = enrol_in("quest", PROLIFIC_PID="two-answers")
    t1, t2 = client.get("/api/v1/session", headers={H: token}).get_json()["trials"][:2]
    body = {"idempotency_key": "same", "answers": [{"question": "realism", "choice": "A"}], "rt_ms": 1200}
    assert client.post(t1["answer_url"], headers={H: token}, json=body).get_json()["duplicate"] is False
    r = client.post(t2["answer_url"], headers={H: token}, json=body)
    assert r.status_code == 409 and "'same'" in r.get_json()["message"]
    retry = client.post(t1["answer_url"], headers={H: token}, json=body)
    assert retry.status_code == 200 and retry.get_json()["duplicate"] is True
    r = client.post(t2["answer_url"], headers={H: token}, json={**body, "idempotency_key": "fresh"})
    assert r.status_code == 200 and r.get_json()["duplicate"] is False
    stored = dbs.execute(select(Response.trial_id, Response.idempotency_key).where(
        Response.trial_id.in_([t1["id"], t2["id"]])).order_by(Response.trial_id)).all()
    assert [tuple(row) for row in stored] == [(t1["id"], "same"), (t2["id"], "fresh")]


def test_a_key_reused_on_another_route_is_refused(app, enrol):
    client, token = enrol(PROLIFIC_PID="routes")
    tid = client.get("/api/v1/session", headers={H: token}).get_json()["trials"][1]["id"]
    body = {"idempotency_key": "shared", "events": []}
    assert client.post("/api/v1/events", headers={H: token}, json={**body, "trial_id": tid}).status_code == 200
    r = client.post(f"/api/v1/trials/{tid}/save", headers={H: token}, json=body)
    assert r.status_code == 409 and "'shared'" in r.get_json()["message"]
    r = client.post("/api/v1/events", headers={H: token}, json={**body, "trial_id": None})
    assert r.status_code == 409  # the same events body about another trial (none) is another save


# --- Migration 0006 on a database that holds duplicates -------------------------------------


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def empty_url(request, tmp_path):
    """An empty database: a SQLite file in tmp_path, or a new PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'old.db'}"
    return request.getfixturevalue("postgres_database")(migrated=False)


def test_migration_keeps_the_first_answer_and_moves_the_rest_aside(empty_url, capsys, caplog):
    """A study at revision 0005 whose trials raced into several responses: after the upgrade
    each (trial, question) keeps its first response (lowest id), the others are whole rows in
    duplicate_responses, the count is logged and printed, and the constraint holds."""
    from sqlalchemy.exc import IntegrityError

    from studyweb.db.revisions import upgrade

    upgrade(empty_url, "0005")
    engine = db.make_engine(empty_url)
    rows = [(1, 1, "code", "B47"), (2, 1, "code", "C12"), (3, 1, "code", "B47"), (4, 1, "other", "x"),
            (5, 2, "code", "A01"), (6, 2, "code", "A02"), (7, 3, "code", "D44")]
    with engine.begin() as connection:
        for statement in (
                "INSERT INTO experiments (id, name, title, description, task, dataset_path, settings, status,"
                " created_at) VALUES (1, 'e', '', '', 'codecharts', '', '{}', 'open', '2024-01-01')",
                "INSERT INTO participants (id, experiment_id, token, recruit_source, source, status, created_at,"
                " last_seen_at) VALUES (1, 1, 't', 'anonymous', 'real', 'trials', '2024-01-01', '2024-01-01')",
                *(f"INSERT INTO trials (id, participant_id, position, is_practice, status)"
                  f" VALUES ({i}, 1, {i}, false, 'done')" for i in (1, 2, 3))):
            connection.execute(text(statement))
        for rid, tid, question, choice in rows:
            connection.execute(text(
                "INSERT INTO responses (id, participant_id, trial_id, task, question, choice, valid, rt_ms,"
                " payload, idempotency_key, created_at) VALUES (:id, 1, :tid, 'codecharts', :q, :c, true, 900,"
                " :payload, :key, '2024-01-01 10:00:00')"),
                {"id": rid, "tid": tid, "q": question, "c": choice, "payload": json.dumps({"kind": "image"}),
                 "key": f"k{rid}"})
    caplog.set_level(logging.WARNING, logger="studyweb.migrations")
    upgrade(empty_url)
    message = "3 duplicate response(s) in 2 trial(s) moved to duplicate_responses"
    assert message in capsys.readouterr().out
    assert message in caplog.text
    try:
        with db.session_factory(engine)() as session:
            kept = session.execute(select(Response.id, Response.choice).order_by(Response.id)).all()
            assert [tuple(row) for row in kept] == [(1, "B47"), (4, "x"), (5, "A01"), (7, "D44")]
            moved = session.scalars(select(DuplicateResponse).order_by(DuplicateResponse.response_id)).all()
            assert [(m.response_id, m.trial_id, m.question) for m in moved] == [(2, 1, "code"), (3, 1, "code"),
                                                                                (6, 2, "code")]
            whole = json.loads(moved[0].row)
            assert whole["choice"] == "C12" and whole["idempotency_key"] == "k2" and whole["rt_ms"] == 900
            assert whole["payload"] == {"kind": "image"} and whole["created_at"].startswith("2024-01-01")
            session.add(Response(participant_id=1, trial_id=1, task="codecharts", question="code",
                                 idempotency_key="late"))
            with pytest.raises(IntegrityError, match="(?i)unique|uq_responses_trial_question"):
                session.commit()
    finally:
        engine.dispose()


def test_migration_of_a_database_without_duplicates_says_nothing(empty_url, capsys):
    from studyweb.db.revisions import upgrade

    upgrade(empty_url)
    assert "duplicate" not in capsys.readouterr().out
