"""Security: admin refused without login, CSRF, cross-participant access, escaping,
production secret, and hypothesis-generated junk payloads that must never cause a 500."""
from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from studyweb import create_app
from studyweb.db import Experiment

H = "X-Participant-Token"
ADMIN_GETS = ["/admin/", "/admin/e/pilot", "/admin/stimuli/1/heatmap.png"]
ADMIN_POSTS = ["/admin/e/pilot/build-maps", "/admin/e/pilot/export", "/admin/logout"]


@pytest.mark.parametrize("path", ADMIN_GETS)
def test_admin_pages_refuse_without_login(client, path):
    r = client.get(path)
    assert r.status_code == 302 and "/admin/login" in r.location


@pytest.mark.parametrize("path", ADMIN_POSTS)
def test_admin_posts_refuse_without_login_even_with_csrf(client, path):
    client.get("/admin/login")
    with client.session_transaction() as s:
        token = s["csrf_token"]
    r = client.post(path, data={"csrf_token": token, "what": "csv"})
    assert r.status_code == 302 and "/admin/login" in r.location


def test_login_and_admin_posts_refuse_a_wrong_csrf_token(client):
    client.get("/admin/login")
    r = client.post("/admin/login", data={"username": "alice", "password": "correct horse", "csrf_token": "forged"})
    assert r.status_code == 400 and b"CSRF" in r.data
    r = client.post("/admin/login", data={"username": "alice", "password": "correct horse"})
    assert r.status_code == 400


def test_names_and_descriptions_are_escaped(app, dbs, client, enrol):
    exp = dbs.query(Experiment).filter_by(name="pilot").one()
    exp.title = "<script>alert('t')</script>"
    exp.description = "<script>alert('d')</script>"
    dbs.commit()
    client.get("/s/pilot")
    page = client.get("/s/pilot/consent").data
    assert b"<script>alert" not in page and b"&lt;script&gt;alert(" in page
    c = app.test_client()
    c.get("/admin/login")
    with c.session_transaction() as s:
        token = s["csrf_token"]
    c.post("/admin/login", data={"username": "alice", "password": "correct horse", "csrf_token": token})
    for path in ("/admin/", "/admin/e/pilot"):
        page = c.get(path).data
        assert b"<script>alert" not in page and b"&lt;script&gt;alert(" in page


def test_recruit_ids_are_escaped_and_bounded(client):
    r = client.get("/s/pilot", query_string={"PROLIFIC_PID": "x" * 500})
    assert r.status_code == 400 and b"at most 128" in r.data


def test_production_refuses_the_default_secret(tmp_path, monkeypatch):
    monkeypatch.setenv("GAZELAB_ENV", "production")
    monkeypatch.delenv("GAZELAB_SECRET_KEY", raising=False)
    with pytest.raises(ValueError, match="GAZELAB_SECRET_KEY"):
        create_app({"DATABASE_URL": f"sqlite:///{tmp_path / 'x.db'}", "INSTANCE_DIR": str(tmp_path)})


def test_cross_participant_session_and_images(enrol):
    a, token_a = enrol(PROLIFIC_PID="A")
    b, token_b = enrol(PROLIFIC_PID="B")
    sa = a.get("/api/v1/session", headers={H: token_a}).get_json()
    sb = b.get("/api/v1/session", headers={H: token_b}).get_json()
    assert {t["id"] for t in sa["trials"]}.isdisjoint({t["id"] for t in sb["trials"]})
    for t in sa["trials"]:
        assert b.get(f"/t/trials/{t['id']}/blurred.png").status_code == 404
        r = b.post(f"/api/v1/trials/{t['id']}/save", headers={H: token_b}, json={"idempotency_key": "x"})
        assert r.status_code == 404


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-10**12, 10**12) | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=20,
)
click = st.fixed_dictionaries({"x": json_values | st.floats(-5, 30), "y": json_values | st.floats(-5, 30),
                               "t_ms": json_values | st.floats(-10, 4e6)})
save_body = st.fixed_dictionaries({}, optional={
    "idempotency_key": json_values | st.uuids().map(str), "clicks": json_values | st.lists(click, max_size=5),
    "display_w": json_values, "display_h": json_values, "done": json_values, "events": json_values,
    "response_text": json_values, "elapsed_ms": json_values, "junk": json_values,
})


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=save_body | json_values, raw=st.binary(max_size=64))
def test_junk_payloads_never_500(enrol_once, body, raw):
    client, token, trial_id = enrol_once
    for data in (json.dumps(body).encode(), raw):
        for path in (f"/api/v1/trials/{trial_id}/save", "/api/v1/events"):
            r = client.post(path, headers={H: token, "Content-Type": "application/json"}, data=data)
            assert r.status_code < 500, (path, data, r.data)
            assert r.is_json
            if r.status_code >= 400:
                assert r.get_json()["message"]


@pytest.fixture
def enrol_once(enrol):
    client, token = enrol(PROLIFIC_PID="fuzz")
    trial_id = client.get("/api/v1/session", headers={H: token}).get_json()["trials"][1]["id"]
    return client, token, trial_id
