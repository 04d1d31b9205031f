"""Participant pages: entry from the study link, consent → instructions → task → debrief →
completion, resume after a reload, returning recruit ids."""
from __future__ import annotations

EXPERIMENT = "pilot"  # the conftest experiment


def _finish_all_trials(client, token):
    session = client.get("/api/v1/session", headers={"X-Participant-Token": token}).get_json()
    for n, trial in enumerate(session["trials"]):
        r = client.post(f"/api/v1/trials/{trial['id']}/save", headers={"X-Participant-Token": token},
                        json={"idempotency_key": f"k-{token[:8]}-{n}", "clicks": [{"x": 1, "y": 2, "t_ms": 50}],
                              "display_w": 160, "display_h": 120, "done": True})
        assert r.status_code == 200, r.get_json()


def test_entry_creates_participant_with_httponly_cookie(client, app, dbs, participant_of):
    r = client.get(f"/s/{EXPERIMENT}?PROLIFIC_PID=p1&STUDY_ID=s1&SESSION_ID=x1")
    assert r.status_code == 302 and "/consent" in r.location
    cookie = r.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
    token = client.get_cookie(app.config["PARTICIPANT_COOKIE"]).value
    p = participant_of(token)
    assert (p.recruit_source, p.recruit_id, p.study_id, p.session_id, p.status) == ("prolific", "p1", "s1", "x1", "consent")


def test_mturk_and_anonymous_entries(client, app, dbs, participant_of):
    client.get(f"/s/{EXPERIMENT}?workerId=w1&assignmentId=a1&hitId=h1")
    p = participant_of(client.get_cookie(app.config["PARTICIPANT_COOKIE"]).value)
    assert (p.recruit_source, p.recruit_id, p.study_id, p.session_id) == ("mturk", "w1", "h1", "a1")
    other = app.test_client()
    other.get(f"/s/{EXPERIMENT}")
    q = participant_of(other.get_cookie(app.config["PARTICIPANT_COOKIE"]).value)
    assert q.recruit_source == "anonymous" and q.recruit_id is None and q.id != p.id


def test_unknown_experiment_is_404(client):
    assert client.get("/s/nope").status_code == 404


def test_full_flow_to_completion_code(client, app, dbs, participant_of):
    client.get(f"/s/{EXPERIMENT}?PROLIFIC_PID=p2")
    token = client.get_cookie(app.config["PARTICIPANT_COOKIE"]).value
    page = client.get(f"/s/{EXPERIMENT}/consent")
    assert b"I agree" in page.data and b"&lt;b&gt;tiny&lt;/b&gt;" in page.data  # description escaped
    r = client.post(f"/s/{EXPERIMENT}/consent", data={"consent": "yes"})
    assert "/instructions" in r.location
    p = participant_of(token)
    assert p.status == "instructions" and len(p.trials) == 3 and p.trials[0].is_practice
    assert p.completion_code == "CODE123"
    r = client.post(f"/s/{EXPERIMENT}/instructions", data={"screen_w": "1920", "screen_h": "1080",
                                                          "window_w": "1200", "window_h": "x"})
    assert "/task" in r.location
    p = participant_of(token)
    assert (p.status, p.screen_w, p.window_w, p.window_h) == ("practice", 1920, 1200, None)
    task = client.get(f"/s/{EXPERIMENT}/task")
    assert task.status_code == 200 and b"flow.js" in task.data
    assert client.get(f"/s/{EXPERIMENT}/debrief").status_code == 302  # not there yet
    _finish_all_trials(client, token)
    assert participant_of(token).status == "debrief"
    assert "/debrief" in client.get(f"/s/{EXPERIMENT}/task").location
    r = client.post(f"/s/{EXPERIMENT}/debrief", data={"comments": "nice"})
    assert "/complete" in r.location
    done = client.get(f"/s/{EXPERIMENT}/complete")
    assert b"CODE123" in done.data
    p = participant_of(token)
    assert p.status == "complete" and p.completed_at is not None
    assert [e.kind for e in p.events] == ["debrief_comment"]


def test_reload_resumes_at_the_current_page(client, app):
    client.get(f"/s/{EXPERIMENT}?PROLIFIC_PID=p3")
    client.post(f"/s/{EXPERIMENT}/consent", data={"consent": "yes"})
    # a reload of the entry link, of an earlier page, or of resume → instructions
    assert "/instructions" in client.get(f"/s/{EXPERIMENT}?PROLIFIC_PID=p3").location
    assert "/instructions" in client.get(f"/s/{EXPERIMENT}").location
    assert "/instructions" in client.get(f"/s/{EXPERIMENT}/consent").location
    assert "/instructions" in client.get(f"/s/{EXPERIMENT}/resume").location
    # a new browser (no cookie) with the same recruit id resumes too
    other = app.test_client()
    assert "/instructions" in other.get(f"/s/{EXPERIMENT}?PROLIFIC_PID=p3").location


def test_url_token_works_without_cookie(client, app):
    client.get(f"/s/{EXPERIMENT}")
    token = client.get_cookie(app.config["PARTICIPANT_COOKIE"]).value
    bare = app.test_client()
    assert b"I agree" in bare.get(f"/s/{EXPERIMENT}/consent?t={token}").data


def test_returning_recruit_id_after_completion_is_refused_politely(enrol, app):
    c, token = enrol(PROLIFIC_PID="again")
    _finish_all_trials(c, token)
    c.post(f"/s/{EXPERIMENT}/debrief", data={})
    fresh = app.test_client()
    r = fresh.get(f"/s/{EXPERIMENT}?PROLIFIC_PID=again")
    assert r.status_code == 409 and b"already took part" in r.data


def test_declining_consent_ends_participation(client, app, dbs, participant_of):
    client.get(f"/s/{EXPERIMENT}")
    token = client.get_cookie(app.config["PARTICIPANT_COOKIE"]).value
    r = client.post(f"/s/{EXPERIMENT}/consent", data={"consent": "no"})
    assert b"chose not to take part" in r.data
    p = participant_of(token)
    assert p.status == "returned" and p.trials == []
    assert "/ended" in client.get(f"/s/{EXPERIMENT}").location


def test_full_study_shows_a_polite_page(app):
    # 6 stimuli x 3 observers: at most 18 (non-practice) trials, then everyone is refused politely.
    for _ in range(30):
        c = app.test_client()
        c.get(f"/s/{EXPERIMENT}")
        r = c.post(f"/s/{EXPERIMENT}/consent", data={"consent": "yes"})
        if r.status_code != 302:
            break
    assert r.status_code == 409 and b"study is full" in r.data
    assert "/consent" in c.get(f"/s/{EXPERIMENT}").location  # nothing assigned, still at consent


def test_completion_url_redirects(app, dbs, enrol):
    from studyweb.db.schema import Experiment

    exp = dbs.query(Experiment).filter_by(name=EXPERIMENT).one()
    exp.settings = {**exp.settings, "completion_url": "https://app.prolific.com/submissions/complete?cc=X"}
    dbs.commit()
    c, token = enrol()
    _finish_all_trials(c, token)
    c.post(f"/s/{EXPERIMENT}/debrief", data={})
    r = c.get(f"/s/{EXPERIMENT}/complete")
    assert r.status_code == 302 and r.location.startswith("https://app.prolific.com/")


def test_returning_recruit_id_may_repeat_when_the_experiment_allows_it(enrol, app, dbs):
    from sqlalchemy import select

    from studyweb.db.schema import Experiment

    experiment = dbs.scalar(select(Experiment).where(Experiment.name == EXPERIMENT))
    experiment.settings = {**experiment.settings, "allow_repeat": True}
    dbs.commit()
    c, token = enrol(PROLIFIC_PID="twice")
    _finish_all_trials(c, token)
    c.post(f"/s/{EXPERIMENT}/debrief", data={})
    fresh = app.test_client()
    r = fresh.get(f"/s/{EXPERIMENT}?PROLIFIC_PID=twice")
    assert r.status_code == 302 and "/consent" in r.location
    second = fresh.get_cookie(app.config["PARTICIPANT_COOKIE"]).value
    assert second != token


def test_simulated_clients_are_labelled_simulated(client, app, participant_of):
    client.get(f"/s/{EXPERIMENT}?gazelab_simulated=1")
    simulated = participant_of(client.get_cookie(app.config["PARTICIPANT_COOKIE"]).value)
    assert simulated.source == "simulated"
    person = app.test_client()
    person.get(f"/s/{EXPERIMENT}")
    assert participant_of(person.get_cookie(app.config["PARTICIPANT_COOKIE"]).value).source == "real"
